package tiering

import (
	"context"
	"testing"
)

// BenchmarkReadWarmCache: a consumer reading the remote tier sequentially
// with every chunk already cached (1 MiB fetches, 4 MiB chunks).
func BenchmarkReadWarmCache(b *testing.B) {
	e := newEnv(b)
	e.m.tune.chunkBytes = 4 << 20
	e.log = e.openLog(b.TempDir(), 4<<20)
	produce(b, e.log, 6000, 10, 1000, 100) // ~13 MiB of ~2 KiB batches
	e.start(remoteOn())
	e.waitUploaded(e.log)
	man := e.manifest()
	ctx := context.Background()
	readRange(b, e.m, e.topicID, man.LogStartOffset, man.End()) // warm
	var off, bytes int64
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rr, err := e.m.Read(ctx, e.topicID, 0, off, 1<<20, true)
		if err != nil {
			b.Fatal(err)
		}
		bytes += rr.Len
		off += 400 // about 1 MiB on
		if off >= man.End() {
			off = man.LogStartOffset
		}
		rr.Release()
	}
	b.SetBytes(bytes / int64(b.N))
}

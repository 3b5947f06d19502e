package storage

import (
	"context"
	"strings"
	"testing"

	"github.com/strata-broker/strata/proto"
)

// benchBatch is a 16 KiB batch of sixteen 1 KiB records.
func benchBatch(b *testing.B) []proto.Batch {
	b.Helper()
	recs := make([]proto.Record, 16)
	v := []byte(strings.Repeat("v", 1024))
	for i := range recs {
		recs[i] = proto.Record{TimestampDelta: int64(i), Value: v}
	}
	return split(b, proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: 1, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs))
}

func benchConfig(relaxed bool) Config {
	c := DefaultConfig()
	c.SegmentBytes = 256 << 20
	if relaxed {
		c.FlushMessages = 1 << 40
		c.FlushMs = 1000
	}
	return c
}

// BenchmarkAppend measures appends of 16 KiB batches. safe waits for each
// append to be durable from one goroutine (fsync latency bound);
// safe-parallel does so from GOMAXPROCS*8 producers sharing fsyncs.
func BenchmarkAppend(b *testing.B) {
	b.Run("relaxed", func(b *testing.B) {
		l := openTest(b, b.TempDir(), benchConfig(true))
		bs := benchBatch(b)
		b.SetBytes(int64(len(bs[0].Raw)))
		b.ReportAllocs()
		for b.Loop() {
			// Append rewrites the header in place, so one buffer serves.
			if _, err := l.Append(bs, 1, -1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("safe", func(b *testing.B) {
		l := openTest(b, b.TempDir(), benchConfig(false))
		bs := benchBatch(b)
		b.SetBytes(int64(len(bs[0].Raw)))
		b.ReportAllocs()
		ctx := context.Background()
		for b.Loop() {
			info, err := l.Append(bs, 1, -1)
			if err != nil {
				b.Fatal(err)
			}
			if err := l.WaitDurable(ctx, info.LastOffset+1); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("safe-parallel", func(b *testing.B) {
		l := openTest(b, b.TempDir(), benchConfig(false))
		b.SetBytes(16 << 10)
		b.ReportAllocs()
		b.SetParallelism(8)
		before := l.fsyncRounds.Load()
		b.RunParallel(func(pb *testing.PB) {
			bs := benchBatch(b)
			ctx := context.Background()
			for pb.Next() {
				info, err := l.Append(bs, 1, -1)
				if err != nil {
					b.Error(err)
					return
				}
				if err := l.WaitDurable(ctx, info.LastOffset+1); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(l.fsyncRounds.Load()-before)/float64(b.N), "fsyncs/op")
	})
}

// BenchmarkRead resolves 1 MiB reads at spread offsets in a 64 MiB log.
func BenchmarkRead(b *testing.B) {
	l := openTest(b, b.TempDir(), benchConfig(true))
	bs := benchBatch(b)
	for range 4096 {
		if _, err := l.Append(bs, 1, -1); err != nil {
			b.Fatal(err)
		}
	}
	leo := l.LogEndOffset()
	b.ReportAllocs()
	i := int64(0)
	for b.Loop() {
		off := (i * 7919) % leo
		i++
		rr, err := l.Read(off, leo, 1<<20, true)
		if err != nil {
			b.Fatal(err)
		}
		if rr.Len == 0 {
			b.Fatal("empty read")
		}
		rr.Release()
	}
}

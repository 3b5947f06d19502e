package e2e

// Compaction of a tiered topic end to end: the broker as a process,
// versitygw as the S3 server. Keys are overwritten and deleted, segments
// roll, upload and leave the local disk; the cleaner rewrites the remote
// segments; a consumer reading from offset 0 (remote, then local) must see
// the latest value of every key at the offset it was written at, and no
// trace of deleted keys once delete.retention.ms has passed.

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/tiering/s3test"
)

type writtenRec struct {
	key, val []byte // val nil: tombstone
}

type readRec struct {
	off      int64
	key, val []byte
}

// consumeCompacted reads partition 0 of topic from offset 0 until the
// record with key stop, returning what a consumer sees.
func consumeCompacted(ctx context.Context, t *testing.T, b *brokerProc, topic string, stop []byte) []readRec {
	t.Helper()
	cl := b.Client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	var out []readRec
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %v after %d records", topic, ctx.Err(), len(out))
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		done := false
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, readRec{r.Offset, bytes.Clone(r.Key), bytes.Clone(r.Value)})
			done = done || bytes.Equal(r.Key, stop)
		})
		if done {
			return out
		}
	}
}

func TestTieredCompaction(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 3*time.Minute)
	s3 := s3test.Start(t)
	b := startBroker(t, tierBrokerArgs(s3)...)
	adm := b.Admin()
	const topic = "tiered-compacted"
	const deleteRetention = 3 * time.Second
	createTopic(ctx, t, adm, topic, 1, map[string]*string{
		"cleanup.policy":            str("compact"),
		"remote.storage.enable":     str("true"),
		"segment.bytes":             str("4000"),
		"local.retention.bytes":     str("1"),
		"min.cleanable.dirty.ratio": str("0.01"),
		"delete.retention.ms":       str(strconv.FormatInt(deleteRetention.Milliseconds(), 10)),
		"min.compaction.lag.ms":     str("0"),
	})
	tt := describeTierTopic(ctx, t, adm, topic)

	// Written: offset -> record. Phase 1 writes every key a few times and
	// filler records (keys of their own) that roll segments, and waits
	// until they are uploaded and gone from the local disk. Phase 2
	// overwrites every key again and deletes a third of them: only the
	// cleaner of the remote tier can remove the phase-1 values now.
	written := map[int64]writtenRec{}
	cl := b.Client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	produce := func(recs ...*kgo.Record) {
		t.Helper()
		for _, r := range recs {
			r.Topic = topic
		}
		res := cl.ProduceSync(ctx, recs...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		for _, r := range res {
			written[r.Record.Offset] = writtenRec{r.Record.Key, r.Record.Value}
		}
	}
	const keys = 30
	rounds := func(from, to int, deleteLast bool) {
		for round := from; round < to; round++ {
			for k := 0; k < keys; k += 5 {
				var recs []*kgo.Record
				for j := k; j < k+5; j++ {
					r := &kgo.Record{Key: fmt.Appendf(nil, "key-%02d", j), Value: fmt.Appendf(nil, "round %d of key %d %s", round, j, bytes.Repeat([]byte("v"), 60))}
					if deleteLast && round == to-1 && j%3 == 0 {
						r.Value = nil // tombstone
					}
					recs = append(recs, r)
				}
				produce(recs...)
			}
		}
	}
	fillers := 0
	fill := func(n int) {
		for range n {
			produce(&kgo.Record{Key: fmt.Appendf(nil, "filler-%03d", fillers), Value: bytes.Repeat([]byte("f"), 150)})
			fillers++
		}
	}
	rounds(0, 2, false)
	fill(120)
	var first remoteManifest
	waitFor(ctx, t, "phase 1 in the remote tier", func() (bool, string) {
		m, ok := readManifest(t, s3, tt, 0)
		first = m
		segs := localSegments(t, b, topic, 0)
		return ok && len(m.Segments) >= 2 && len(segs) > 0 && segs[0] >= m.end(),
			fmt.Sprintf("manifest %+v, local segments %v", m, segs)
	})
	phase1 := first.end()
	rounds(2, 4, true)
	fill(80)
	stop := []byte("the-end")
	produce(&kgo.Record{Key: stop, Value: []byte("last")})
	end := int64(len(written))

	// The table a consumer must end up with: the latest record of each key.
	latest := map[string]int64{}
	for off := range end {
		latest[string(written[off].key)] = off
	}

	// Wait until a phase-1 segment was rewritten in the remote tier and a
	// consumer from offset 0 sees the fully compacted log: every key at
	// most once, and no tombstone in the remote tier once
	// delete.retention.ms has passed.
	deadline := time.Now().Add(deleteRetention)
	var got []readRec
	waitFor(ctx, t, "compaction of the remote segments", func() (bool, string) {
		m, _ := readManifest(t, s3, tt, 0)
		rewritten := 0
		for _, s := range m.Segments {
			for _, f := range first.Segments {
				if f.BaseOffset == s.BaseOffset && f.ID != s.ID {
					rewritten++
				}
			}
		}
		if rewritten == 0 {
			return false, fmt.Sprintf("no remote segment below %d rewritten yet: %+v", phase1, m.Segments)
		}
		if time.Now().Before(deadline) {
			return false, "delete.retention.ms has not passed"
		}
		got = consumeCompacted(ctx, t, b, topic, stop)
		seen := map[string]int{}
		for _, r := range got {
			seen[string(r.key)]++
			if r.val == nil && r.off < m.end() {
				return false, fmt.Sprintf("tombstone of %s at %d still in the remote tier", r.key, r.off)
			}
		}
		for k, n := range seen {
			if n > 1 {
				return false, fmt.Sprintf("key %s read %d times", k, n)
			}
		}
		return true, ""
	})

	// Every record read is the one written at its offset, and the latest
	// of its key; every key's latest value is there unless it was deleted.
	read := map[string]readRec{}
	for _, r := range got {
		w, ok := written[r.off]
		if !ok || !bytes.Equal(w.key, r.key) || !bytes.Equal(w.val, r.val) || (w.val == nil) != (r.val == nil) {
			t.Fatalf("offset %d: read %q=%q, written %q=%q", r.off, r.key, r.val, w.key, w.val)
		}
		if latest[string(r.key)] != r.off {
			t.Errorf("key %s read at %d, its latest record is at %d", r.key, r.off, latest[string(r.key)])
		}
		read[string(r.key)] = r
	}
	for k, off := range latest {
		w := written[off]
		r, ok := read[k]
		switch {
		case w.val == nil && ok && r.val != nil:
			t.Errorf("deleted key %s read with value %q at %d", k, r.val, r.off)
		case w.val != nil && (!ok || r.off != off):
			t.Errorf("key %s: latest value at %d missing (read %+v)", k, off, r)
		}
	}
	deleted := 0
	for k, off := range latest {
		if written[off].val == nil {
			deleted++
			if _, ok := read[k]; ok {
				t.Errorf("deleted key %s still read", k)
			}
		}
	}
	if deleted == 0 {
		t.Fatal("the test deleted no key")
	}

	// The manifest still covers every offset contiguously, and its
	// segments own their objects.
	m, _ := readManifest(t, s3, tt, 0)
	for i := 1; i < len(m.Segments); i++ {
		if m.Segments[i].BaseOffset != m.Segments[i-1].LastOffset+1 {
			t.Fatalf("manifest not contiguous: %+v", m.Segments)
		}
	}
	if m.Segments[0].BaseOffset != 0 {
		t.Fatalf("manifest starts at %d", m.Segments[0].BaseOffset)
	}
	checkManifestObjects(t, m, segmentObjects(t, bucketObjects(t, s3), tt)[0], "compacted partition")
	t.Logf("%d records written, %d read; %d remote segments up to %d", end, len(got), len(m.Segments), m.end())
}

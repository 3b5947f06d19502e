package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A topic with cleanup.policy=compact is cleaned by the retention loop: a
// consumer reading from offset 0 sees the latest value of every key at the
// offset it was written at, tombstones included, and nothing older than
// that in the cleaned segments.
func TestCompactedTopic(t *testing.T) {
	ts := startServer(t)
	adm := kadm.NewClient(ts.client(t))
	cfg := map[string]*string{
		"cleanup.policy":            kmsg.StringPtr("compact"),
		"segment.bytes":             kmsg.StringPtr("1024"),
		"min.cleanable.dirty.ratio": kmsg.StringPtr("0.01"),
		"retention.ms":              kmsg.StringPtr("1"), // ignored: compact alone never deletes by age
	}
	if r, err := adm.CreateTopic(context.Background(), 1, 1, cfg, "compacted"); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	cl := ts.client(t)
	type write struct {
		offset int64
		value  []byte // nil: tombstone
	}
	latest := map[string]write{}
	const keys, rounds = 5, 30
	for i := 0; i < rounds; i++ {
		for k := 0; k < keys; k++ {
			key := fmt.Sprintf("key-%d", k)
			var value []byte
			if !(k == 0 && i == rounds-1) { // key-0 ends with a tombstone
				value = []byte(fmt.Sprintf("value-%d-of-%s-padding-padding", i, key))
			}
			r := &kgo.Record{Topic: "compacted", Key: []byte(key), Value: value}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
			latest[key] = write{r.Offset, value}
		}
	}
	// Roll the active segment, so every record is in a sealed one the cleaner may touch.
	for i := 0; i < 40; i++ {
		r := &kgo.Record{Topic: "compacted", Key: []byte("filler"), Value: []byte(fmt.Sprintf("filler-%d-padding-padding-padding", i))}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	_, p, err := ts.parts.get("compacted", 0)
	if err != nil {
		t.Fatal(err)
	}
	end := p.log.LogEndOffset()
	sizeBefore := p.log.Size()
	waitFor(t, "the cleaner to compact the topic", func() bool {
		ts.parts.enforceRetention()
		return p.log.Size() < sizeBefore/2
	})
	if p.log.LogStartOffset() != 0 || p.log.LogEndOffset() != end {
		t.Fatalf("log range [%d, %d) after compaction, want [0, %d)", p.log.LogStartOffset(), p.log.LogEndOffset(), end)
	}

	consumer := ts.client(t, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"compacted": {0: kgo.NewOffset().At(0)}}))
	got := map[string][]write{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for next := int64(0); next < end; {
		fs := consumer.PollFetches(ctx)
		if err := fs.Err(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[string(r.Key)] = append(got[string(r.Key)], write{r.Offset, r.Value})
			next = r.Offset + 1
		})
	}
	for key, want := range latest {
		ws := got[key]
		if len(ws) != 1 || ws[0].offset != want.offset || string(ws[0].value) != string(want.value) || (ws[0].value == nil) != (want.value == nil) {
			t.Errorf("%s: read %+v, want only %+v", key, ws, want)
		}
	}
}

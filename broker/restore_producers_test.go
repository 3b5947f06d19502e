package broker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A broker whose partition directory was lost restarts the log at the
// remote end and takes the producer state uploaded with the last remote
// segment: an idempotent producer that wrote only to the remote tier gets
// its retried batch recognised as a duplicate (answered with the original
// offset) and its next batch accepted, instead of an out-of-order error.
func TestWipedLogRestoresProducersFromRemote(t *testing.T) {
	dir := t.TempDir()
	fixed := func(c *Config) { c.DataDir = dir }
	ts := startServer(t, fixed)
	const topic = "wiped"
	cfg := map[string]*string{"segment.bytes": kmsg.StringPtr("2000"), "local.retention.bytes": kmsg.StringPtr("1")}
	if r, err := kadm.NewClient(ts.client(t)).CreateTopic(context.Background(), 1, 1, cfg, topic); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	_, p, err := ts.parts.get(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	rc := ts.raw(t)
	pad := strings.Repeat("v", 200)
	var last []byte
	var lastOffset int64
	seq := int32(0)
	for range 30 {
		last = batchOf(7, 0, seq, pad, pad)
		part := producePart(rc.do(produceReq(-1, topic, 0, last)))
		if part.ErrorCode != 0 {
			t.Fatalf("produce seq %d: error %d", seq, part.ErrorCode)
		}
		lastOffset = part.BaseOffset
		seq += 2
	}
	// Plain records after it, so its last batch's segment seals and goes
	// remote.
	for range 20 {
		if part := producePart(rc.do(produceReq(-1, topic, 0, batchOf(-1, -1, -1, pad, pad)))); part.ErrorCode != 0 {
			t.Fatalf("produce: error %d", part.ErrorCode)
		}
	}
	waitFor(t, "the producer's batches to be tiered", func() bool {
		ts.parts.enforceRetention()
		return p.log.RemoteEnd() > lastOffset+2
	})
	ts.Close()
	if err := os.RemoveAll(filepath.Join(dir, "logs", topic+"-0")); err != nil {
		t.Fatal(err)
	}

	ts = startServer(t, fixed)
	rc = ts.raw(t)
	if part := producePart(rc.do(produceReq(-1, topic, 0, last))); part.ErrorCode != 0 || part.BaseOffset != lastOffset {
		t.Fatalf("retried batch after the restart: error %d, offset %d; want its original offset %d", part.ErrorCode, part.BaseOffset, lastOffset)
	}
	if part := producePart(rc.do(produceReq(-1, topic, 0, batchOf(7, 0, seq, "next")))); part.ErrorCode != 0 {
		t.Fatalf("next batch after the restart: error %d", part.ErrorCode)
	}
}

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

// tieredTopic makes a topic whose sealed segments go to the (file) object
// store and leave local disk at once, produces n records in separate
// batches with timestamps base+i, and waits until the local log start has
// moved past half of them.
func tieredTopic(t *testing.T, ts *testServer, topic string, n int, base time.Time) {
	t.Helper()
	adm := kadm.NewClient(ts.client(t))
	cfg := map[string]*string{"segment.bytes": kmsg.StringPtr("2000"), "local.retention.bytes": kmsg.StringPtr("1")}
	if r, err := adm.CreateTopic(context.Background(), 1, 1, cfg, topic); err != nil || r.Err != nil {
		t.Fatalf("create: %v %v", err, r.Err)
	}
	cl := ts.client(t)
	for i := 0; i < n; i++ {
		r := &kgo.Record{Topic: topic, Value: []byte(fmt.Sprintf("value-%04d-%s", i, "padding-padding-padding-padding")), Timestamp: base.Add(time.Duration(i) * time.Millisecond)}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	_, p, err := ts.parts.get(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "segments to be tiered and leave local disk", func() bool {
		ts.parts.enforceRetention()
		return p.log.LocalLogStartOffset() > int64(n/2)
	})
}

func TestTieredFetchAndListOffsets(t *testing.T) {
	ts := startServer(t)
	base := time.UnixMilli(1_700_000_000_000)
	const n = 200
	tieredTopic(t, ts, "tiered", n, base)
	_, p, _ := ts.parts.get("tiered", 0)
	localStart := p.log.LocalLogStartOffset()

	// Every record from offset 0, in order: the first part from the
	// object store, the rest from local disk.
	rc := ts.raw(t)
	next := int64(0)
	for next < n {
		req := fetchReq(12, 0, -1, "tiered", [16]byte{}, map[int32]int64{0: next})
		req.MaxWaitMillis = 5000
		fp := partitionsOf(rc.do(req).(*kmsg.FetchResponse))[0]
		if fp.ErrorCode != 0 {
			t.Fatalf("fetch at %d: error %d", next, fp.ErrorCode)
		}
		for _, v := range values(t, fp) {
			want := fmt.Sprintf("value-%04d-%s", next, "padding-padding-padding-padding")
			if v != want {
				t.Fatalf("offset %d: %q, want %q", next, v, want)
			}
			next++
		}
	}

	lo := func(ts0 int64) kmsg.ListOffsetsResponseTopicPartition {
		req := kmsg.NewPtrListOffsetsRequest()
		req.Version = 9
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "tiered"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = ts0
		rp.CurrentLeaderEpoch = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return rc.do(req).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
	}
	cases := []struct {
		name       string
		ts         int64
		wantOffset int64
	}{
		{"earliest", -2, 0},
		{"latest", -1, n},
		{"max timestamp", -3, n - 1},
		{"timestamp in the remote tier", base.UnixMilli() + 10, 10},
		{"timestamp in the local tier", base.UnixMilli() + n - 1, n - 1},
		{"timestamp after everything", base.UnixMilli() + n + 100, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := lo(tc.ts)
			if got.ErrorCode != 0 || got.Offset != tc.wantOffset {
				t.Fatalf("error %d offset %d, want offset %d", got.ErrorCode, got.Offset, tc.wantOffset)
			}
		})
	}
	// Uploads go on in the background, so the latest tiered offset can
	// only be pinned between the remote end before and after the request.
	before := p.log.RemoteEnd() - 1
	got := lo(-5)
	after := p.log.RemoteEnd() - 1
	if got.ErrorCode != 0 || got.Offset < before || got.Offset > after {
		t.Fatalf("latest tiered: error %d offset %d, want within [%d, %d]", got.ErrorCode, got.Offset, before, after)
	}
	// Local retention may also run meanwhile: the earliest local offset can
	// only move up from what it was.
	if got := lo(-4); got.ErrorCode != 0 || got.Offset < localStart || got.Offset > p.log.LocalLogStartOffset() {
		t.Fatalf("earliest local: error %d offset %d, want within [%d, %d]", got.ErrorCode, got.Offset, localStart, p.log.LocalLogStartOffset())
	}
	if localStart <= 0 || p.log.RemoteEnd() < localStart {
		t.Fatalf("local start %d, remote end %d: nothing was tiered", localStart, p.log.RemoteEnd())
	}
}

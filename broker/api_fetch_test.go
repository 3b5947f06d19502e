package broker

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/proto"
)

func fetchReq(version int16, sessionID, epoch int32, topic string, id [16]byte, parts map[int32]int64) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.Version = version
	req.ReplicaID = -1
	req.MaxBytes = 1 << 20
	req.SessionID, req.SessionEpoch = sessionID, epoch
	if len(parts) > 0 {
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = topic, id
		for p := int32(0); p < 16; p++ {
			off, ok := parts[p]
			if !ok {
				continue
			}
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, off, 1<<20
			rp.CurrentLeaderEpoch = -1
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// values decodes the record values of every batch of a partition.
func values(t *testing.T, fp kmsg.FetchResponseTopicPartition) []string {
	t.Helper()
	var out []string
	err := proto.SplitBatches(fp.RecordBatches, true, func(b proto.Batch) error {
		return proto.ForEachRecord(b, func(r proto.Record) error {
			out = append(out, string(r.Value))
			return nil
		})
	})
	if err != nil {
		t.Fatalf("decode records: %v", err)
	}
	return out
}

func partitionsOf(resp *kmsg.FetchResponse) map[int32]kmsg.FetchResponseTopicPartition {
	m := map[int32]kmsg.FetchResponseTopicPartition{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			m[p.Partition] = p
		}
	}
	return m
}

func TestFetchSessions(t *testing.T) {
	ts := startServer(t)
	ts.createTopic(t, "s", 2)
	cl := ts.client(t)
	ts.produce(t, cl, "s", 0, "a0")
	ts.produce(t, cl, "s", 1, "a1")
	rc := ts.raw(t)

	// Create a session with a full fetch.
	resp := rc.do(fetchReq(12, 0, 0, "s", [16]byte{}, map[int32]int64{0: 0, 1: 0})).(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 || resp.SessionID == 0 {
		t.Fatalf("create session: error %d, session %d", resp.ErrorCode, resp.SessionID)
	}
	id := resp.SessionID
	got := partitionsOf(resp)
	if len(got) != 2 || len(values(t, got[0])) != 1 || len(values(t, got[1])) != 1 {
		t.Fatalf("full fetch: want both partitions with one record, got %v", got)
	}

	// Incremental, positions advanced, nothing new: no partitions.
	resp = rc.do(fetchReq(12, id, 1, "s", [16]byte{}, map[int32]int64{0: 1, 1: 1})).(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 || len(partitionsOf(resp)) != 0 {
		t.Fatalf("incremental without news: error %d, partitions %v", resp.ErrorCode, partitionsOf(resp))
	}

	// New data on partition 1 only: only partition 1 comes back, although
	// the request names no partitions.
	ts.produce(t, cl, "s", 1, "b1")
	resp = rc.do(fetchReq(12, id, 2, "s", [16]byte{}, nil)).(*kmsg.FetchResponse)
	got = partitionsOf(resp)
	if _, has0 := got[0]; has0 || len(got) != 1 {
		t.Fatalf("incremental: want only partition 1, got %v", got)
	}
	if v := values(t, got[1]); len(v) != 1 || v[0] != "b1" {
		t.Fatalf("incremental partition 1 values %q, want [b1]", v)
	}

	// A stale epoch and an unknown session are refused.
	resp = rc.do(fetchReq(12, id, 7, "s", [16]byte{}, nil)).(*kmsg.FetchResponse)
	if resp.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("wrong epoch: error %d, want INVALID_FETCH_SESSION_EPOCH", resp.ErrorCode)
	}
	resp = rc.do(fetchReq(12, id+1, 1, "s", [16]byte{}, nil)).(*kmsg.FetchResponse)
	if resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: error %d, want FETCH_SESSION_ID_NOT_FOUND", resp.ErrorCode)
	}

	// Forget partition 1, then new data there is not sent.
	req := fetchReq(12, id, 3, "s", [16]byte{}, map[int32]int64{1: 2})
	req.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{Topic: "s", Partitions: []int32{1}}}
	req.Topics = nil
	resp = rc.do(req).(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		t.Fatalf("forget: error %d", resp.ErrorCode)
	}
	ts.produce(t, cl, "s", 1, "c1")
	resp = rc.do(fetchReq(12, id, 4, "s", [16]byte{}, nil)).(*kmsg.FetchResponse)
	if got := partitionsOf(resp); len(got) != 0 {
		t.Fatalf("forgotten partition came back: %v", got)
	}

	// Closing the session (epoch -1) gives a sessionless full fetch.
	resp = rc.do(fetchReq(12, id, -1, "s", [16]byte{}, map[int32]int64{0: 0})).(*kmsg.FetchResponse)
	if resp.SessionID != 0 || len(partitionsOf(resp)) != 1 {
		t.Fatalf("close session: session %d, partitions %v", resp.SessionID, partitionsOf(resp))
	}
	resp = rc.do(fetchReq(12, id, 5, "s", [16]byte{}, nil)).(*kmsg.FetchResponse)
	if resp.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session still served: error %d", resp.ErrorCode)
	}
}

func TestFetchLongPollWokenByAppend(t *testing.T) {
	ts := startServer(t)
	ts.createTopic(t, "lp", 1)
	cl := ts.client(t)
	rc := ts.raw(t)
	req := fetchReq(11, 0, -1, "lp", [16]byte{}, map[int32]int64{0: 0})
	req.MaxWaitMillis = 60000 // far beyond the read deadline below
	req.MinBytes = 1
	corr := rc.send(req)
	waitFor(t, "the fetch to park in the long poll", func() bool { return ts.fetchWaiters.Load() == 1 })
	ts.produce(t, cl, "lp", 0, "wake")
	got, body, err := rc.readFrame(10 * time.Second)
	if err != nil || got != corr {
		t.Fatalf("long poll not woken by the append: corr %d err %v", got, err)
	}
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 11
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if v := values(t, partitionsOf(resp)[0]); len(v) != 1 || v[0] != "wake" {
		t.Fatalf("values %q, want [wake]", v)
	}
}

func TestFetchShapes(t *testing.T) {
	ts := startServer(t)
	created := ts.createTopic(t, "shape", 1)
	cl := ts.client(t)
	big := bytes.Repeat([]byte("x"), 10000)
	if err := cl.ProduceSync(context.Background(), &kgoRecord{Topic: "shape", Value: big}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	rc := ts.raw(t)

	t.Run("at least one whole batch past max bytes", func(t *testing.T) {
		req := fetchReq(11, 0, -1, "shape", [16]byte{}, map[int32]int64{0: 0})
		req.MaxBytes = 100
		req.Topics[0].Partitions[0].PartitionMaxBytes = 100
		fp := partitionsOf(rc.do(req).(*kmsg.FetchResponse))[0]
		if v := values(t, fp); len(v) != 1 || len(v[0]) != len(big) {
			t.Fatalf("want the whole 10000-byte record, got %d records", len(v))
		}
	})
	t.Run("empty records are zero-length, not null", func(t *testing.T) {
		for _, v := range []int16{4, 11, 12, 16} {
			fp := partitionsOf(rc.do(fetchReq(v, 0, -1, "shape", created.ID, map[int32]int64{0: 1})).(*kmsg.FetchResponse))[0]
			if fp.ErrorCode != 0 || fp.RecordBatches == nil || len(fp.RecordBatches) != 0 {
				t.Fatalf("v%d: error %d, records %v (nil=%v)", v, fp.ErrorCode, fp.RecordBatches, fp.RecordBatches == nil)
			}
			if fp.HighWatermark != 1 {
				t.Fatalf("v%d: high watermark %d, want 1", v, fp.HighWatermark)
			}
		}
	})
	t.Run("topic ids from v13", func(t *testing.T) {
		fp := partitionsOf(rc.do(fetchReq(13, 0, -1, "", created.ID, map[int32]int64{0: 0})).(*kmsg.FetchResponse))[0]
		if fp.ErrorCode != 0 || len(values(t, fp)) != 1 {
			t.Fatalf("fetch by id: error %d", fp.ErrorCode)
		}
		fp = partitionsOf(rc.do(fetchReq(13, 0, -1, "", [16]byte{1, 2, 3}, map[int32]int64{0: 0})).(*kmsg.FetchResponse))[0]
		if fp.ErrorCode != kerr.UnknownTopicID.Code {
			t.Fatalf("unknown id: error %d, want UNKNOWN_TOPIC_ID", fp.ErrorCode)
		}
	})
	t.Run("leader epochs", func(t *testing.T) {
		req := fetchReq(12, 0, -1, "shape", [16]byte{}, map[int32]int64{0: 0})
		req.Topics[0].Partitions[0].CurrentLeaderEpoch = 5
		if fp := partitionsOf(rc.do(req).(*kmsg.FetchResponse))[0]; fp.ErrorCode != kerr.UnknownLeaderEpoch.Code {
			t.Fatalf("newer epoch: error %d, want UNKNOWN_LEADER_EPOCH", fp.ErrorCode)
		}
	})
	t.Run("offset out of range", func(t *testing.T) {
		fp := partitionsOf(rc.do(fetchReq(11, 0, -1, "shape", [16]byte{}, map[int32]int64{0: 42})).(*kmsg.FetchResponse))[0]
		if fp.ErrorCode != kerr.OffsetOutOfRange.Code {
			t.Fatalf("error %d, want OFFSET_OUT_OF_RANGE", fp.ErrorCode)
		}
	})
}

// read_committed stops at the last stable offset and names the aborted
// transactions in the range; read_uncommitted reads to the high
// watermark. (Transactional produce comes with the coordinator; the
// transaction is written straight into the log here.)
func TestFetchReadCommitted(t *testing.T) {
	ts := startServer(t)
	ts.createTopic(t, "txn", 1)
	_, p, err := ts.parts.get("txn", 0)
	if err != nil {
		t.Fatal(err)
	}
	appendTxn := func(pid int64, seq int32, values ...string) {
		t.Helper()
		recs := make([]proto.Record, len(values))
		for i, v := range values {
			recs[i] = proto.Record{OffsetDelta: int32(i), Value: []byte(v)}
		}
		raw := proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: 1, ProducerID: pid, ProducerEpoch: 0, BaseSequence: seq, Transactional: true}, recs)
		batches, err := proto.ValidateProduceBatches(raw, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.log.Append(batches, 0, -1); err != nil {
			t.Fatal(err)
		}
	}
	appendTxn(7, 0, "aborted-1", "aborted-2")                           // offsets 0-1
	if _, err := p.log.AppendTxnMarker(7, 0, false, 0, 0); err != nil { // offset 2
		t.Fatal(err)
	}
	appendTxn(8, 0, "open") // offset 3: undecided
	waitFor(t, "the high watermark to pass the open transaction", func() bool { return p.log.HighWatermark() == 4 })

	rc := ts.raw(t)
	committed := fetchReq(12, 0, -1, "txn", [16]byte{}, map[int32]int64{0: 0})
	committed.IsolationLevel = 1
	fp := partitionsOf(rc.do(committed).(*kmsg.FetchResponse))[0]
	if fp.LastStableOffset != 3 || fp.HighWatermark != 4 {
		t.Fatalf("read_committed: last stable offset %d, high watermark %d; want 3, 4", fp.LastStableOffset, fp.HighWatermark)
	}
	if len(fp.AbortedTransactions) != 1 || fp.AbortedTransactions[0].ProducerID != 7 || fp.AbortedTransactions[0].FirstOffset != 0 {
		t.Fatalf("aborted transactions %+v, want producer 7 from offset 0", fp.AbortedTransactions)
	}
	if got := values(t, fp); len(got) != 3 { // the aborted batch (clients drop it) and the marker, not the open one
		t.Fatalf("read_committed got %q", got)
	}
	uncommitted := fetchReq(12, 0, -1, "txn", [16]byte{}, map[int32]int64{0: 0})
	fp = partitionsOf(rc.do(uncommitted).(*kmsg.FetchResponse))[0]
	if got := values(t, fp); len(got) != 4 || got[3] != "open" {
		t.Fatalf("read_uncommitted got %q, want everything up to the high watermark", got)
	}

	// ListOffsets -1 is the last stable offset under read_committed.
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version, lo.IsolationLevel = 9, 1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "txn"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp, lp.CurrentLeaderEpoch = -1, -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	if off := rc.do(lo).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0].Offset; off != 3 {
		t.Fatalf("ListOffsets latest under read_committed: %d, want 3", off)
	}
}

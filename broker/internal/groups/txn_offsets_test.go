package groups

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (h *harness) txnCommit(group string, pid int64, offsets map[string]map[int32]int64) int16 {
	h.t.Helper()
	r := kmsg.NewPtrTxnOffsetCommitRequest()
	r.Version, r.TransactionalID, r.Group = 3, "tx", group
	r.ProducerID, r.ProducerEpoch, r.Generation = pid, 0, -1
	for topic, ps := range offsets {
		rt := kmsg.NewTxnOffsetCommitRequestTopic()
		rt.Topic = topic
		for p, off := range ps {
			rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = p, off
			rt.Partitions = append(rt.Partitions, rp)
		}
		r.Topics = append(r.Topics, rt)
	}
	resp := h.c.TxnOffsetCommit(h.ctx, r)
	var code int16
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				code = p.ErrorCode
			}
		}
	}
	return code
}

// stableFetch is OffsetFetch v7 with RequireStable for t/0.
func (h *harness) stableFetch(group string) (int64, int16) {
	r := kmsg.NewPtrOffsetFetchRequest()
	r.Version, r.Group, r.RequireStable = 7, group, true
	r.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0}}}
	p := h.c.OffsetFetch(h.ctx, r).Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode
}

func TestTxnOffsetCommitPendingUntilMarker(t *testing.T) {
	for _, commit := range []bool{true, false} {
		name := "abort"
		if commit {
			name = "commit"
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			const g = "eos"
			h.commit(2, g, "", -1, map[string]map[int32]int64{"t": {0: 5}})
			if code := h.txnCommit(g, 42, map[string]map[int32]int64{"t": {0: 10}}); code != 0 {
				t.Fatalf("txn offset commit: %v", kerr.ErrorForCode(code))
			}
			// Pending: plain fetches see the old offset, stable ones are refused.
			if got, _ := h.fetch(6, g, map[string][]int32{"t": {0}}); got["t/0"] != 5 {
				t.Fatalf("pending offset visible: %v", got)
			}
			if off, code := h.stableFetch(g); code != kerr.UnstableOffsetCommit.Code || off != -1 {
				t.Fatalf("require stable while pending: offset %d code %d", off, code)
			}
			// A marker of another producer or partition decides nothing.
			if err := h.c.CompleteTxn(h.ctx, h.c.PartitionFor(g), 7, true); err != nil {
				t.Fatal(err)
			}
			if err := h.c.CompleteTxn(h.ctx, (h.c.PartitionFor(g)+1)%7, 42, true); err != nil {
				t.Fatal(err)
			}
			if _, code := h.stableFetch(g); code != kerr.UnstableOffsetCommit.Code {
				t.Fatalf("unrelated marker decided the commit: %d", code)
			}
			if err := h.c.CompleteTxn(h.ctx, h.c.PartitionFor(g), 42, commit); err != nil {
				t.Fatal(err)
			}
			want := int64(5)
			if commit {
				want = 10
			}
			if off, code := h.stableFetch(g); code != 0 || off != want {
				t.Fatalf("after marker: offset %d code %d, want %d", off, code, want)
			}

			// Replaying the log gives the same answer: pending until the
			// marker, then decided.
			h2 := newHarness(t)
			recs := h.log.records()
			for p, rs := range recs {
				for i, r := range rs {
					if pid, ok := h.log.txn[p][i]; ok {
						h2.c.LoadTxnOffset(p, pid, r.Key, r.Value)
					} else {
						h2.c.Load(p, r.Key, r.Value)
					}
				}
			}
			if _, code := h2.stableFetch(g); code != kerr.UnstableOffsetCommit.Code {
				t.Fatalf("replayed open transaction is not pending: %d", code)
			}
			if err := h2.c.CompleteTxn(h2.ctx, h2.c.PartitionFor(g), 42, commit); err != nil {
				t.Fatal(err)
			}
			if off, code := h2.stableFetch(g); code != 0 || off != want {
				t.Fatalf("replayed: offset %d code %d, want %d", off, code, want)
			}
		})
	}
}

func TestTxnOffsetCommitChecksGeneration(t *testing.T) {
	h := newHarness(t)
	// A generation for a group that does not exist is stale, as in Kafka.
	r := kmsg.NewPtrTxnOffsetCommitRequest()
	r.Version, r.TransactionalID, r.Group, r.ProducerID, r.Generation, r.MemberID = 3, "tx", "none", 1, 3, "m"
	r.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	if code := h.c.TxnOffsetCommit(h.ctx, r).Topics[0].Partitions[0].ErrorCode; code != kerr.IllegalGeneration.Code {
		t.Fatalf("unknown group with generation: %d", code)
	}
	if n := h.log.count(); n != 0 {
		t.Fatalf("%d records written for a refused commit", n)
	}
}

package broker

import (
	"context"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func electReq(version int16, typ int8, topics map[string][]int32) *kmsg.ElectLeadersRequest {
	req := kmsg.NewPtrElectLeadersRequest()
	req.Version, req.ElectionType, req.TimeoutMillis = version, typ, 5000
	if topics == nil {
		return req
	}
	req.Topics = []kmsg.ElectLeadersRequestTopic{}
	for name, ps := range topics {
		rt := kmsg.NewElectLeadersRequestTopic()
		rt.Topic, rt.Partitions = name, ps
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// TestElectLeadersSingleNode: every partition of a single node already has
// its preferred (and only) replica as leader, so no election happens and
// no leader epoch moves.
func TestElectLeadersSingleNode(t *testing.T) {
	ts := startServer(t)
	ts.createTopic(t, "orders", 2)
	epochs := func() []int32 {
		topic, _ := ts.meta.Topic("orders")
		var out []int32
		for _, p := range topic.Partitions {
			out = append(out, p.LeaderEpoch)
		}
		return out
	}
	before := epochs()
	adm := kadm.NewClient(ts.client(t))

	for _, how := range []kadm.ElectLeadersHow{kadm.ElectPreferredReplica, kadm.ElectLiveReplica} {
		set := kadm.TopicsSet{}
		set.Add("orders", 0, 1, 7)
		set.Add("ghost", 0)
		res, err := adm.ElectLeaders(context.Background(), how, set)
		if err != nil {
			t.Fatalf("election %d: %v", how, err)
		}
		want := map[string]map[int32]error{
			"orders": {0: kerr.ElectionNotNeeded, 1: kerr.ElectionNotNeeded, 7: kerr.UnknownTopicOrPartition},
			"ghost":  {0: kerr.UnknownTopicOrPartition},
		}
		for topic, ps := range want {
			for p, wantErr := range ps {
				r, ok := res[topic][p]
				if !ok {
					t.Errorf("election %d: no result for %s-%d", how, topic, p)
					continue
				}
				if !errors.Is(r.Err, wantErr) || r.ErrMessage == "" {
					t.Errorf("election %d: %s-%d: %v (%q), want %v with a message", how, topic, p, r.Err, r.ErrMessage, wantErr)
				}
			}
		}
	}
	if after := epochs(); len(after) != len(before) || after[0] != before[0] || after[1] != before[1] {
		t.Errorf("leader epochs moved from %v to %v", before, after)
	}

	rc := ts.raw(t)
	t.Run("all partitions", func(t *testing.T) {
		for v := int16(0); v <= 2; v++ {
			resp := rc.do(electReq(v, 0, nil)).(*kmsg.ElectLeadersResponse)
			if resp.ErrorCode != 0 {
				t.Fatalf("v%d: error %d", v, resp.ErrorCode)
			}
			seen := false
			for _, rt := range resp.Topics {
				seen = seen || rt.Topic == "orders"
				// Only partitions where an election was needed are listed.
				if len(rt.Partitions) != 0 {
					t.Errorf("v%d: %s lists %+v", v, rt.Topic, rt.Partitions)
				}
			}
			if !seen {
				t.Errorf("v%d: topic list %+v does not list orders", v, resp.Topics)
			}
		}
	})
	t.Run("v0 is preferred", func(t *testing.T) {
		// v0 has no election type: the 1 here is not sent.
		resp := rc.do(electReq(0, 1, map[string][]int32{"orders": {0}})).(*kmsg.ElectLeadersResponse)
		if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.ElectionNotNeeded.Code {
			t.Errorf("error %d, want ELECTION_NOT_NEEDED", p.ErrorCode)
		}
	})
	t.Run("unknown election type", func(t *testing.T) {
		resp := rc.do(electReq(2, 5, map[string][]int32{"orders": {0, 1}})).(*kmsg.ElectLeadersResponse)
		if resp.ErrorCode != kerr.InvalidRequest.Code {
			t.Errorf("top-level error %d, want INVALID_REQUEST", resp.ErrorCode)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 2 {
			t.Fatalf("topics %+v, want both partitions answered", resp.Topics)
		}
		for _, p := range resp.Topics[0].Partitions {
			if p.ErrorCode != kerr.InvalidRequest.Code {
				t.Errorf("partition %d: error %d, want INVALID_REQUEST", p.Partition, p.ErrorCode)
			}
		}
	})
}

package broker

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func describeQuorumReq(version int16, topic string, partitions ...int32) *kmsg.DescribeQuorumRequest {
	req := kmsg.NewPtrDescribeQuorumRequest()
	req.Version = version
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = topic
	for _, p := range partitions {
		rp := kmsg.NewDescribeQuorumRequestTopicPartition()
		rp.Partition = p
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// TestDescribeQuorumSingleNode: a single node is a one-voter quorum that it
// leads, with a high watermark that moves as metadata changes commit.
func TestDescribeQuorumSingleNode(t *testing.T) {
	ts := startServer(t)
	rc := ts.raw(t)
	self := ts.cfg.NodeID

	var lastHW int64
	for v := int16(0); v <= 2; v++ {
		before := time.Now().UnixMilli()
		resp := rc.do(describeQuorumReq(v, "__cluster_metadata", 0)).(*kmsg.DescribeQuorumResponse)
		after := time.Now().UnixMilli()
		if resp.ErrorCode != 0 || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("v%d: error %d, topics %+v", v, resp.ErrorCode, resp.Topics)
		}
		if resp.Topics[0].Topic != "__cluster_metadata" {
			t.Errorf("v%d: topic %q", v, resp.Topics[0].Topic)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.Partition != 0 {
			t.Fatalf("v%d: partition %d error %d", v, p.Partition, p.ErrorCode)
		}
		if p.LeaderID != self || p.LeaderEpoch < 1 {
			t.Errorf("v%d: leader %d epoch %d, want leader %d with an epoch >= 1", v, p.LeaderID, p.LeaderEpoch, self)
		}
		if len(p.CurrentVoters) != 1 || len(p.Observers) != 0 {
			t.Fatalf("v%d: voters %+v observers %+v, want this node alone", v, p.CurrentVoters, p.Observers)
		}
		voter := p.CurrentVoters[0]
		if voter.ReplicaID != self {
			t.Errorf("v%d: voter %d, want %d", v, voter.ReplicaID, self)
		}
		// The bootstrap configuration and the broker registration are
		// committed before the broker serves anything.
		if p.HighWatermark < 1 || p.HighWatermark > voter.LogEndOffset {
			t.Errorf("v%d: high watermark %d, leader log end %d", v, p.HighWatermark, voter.LogEndOffset)
		}
		if p.HighWatermark < lastHW {
			t.Errorf("v%d: high watermark went back from %d to %d", v, lastHW, p.HighWatermark)
		}
		lastHW = p.HighWatermark
		if v >= 1 {
			for name, ts := range map[string]int64{"last fetch": voter.LastFetchTimestamp, "last caught up": voter.LastCaughtUpTimestamp} {
				if ts < before || ts > after {
					t.Errorf("v%d: leader's %s timestamp %d, want now (%d..%d)", v, name, ts, before, after)
				}
			}
		}
		if v < 2 {
			continue
		}
		if voter.ReplicaDirectoryID != [16]byte{} {
			t.Errorf("v2: directory id %x, want zero", voter.ReplicaDirectoryID)
		}
		if len(resp.Nodes) != 1 || resp.Nodes[0].NodeID != self || len(resp.Nodes[0].Listeners) != 1 {
			t.Fatalf("v2: nodes %+v, want this node with its listener", resp.Nodes)
		}
		l := resp.Nodes[0].Listeners[0]
		if host, port := ts.selfAddr(nil); l.Host != host || int32(l.Port) != port || l.Name == "" {
			t.Errorf("v2: listener %+v, want %s:%d", l, host, port)
		}
	}

	ts.createTopic(t, "moves-the-hw", 1)
	resp := rc.do(describeQuorumReq(2, "__cluster_metadata", 0)).(*kmsg.DescribeQuorumResponse)
	if hw := resp.Topics[0].Partitions[0].HighWatermark; hw <= lastHW {
		t.Errorf("high watermark %d after creating a topic, was %d", hw, lastHW)
	}
}

func TestDescribeQuorumWrongPartition(t *testing.T) {
	ts := startServer(t)
	rc := ts.raw(t)
	two := describeQuorumReq(2, "__cluster_metadata", 0)
	two.Topics = append(two.Topics, describeQuorumReq(2, "other", 3).Topics...)
	for name, req := range map[string]*kmsg.DescribeQuorumRequest{
		"partition 1":    describeQuorumReq(2, "__cluster_metadata", 1),
		"other topic":    describeQuorumReq(1, "orders", 0),
		"two partitions": describeQuorumReq(0, "__cluster_metadata", 0, 1),
		"two topics":     two,
	} {
		t.Run(name, func(t *testing.T) {
			resp := rc.do(req).(*kmsg.DescribeQuorumResponse)
			if resp.ErrorCode != 0 || len(resp.Topics) != len(req.Topics) {
				t.Fatalf("error %d, %d topics", resp.ErrorCode, len(resp.Topics))
			}
			for i, rt := range resp.Topics {
				if rt.Topic != req.Topics[i].Topic || len(rt.Partitions) != len(req.Topics[i].Partitions) {
					t.Fatalf("topic %+v does not echo the request", rt)
				}
				for j, p := range rt.Partitions {
					if p.Partition != req.Topics[i].Partitions[j].Partition || p.ErrorCode != kerr.UnknownTopicOrPartition.Code {
						t.Errorf("%s-%d: error %d, want UNKNOWN_TOPIC_OR_PARTITION", rt.Topic, p.Partition, p.ErrorCode)
					}
				}
			}
		})
	}
}

// TestClusterAdminAPIVersions: ApiVersions advertises the cluster admin
// APIs at the versions kmsg knows, so clients use them.
func TestClusterAdminAPIVersions(t *testing.T) {
	ts := startServer(t)
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	resp := ts.raw(t).do(req).(*kmsg.ApiVersionsResponse)
	got := map[int16][2]int16{}
	for _, k := range resp.ApiKeys {
		got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	for _, want := range []kmsg.Request{
		kmsg.NewPtrElectLeadersRequest(),
		kmsg.NewPtrAlterPartitionAssignmentsRequest(),
		kmsg.NewPtrListPartitionReassignmentsRequest(),
		kmsg.NewPtrDescribeQuorumRequest(),
		kmsg.NewPtrAddRaftVoterRequest(),
		kmsg.NewPtrRemoveRaftVoterRequest(),
	} {
		if v, ok := got[want.Key()]; !ok || v != [2]int16{0, want.MaxVersion()} {
			t.Errorf("%s: advertised %v (listed %v), want 0-%d", kmsg.NameForKey(want.Key()), v, ok, want.MaxVersion())
		}
	}
}

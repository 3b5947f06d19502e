package broker

// Client side of the quorum APIs for the admin CLI (cmd may not import
// kmsg: .ci/check-imports), next to the handlers they talk to.

import (
	"context"
	"fmt"
	"math"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// QuorumDescription is DescribeQuorum's answer for the metadata log.
type QuorumDescription struct {
	LeaderID      int32
	LeaderEpoch   int32
	HighWatermark int64
	Voters        []QuorumReplica
	Observers     []QuorumReplica
}

// QuorumReplica is one member of the metadata quorum. Times are Unix
// milliseconds; -1 means unknown, as does a LogEndOffset of -1.
type QuorumReplica struct {
	ID                    int32
	LogEndOffset          int64
	LastFetchTimestamp    int64
	LastCaughtUpTimestamp int64
	// Endpoints are a voter's listeners as "NAME://host:port" (DescribeQuorum
	// v2); nil for observers.
	Endpoints []string
}

// AdminDescribeQuorum asks for the metadata quorum. A Kafka error comes
// back as an error wrapping its *kerr.Error.
func AdminDescribeQuorum(ctx context.Context, r kmsg.Requestor) (QuorumDescription, error) {
	req := kmsg.NewPtrDescribeQuorumRequest()
	rt := kmsg.NewDescribeQuorumRequestTopic()
	rt.Topic = clusterMetadataTopic
	rp := kmsg.NewDescribeQuorumRequestTopicPartition()
	rp.Partition = clusterMetadataPartition
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, r)
	if err != nil {
		return QuorumDescription{}, err
	}
	if err := kafkaError(resp.ErrorCode, resp.ErrorMessage); err != nil {
		return QuorumDescription{}, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return QuorumDescription{}, fmt.Errorf("describe quorum: %d topics in the answer, want %s-%d alone", len(resp.Topics), clusterMetadataTopic, clusterMetadataPartition)
	}
	p := resp.Topics[0].Partitions[0]
	if err := kafkaError(p.ErrorCode, p.ErrorMessage); err != nil {
		return QuorumDescription{}, err
	}
	endpoints := map[int32][]string{}
	for _, n := range resp.Nodes {
		for _, l := range n.Listeners {
			endpoints[n.NodeID] = append(endpoints[n.NodeID], l.Name+"://"+net.JoinHostPort(l.Host, strconv.Itoa(int(l.Port))))
		}
	}
	replicas := func(in []kmsg.DescribeQuorumResponseTopicPartitionReplicaState, voters bool) []QuorumReplica {
		out := make([]QuorumReplica, 0, len(in))
		for _, m := range in {
			q := QuorumReplica{ID: m.ReplicaID, LogEndOffset: m.LogEndOffset, LastFetchTimestamp: m.LastFetchTimestamp, LastCaughtUpTimestamp: m.LastCaughtUpTimestamp}
			if voters {
				q.Endpoints = endpoints[m.ReplicaID]
			}
			out = append(out, q)
		}
		return out
	}
	return QuorumDescription{
		LeaderID: p.LeaderID, LeaderEpoch: p.LeaderEpoch, HighWatermark: p.HighWatermark,
		Voters: replicas(p.CurrentVoters, true), Observers: replicas(p.Observers, false),
	}, nil
}

// AdminAddRaftVoter makes node id, which follows the quorum from raftAddr
// (host:port), a voter. timeout bounds the broker's wait (0: its own).
func AdminAddRaftVoter(ctx context.Context, r kmsg.Requestor, id int32, raftAddr string, timeout time.Duration) error {
	host, port, err := net.SplitHostPort(raftAddr)
	if err != nil {
		return fmt.Errorf("raft address %q: %w", raftAddr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return fmt.Errorf("raft address %q: port %q is not in 1..65535", raftAddr, port)
	}
	req := kmsg.NewPtrAddRaftVoterRequest()
	req.VoterID = id
	req.TimeoutMillis = int32(min(timeout.Milliseconds(), math.MaxInt32))
	l := kmsg.NewAddRaftVoterRequestListener()
	l.Name, l.Host, l.Port = "CONTROLLER", host, uint16(p)
	req.Listeners = append(req.Listeners, l)
	resp, err := req.RequestWith(ctx, r)
	if err != nil {
		return err
	}
	return kafkaError(resp.ErrorCode, resp.ErrorMessage)
}

// kafkaError is a response's error code with the broker's message, or nil.
func kafkaError(code int16, msg *string) error {
	err := kerr.ErrorForCode(code)
	if err == nil {
		return nil
	}
	if msg != nil && *msg != "" {
		return fmt.Errorf("%w: %s", err, *msg)
	}
	return err
}

// AdminRemoveRaftVoter takes node id out of the metadata quorum's voters
// (the client side, for the admin CLI; see AdminDescribeQuorum).
func AdminRemoveRaftVoter(ctx context.Context, r kmsg.Requestor, id int32) error {
	req := kmsg.NewPtrRemoveRaftVoterRequest()
	req.VoterID = id
	resp, err := req.RequestWith(ctx, r)
	if err != nil {
		return err
	}
	return kafkaError(resp.ErrorCode, resp.ErrorMessage)
}

package broker

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func describeProducersReq(topic string, partitions ...int32) *kmsg.DescribeProducersRequest {
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic, rt.Partitions = topic, partitions
	req.Topics = append(req.Topics, rt)
	return req
}

// describeProducersCodes sends req on rc and returns each partition's
// error code, keyed "topic-partition".
func describeProducersCodes(rc *rawConn, req *kmsg.DescribeProducersRequest) map[string]int16 {
	out := map[string]int16{}
	for _, rt := range rc.do(req).(*kmsg.DescribeProducersResponse).Topics {
		for _, rp := range rt.Partitions {
			out[fmt.Sprintf("%s-%d", rt.Topic, rp.Partition)] = rp.ErrorCode
		}
	}
	return out
}

// TestDescribeProducers: what kafka-transactions.sh and kadm read to find a
// hanging transaction: an idempotent producer's last sequence, and a
// transactional producer's open transaction start until its commit marker
// is written.
func TestDescribeProducers(t *testing.T) {
	ts := startTxnServer(t)
	ts.createTopic(t, "dp", 1)
	ctx := context.Background()
	adm := kadm.NewClient(ts.client(t))
	describe := func() kadm.DescribedProducers {
		t.Helper()
		got, err := adm.DescribeProducers(ctx, kadm.TopicsSet{"dp": {0: {}}})
		if err != nil {
			t.Fatal(err)
		}
		p := got["dp"].Partitions[0]
		if p.Err != nil {
			t.Fatalf("describe producers dp-0: %v", p.Err)
		}
		return p.ActiveProducers
	}
	if got := describe(); len(got) != 0 {
		t.Fatalf("producers of an empty partition: %+v", got)
	}

	idem := ts.client(t)
	ts.produce(t, idem, "dp", 0, "i0", "i1", "i2")
	idemID, _, err := idem.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}

	txn := ts.client(t, kgo.TransactionalID("dp-tx"))
	if err := txn.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	res := txn.ProduceSync(ctx, &kgo.Record{Topic: "dp", Value: []byte("t0")}, &kgo.Record{Topic: "dp", Value: []byte("t1")})
	if err := res.FirstErr(); err != nil {
		t.Fatal(err)
	}
	txnStart := res[0].Record.Offset
	txnID, txnEpoch, err := txn.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}

	got := describe()
	if len(got) != 2 {
		t.Fatalf("got %d producers, want 2: %+v", len(got), got)
	}
	if p := got[idemID]; p.LastSequence != 2 || p.CurrentTxnStartOffset != -1 || p.CoordinatorEpoch != -1 || p.LastTimestamp <= 0 {
		t.Errorf("idempotent producer %d: %+v", idemID, p)
	}
	if p := got[txnID]; p.ProducerEpoch != txnEpoch || p.LastSequence != 1 || p.CurrentTxnStartOffset != txnStart || p.LastTimestamp <= 0 {
		t.Errorf("transactional producer %d (epoch %d, first offset %d): %+v", txnID, txnEpoch, txnStart, p)
	}

	// EndTxn answers before the markers are written: wait for the commit
	// marker to close the transaction.
	if err := txn.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the commit marker to end the transaction", func() bool {
		p := describe()[txnID]
		return p.CurrentTxnStartOffset == -1 && p.CoordinatorEpoch >= 0
	})

	// Errors, partition by partition.
	rc := ts.raw(t)
	req := describeProducersReq("dp", 0, 7)
	req.Topics = append(req.Topics, describeProducersReq("ghost", 0).Topics[0], describeProducersReq("bad/name", 0).Topics[0])
	codes := describeProducersCodes(rc, req)
	want := map[string]int16{
		"dp-0":       0,
		"dp-7":       kerr.UnknownTopicOrPartition.Code,
		"ghost-0":    kerr.UnknownTopicOrPartition.Code,
		"bad/name-0": kerr.InvalidTopicException.Code,
	}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Errorf("error codes %v, want %v", codes, want)
	}
}

// TestAuthzDescribeProducers: READ on the topic, as Kafka requires;
// DESCRIBE is not enough, and a topic the principal may not read looks the
// same whether it exists or not.
func TestAuthzDescribeProducers(t *testing.T) {
	ts := startAuthzServer(t)
	ts.adminTopic(t, "data", 1)
	rc := ts.rawAs(t, alice)
	req := describeProducersReq("data", 0)
	req.Topics = append(req.Topics, describeProducersReq("ghost", 0).Topics[0])
	check := func(what string, want map[string]int16) {
		t.Helper()
		if got := describeProducersCodes(rc, req); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	check("no ACL", map[string]int16{"data-0": codeTopicAuthz, "ghost-0": codeTopicAuthz})
	ts.grant(t, alice, topicRes, literal, "data", kmsg.ACLOperationDescribe)
	ts.grant(t, alice, topicRes, literal, "ghost", kmsg.ACLOperationDescribe)
	check("DESCRIBE only", map[string]int16{"data-0": codeTopicAuthz, "ghost-0": codeTopicAuthz})
	ts.grant(t, alice, topicRes, literal, "data", kmsg.ACLOperationRead)
	check("READ on data", map[string]int16{"data-0": 0, "ghost-0": codeTopicAuthz})
	if n := denials(t, ts, alice, "TOPIC", "READ"); n < 4 {
		t.Errorf("%v READ denials counted, want at least 4", n)
	}
}

// TestDescribeProducersReplicas: a follower answers from its own copy of
// the log (as Kafka's ReplicaManager does), with the same state as the
// leader; a broker that hosts no replica answers NOT_LEADER_OR_FOLLOWER.
func TestDescribeProducersReplicas(t *testing.T) {
	tc := startTestCluster(t, 2)
	tc.createTopic("two", 1, 2, nil)
	tc.createTopic("one", 1, 1, nil)
	produceNumbered(t, tc.client(kgo.DefaultProduceTopic("two")), "two", 0, 5)

	leader := tc.leaderIndex("two", 0)
	follower := 1 - leader
	state := func(i int) []kmsg.DescribeProducersResponseTopicPartitionActiveProducer {
		rc := dialRaw(t, tc.nodes[i].addr)
		rp := rc.do(describeProducersReq("two", 0)).(*kmsg.DescribeProducersResponse).Topics[0].Partitions[0]
		if rp.ErrorCode != 0 {
			t.Fatalf("node %d: error %d", i+1, rp.ErrorCode)
		}
		return rp.ActiveProducers
	}
	onLeader := state(leader)
	if len(onLeader) != 1 || onLeader[0].LastSequence != 4 {
		t.Fatalf("leader: %+v", onLeader)
	}
	waitFor(t, "the follower to report the leader's producer state", func() bool {
		got := state(follower)
		return len(got) == 1 && fmt.Sprint(got[0]) == fmt.Sprint(onLeader[0])
	})

	elsewhere := 1 - tc.leaderIndex("one", 0)
	codes := describeProducersCodes(dialRaw(t, tc.nodes[elsewhere].addr), describeProducersReq("one", 0))
	if codes["one-0"] != kerr.NotLeaderForPartition.Code {
		t.Errorf("broker without a replica: %v, want NOT_LEADER_OR_FOLLOWER", codes)
	}
}

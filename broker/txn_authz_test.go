package broker

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const txnIDRes = kmsg.ACLResourceTypeTransactionalId

// TestAuthzTransactionAPIs: the transaction APIs check ACLs as Kafka does,
// and a denied request changes nothing.
func TestAuthzTransactionAPIs(t *testing.T) {
	ts := startAuthzServer(t)
	ts.adminTopic(t, "data", 1)
	rc := ts.rawAs(t, alice)

	findTxn := func() int16 {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.Version, req.CoordinatorType, req.CoordinatorKey = 3, 1, "tx"
		return rc.do(req).(*kmsg.FindCoordinatorResponse).ErrorCode
	}
	initPID := func() *kmsg.InitProducerIDResponse {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version, req.TransactionalID, req.TransactionTimeoutMillis = 4, kmsg.StringPtr("tx"), 60000
		return rc.do(req).(*kmsg.InitProducerIDResponse)
	}
	addParts := func(pid int64, epoch int16) map[string]int16 {
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch = 3, "tx", pid, epoch
		req.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "data", Partitions: []int32{0}}, {Topic: "ghost", Partitions: []int32{0}}}
		out := map[string]int16{}
		for _, rt := range rc.do(req).(*kmsg.AddPartitionsToTxnResponse).Topics {
			out[rt.Topic] = rt.Partitions[0].ErrorCode
		}
		return out
	}
	addOffsets := func(pid int64, epoch int16) int16 {
		req := kmsg.NewPtrAddOffsetsToTxnRequest()
		req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = 3, "tx", pid, epoch, "grp"
		return rc.do(req).(*kmsg.AddOffsetsToTxnResponse).ErrorCode
	}
	txnCommit := func(pid int64, epoch int16) int16 {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.Version, req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch, req.Generation = 3, "tx", "grp", pid, epoch, -1
		req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "data", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
		return rc.do(req).(*kmsg.TxnOffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	}
	endTxn := func(pid int64, epoch int16) int16 {
		req := kmsg.NewPtrEndTxnRequest()
		req.Version, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit = 3, "tx", pid, epoch, true
		return rc.do(req).(*kmsg.EndTxnResponse).ErrorCode
	}
	describe := func() int16 {
		req := kmsg.NewPtrDescribeTransactionsRequest()
		req.TransactionalIDs = []string{"tx"}
		return rc.do(req).(*kmsg.DescribeTransactionsResponse).TransactionStates[0].ErrorCode
	}
	markers := func() int16 {
		req := kmsg.NewPtrWriteTxnMarkersRequest()
		m := kmsg.NewWriteTxnMarkersRequestMarker()
		m.ProducerID, m.ProducerEpoch, m.Committed = 1, 0, false
		m.Topics = []kmsg.WriteTxnMarkersRequestMarkerTopic{{Topic: "data", Partitions: []int32{0}}}
		req.Markers = append(req.Markers, m)
		return rc.do(req).(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode
	}

	// Nothing granted.
	if code := findTxn(); code != codeTxnAuthz {
		t.Errorf("FindCoordinator: %d", code)
	}
	if r := initPID(); r.ErrorCode != codeTxnAuthz {
		t.Errorf("InitProducerId: %d", r.ErrorCode)
	}
	if got := addParts(0, 0); got["data"] != codeTxnAuthz || got["ghost"] != codeTxnAuthz {
		t.Errorf("AddPartitionsToTxn: %v", got)
	}
	if code := addOffsets(0, 0); code != codeTxnAuthz {
		t.Errorf("AddOffsetsToTxn: %d", code)
	}
	if code := txnCommit(0, 0); code != codeTxnAuthz {
		t.Errorf("TxnOffsetCommit: %d", code)
	}
	if code := endTxn(0, 0); code != codeTxnAuthz {
		t.Errorf("EndTxn: %d", code)
	}
	if code := describe(); code != codeTxnAuthz {
		t.Errorf("DescribeTransactions: %d", code)
	}
	if code := markers(); code != codeClusterAuthz {
		t.Errorf("WriteTxnMarkers: %d", code)
	}

	// WRITE on the transactional id (which implies DESCRIBE).
	ts.grant(t, alice, txnIDRes, literal, "tx", kmsg.ACLOperationWrite)
	if code := findTxn(); code != 0 {
		t.Fatalf("FindCoordinator with WRITE: %d", code)
	}
	r := initPID()
	if r.ErrorCode != 0 {
		t.Fatalf("InitProducerId with WRITE: %d", r.ErrorCode)
	}
	pid, epoch := r.ProducerID, r.ProducerEpoch
	// No WRITE on the topics: nothing is added.
	if got := addParts(pid, epoch); got["data"] != codeTopicAuthz || got["ghost"] != codeTopicAuthz {
		t.Errorf("AddPartitionsToTxn without topic WRITE: %v", got)
	}
	ts.grant(t, alice, topicRes, literal, "data", kmsg.ACLOperationWrite)
	ts.grant(t, alice, topicRes, literal, "ghost", kmsg.ACLOperationWrite)
	if got := addParts(pid, epoch); got["data"] != kerr.OperationNotAttempted.Code || got["ghost"] != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("AddPartitionsToTxn with an unknown topic: %v", got)
	}
	if code := addOffsets(pid, epoch); code != codeGroupAuthz {
		t.Errorf("AddOffsetsToTxn without group READ: %d", code)
	}
	if code := txnCommit(pid, epoch); code != codeGroupAuthz {
		t.Errorf("TxnOffsetCommit without group READ: %d", code)
	}
	if code := describe(); code != 0 {
		t.Errorf("DescribeTransactions with WRITE: %d", code)
	}

	ts.grant(t, alice, groupRes, literal, "grp", kmsg.ACLOperationRead)
	if code := txnCommit(pid, epoch); code != codeTopicAuthz {
		t.Errorf("TxnOffsetCommit without topic READ: %d", code)
	}
	ts.grant(t, alice, topicRes, literal, "data", kmsg.ACLOperationRead)
	// The group's partition is not in the transaction yet.
	if code := txnCommit(pid, epoch); code != kerr.InvalidTxnState.Code {
		t.Errorf("TxnOffsetCommit before AddOffsetsToTxn: %d", code)
	}
	if code := addOffsets(pid, epoch); code != 0 {
		t.Fatalf("AddOffsetsToTxn: %d", code)
	}
	if code := txnCommit(pid, epoch); code != 0 {
		t.Errorf("TxnOffsetCommit: %d", code)
	}
	if code := endTxn(pid, epoch); code != 0 {
		t.Errorf("EndTxn: %d", code)
	}
}

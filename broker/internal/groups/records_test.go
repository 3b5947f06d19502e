package groups

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestRecordsUseKafkaSchema(t *testing.T) {
	// Offset commits: key version 1, value version 3 (1 with an expiry).
	key := offsetKey("grp", topicPartition{"topic", 4})
	var k kmsg.OffsetCommitKey
	if err := k.ReadFrom(key); err != nil || k.Version != 1 || k.Group != "grp" || k.Topic != "topic" || k.Partition != 4 {
		t.Fatalf("offset key %+v %v", k, err)
	}
	var v kmsg.OffsetCommitValue
	if err := v.ReadFrom(offsetValue(committed{offset: 42, leaderEpoch: 3, metadata: "md", commitMs: 1000, expireMs: -1})); err != nil ||
		v.Version != 3 || v.Offset != 42 || v.LeaderEpoch != 3 || v.Metadata != "md" || v.CommitTimestamp != 1000 {
		t.Fatalf("offset value %+v %v", v, err)
	}
	if err := v.ReadFrom(offsetValue(committed{offset: 1, commitMs: 5, expireMs: 99})); err != nil || v.Version != 1 || v.ExpireTimestamp != 99 {
		t.Fatalf("offset value with expiry %+v %v", v, err)
	}

	// Group metadata: key version 2, value version 3.
	g := newGroup("grp", 0, 77)
	inst := "i-1"
	g.add(&member{id: "m1", instanceID: &inst, clientID: "c", clientHost: "/h", rebalanceMs: 30000, sessionMs: 10000,
		protocolType: "consumer", protocols: []protocol{{"range", []byte{9, 8}}}, assignment: []byte{1}})
	g.protocolType, g.protocol, g.hasProtocol, g.generation = "consumer", "range", true, 4
	var gk kmsg.GroupMetadataKey
	if err := gk.ReadFrom(groupKey("grp")); err != nil || gk.Version != 2 || gk.Group != "grp" {
		t.Fatalf("group key %+v %v", gk, err)
	}
	var gv kmsg.GroupMetadataValue
	if err := gv.ReadFrom(groupValue(g, map[string][]byte{"m1": {7, 7}})); err != nil {
		t.Fatal(err)
	}
	m := gv.Members[0]
	if gv.Version != 3 || gv.Generation != 4 || *gv.Protocol != "range" || *gv.Leader != "m1" || gv.CurrentStateTimestamp != 77 ||
		m.MemberID != "m1" || *m.InstanceID != "i-1" || m.RebalanceTimeoutMillis != 30000 || m.SessionTimeoutMillis != 10000 ||
		!bytes.Equal(m.Subscription, []byte{9, 8}) || !bytes.Equal(m.Assignment, []byte{7, 7}) {
		t.Fatalf("group value %+v", gv)
	}
}

func TestDecodeRecordSkipsUnknownKinds(t *testing.T) {
	// Key version 3+ are KIP-848 consumer-group records: not ours.
	rec, err := decodeRecord([]byte{0, 3, 0, 1, 'g'}, []byte{1})
	if rec != nil || err != nil {
		t.Fatalf("got %+v %v", rec, err)
	}
	if _, err := decodeRecord([]byte{0}, nil); err == nil {
		t.Fatal("short key accepted")
	}
	if _, err := decodeRecord([]byte{0, 1, 0, 9}, nil); err == nil {
		t.Fatal("truncated key accepted")
	}
}

func TestSubscriptionTopicsReadsV0Prefix(t *testing.T) {
	for _, v := range []int16{0, 1, 2, 3, 7} {
		m := kmsg.ConsumerMemberMetadata{Version: v, Topics: []string{"a", "b"}}
		b := m.AppendTo(nil)
		if v == 7 { // a future version: unknown trailing fields
			b = append(b, 1, 2, 3)
		}
		ts, ok := subscriptionTopics(b)
		if !ok || len(ts) != 2 || ts[0] != "a" {
			t.Fatalf("v%d: %v %v", v, ts, ok)
		}
	}
	if _, ok := subscriptionTopics([]byte{0, 0, 0}); ok {
		t.Fatal("garbage parsed")
	}
}

package txn

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaValueV0 builds a TransactionLogValue v0 by hand from Kafka's schema
// (TransactionLogValue.json), independently of kmsg.
func kafkaValueV0(pid int64, epoch int16, timeout int32, state int8, topics map[string][]int32, order []string, update, start int64) []byte {
	b := binary.BigEndian.AppendUint16(nil, 0)
	b = binary.BigEndian.AppendUint64(b, uint64(pid))
	b = binary.BigEndian.AppendUint16(b, uint16(epoch))
	b = binary.BigEndian.AppendUint32(b, uint32(timeout))
	b = append(b, byte(state))
	if topics == nil {
		b = binary.BigEndian.AppendUint32(b, 0xFFFFFFFF) // null array
	} else {
		b = binary.BigEndian.AppendUint32(b, uint32(len(order)))
		for _, t := range order {
			b = binary.BigEndian.AppendUint16(b, uint16(len(t)))
			b = append(b, t...)
			b = binary.BigEndian.AppendUint32(b, uint32(len(topics[t])))
			for _, p := range topics[t] {
				b = binary.BigEndian.AppendUint32(b, uint32(p))
			}
		}
	}
	b = binary.BigEndian.AppendUint64(b, uint64(update))
	return binary.BigEndian.AppendUint64(b, uint64(start))
}

func TestRecordsUseKafkaSchema(t *testing.T) {
	wantKey := append(binary.BigEndian.AppendUint16(nil, 0), 0, 5, 'm', 'y', '-', 't', 'x')
	if got := encodeKey("my-tx"); !bytes.Equal(got, wantKey) {
		t.Fatalf("key % x, want % x", got, wantKey)
	}
	base := meta{producerID: 42, prevProducerID: -1, nextProducerID: -1, epoch: 3, lastEpoch: -1, timeoutMs: 60000, startMs: 1000, updateMs: 2000}
	cases := []struct {
		name   string
		state  State
		parts  []TopicPartition
		topics map[string][]int32
		order  []string
	}{
		{"Empty writes a null partition list", StateEmpty, nil, nil, nil},
		{"Ongoing", StateOngoing, []TopicPartition{tp("a", 0), tp("a", 2), tp("b", 1)}, map[string][]int32{"a": {0, 2}, "b": {1}}, []string{"a", "b"}},
		{"PrepareCommit", StatePrepareCommit, []TopicPartition{tp("a", 0)}, map[string][]int32{"a": {0}}, []string{"a"}},
		{"PrepareAbort", StatePrepareAbort, []TopicPartition{tp("a", 0)}, map[string][]int32{"a": {0}}, []string{"a"}},
		{"CompleteCommit writes an empty list", StateCompleteCommit, nil, map[string][]int32{}, nil},
		{"CompleteAbort", StateCompleteAbort, nil, map[string][]int32{}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := base
			m.state, m.parts = tc.state, tc.parts
			want := kafkaValueV0(42, 3, 60000, int8(tc.state), tc.topics, tc.order, 2000, 1000)
			got := encodeValue(m)
			if !bytes.Equal(got, want) {
				t.Fatalf("value\n got % x\nwant % x", got, want)
			}
			id, back, ok, err := decodeRecord(encodeKey("my-tx"), got)
			if err != nil || !ok || id != "my-tx" || !reflect.DeepEqual(*back, m) {
				t.Fatalf("round trip %q %+v %v %v, want %+v", id, back, ok, err, m)
			}
		})
	}
}

func TestRecordsV2ClientsUseFlexibleValue(t *testing.T) {
	m := meta{producerID: 42, prevProducerID: 41, nextProducerID: 43, epoch: 9, lastEpoch: -1, timeoutMs: 1000,
		state: StatePrepareCommit, parts: []TopicPartition{tp("t", 1)}, startMs: 5, updateMs: 6, tv2: true}
	val := encodeValue(m)
	v := kmsg.NewTxnMetadataValue()
	if err := v.ReadFrom(val); err != nil || v.Version != 1 || v.PreviousProducerID != 41 || v.NextProducerID != 43 ||
		v.ClientTransactionVersion != 2 || v.State != kmsg.TransactionState(StatePrepareCommit) {
		t.Fatalf("v1 value %+v %v", v, err)
	}
	_, back, _, err := decodeRecord(encodeKey("x"), val)
	if err != nil || !reflect.DeepEqual(*back, m) {
		t.Fatalf("round trip %+v %v", back, err)
	}
}

func TestDecodeRecordRejectsGarbage(t *testing.T) {
	key := encodeKey("x")
	cases := []struct {
		name       string
		key, value []byte
		ok         bool
		err        bool
	}{
		{"tombstone", key, nil, true, false},
		{"short key", []byte{0}, nil, false, true},
		{"unknown key version", append([]byte{0, 9}, key[2:]...), []byte{1}, false, false},
		{"truncated value", key, encodeValue(meta{state: StateOngoing, parts: []TopicPartition{tp("a", 1)}})[:20], false, true},
		{"unknown state", key, kafkaValueV0(1, 0, 1, 42, nil, nil, 0, 0), false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, m, ok, err := decodeRecord(tc.key, tc.value)
			if ok != tc.ok || (err != nil) != tc.err {
				t.Fatalf("ok %v err %v", ok, err)
			}
			if tc.name == "tombstone" && m != nil {
				t.Fatalf("tombstone decoded as %+v", m)
			}
		})
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeKey("tx"), encodeValue(meta{producerID: 1, state: StateOngoing, parts: []TopicPartition{tp("a", 1)}}))
	f.Add(encodeKey("tx"), encodeValue(meta{producerID: 1, state: StatePrepareAbort, tv2: true, nextProducerID: -1, prevProducerID: 3}))
	f.Add(encodeKey(""), []byte(nil))
	f.Add([]byte{0, 0, 0xFF, 0xFF}, []byte{0, 1, 0xFF})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		id, m, ok, err := decodeRecord(key, value)
		if err != nil || !ok || m == nil {
			return
		}
		// Whatever decodes re-encodes to something that decodes the same.
		id2, m2, ok2, err2 := decodeRecord(encodeKey(id), encodeValue(*m))
		if err2 != nil || !ok2 || id2 != id {
			t.Fatalf("re-decode %q: %v %v", id, ok2, err2)
		}
		if m.state != StateEmpty && !reflect.DeepEqual(*m, *m2) {
			t.Fatalf("round trip\n got %+v\nwant %+v", *m2, *m)
		}
	})
}

package txn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Record layout: Apache Kafka's TransactionLog schema, so Kafka's tools
// (kafka-dump-log --transaction-log-decoder, kmsg) read what we write. The
// key is version 0 (the transactional id). The value is version 0 for
// transactions v1 clients and version 1 (flexible, KIP-915) for
// transactions v2 clients or after a producer id rotation: its tagged
// fields carry the previous and next producer ids and the client's
// transaction version (KIP-890). A nil value
// is a tombstone: the transactional id expired.
const (
	keyVersion     = 0
	valueVersionV1 = 0 // transactions v1 clients
	valueVersionV2 = 1 // transactions v2 clients (flexible)
	clientTV2      = 2 // ClientTransactionVersion for KIP-890 clients
)

// ErrBadRecord marks a __transaction_state record that cannot be decoded.
var ErrBadRecord = errors.New("malformed __transaction_state record")

func encodeKey(id string) []byte {
	k := kmsg.TxnMetadataKey{Version: keyVersion, TransactionalID: id}
	return k.AppendTo(nil)
}

func encodeValue(m meta) []byte {
	v := kmsg.NewTxnMetadataValue()
	v.Version = valueVersionV1
	// The flexible version also carries the previous producer id after a
	// rotation, so a KIP-360 retry is still recognised after a failover.
	if m.tv2 || m.prevProducerID != noProducerID || m.nextProducerID != noProducerID {
		v.Version = valueVersionV2
		v.PreviousProducerID = m.prevProducerID
		v.NextProducerID = m.nextProducerID
		if m.tv2 {
			v.ClientTransactionVersion = clientTV2
		}
	}
	v.ProducerID = m.producerID
	v.ProducerEpoch = m.epoch
	v.TimeoutMillis = m.timeoutMs
	v.State = kmsg.TransactionState(m.state)
	// Kafka writes a null partition list for Empty and a (possibly empty)
	// list otherwise.
	if m.state != StateEmpty {
		v.Topics = []kmsg.TxnMetadataValueTopic{}
		for i := 0; i < len(m.parts); {
			j := i
			t := kmsg.NewTxnMetadataValueTopic()
			t.Topic = m.parts[i].Topic
			for j < len(m.parts) && m.parts[j].Topic == t.Topic {
				t.Partitions = append(t.Partitions, m.parts[j].Partition)
				j++
			}
			v.Topics = append(v.Topics, t)
			i = j
		}
	}
	v.LastUpdateTimestamp = m.updateMs
	v.StartTimestamp = m.startMs
	return v.AppendTo(nil)
}

// decodeRecord parses a __transaction_state record. ok is false for a
// record kind it does not know (a key version other than 0), which callers
// skip. A nil value decodes as a tombstone (m == nil).
func decodeRecord(key, value []byte) (id string, m *meta, ok bool, err error) {
	defer func() {
		// kmsg is generated code; a corrupt record must never take the
		// broker down while it loads.
		if r := recover(); r != nil {
			id, m, ok, err = "", nil, false, fmt.Errorf("%w: decoder panic: %v", ErrBadRecord, r)
		}
	}()
	if len(key) < 2 {
		return "", nil, false, fmt.Errorf("%w: key of %d bytes", ErrBadRecord, len(key))
	}
	if kv := int16(binary.BigEndian.Uint16(key)); kv != keyVersion {
		return "", nil, false, nil
	}
	var k kmsg.TxnMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return "", nil, false, fmt.Errorf("%w: key: %v", ErrBadRecord, err)
	}
	if value == nil {
		return k.TransactionalID, nil, true, nil
	}
	v := kmsg.NewTxnMetadataValue()
	if err := v.ReadFrom(value); err != nil {
		return "", nil, false, fmt.Errorf("%w: value of %q: %v", ErrBadRecord, k.TransactionalID, err)
	}
	if v.Version < 0 {
		return "", nil, false, fmt.Errorf("%w: value of %q has version %d", ErrBadRecord, k.TransactionalID, v.Version)
	}
	st := State(v.State)
	if !st.valid() {
		return "", nil, false, fmt.Errorf("%w: value of %q has state %d", ErrBadRecord, k.TransactionalID, v.State)
	}
	out := &meta{
		producerID:     v.ProducerID,
		prevProducerID: noProducerID,
		nextProducerID: noProducerID,
		epoch:          v.ProducerEpoch,
		lastEpoch:      noProducerEpoch,
		timeoutMs:      v.TimeoutMillis,
		state:          st,
		startMs:        v.StartTimestamp,
		updateMs:       v.LastUpdateTimestamp,
	}
	if v.Version >= valueVersionV2 {
		out.prevProducerID = v.PreviousProducerID
		out.nextProducerID = v.NextProducerID
		out.tv2 = v.ClientTransactionVersion >= clientTV2
	}
	for _, t := range v.Topics {
		for _, p := range t.Partitions {
			out.parts = append(out.parts, TopicPartition{Topic: t.Topic, Partition: p})
		}
	}
	slices.SortFunc(out.parts, tpLess)
	out.parts = slices.Compact(out.parts)
	return k.TransactionalID, out, true, nil
}

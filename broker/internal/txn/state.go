package txn

import (
	"cmp"
	"math"
	"slices"
)

// State is a transaction's state, numbered as in Apache Kafka's
// TransactionLogValue (the byte written to __transaction_state).
type State int8

const (
	StateEmpty             State = 0
	StateOngoing           State = 1
	StatePrepareCommit     State = 2
	StatePrepareAbort      State = 3
	StateCompleteCommit    State = 4
	StateCompleteAbort     State = 5
	StateDead              State = 6
	StatePrepareEpochFence State = 7
)

var stateNames = [...]string{"Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead", "PrepareEpochFence"}

// String returns Kafka's name for the state, as ListTransactions and
// DescribeTransactions report it.
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "Unknown"
}

func parseState(name string) (State, bool) {
	for i, n := range stateNames {
		if n == name {
			return State(i), true
		}
	}
	return 0, false
}

func (s State) valid() bool { return s >= StateEmpty && s <= StatePrepareEpochFence }

// completed: no transaction in progress; the producer may start one.
func (s State) completed() bool {
	return s == StateEmpty || s == StateCompleteCommit || s == StateCompleteAbort
}

func (s State) preparing() bool { return s == StatePrepareCommit || s == StatePrepareAbort }

const (
	noProducerID    = int64(-1)
	noProducerEpoch = int16(-1)
	noTimestamp     = int64(-1)
)

// epochExhausted: Kafka rotates to a new producer id instead of handing out
// an epoch this high, keeping MaxInt16 free for the coordinator's fence.
func epochExhausted(e int16) bool { return e >= math.MaxInt16-1 }

// TopicPartition names one partition in a transaction.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func tpLess(a, b TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	return cmp.Compare(a.Partition, b.Partition)
}

// meta is one transactional id's durable state: exactly what one
// __transaction_state record holds (plus lastEpoch, which like Kafka we keep
// only in memory). It is a value: a transition builds the next meta, writes
// it, and only then replaces the current one.
type meta struct {
	producerID     int64
	prevProducerID int64 // the id before the last rotation (KIP-360 retries)
	nextProducerID int64 // TV2: the id the producer moves to when this transaction completes
	epoch          int16
	lastEpoch      int16 // the epoch before the last bump, for retried InitProducerId / EndTxn v5
	timeoutMs      int32
	state          State
	parts          []TopicPartition // sorted, unique; shared copy-on-write
	startMs        int64            // transaction start; -1 when none
	updateMs       int64
	tv2            bool // the client uses transactions v2 (KIP-890): EndTxn v5+
}

func (m *meta) has(tp TopicPartition) bool {
	_, ok := slices.BinarySearchFunc(m.parts, tp, tpLess)
	return ok
}

func (m *meta) hasAll(tps []TopicPartition) bool {
	for _, tp := range tps {
		if !m.has(tp) {
			return false
		}
	}
	return true
}

// withParts returns a fresh sorted union of m.parts and add.
func (m *meta) withParts(add []TopicPartition) []TopicPartition {
	out := make([]TopicPartition, 0, len(m.parts)+len(add))
	out = append(out, m.parts...)
	out = append(out, add...)
	slices.SortFunc(out, tpLess)
	return slices.Compact(out)
}

// txn is a transactional id the coordinator owns. Loop-owned.
type txn struct {
	id        string
	partition int32
	cur       meta
	pending   bool // a transition is being written; everyone else waits (CONCURRENT_TRANSACTIONS)
	fresh     bool // created by InitProducerId and not yet durable
	gone      bool // unloaded or expired; late callbacks ignore it
	markers   bool // markers are being written or waiting to be retried
}

package storage

import (
	"reflect"
	"testing"
)

func expectProducers(t *testing.T, l *Log, want ...ProducerState) {
	t.Helper()
	got := l.ActiveProducers()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("active producers:\n got %+v\nwant %+v", got, want)
	}
}

// TestActiveProducers: the view reports what DescribeProducers users read
// (epoch, last sequence and timestamp, coordinator epoch, open transaction)
// as batches and markers arrive, and the same after a clean restart and
// after a crash.
func TestActiveProducers(t *testing.T) {
	for _, crash := range []bool{false, true} {
		name := "clean restart"
		if crash {
			name = "crash"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			clock := newFakeClock()
			l, err := Open(dir, smallConfig(), Options{Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			expectProducers(t, l)

			// Non-idempotent data has no producer state.
			appendNumbered(t, l, 2, 0, 0) // 0-1
			expectProducers(t, l)

			idem := &txnProducer{pid: 7}
			idem.mustSend(t, l, 3, false) // 2-4, seq 0-2, max timestamp 1002
			txn := &txnProducer{pid: 9, epoch: 2}
			txn.mustSend(t, l, 2, true) // 5-6, seq 0-1: opens a transaction at 5
			txn.mustSend(t, l, 1, true) // 7: continues it
			idle := ProducerState{ProducerID: 7, Epoch: 0, LastSequence: 2, LastTimestamp: 1002, CoordinatorEpoch: -1, TxnStartOffset: -1}
			open := ProducerState{ProducerID: 9, Epoch: 2, LastSequence: 2, LastTimestamp: 1000, CoordinatorEpoch: -1, TxnStartOffset: 5}
			expectProducers(t, l, idle, open)

			// The commit marker ends the transaction and records the
			// coordinator epoch and the marker's timestamp.
			mustMarker(t, l, 9, 2, true, 4) // 8
			ended := ProducerState{ProducerID: 9, Epoch: 2, LastSequence: 2, LastTimestamp: clock.Ms(), CoordinatorEpoch: 4, TxnStartOffset: -1}
			expectProducers(t, l, idle, ended)

			// A second transaction stays open across the restart.
			txn.mustSend(t, l, 1, true) // 9
			reopened := ProducerState{ProducerID: 9, Epoch: 2, LastSequence: 3, LastTimestamp: 1000, CoordinatorEpoch: 4, TxnStartOffset: 9}
			// A new epoch forgets the old epoch's sequences.
			bumped := &txnProducer{pid: 7, epoch: 1}
			bumped.mustSend(t, l, 1, false) // 10
			idle = ProducerState{ProducerID: 7, Epoch: 1, LastSequence: 0, LastTimestamp: 1000, CoordinatorEpoch: -1, TxnStartOffset: -1}
			expectProducers(t, l, idle, reopened)

			settle(t, l)
			if crash {
				l.crashForTest()
			} else if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openTest(t, dir, smallConfig(), Options{Now: clock.Now})
			expectProducers(t, l, idle, reopened)

			// A marker with a bumped epoch (transactions v2) leaves no
			// sequence in the new epoch.
			clock.Advance(1000)
			mustMarker(t, l, 9, 3, false, 4)
			expectProducers(t, l, idle, ProducerState{ProducerID: 9, Epoch: 3, LastSequence: -1, LastTimestamp: clock.Ms(), CoordinatorEpoch: 4, TxnStartOffset: -1})

			// The result is a copy.
			got := l.ActiveProducers()
			got[0].Epoch = 99
			if l.ActiveProducers()[0].Epoch != 1 {
				t.Fatal("ActiveProducers returned the log's own state")
			}
		})
	}
}

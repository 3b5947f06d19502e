package storage

import (
	"errors"
	"testing"
)

// A log restarted at the remote end takes producer state from the
// snapshot uploaded with the last remote segment: a producer that wrote
// only to the remote tier keeps its sequence (a gap is refused, the next
// batch accepted), an open transaction keeps holding the last stable
// offset, and both survive a reopen.
func TestRestoreProducers(t *testing.T) {
	src := openTest(t, t.TempDir(), smallConfig())
	idem := &txnProducer{pid: 7}
	idem.mustSend(t, src, 3, false)
	open := &txnProducer{pid: 9}
	first := open.mustSend(t, src, 2, true).FirstOffset
	settle(t, src)
	snap := src.prod.encode()
	end := src.LogEndOffset()

	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	if err := l.ResetEmpty(end, 0); err != nil {
		t.Fatal(err)
	}
	if err := l.RestoreProducers(snap); err != nil {
		t.Fatal(err)
	}
	check := func(l *Log) {
		t.Helper()
		if lso := l.LastStableOffset(); lso != first {
			t.Fatalf("last stable offset %d, want %d (the open transaction's first offset)", lso, first)
		}
		gap := &txnProducer{pid: 7, seq: idem.seq + 1}
		if _, err := gap.send(t, l, 1, false); !errors.Is(err, ErrOutOfOrderSequence) {
			t.Fatalf("sequence gap after restore: %v, want ErrOutOfOrderSequence", err)
		}
	}
	check(l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir, smallConfig())
	check(l)
	idem.mustSend(t, l, 1, false) // the next sequence is accepted

	if err := l.RestoreProducers(snap); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore into a log with batches: %v, want ErrNotEmpty", err)
	}
	empty := openTest(t, t.TempDir(), smallConfig())
	if err := empty.RestoreProducers([]byte("junk")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore of a corrupt snapshot: %v, want ErrCorrupt", err)
	}
}

package tiering

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/strata-broker/strata/proto"
	"github.com/strata-broker/strata/storage"
)

// txnProducer writes transactional batches of one producer id.
type txnProducer struct {
	pid int64
	seq int32
}

func (p *txnProducer) send(t testing.TB, l *storage.Log, recs, pad int) {
	t.Helper()
	rs := make([]proto.Record, recs)
	for i := range rs {
		rs[i] = proto.Record{TimestampDelta: int64(i), Key: []byte("k"), Value: []byte(fmt.Sprintf("txn-%d-%s", p.pid, strings.Repeat("x", pad)))}
	}
	raw := proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: 1000, ProducerID: p.pid, ProducerEpoch: 0, BaseSequence: p.seq, Transactional: true}, rs)
	bs, err := proto.ValidateProduceBatches(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(bs, 3, -1); err != nil {
		t.Fatalf("producer %d: %v", p.pid, err)
	}
	p.seq += int32(recs)
	if err := l.WaitDurable(context.Background(), l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
}

func (p *txnProducer) end(t testing.TB, l *storage.Log, commit bool) {
	t.Helper()
	if _, err := l.AppendTxnMarker(p.pid, 0, commit, 0, 3); err != nil {
		t.Fatalf("marker of %d: %v", p.pid, err)
	}
	if err := l.WaitDurable(context.Background(), l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
}

// produceTxns writes interleaved transactions of two producers, some
// aborted, some committed, between plain batches, over several segments,
// then plain batches so that every marker is in a sealed segment. It
// returns the number of aborts.
func produceTxns(t testing.TB, l *storage.Log) (aborts int) {
	a, b := &txnProducer{pid: 1000}, &txnProducer{pid: 2000}
	for i := range 14 {
		a.send(t, l, 3, 80)
		produce(t, l, 1, 2, 1000, 40)
		b.send(t, l, 2, 60)
		if i%3 != 2 {
			a.end(t, l, false)
			aborts++
		} else {
			a.end(t, l, true)
		}
		if i%2 == 0 {
			b.end(t, l, false)
			aborts++
		} else {
			b.end(t, l, true)
		}
		produce(t, l, 1, 1, 1000, 30)
	}
	produce(t, l, 30, 3, 1000, 60)
	return aborts
}

type abortRange struct{ from, to int64 }

func TestRemoteAbortedTransactionsMatchLocal(t *testing.T) {
	e := newEnv(t)
	aborts := produceTxns(t, e.log)
	end := e.log.LogEndOffset()
	// What the local log answers while it holds everything.
	want := map[abortRange][]storage.AbortedTxn{}
	for from := int64(0); from < end; from += 7 {
		for _, n := range []int64{1, 5, 40, 200, end} {
			r := abortRange{from, min(from+n, end)}
			want[r] = e.log.AbortedTransactions(r.from, r.to)
		}
	}
	nonEmpty := 0
	for _, w := range want {
		if len(w) > 0 {
			nonEmpty++
		}
	}
	if nonEmpty < len(want)/4 {
		t.Fatalf("only %d of %d ranges overlap an abort", nonEmpty, len(want))
	}
	e.start(remoteOn())
	e.waitUploaded(e.log)
	if _, err := e.log.EnforceRetention(); err != nil {
		t.Fatal(err)
	}
	man := e.manifest()
	ctx := context.Background()

	// Objects: a .txnindex exactly for the segments with aborts, all of
	// them together listing every abort; snapshots with producer state.
	var indexed int64
	withIndex := 0
	for _, s := range man.Segments {
		_, err := e.store.Head(ctx, KeyFor("c1", e.topicID, 0, s, KindTxnIndex))
		switch {
		case s.TxnIndexSize > 0 && err != nil:
			t.Fatalf("segment %d: %v", s.BaseOffset, err)
		case s.TxnIndexSize == 0 && !errors.Is(err, ErrNotFound):
			t.Fatalf("segment %d without aborts has a txnindex object: %v", s.BaseOffset, err)
		}
		if s.TxnIndexSize > 0 {
			withIndex++
		}
		indexed += s.TxnIndexSize / storage.TxnIndexEntrySize
		if s.ProducerSnapshotSize == 0 {
			t.Errorf("segment [%d, %d] has no producer snapshot", s.BaseOffset, s.LastOffset)
		}
	}
	if indexed != int64(aborts) || withIndex < 2 {
		t.Fatalf("%d aborts indexed in %d remote segments, %d written", indexed, withIndex, aborts)
	}
	if got, want := allKeys(t, e.store), e.expectedKeys(man); !slices.Equal(got, want) {
		t.Fatalf("bucket holds\n%v\nwant\n%v", got, want)
	}
	if e.log.LocalLogStartOffset() < end-40 {
		t.Fatalf("local log still starts at %d (end %d)", e.log.LocalLogStartOffset(), end)
	}

	// A corrupt index is an error and is not cached: once the object is
	// right again, the same query succeeds.
	var first RemoteSegment
	for _, s := range man.Segments {
		if s.TxnIndexSize > 0 {
			first = s
			break
		}
	}
	key := KeyFor("c1", e.topicID, 0, first, KindTxnIndex)
	orig := getObject(t, e.store, key)
	bad := bytes.Clone(orig)
	bad[0] = 9 // entry version
	putObject(t, e.store, key, bad)
	if _, _, err := e.m.AbortedTransactions(ctx, e.topicID, 0, first.BaseOffset, first.LastOffset+1); !errors.Is(err, ErrCorruptRemote) {
		t.Fatalf("corrupt txnindex: %v", err)
	}
	putObject(t, e.store, key, orig)

	check := func(when string) {
		t.Helper()
		for r, w := range want {
			if r.from < man.LogStartOffset || r.to > man.End() {
				continue
			}
			got, _, err := e.m.AbortedTransactions(ctx, e.topicID, 0, r.from, r.to)
			if err != nil {
				t.Fatalf("%s: [%d, %d): %v", when, r.from, r.to, err)
			}
			if len(got) != 0 || len(w) != 0 {
				if !reflect.DeepEqual(got, w) {
					t.Fatalf("%s: aborted in [%d, %d): remote %+v, local %+v", when, r.from, r.to, got, w)
				}
			}
		}
	}
	check("downloaded")
	// Served from memory: the objects are not needed any more.
	for _, s := range man.Segments {
		if s.TxnIndexSize > 0 {
			if err := e.store.Delete(ctx, KeyFor("c1", e.topicID, 0, s, KindTxnIndex)); err != nil {
				t.Fatal(err)
			}
		}
	}
	check("cached")

	// A search that reaches the last remote abort is complete; one past
	// every remote abort is not (the local log continues it).
	if _, complete, _ := e.m.AbortedTransactions(ctx, e.topicID, 0, 0, 1); !complete {
		t.Error("search from 0 to 1 not complete")
	}
	if got, complete, err := e.m.AbortedTransactions(ctx, e.topicID, 0, man.End()-2, man.End()); err != nil || complete || len(got) != 0 {
		t.Errorf("search past the last abort: %v, complete %v, %v", got, complete, err)
	}
	if got, complete, err := e.m.AbortedTransactions(ctx, e.topicID, 0, man.End(), man.End()+10); err != nil || complete || len(got) != 0 {
		t.Errorf("search past the remote end: %v, complete %v, %v", got, complete, err)
	}

	// The producer snapshot of the last segment comes back as uploaded.
	snap, off, err := e.m.ProducerSnapshot(ctx, e.topicID, 0)
	last := man.Segments[len(man.Segments)-1]
	if err != nil || off != man.End() || int64(len(snap)) != last.ProducerSnapshotSize {
		t.Fatalf("producer snapshot: %d bytes at %d, %v; manifest %d bytes, end %d", len(snap), off, err, last.ProducerSnapshotSize, man.End())
	}
}

func TestUploadWaitsForOpenTransaction(t *testing.T) {
	e := newEnv(t)
	p := &txnProducer{pid: 7}
	produce(t, e.log, 10, 3, 1000, 60)
	open := e.log.LogEndOffset()
	p.send(t, e.log, 2, 40)
	produce(t, e.log, 40, 3, 1000, 60)
	if lso := e.log.LastStableOffset(); lso != open {
		t.Fatalf("last stable offset %d, want %d", lso, open)
	}
	e.start(remoteOn())
	// The segments below the open transaction go; the rest wait for it.
	waitFor(t, "uploads below the open transaction", func() bool {
		return e.manifest().End() > 0 && !hasUploadWork(e.log)
	})
	if end := e.manifest().End(); end > open {
		t.Fatalf("uploaded up to %d past the open transaction at %d", end, open)
	}
	p.end(t, e.log, false)
	produce(t, e.log, 10, 3, 1000, 60)
	e.waitUploaded(e.log)
	if end := e.manifest().End(); end <= open {
		t.Fatalf("remote end %d after the abort, transaction at %d", end, open)
	}
}

func getObject(t testing.TB, s ObjectStore, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func putObject(t testing.TB, s ObjectStore, key string, b []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

func TestCutTxnIndex(t *testing.T) {
	entry := func(pid, first, last int64) []byte {
		b := make([]byte, 2, storage.TxnIndexEntrySize)
		for _, v := range []int64{pid, first, last, last + 1} {
			b = binary.BigEndian.AppendUint64(b, uint64(v))
		}
		return b
	}
	idx := slices.Concat(entry(1, 0, 4), entry(2, 3, 10), entry(1, 8, 20))
	// Markers at 10 and 20 are at or after a cut at 10; the transaction at
	// 3 still overlaps the uploaded range, so its entry stays whole.
	if got, want := cutTxnIndex(idx, 10), slices.Concat(entry(2, 3, 10), entry(1, 8, 20)); !bytes.Equal(got, want) {
		t.Fatalf("cut at 10: %x, want %x", got, want)
	}
	if got := cutTxnIndex(idx, 21); len(got) != 0 {
		t.Fatalf("cut past every marker: %x", got)
	}
	x, err := storage.ParseTxnIndex(cutTxnIndex(idx, 5), 5, 30)
	if err != nil || x.Len() != 2 {
		t.Fatalf("cut index does not parse for the cut segment: %v", err)
	}
}

package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/strata-broker/strata/proto"
)

// txnProducer sends batches as an idempotent (transactional or not)
// producer would, keeping its sequence.
type txnProducer struct {
	pid   int64
	epoch int16
	seq   int32
}

func txnBatch(pid int64, epoch int16, seq int32, n int, transactional bool, pad int) []byte {
	recs := make([]proto.Record, n)
	for i := range recs {
		v := "t" + strconv.Itoa(i)
		for range pad {
			v += "x"
		}
		recs[i] = proto.Record{TimestampDelta: int64(i), Key: []byte("k"), Value: []byte(v)}
	}
	return proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: 1000, ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Transactional: transactional}, recs)
}

// send appends n records; the sequence moves only when the log took them.
func (p *txnProducer) send(t testing.TB, l *Log, n int, transactional bool) (AppendInfo, error) {
	t.Helper()
	info, err := l.Append(split(t, txnBatch(p.pid, p.epoch, p.seq, n, transactional, 0)), 3, -1)
	if err == nil {
		p.seq += int32(n)
	}
	return info, err
}

func (p *txnProducer) mustSend(t testing.TB, l *Log, n int, transactional bool) AppendInfo {
	t.Helper()
	info, err := p.send(t, l, n, transactional)
	if err != nil {
		t.Fatalf("producer %d: append: %v", p.pid, err)
	}
	return info
}

func mustMarker(t testing.TB, l *Log, pid int64, epoch int16, commit bool, coordEpoch int32) int64 {
	t.Helper()
	off, err := l.AppendTxnMarker(pid, epoch, commit, coordEpoch, 3)
	if err != nil {
		t.Fatalf("marker for %d: %v", pid, err)
	}
	return off
}

// settle waits until everything appended is durable, so the high watermark
// (safe mode) is the log end.
func settle(t testing.TB, l *Log) {
	t.Helper()
	mustWaitDurable(t, l, l.LogEndOffset())
}

func expectLSO(t testing.TB, l *Log, want int64) {
	t.Helper()
	if got := l.LastStableOffset(); got != want {
		t.Fatalf("last stable offset %d, want %d (high watermark %d, log end %d)", got, want, l.HighWatermark(), l.LogEndOffset())
	}
}

func expectAborted(t testing.TB, l *Log, from, to int64, want ...AbortedTxn) {
	t.Helper()
	got := l.AbortedTransactions(from, to)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("aborted transactions in [%d, %d): %+v, want %+v", from, to, got, want)
	}
}

func TestTxnCommitAndAbort(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	p := &txnProducer{pid: 1}
	q := &txnProducer{pid: 2}

	if info := p.mustSend(t, l, 2, true); info.FirstOffset != 0 {
		t.Fatalf("first transactional batch at %d", info.FirstOffset)
	}
	settle(t, l)
	expectLSO(t, l, 0) // open: read_committed sees nothing yet
	appendNumbered(t, l, 1, 0, 0)
	p.mustSend(t, l, 1, true) // continues the transaction
	settle(t, l)
	expectLSO(t, l, 0)

	commitAt := mustMarker(t, l, 1, 0, true, 5)
	if commitAt != 4 {
		t.Fatalf("commit marker at %d, want 4", commitAt)
	}
	settle(t, l)
	expectLSO(t, l, 5)
	expectAborted(t, l, 0, 5)

	q.mustSend(t, l, 2, true) // 5-6
	settle(t, l)
	expectLSO(t, l, 5)
	abortAt := mustMarker(t, l, 2, 0, false, 5) // 7
	settle(t, l)
	expectLSO(t, l, 8)

	aborted := AbortedTxn{ProducerID: 2, FirstOffset: 5}
	for _, tt := range []struct {
		from, to int64
		want     []AbortedTxn
	}{
		{0, 5, nil},                     // ends before the transaction starts
		{0, 6, []AbortedTxn{aborted}},   // reaches its first batch
		{6, 7, []AbortedTxn{aborted}},   // inside
		{7, 8, []AbortedTxn{aborted}},   // the marker itself
		{8, 9, nil},                     // after the marker
		{0, 100, []AbortedTxn{aborted}}, // everything
	} {
		expectAborted(t, l, tt.from, tt.to, tt.want...)
	}

	// The markers are Kafka's control batches.
	for _, m := range []struct {
		off    int64
		pid    int64
		commit bool
	}{{commitAt, 1, true}, {abortAt, 2, false}} {
		rr, err := l.Read(m.off, m.off+1, 1<<20, true)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := rr.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		rr.Release()
		bs := split(t, buf.Bytes())
		b := bs[len(bs)-1]
		if b.BaseOffset != m.off || b.Attributes != 0x30 || b.ProducerID != m.pid || b.ProducerEpoch != 0 ||
			b.BaseSequence != -1 || b.NumRecords != 1 || b.LastOffsetDelta != 0 || b.PartitionLeaderEpoch != 3 {
			t.Fatalf("marker batch %+v", b)
		}
		typ := byte(0)
		if m.commit {
			typ = 1
		}
		err = proto.ForEachRecord(b, func(r proto.Record) error {
			if !bytes.Equal(r.Key, []byte{0, 0, 0, typ}) || !bytes.Equal(r.Value, []byte{0, 0, 0, 0, 0, 5}) {
				t.Fatalf("marker record key %x value %x", r.Key, r.Value)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestTxnInterleavedProducers(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	a, b, c := &txnProducer{pid: 10}, &txnProducer{pid: 20}, &txnProducer{pid: 30}
	a.mustSend(t, l, 2, true) // 0-1
	b.mustSend(t, l, 2, true) // 2-3
	a.mustSend(t, l, 1, true) // 4
	c.mustSend(t, l, 1, true) // 5
	mustMarker(t, l, 20, 0, false, 0)
	settle(t, l)
	expectLSO(t, l, 0) // a is still open
	mustMarker(t, l, 10, 0, true, 0)
	settle(t, l)
	expectLSO(t, l, 5) // c is open
	mustMarker(t, l, 30, 0, false, 0)
	settle(t, l)
	expectLSO(t, l, 9)

	// Kafka's index entries: b's abort left a open (lso 0), c's nothing.
	l.segMu.RLock()
	var idx []abortedTxn
	for _, s := range l.segs {
		idx = append(idx, s.txns...)
	}
	l.segMu.RUnlock()
	want := []abortedTxn{{pid: 20, first: 2, last: 6, lso: 0}, {pid: 30, first: 5, last: 8, lso: 9}}
	if !reflect.DeepEqual(idx, want) {
		t.Fatalf("index %+v, want %+v", idx, want)
	}

	bt, ct := AbortedTxn{ProducerID: 20, FirstOffset: 2}, AbortedTxn{ProducerID: 30, FirstOffset: 5}
	expectAborted(t, l, 0, 9, bt, ct)
	expectAborted(t, l, 0, 2)
	expectAborted(t, l, 3, 5, bt)
	expectAborted(t, l, 5, 6, bt, ct)
	expectAborted(t, l, 7, 9, ct)
}

// An ended transaction holds the last stable offset back until the high
// watermark passes its marker (Kafka's unreplicated transactions).
func TestTxnLSOWaitsForMarkerBelowHighWatermark(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	l.SetReplicated(true)
	p := &txnProducer{pid: 1}
	p.mustSend(t, l, 2, true) // 0-1
	mustMarker(t, l, 1, 0, true, 0)
	settle(t, l)
	l.AdvanceHighWatermark(2)
	expectLSO(t, l, 0)
	l.AdvanceHighWatermark(3)
	expectLSO(t, l, 3)
}

func TestTxnMarkersWithoutOpenTransaction(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	// Never seen: written, ends nothing, indexes nothing.
	if off := mustMarker(t, l, 77, 2, false, 1); off != 0 {
		t.Fatalf("marker at %d", off)
	}
	// Known idempotent producer with no transaction open.
	p := &txnProducer{pid: 5}
	p.mustSend(t, l, 1, false)
	mustMarker(t, l, 5, 0, false, 1)
	settle(t, l)
	expectLSO(t, l, 3)
	expectAborted(t, l, 0, 3)
	// The producer goes on as before.
	p.mustSend(t, l, 1, false)
	p.mustSend(t, l, 1, true)
	settle(t, l)
	expectLSO(t, l, 4)
}

func TestTxnInvalidTransitionsWriteNothing(t *testing.T) {
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, l *Log, p *txnProducer) error
		want error
	}{
		{"non-transactional batch while open", func(t *testing.T, l *Log, p *txnProducer) error {
			_, err := p.send(t, l, 1, false)
			return err
		}, ErrInvalidTxnState},
		{"transactional batch with an older epoch", func(t *testing.T, l *Log, p *txnProducer) error {
			old := &txnProducer{pid: p.pid, epoch: p.epoch - 1, seq: 100}
			_, err := old.send(t, l, 1, true)
			return err
		}, ErrInvalidProducerEpoch},
		{"marker with an older producer epoch", func(t *testing.T, l *Log, p *txnProducer) error {
			_, err := l.AppendTxnMarker(p.pid, p.epoch-1, false, 4, 3)
			return err
		}, ErrInvalidProducerEpoch},
		{"marker from a fenced coordinator", func(t *testing.T, l *Log, p *txnProducer) error {
			_, err := l.AppendTxnMarker(p.pid, p.epoch, true, 3, 3)
			return err
		}, ErrTransactionCoordinatorFenced},
		{"marker without a producer id", func(t *testing.T, l *Log, p *txnProducer) error {
			_, err := l.AppendTxnMarker(-1, 0, true, 4, 3)
			return err
		}, ErrInvalidTxnState},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := openTest(t, t.TempDir(), smallConfig())
			p := &txnProducer{pid: 9, epoch: 1}
			p.mustSend(t, l, 1, true)
			mustMarker(t, l, 9, 1, true, 4) // coordinator epoch 4 known
			p.mustSend(t, l, 2, true)       // a new transaction from 2
			settle(t, l)
			leo := l.LogEndOffset()
			expectErr(t, tt.run(t, l, p), tt.want)
			if l.LogEndOffset() != leo {
				t.Fatalf("log end moved from %d to %d", leo, l.LogEndOffset())
			}
			expectLSO(t, l, 2)
			// The transaction is still the producer's to end.
			mustMarker(t, l, 9, 1, false, 4)
			settle(t, l)
			expectLSO(t, l, l.LogEndOffset())
			expectAborted(t, l, 0, 100, AbortedTxn{ProducerID: 9, FirstOffset: 2})
		})
	}
}

func TestTxnIndexFormatPinned(t *testing.T) {
	e := abortedTxn{pid: 0x0102030405060708, first: 16, last: 32, lso: 17}
	want := "0000" + "0102030405060708" + "0000000000000010" + "0000000000000020" + "0000000000000011"
	if got := hex.EncodeToString(encodeTxnIndex([]abortedTxn{e})); got != want {
		t.Fatalf("entry %s, want %s", got, want)
	}

	dir := t.TempDir()
	cfg := smallConfig()
	l := openTest(t, dir, cfg)
	p := &txnProducer{pid: 3, epoch: 2}
	p.mustSend(t, l, 1, true)                         // 0
	appendNumbered(t, l, 1, 0, 0)                     // 1
	at := mustMarker(t, l, 3, 2, false, 0)            // 2
	if _, err := p.send(t, l, 1, false); err != nil { // 3: closes nothing, a plain idempotent batch
		t.Fatal(err)
	}
	// Roll so the segment is sealed and its index files written.
	for l.NumSegments() < 3 {
		appendNumbered(t, l, 1, 0, 1500)
	}
	settle(t, l)
	b := mustRead(t, filepath.Join(dir, txnIndexName(0)))
	be := binary.BigEndian
	if len(b) != abortedTxnSize || be.Uint16(b) != 0 || int64(be.Uint64(b[2:])) != 3 ||
		int64(be.Uint64(b[10:])) != 0 || int64(be.Uint64(b[18:])) != at || int64(be.Uint64(b[26:])) != at+1 {
		t.Fatalf("txnindex file %x", b)
	}
	// A sealed segment without aborts has an empty index file.
	l.segMu.RLock()
	second := l.segs[1].base
	l.segMu.RUnlock()
	if b2, err := os.ReadFile(filepath.Join(dir, txnIndexName(second))); err != nil || len(b2) != 0 {
		t.Fatalf("second segment's txnindex: %x, %v", b2, err)
	}
	// Tiering gets the same bytes and the file's path.
	sf, err := l.OpenSegment(0)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Release()
	if !bytes.Equal(sf.TxnIndex, b) || !bytes.Equal(mustRead(t, sf.TxnIndexPath), b) {
		t.Fatalf("segment files txn index %x (file %s), want %x", sf.TxnIndex, sf.TxnIndexPath, b)
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bigTxnLog writes transactions across several segments: an abort whose
// transaction starts in an earlier segment than its marker, a commit, and
// a transaction left open. It returns the open one's first offset and the
// aborted transactions.
func bigTxnLog(t *testing.T, l *Log) (open int64, aborted []AbortedTxn) {
	t.Helper()
	a, b, c := &txnProducer{pid: 1}, &txnProducer{pid: 2}, &txnProducer{pid: 3}
	first := a.mustSend(t, l, 1, true).FirstOffset
	for l.NumSegments() < 3 {
		appendNumbered(t, l, 1, 0, 700)
	}
	b.mustSend(t, l, 1, true)
	mustMarker(t, l, 1, 0, false, 0)
	aborted = append(aborted, AbortedTxn{ProducerID: 1, FirstOffset: first})
	mustMarker(t, l, 2, 0, true, 0)
	for l.NumSegments() < 5 {
		appendNumbered(t, l, 1, 0, 700)
	}
	open = c.mustSend(t, l, 1, true).FirstOffset
	appendNumbered(t, l, 1, 0, 700)
	settle(t, l)
	return open, aborted
}

func TestTxnRecovery(t *testing.T) {
	for _, tt := range []struct {
		name  string
		crash bool
		mess  func(t *testing.T, dir string)
	}{
		{name: "clean"},
		{name: "crash", crash: true},
		{name: "crash, txn indexes gone", crash: true, mess: func(t *testing.T, dir string) { removeGlob(t, dir, "*"+txnIndexSuffix) }},
		{name: "clean, txn indexes corrupt", mess: func(t *testing.T, dir string) {
			for _, p := range listDir(t, dir, txnIndexSuffix) {
				if err := os.WriteFile(p, []byte("not an index"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{name: "clean, snapshots gone", mess: func(t *testing.T, dir string) { removeGlob(t, dir, "*"+snapshotSuffix) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(dir, smallConfig(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			open, aborted := bigTxnLog(t, l)
			leo := l.LogEndOffset()
			expectLSO(t, l, open)
			expectAborted(t, l, 0, leo, aborted...)
			if tt.crash {
				l.crashForTest()
			} else if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if tt.mess != nil {
				tt.mess(t, dir)
			}

			l = openTest(t, dir, smallConfig())
			if l.LogEndOffset() != leo {
				t.Fatalf("log end %d after reopen, want %d", l.LogEndOffset(), leo)
			}
			expectLSO(t, l, open)
			expectAborted(t, l, 0, leo, aborted...)
			expectAborted(t, l, aborted[0].FirstOffset+1, aborted[0].FirstOffset+2, aborted...)
			// Rebuilt index files were written back.
			settle(t, l)
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			var n int
			for _, p := range listDir(t, dir, txnIndexSuffix) {
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				n += int(st.Size() / abortedTxnSize)
			}
			if n != len(aborted) {
				t.Fatalf("%d entries in txnindex files, want %d", n, len(aborted))
			}
			// The open transaction is still its producer's to end.
			if _, err := (&txnProducer{pid: 3, seq: 1}).send(t, l, 1, false); err == nil {
				t.Fatal("non-transactional batch accepted while the recovered transaction is open")
			}
			mustMarker(t, l, 3, 0, true, 0)
			settle(t, l)
			expectLSO(t, l, l.LogEndOffset())
		})
	}
}

func TestTxnTruncateThroughTransaction(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	a, b := &txnProducer{pid: 1}, &txnProducer{pid: 2}
	a.mustSend(t, l, 2, true)        // 0-1
	mustMarker(t, l, 1, 0, true, 0)  // 2
	b.mustSend(t, l, 1, true)        // 3
	mustMarker(t, l, 2, 0, false, 0) // 4
	appendNumbered(t, l, 1, 0, 0)    // 5
	settle(t, l)
	expectLSO(t, l, 6)
	expectAborted(t, l, 0, 6, AbortedTxn{ProducerID: 2, FirstOffset: 3})

	if err := l.TruncateTo(4); err != nil { // b's abort goes: b is open again
		t.Fatal(err)
	}
	expectLSO(t, l, 3)
	expectAborted(t, l, 0, 10)
	if err := l.TruncateTo(2); err != nil { // a's commit goes too
		t.Fatal(err)
	}
	expectLSO(t, l, 0)
	// The log continues from there: a ends its transaction again.
	mustMarker(t, l, 1, 0, false, 0)
	settle(t, l)
	expectLSO(t, l, 3)
	expectAborted(t, l, 0, 3, AbortedTxn{ProducerID: 1, FirstOffset: 0})

	// And the state survives a reopen.
	dir := l.dir
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir, smallConfig())
	expectLSO(t, l, 3)
	expectAborted(t, l, 0, 3, AbortedTxn{ProducerID: 1, FirstOffset: 0})
}

func TestTxnRetentionDeletesTxnIndex(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	bigTxnLog(t, l)
	before := len(listDir(t, dir, txnIndexSuffix))
	l.segMu.RLock()
	third := l.segs[2].base
	l.segMu.RUnlock()
	if _, err := l.DeleteRecordsBefore(third); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, txnIndexName(0))); !os.IsNotExist(err) {
		t.Fatalf("txnindex of a deleted segment: %v (had %d)", err, before)
	}
}

func TestTxnReplicatedFollowerMatchesLeader(t *testing.T) {
	leader := openTest(t, t.TempDir(), smallConfig())
	follower := openTest(t, t.TempDir(), smallConfig())
	open, aborted := bigTxnLog(t, leader)
	replicate(t, leader, follower, 900)
	settle(t, follower)
	expectLSO(t, follower, open)
	expectAborted(t, follower, 0, follower.LogEndOffset(), aborted...)
}

// encodeV1 writes a snapshot as the version before transactions did.
func encodeV1(m map[int64]*producerEntry) []byte {
	be := binary.BigEndian
	b := make([]byte, snapshotHdr)
	be.PutUint16(b, 1)
	be.PutUint32(b[6:], uint32(len(m)))
	for pid, e := range m {
		b = be.AppendUint64(b, uint64(pid))
		b = be.AppendUint16(b, uint16(e.epoch))
		b = be.AppendUint64(b, uint64(e.lastTs))
		b = append(b, e.n)
		for _, x := range e.batches[:e.n] {
			b = be.AppendUint32(b, uint32(x.firstSeq))
			b = be.AppendUint32(b, uint32(x.lastSeq))
			b = be.AppendUint64(b, uint64(x.firstOff))
			b = be.AppendUint64(b, uint64(x.lastOff))
			b = be.AppendUint64(b, uint64(x.maxTs))
		}
	}
	be.PutUint32(b[2:], proto.CRC32C(b[6:]))
	return b
}

func TestTxnSnapshots(t *testing.T) {
	ps := newProducerState()
	ps.m[1] = &producerEntry{epoch: 3, n: 1, lastTs: 9, coordEpoch: 7, txnOngoing: true, txnFirst: 40, batches: [producerWindow]batchMeta{{0, 1, 40, 41, 9}}}
	ps.m[2] = &producerEntry{epoch: 1, coordEpoch: -1}
	got, err := decodeProducerSnapshot(ps.encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || *got[1] != *ps.m[1] || *got[2] != *ps.m[2] {
		t.Fatalf("round trip: %+v %+v", got[1], got[2])
	}

	old := map[int64]*producerEntry{5: {epoch: 2, n: 1, lastTs: 3, batches: [producerWindow]batchMeta{{0, 4, 10, 14, 3}}}}
	got, err = decodeProducerSnapshot(encodeV1(old))
	if err != nil {
		t.Fatal(err)
	}
	want := *old[5]
	want.coordEpoch = -1
	if e := got[5]; e == nil || *e != want {
		t.Fatalf("old snapshot: %+v, want %+v", e, want)
	}

	// Open restores open transactions from a snapshot: the log holds only
	// batches after it (earlier segments are gone), as after retention.
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	p := &txnProducer{pid: 8}
	first := p.mustSend(t, l, 1, true).FirstOffset
	for l.NumSegments() < 3 {
		appendNumbered(t, l, 1, 0, 1500)
	}
	settle(t, l)
	l.segMu.RLock()
	last := l.segs[len(l.segs)-1].base
	l.segMu.RUnlock()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Forget the segments holding the transaction's batch: only the
	// snapshot knows about it.
	for _, p := range segmentFiles(t, dir) {
		if base, _ := parseOffsetName(filepath.Base(p), logSuffix); base < last {
			removeGlob(t, dir, offsetName(base, "")+".*")
		}
	}
	if err := os.WriteFile(filepath.Join(dir, logStartFile), encodeOffsetCheckpoint(last), 0o644); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir, smallConfig())
	expectLSO(t, l, last) // clamped to the log start: the first batch is gone
	if _, err := p.send(t, l, 1, false); err == nil {
		t.Fatalf("transaction from %d forgotten", first)
	}
	mustMarker(t, l, 8, 0, false, 0)
	settle(t, l)
	expectLSO(t, l, l.LogEndOffset())
	expectAborted(t, l, last, l.LogEndOffset(), AbortedTxn{ProducerID: 8, FirstOffset: first})
}

func FuzzDecodeTxnIndex(f *testing.F) {
	f.Add(encodeTxnIndex([]abortedTxn{{1, 0, 5, 6}, {2, 3, 9, 4}}), int64(0), int64(20))
	f.Add([]byte{}, int64(0), int64(1))
	f.Add(make([]byte, abortedTxnSize), int64(0), int64(1))
	f.Fuzz(func(t *testing.T, b []byte, base, next int64) {
		es, err := decodeTxnIndex(b, base, next)
		if err != nil {
			return
		}
		for i, e := range es {
			if e.first < 0 || e.first > e.last || e.last < base || e.last >= next || (i > 0 && e.last <= es[i-1].last) {
				t.Fatalf("accepted bad entry %d: %+v", i, e)
			}
		}
		// Whatever decodes re-encodes to the same bytes.
		if again := encodeTxnIndex(es); !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, was %x", again, b)
		}
	})
}

// Compaction keeps aborted transactions: the index of a rewritten segment
// carries the abort entries of the segments it replaced, so read_committed
// readers still skip aborted records after cleaning and after a reopen.
func TestTxnAbortsSurviveCompaction(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, compactCfg())
	a := &txnProducer{pid: 1}
	first := a.mustSend(t, l, 2, true).FirstOffset
	mustMarker(t, l, 1, 0, false, 0)
	for l.NumSegments() < 4 {
		appendNumbered(t, l, 1, 0, 300) // keyless filler: the cleaner drops it
	}
	sealAll(t, l)
	settle(t, l)
	want := AbortedTxn{ProducerID: 1, FirstOffset: first}
	expectAborted(t, l, 0, l.LogEndOffset(), want)
	res := mustCompact(t, l, CompactOptions{MinCleanableDirtyRatio: 0.01})
	if !res.Cleaned || res.SegmentsReplaced == 0 {
		t.Fatalf("compaction did not run: %+v", res)
	}
	expectAborted(t, l, 0, l.LogEndOffset(), want)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir, compactCfg())
	expectAborted(t, l, 0, l.LogEndOffset(), want)
}

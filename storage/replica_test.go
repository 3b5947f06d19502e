package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/proto"
)

// leaderBatch is one batch a test leader appended.
type leaderBatch struct {
	first, last int64
	epoch       int32
	seq         int32 // base sequence of producer 42, -1 when not idempotent
}

// buildLeader appends n batches of 1..3 numbered records (values are their
// offsets) one per Append, as a leader taking produce requests would: leader
// epoch 1, then 3, then 5; every other batch from idempotent producer 42.
func buildLeader(t testing.TB, l *Log, n int) []leaderBatch {
	t.Helper()
	var out []leaderBatch
	var seq int32
	for i := range n {
		epoch := int32(1 + 2*(i*3/n))
		leo := l.LogEndOffset()
		recs := 1 + i%3
		s := spec{n: recs, ts: 1000 + int64(i), pad: 60, val: func(k int) string { return valueAt(leo + int64(k)) }}
		b := leaderBatch{epoch: epoch, seq: -1}
		if i%2 == 0 {
			s.pid, s.epoch, s.seq = 42, 0, seq
			b.seq = seq
			seq += int32(recs)
		}
		info, err := l.Append(split(t, build(s)), epoch, -1)
		if err != nil {
			t.Fatalf("leader append: %v", err)
		}
		b.first, b.last = info.FirstOffset, info.LastOffset
		out = append(out, b)
	}
	return out
}

// fetch reads what a follower's Fetch would get: whole batches from offset.
func fetch(t testing.TB, l *Log, from int64, maxBytes int32) []byte {
	t.Helper()
	rr, err := l.Read(from, l.LogEndOffset(), maxBytes, true)
	if err != nil {
		t.Fatalf("fetch %d: %v", from, err)
	}
	defer rr.Release()
	var buf bytes.Buffer
	if _, err := rr.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// replicate copies the leader's log to the follower, maxBytes per fetch.
func replicate(t testing.TB, leader, follower *Log, maxBytes int32) {
	t.Helper()
	for follower.LogEndOffset() < leader.LogEndOffset() {
		from := follower.LogEndOffset()
		info, err := follower.AppendReplicated(fetch(t, leader, from, maxBytes))
		if err != nil {
			t.Fatalf("append replicated at %d: %v", from, err)
		}
		if info.FirstOffset != from || info.LastOffset < from {
			t.Fatalf("append replicated at %d: %+v", from, info)
		}
	}
}

// segmentBytes maps each segment file name of dir to its contents.
func segmentBytes(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	for _, p := range segmentFiles(t, dir) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m[filepath.Base(p)] = b
	}
	return m
}

func sameSegments(t testing.TB, a, b string) {
	t.Helper()
	ma, mb := segmentBytes(t, a), segmentBytes(t, b)
	if len(ma) != len(mb) {
		t.Fatalf("%d segments vs %d", len(ma), len(mb))
	}
	for name, da := range ma {
		if !bytes.Equal(da, mb[name]) {
			t.Fatalf("segment %s differs (%d vs %d bytes)", name, len(da), len(mb[name]))
		}
	}
}

// sameEpochAnswers checks that OffsetForLeaderEpoch and EpochForOffset
// answer alike on both logs.
func sameEpochAnswers(t testing.TB, a, b *Log) {
	t.Helper()
	for e := int32(-1); e <= 7; e++ {
		ea, oa := a.EndOffsetForEpoch(e)
		eb, ob := b.EndOffsetForEpoch(e)
		if ea != eb || oa != ob {
			t.Fatalf("EndOffsetForEpoch(%d): (%d, %d) vs (%d, %d)", e, ea, oa, eb, ob)
		}
	}
	for off := int64(0); off < a.LogEndOffset(); off++ {
		if x, y := a.EpochForOffset(off), b.EpochForOffset(off); x != y {
			t.Fatalf("EpochForOffset(%d): %d vs %d", off, x, y)
		}
	}
}

func TestAppendReplicatedMirrorsLeader(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxBytes int32
	}{
		{"one batch per fetch", 1},
		{"a few batches per fetch", 700},
		{"everything in one fetch", 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ldir, fdir := t.TempDir(), t.TempDir()
			leader := openTest(t, ldir, smallConfig())
			buildLeader(t, leader, 90)
			follower := openTest(t, fdir, smallConfig())
			replicate(t, leader, follower, tc.maxBytes)
			mustWaitDurable(t, follower, follower.LogEndOffset())

			if leader.NumSegments() < 4 {
				t.Fatalf("test needs several segments, leader has %d", leader.NumSegments())
			}
			sameSegments(t, ldir, fdir)
			sameEpochAnswers(t, leader, follower)
			if got := follower.HighWatermark(); got != leader.LogEndOffset() {
				t.Fatalf("follower high watermark %d, want %d (single-node rule)", got, leader.LogEndOffset())
			}
			readAll(t, follower, 0)
			// Indexes work: timestamp lookups agree.
			for ts := int64(990); ts < 1100; ts += 7 {
				o1, t1, e1, ok1 := leader.OffsetForTimestamp(ts)
				o2, t2, e2, ok2 := follower.OffsetForTimestamp(ts)
				if o1 != o2 || t1 != t2 || e1 != e2 || ok1 != ok2 {
					t.Fatalf("OffsetForTimestamp(%d): leader (%d %d %d %v), follower (%d %d %d %v)", ts, o1, t1, e1, ok1, o2, t2, e2, ok2)
				}
			}

			// The same after a crash and recovery of the follower.
			follower.crashForTest()
			f2 := openTest(t, fdir, smallConfig())
			sameSegments(t, ldir, fdir)
			sameEpochAnswers(t, leader, f2)
			readAll(t, f2, 0)
		})
	}
}

// replicated encodes batches as a leader stored them: base offsets from
// base on, partition leader epoch set (both outside the CRC).
func replicatedBatches(base int64, epoch int32, specs ...spec) []byte {
	var out []byte
	for _, s := range specs {
		b := build(s)
		proto.SetBaseOffset(b, base)
		proto.SetPartitionLeaderEpoch(b, epoch)
		base += int64(max(s.n, 1))
		out = append(out, b...)
	}
	return out
}

// A compacted leader log has gaps between batches; a follower copies them
// as they are, and its log end follows the last batch.
func TestAppendReplicatedKeepsGaps(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	appendNumbered(t, l, 5, 0, 0)
	data := append(replicatedBatches(7, 2, spec{n: 2}), replicatedBatches(12, 2, spec{n: 1})...)
	info, err := l.AppendReplicated(data)
	if err != nil {
		t.Fatal(err)
	}
	if info.FirstOffset != 5 || info.LastOffset != 12 || l.LogEndOffset() != 13 {
		t.Fatalf("append info %+v, log end %d; want last offset 12, log end 13", info, l.LogEndOffset())
	}
	mustWaitDurable(t, l, 13)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir, smallConfig())
	if l.LogEndOffset() != 13 {
		t.Fatalf("log end %d after reopening, want 13", l.LogEndOffset())
	}
	if _, err := l.AppendReplicated(replicatedBatches(12, 2, spec{n: 1})); !errors.Is(err, ErrOffsetMismatch) {
		t.Fatalf("batch below the log end: got %v, want ErrOffsetMismatch", err)
	}
}

func TestAppendReplicatedRejects(t *testing.T) {
	two := replicatedBatches(5, 2, spec{n: 2}, spec{n: 3})
	firstLen := len(build(spec{n: 2}))
	for _, tc := range []struct {
		name string
		data func() []byte
		want error
	}{
		{"starts before the log end", func() []byte { return replicatedBatches(4, 2, spec{n: 2}) }, ErrOffsetMismatch},
		{"overlapping batches", func() []byte {
			return append(replicatedBatches(5, 2, spec{n: 2}), replicatedBatches(6, 2, spec{n: 1})...)
		}, ErrOffsetMismatch},
		{"corrupt second batch", func() []byte {
			d := bytes.Clone(two)
			d[len(d)-3] ^= 0xff
			return d
		}, ErrCorrupt},
		{"partial trailing batch", func() []byte { return two[:len(two)-10] }, ErrCorrupt},
		{"trailing bytes shorter than a length", func() []byte { return append(bytes.Clone(two), 0, 0, 0) }, ErrCorrupt},
		{"magic 1", func() []byte {
			d := bytes.Clone(two)
			d[firstLen+hdrMagic] = 1
			return d
		}, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, dir, smallConfig())
			appendNumbered(t, l, 5, 0, 0)
			mustWaitDurable(t, l, 5)
			before := segmentBytes(t, dir)
			_, err := l.AppendReplicated(tc.data())
			expectErr(t, err, tc.want)
			if l.LogEndOffset() != 5 {
				t.Fatalf("log end %d after a rejected append", l.LogEndOffset())
			}
			if after := segmentBytes(t, dir); len(after) != len(before) || !bytes.Equal(after[segmentName(0)], before[segmentName(0)]) {
				t.Fatal("segment files changed")
			}
			if e, end := l.EndOffsetForEpoch(7); e != 7 || end != 5 {
				t.Fatalf("epoch history changed by rejected batches: (%d, %d)", e, end)
			}
			// The log still takes the right batches.
			if _, err := l.AppendReplicated(two); err != nil {
				t.Fatalf("valid append after rejection: %v", err)
			}
			if l.LogEndOffset() != 10 {
				t.Fatalf("log end %d", l.LogEndOffset())
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		l := openTest(t, t.TempDir(), smallConfig())
		info, err := l.AppendReplicated(nil)
		if err != nil || info.FirstOffset != 0 || info.LastOffset != -1 || l.LogEndOffset() != 0 {
			t.Fatalf("empty append: %+v %v", info, err)
		}
	})
}

func TestAppendReplicatedLearnsEpochs(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	var data []byte
	data = append(data, replicatedBatches(0, 1, spec{n: 3}, spec{n: 2})...) // 0..4 epoch 1
	data = append(data, replicatedBatches(5, 4, spec{n: 2})...)             // 5..6 epoch 4
	data = append(data, replicatedBatches(7, 6, spec{n: 1}, spec{n: 4})...) // 7..11 epoch 6
	if _, err := l.AppendReplicated(data); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		epoch   int32
		wantE   int32
		wantEnd int64
	}{
		{0, 0, 0}, {1, 1, 5}, {2, 1, 5}, {4, 4, 7}, {5, 4, 7}, {6, 6, 12}, {7, -1, -1},
	} {
		if e, end := l.EndOffsetForEpoch(tc.epoch); e != tc.wantE || end != tc.wantEnd {
			t.Errorf("EndOffsetForEpoch(%d) = (%d, %d), want (%d, %d)", tc.epoch, e, end, tc.wantE, tc.wantEnd)
		}
	}
	if got := l.EpochForOffset(6); got != 4 {
		t.Fatalf("EpochForOffset(6) = %d", got)
	}
	// A batch of an older epoch than the latest does not start an epoch.
	if _, err := l.AppendReplicated(replicatedBatches(12, 5, spec{n: 1})); err != nil {
		t.Fatal(err)
	}
	if e, end := l.EndOffsetForEpoch(6); e != 6 || end != 13 {
		t.Fatalf("EndOffsetForEpoch(6) = (%d, %d)", e, end)
	}
}

func TestAppendReplicatedProducerState(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	// The old leader accepted producer 9 epoch 2, sequences 0..5, in three
	// batches; and a producer that later bumped its epoch.
	data := replicatedBatches(0, 1,
		spec{pid: 9, epoch: 2, seq: 0, n: 2},
		spec{pid: 9, epoch: 2, seq: 2, n: 2},
		spec{pid: 11, epoch: 0, seq: 0, n: 1},
		spec{pid: 9, epoch: 2, seq: 4, n: 2},
		spec{pid: 11, epoch: 1, seq: 0, n: 1},
	)
	if _, err := l.AppendReplicated(data); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, l *Log) {
		t.Helper()
		for _, tc := range []struct {
			name      string
			s         spec
			wantDup   bool
			wantFirst int64
			wantErr   error
		}{
			{"retry of the last batch", spec{pid: 9, epoch: 2, seq: 4, n: 2}, true, 5, nil},
			{"retry of an earlier batch", spec{pid: 9, epoch: 2, seq: 0, n: 2}, true, 0, nil},
			{"gap", spec{pid: 9, epoch: 2, seq: 9, n: 1}, false, 0, ErrOutOfOrderSequence},
			{"old epoch", spec{pid: 11, epoch: 0, seq: 1, n: 1}, false, 0, ErrInvalidProducerEpoch},
		} {
			info, err := l.Append(split(t, build(tc.s)), 2, -1)
			if tc.wantErr != nil {
				expectErr(t, err, tc.wantErr)
				continue
			}
			if err != nil || info.Duplicate != tc.wantDup || info.FirstOffset != tc.wantFirst {
				t.Fatalf("%s: %+v %v", tc.name, info, err)
			}
		}
	}
	check(t, l)
	// The next sequence is taken as this replica's first write as leader.
	leo := l.LogEndOffset()
	info, err := l.Append(split(t, build(spec{pid: 9, epoch: 2, seq: 6, n: 1})), 2, -1)
	if err != nil || info.Duplicate || info.FirstOffset != leo {
		t.Fatalf("next sequence: %+v %v", info, err)
	}
	l.crashForTest()
	check(t, openTest(t, dir, smallConfig()))
}

// expectAfterCut checks a log cut at end: contents, epochs, no file past
// it, producer 42's state.
func expectAfterCut(t *testing.T, l *Log, batches []leaderBatch, end int64) {
	t.Helper()
	if got := l.LogEndOffset(); got != end {
		t.Fatalf("log end %d, want %d", got, end)
	}
	if hw := l.HighWatermark(); hw > end {
		t.Fatalf("high watermark %d past the cut %d", hw, end)
	}
	if got := len(readAll(t, l, 0)); int64(got) != end {
		t.Fatalf("%d records, want %d", got, end)
	}
	for _, b := range segBases(l) {
		if b > end {
			t.Fatalf("segment %d past the cut %d", b, end)
		}
	}
	for _, p := range listDir(t, l.dir, snapshotSuffix) {
		if off, _ := parseOffsetName(filepath.Base(p), snapshotSuffix); off > end {
			t.Fatalf("producer snapshot %d past the cut %d", off, end)
		}
	}
	if _, err := os.Stat(l.path(truncateFile)); !os.IsNotExist(err) {
		t.Fatalf("truncation marker left: %v", err)
	}
	// Epochs: the latest epoch is the one of the last kept batch.
	var lastEpoch int32 = -1
	var lastPid *leaderBatch
	for i := range batches {
		if b := &batches[i]; b.first < end {
			lastEpoch = b.epoch
			if b.seq >= 0 {
				lastPid = b
			}
		}
	}
	if lastEpoch >= 0 {
		if e, off := l.EndOffsetForEpoch(lastEpoch); e != lastEpoch || off != end {
			t.Fatalf("EndOffsetForEpoch(%d) = (%d, %d), want (%d, %d)", lastEpoch, e, off, lastEpoch, end)
		}
	}
	// An epoch newer than every one known answers -1: none past the cut is.
	if e, _ := l.EndOffsetForEpoch(lastEpoch + 1); e != -1 {
		t.Fatalf("epoch after the cut still known: %d", e)
	}
	// Producer 42: its last kept batch is a duplicate, the one after it
	// (cut away) is not.
	if lastPid != nil {
		n := int(lastPid.last - lastPid.first + 1)
		info, err := l.Append(split(t, build(spec{pid: 42, epoch: 0, seq: lastPid.seq, n: n, val: func(k int) string { return valueAt(lastPid.first + int64(k)) }})), lastEpoch, -1)
		if err != nil || !info.Duplicate || info.FirstOffset != lastPid.first {
			t.Fatalf("retry of the last kept batch at %d: %+v %v", lastPid.first, info, err)
		}
	}
}

func TestTruncateTo(t *testing.T) {
	for _, tc := range []struct {
		name string
		// offset picks the truncation offset and the expected end from the
		// leader's batches and segment bases.
		offset func(bs []leaderBatch, bases []int64) (offset, end int64)
	}{
		{"middle of the active segment", func(bs []leaderBatch, bases []int64) (int64, int64) {
			b := batchAfter(bs, bases[len(bases)-1]+1)
			return b.first, b.first
		}},
		{"inside a batch", func(bs []leaderBatch, bases []int64) (int64, int64) {
			for _, b := range bs[len(bs)/2:] {
				if b.last > b.first {
					return b.first + 1, b.first
				}
			}
			panic("no batch with several records")
		}},
		{"segment boundary", func(bs []leaderBatch, bases []int64) (int64, int64) {
			return bases[len(bases)-2], bases[len(bases)-2]
		}},
		{"across several segments", func(bs []leaderBatch, bases []int64) (int64, int64) {
			b := batchAfter(bs, bases[1]+1)
			return b.first, b.first
		}},
		{"to the first offset", func(bs []leaderBatch, bases []int64) (int64, int64) { return 0, 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, replicated := range []bool{false, true} {
				t.Run(fmt.Sprintf("replicated=%v", replicated), func(t *testing.T) {
					dir := t.TempDir()
					l := openTest(t, dir, smallConfig())
					l.SetReplicated(replicated)
					bs := buildLeader(t, l, 90)
					mustWaitDurable(t, l, l.LogEndOffset())
					l.AdvanceHighWatermark(l.LogEndOffset())
					bases := segBases(l)
					if len(bases) < 4 {
						t.Fatalf("need several segments, have %d", len(bases))
					}
					offset, end := tc.offset(bs, bases)
					if err := l.TruncateTo(offset); err != nil {
						t.Fatalf("truncate to %d: %v", offset, err)
					}
					if d := l.DurableEnd(); d > end {
						t.Fatalf("durable end %d past the cut %d", d, end)
					}
					expectAfterCut(t, l, bs, end)

					// Grows again from the cut, with a new epoch.
					info := appendNumbered(t, l, 4, 5000, 500) // epoch 7, spans a roll
					if info.FirstOffset != end {
						t.Fatalf("append after the cut at %d", info.FirstOffset)
					}
					appendNumbered(t, l, 3, 5001, 0)
					mustWaitDurable(t, l, l.LogEndOffset())
					leo := l.LogEndOffset()
					l.AdvanceHighWatermark(leo)
					if hw := l.HighWatermark(); hw != leo {
						t.Fatalf("high watermark %d after growing again, want %d", hw, leo)
					}
					readAll(t, l, 0)
					if e, off := l.EndOffsetForEpoch(7); e != 7 || off != leo {
						t.Fatalf("EndOffsetForEpoch(7) = (%d, %d)", e, off)
					}

					// Survives a clean reopen and a crash.
					if err := l.Close(); err != nil {
						t.Fatal(err)
					}
					l2 := openTest(t, dir, smallConfig(), Options{Replicated: replicated})
					if l2.LogEndOffset() != leo || len(readAll(t, l2, 0)) != int(leo) {
						t.Fatalf("after reopen: log end %d, want %d", l2.LogEndOffset(), leo)
					}
					if e, off := l2.EndOffsetForEpoch(7); e != 7 || off != leo {
						t.Fatalf("after reopen: EndOffsetForEpoch(7) = (%d, %d)", e, off)
					}
					if hw := l2.HighWatermark(); hw != leo {
						t.Fatalf("after reopen: high watermark %d, want %d", hw, leo)
					}
					l2.crashForTest()
					l3 := openTest(t, dir, smallConfig())
					if l3.LogEndOffset() != leo || len(readAll(t, l3, 0)) != int(leo) {
						t.Fatalf("after crash: log end %d, want %d", l3.LogEndOffset(), leo)
					}
				})
			}
		})
	}
}

// batchAfter is the first batch starting at or after off.
func batchAfter(bs []leaderBatch, off int64) leaderBatch {
	for _, b := range bs {
		if b.first >= off {
			return b
		}
	}
	panic("no batch after " + strconv.FormatInt(off, 10))
}

func TestTruncateToEdges(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	buildLeader(t, l, 30)
	leo := l.LogEndOffset()
	mustWaitDurable(t, l, leo)

	t.Run("past the log end does nothing", func(t *testing.T) {
		if err := l.TruncateTo(leo + 10); err != nil || l.LogEndOffset() != leo || l.HighWatermark() != leo {
			t.Fatalf("truncate past end: %v, end %d", err, l.LogEndOffset())
		}
	})
	t.Run("at the log end drops an epoch without data", func(t *testing.T) {
		if err := l.AssignLeaderEpoch(9); err != nil {
			t.Fatal(err)
		}
		if e, _ := l.EndOffsetForEpoch(9); e != 9 {
			t.Fatalf("epoch 9 not assigned: %d", e)
		}
		if err := l.TruncateTo(leo); err != nil || l.LogEndOffset() != leo {
			t.Fatalf("truncate at end: %v", err)
		}
		if e, _ := l.EndOffsetForEpoch(9); e != -1 {
			t.Fatalf("epoch 9 survived truncation at its start: %d", e)
		}
		if e, end := l.EndOffsetForEpoch(5); e != 5 || end != leo {
			t.Fatalf("EndOffsetForEpoch(5) = (%d, %d)", e, end)
		}
	})
	t.Run("below the log start", func(t *testing.T) {
		if _, err := l.DeleteRecordsBefore(10); err != nil {
			t.Fatal(err)
		}
		expectErr(t, l.TruncateTo(9), ErrOffsetOutOfRange)
		if l.LogEndOffset() != leo {
			t.Fatal("log changed")
		}
	})
	t.Run("below the remote end", func(t *testing.T) {
		l.SetRemoteEnd(20)
		expectErr(t, l.TruncateTo(15), ErrOffsetTiered)
	})
	t.Run("closed", func(t *testing.T) {
		l.Close()
		expectErr(t, l.TruncateTo(12), ErrClosed)
		expectErr(t, l.AssignLeaderEpoch(12), ErrClosed)
		if _, err := l.AppendReplicated(nil); !errors.Is(err, ErrClosed) {
			t.Fatalf("append replicated after close: %v", err)
		}
	})
}

// truncateCrashSteps are the points TruncateTo is interrupted at.
var truncateCrashSteps = []string{truncStepIntent, truncStepCut, truncStepDurable, truncStepFinished}

// TestTruncateInterrupted stops TruncateTo at each step (the goroutine
// exits there, as if the process died), abandons the log and checks that
// recovery ends with exactly the cut log.
func TestTruncateInterrupted(t *testing.T) {
	for _, step := range truncateCrashSteps {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(dir, smallConfig(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			bs := buildLeader(t, l, 60)
			mustWaitDurable(t, l, l.LogEndOffset())
			bases := segBases(l)
			cut := batchAfter(bs, bases[1]+1).first
			l.testHook = func(s string) {
				if s == step {
					runtime.Goexit()
				}
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = l.TruncateTo(cut)
				t.Error("TruncateTo did not stop at " + step)
			}()
			<-done
			l.crashForTest()

			l2 := openTest(t, dir, smallConfig())
			expectAfterCut(t, l2, bs, cut)
			appendNumbered(t, l2, 5, 0, 0)
			mustWaitDurable(t, l2, l2.LogEndOffset())
			leo := l2.LogEndOffset()
			l2.crashForTest()
			// The marker is gone for good: a second recovery does not cut the
			// new records.
			l3 := openTest(t, dir, smallConfig())
			if l3.LogEndOffset() != leo || len(readAll(t, l3, 0)) != int(leo) {
				t.Fatalf("second recovery: log end %d, want %d", l3.LogEndOffset(), leo)
			}
		})
	}
}

// TestKillDuringTruncate SIGKILLs a child process (this test binary) at each
// step of TruncateTo and checks the recovered log.
func TestKillDuringTruncate(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	for _, step := range truncateCrashSteps {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestTruncateKillChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), "STRATA_STORAGE_TRUNC_CHILD_DIR="+dir, "STRATA_STORAGE_TRUNC_CHILD_STEP="+step)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != -1 { // -1: killed by a signal
				t.Fatalf("child did not die by a signal: %v\n%s", err, out.String())
			}
			cut, err := strconv.ParseInt(string(bytes.TrimSpace(bytes.TrimPrefix(out.Bytes(), []byte("cut ")))), 10, 64)
			if err != nil {
				t.Fatalf("child output %q", out.String())
			}
			l := openTest(t, dir, smallConfig())
			if l.LogEndOffset() != cut || len(readAll(t, l, 0)) != int(cut) {
				t.Fatalf("recovered log end %d, want %d", l.LogEndOffset(), cut)
			}
			if e, end := l.EndOffsetForEpoch(l.EpochForOffset(cut - 1)); end != cut {
				t.Fatalf("epoch %d ends at %d, want %d", e, end, cut)
			}
		})
	}
}

// TestTruncateKillChild is the child of TestKillDuringTruncate.
func TestTruncateKillChild(t *testing.T) {
	dir, step := os.Getenv("STRATA_STORAGE_TRUNC_CHILD_DIR"), os.Getenv("STRATA_STORAGE_TRUNC_CHILD_STEP")
	if dir == "" {
		t.Skip("only runs as the child of TestKillDuringTruncate")
	}
	l, err := Open(dir, smallConfig(), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	bs := buildLeader(t, l, 60)
	mustWaitDurable(t, l, l.LogEndOffset())
	cut := batchAfter(bs, segBases(l)[1]+1).first
	fmt.Printf("cut %d\n", cut)
	l.testHook = func(s string) {
		if s == step {
			p, _ := os.FindProcess(os.Getpid())
			_ = p.Kill()
			select {} // the signal is on its way
		}
	}
	_ = l.TruncateTo(cut)
	fmt.Fprintln(os.Stderr, "child: TruncateTo returned without reaching", step)
	os.Exit(3)
}

// waitFor polls cond until it holds (or fails the test after 10s).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReplicatedHighWatermark(t *testing.T) {
	clock := newFakeClock()
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig(), Options{Now: clock.Now})
	appendNumbered(t, l, 5, 0, 0)
	mustWaitDurable(t, l, 5)
	if l.HighWatermark() != 5 || l.Replicated() {
		t.Fatalf("single-node rule: high watermark %d", l.HighWatermark())
	}
	if l.AdvanceHighWatermark(100) {
		t.Fatal("AdvanceHighWatermark moved outside replicated mode")
	}
	l.SetReplicated(true)

	t.Run("no automatic advance", func(t *testing.T) {
		appendNumbered(t, l, 5, 0, 0)
		mustWaitDurable(t, l, 10)
		if d := l.DurableEnd(); d != 10 {
			t.Fatalf("durable end %d", d)
		}
		if hw := l.HighWatermark(); hw != 5 {
			t.Fatalf("high watermark moved by itself to %d", hw)
		}
	})
	t.Run("advance is monotonic and wakes waiters", func(t *testing.T) {
		ch := l.Changed()
		if !l.AdvanceHighWatermark(8) || l.HighWatermark() != 8 {
			t.Fatalf("advance to 8: %d", l.HighWatermark())
		}
		select {
		case <-ch:
		default:
			t.Fatal("Changed not fired")
		}
		if l.AdvanceHighWatermark(6) || l.HighWatermark() != 8 {
			t.Fatal("moved backwards")
		}
		if !l.AdvanceHighWatermark(1000) || l.HighWatermark() != 10 {
			t.Fatalf("advance past the log end: %d", l.HighWatermark())
		}
	})
	t.Run("capped at the durable end", func(t *testing.T) {
		gate := gateSyncer{open: make(chan struct{})}
		l.flushMu.Lock()
		old := l.fsys
		l.fsys = gate
		l.flushMu.Unlock()
		appendNumbered(t, l, 5, 0, 0)
		if l.AdvanceHighWatermark(15) {
			t.Fatalf("high watermark %d past the durable end %d", l.HighWatermark(), l.DurableEnd())
		}
		if l.HighWatermark() != 10 {
			t.Fatalf("high watermark %d", l.HighWatermark())
		}
		ch := l.Changed()
		close(gate.open) // the flush completes and takes the high watermark along
		<-ch
		waitFor(t, "high watermark 15", func() bool { return l.HighWatermark() == 15 })
		l.flushMu.Lock()
		l.fsys = old
		l.flushMu.Unlock()
	})
	t.Run("follower sets it", func(t *testing.T) {
		l.SetHighWatermark(1000)
		if hw := l.HighWatermark(); hw != 15 {
			t.Fatalf("capped at the log end: %d", hw)
		}
		l.SetHighWatermark(12)
		if hw := l.HighWatermark(); hw != 12 {
			t.Fatalf("follower lowering: %d", hw)
		}
		if _, err := l.DeleteRecordsBefore(4); err != nil {
			t.Fatal(err)
		}
		l.SetHighWatermark(1)
		if hw := l.HighWatermark(); hw != 4 {
			t.Fatalf("below the log start: %d", hw)
		}
		l.SetHighWatermark(12)
	})
	t.Run("checkpointed by the flusher", func(t *testing.T) {
		clock.Advance(hwCheckpointIntervalMs * time.Millisecond)
		l.AdvanceHighWatermark(14)
		waitFor(t, "checkpoint 14", func() bool {
			off, ok, err := readOffsetCheckpoint(dir, hwFile)
			return err == nil && ok && off == 14
		})
	})
	t.Run("restored by Open", func(t *testing.T) {
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l2 := openTest(t, dir, smallConfig(), Options{Replicated: true})
		if hw := l2.HighWatermark(); hw != 14 || !l2.Replicated() {
			t.Fatalf("replicated reopen: high watermark %d", hw)
		}
		l2.Close()
		l3 := openTest(t, dir, smallConfig())
		if hw := l3.HighWatermark(); hw != 15 {
			t.Fatalf("single-node reopen: high watermark %d, want the log end", hw)
		}
		l3.SetReplicated(true)
		l3.SetReplicated(false) // back to the single-node rule
		if hw := l3.HighWatermark(); hw != 15 {
			t.Fatalf("switching off: %d", hw)
		}
	})
	t.Run("no checkpoint: the log start", func(t *testing.T) {
		d := t.TempDir()
		l := openTest(t, d, smallConfig())
		appendNumbered(t, l, 3, 0, 0)
		l.Close()
		l2 := openTest(t, d, smallConfig(), Options{Replicated: true})
		if hw := l2.HighWatermark(); hw != 0 {
			t.Fatalf("high watermark %d", hw)
		}
	})
	t.Run("relaxed flushing caps at the log end", func(t *testing.T) {
		cfg := smallConfig()
		cfg.FlushMessages = 1 << 40
		l := openTest(t, t.TempDir(), cfg, Options{Replicated: true})
		appendNumbered(t, l, 3, 0, 0)
		if hw := l.HighWatermark(); hw != 0 {
			t.Fatalf("relaxed append moved the replicated high watermark to %d", hw)
		}
		if !l.AdvanceHighWatermark(10) || l.HighWatermark() != 3 {
			t.Fatalf("relaxed advance: %d", l.HighWatermark())
		}
	})
}

func TestAssignLeaderEpoch(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	appendNumbered(t, l, 10, 0, 0) // epoch 7
	for _, tc := range []struct {
		epoch   int32
		wantErr error
	}{
		{7, nil}, // latest: no-op
		{9, nil},
		{9, nil},
		{8, ErrStaleLeaderEpoch},
		{-1, ErrStaleLeaderEpoch},
	} {
		err := l.AssignLeaderEpoch(tc.epoch)
		if tc.wantErr != nil {
			expectErr(t, err, tc.wantErr)
		} else if err != nil {
			t.Fatalf("assign %d: %v", tc.epoch, err)
		}
	}
	for _, tc := range []struct {
		epoch, wantE int32
		wantEnd      int64
	}{{7, 7, 10}, {8, 7, 10}, {9, 9, 10}} {
		if e, end := l.EndOffsetForEpoch(tc.epoch); e != tc.wantE || end != tc.wantEnd {
			t.Fatalf("EndOffsetForEpoch(%d) = (%d, %d)", tc.epoch, e, end)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, epochFile))
	if es, derr := decodeEpochCheckpoint(b); err != nil || derr != nil || !slices.Equal(es, []epochEntry{{7, 0}, {9, 10}}) {
		t.Fatalf("checkpoint %v %v %v", es, err, derr)
	}
	// Batches appended by the new leader carry its epoch.
	if _, err := l.Append(split(t, build(spec{n: 2, val: func(k int) string { return valueAt(10 + int64(k)) }})), 9, -1); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l2 := openTest(t, dir, smallConfig())
	if e, end := l2.EndOffsetForEpoch(7); e != 7 || end != 10 {
		t.Fatalf("after reopen: (%d, %d)", e, end)
	}
}

// TestReplicaConcurrency runs a follower's replication (appends, truncations
// of the unread tail, high watermark updates) against readers, under -race.
func TestReplicaConcurrency(t *testing.T) {
	leader := openTest(t, t.TempDir(), smallConfig())
	bs := buildLeader(t, leader, 300)
	end := leader.LogEndOffset()
	follower := openTest(t, t.TempDir(), smallConfig(), Options{Replicated: true})

	var wg sync.WaitGroup
	stop := make(chan struct{})
	errc := make(chan error, 8)
	wg.Add(1)
	go func() { // the replica fetcher
		defer wg.Done()
		defer close(stop)
		rng := rand.New(rand.NewPCG(1, 2))
		for follower.LogEndOffset() < end {
			leo := follower.LogEndOffset()
			if _, err := follower.AppendReplicated(fetch(t, leader, leo, int32(200+rng.IntN(2000)))); err != nil {
				errc <- err
				return
			}
			leo = follower.LogEndOffset()
			follower.SetHighWatermark(max(follower.HighWatermark(), leo-30))
			if rng.IntN(4) == 0 { // a leader change: cut some of what is above the high watermark
				// Replication cuts at batch boundaries (epoch ends).
				var cands []int64
				for _, b := range bs {
					if b.first >= follower.HighWatermark() && b.first <= leo {
						cands = append(cands, b.first)
					}
				}
				if len(cands) == 0 {
					continue
				}
				if err := follower.TruncateTo(cands[rng.IntN(len(cands))]); err != nil {
					errc <- err
					return
				}
			}
		}
	}()
	for range 3 {
		wg.Add(1)
		go func() { // consumers below the high watermark
			defer wg.Done()
			rng := rand.New(rand.NewPCG(3, 4))
			for {
				select {
				case <-stop:
					return
				default:
				}
				hw := follower.HighWatermark()
				if hw == 0 {
					runtime.Gosched()
					continue
				}
				off := rng.Int64N(hw)
				rr, err := follower.Read(off, hw, int32(1+rng.IntN(3000)), true)
				if err != nil {
					errc <- err
					return
				}
				var buf bytes.Buffer
				_, err = rr.WriteTo(&buf)
				rr.Release()
				if err == nil {
					err = proto.SplitBatches(buf.Bytes(), true, func(b proto.Batch) error {
						return proto.ForEachRecord(b, func(r proto.Record) error {
							o := b.BaseOffset + int64(r.OffsetDelta)
							if o >= hw || string(bytes.TrimRight(r.Value, "x")) != valueAt(o) {
								return fmt.Errorf("offset %d (high watermark %d): %q", o, hw, r.Value)
							}
							return nil
						})
					})
				}
				if err != nil {
					errc <- err
					return
				}
				follower.EndOffsetForEpoch(3)
				follower.EpochForOffset(off)
				follower.DurableEnd()
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	mustWaitDurable(t, follower, end)
	readAll(t, follower, 0)
	sameEpochAnswers(t, leader, follower)
}

// FuzzAppendReplicated feeds arbitrary bytes as a fetched batch run: either
// they are rejected with nothing written, or they become the log's tail and
// read back identical (then TruncateTo empties the log for the next input).
func FuzzAppendReplicated(f *testing.F) {
	f.Add(replicatedBatches(0, 1, spec{n: 2}, spec{pid: 5, epoch: 1, seq: 0, n: 3}))
	f.Add(replicatedBatches(1, 1, spec{n: 1}))
	f.Add([]byte{0, 0, 0, 0})
	cfg := smallConfig()
	cfg.FlushMessages, cfg.FlushMs = 1<<40, -1 // no fsync per input
	l, err := Open(f.TempDir(), cfg, Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := l.AppendReplicated(data)
		if err != nil {
			if l.LogEndOffset() != 0 || l.Size() != 0 {
				t.Fatalf("rejected append wrote: end %d, size %d", l.LogEndOffset(), l.Size())
			}
			return
		}
		if info.LastOffset+1 != l.LogEndOffset() {
			t.Fatalf("info %+v, log end %d", info, l.LogEndOffset())
		}
		if got := fetch(t, l, 0, 1<<30); !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes, appended %d", len(got), len(data))
		}
		if err := l.TruncateTo(0); err != nil {
			t.Fatal(err)
		}
		if l.LogEndOffset() != 0 || l.Size() != 0 {
			t.Fatalf("truncated to 0: end %d, size %d", l.LogEndOffset(), l.Size())
		}
	})
}

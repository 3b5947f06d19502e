package storage

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// step is one idempotent append: want either offsets (first/last), a
// duplicate of an earlier step, or an error.
type step struct {
	pid   int64
	epoch int16
	seq   int32
	n     int
	dupOf int // 1-based index of the step this duplicates
	err   error
}

func runSteps(t *testing.T, l *Log, steps []step) []AppendInfo {
	t.Helper()
	infos := make([]AppendInfo, len(steps))
	for i, s := range steps {
		leo := l.LogEndOffset()
		info, err := l.Append(split(t, build(spec{pid: s.pid, epoch: s.epoch, seq: s.seq, n: max(s.n, 1)})), 0, -1)
		infos[i] = info
		switch {
		case s.err != nil:
			expectErr(t, err, s.err)
			if l.LogEndOffset() != leo {
				t.Fatalf("step %d: rejected append moved LEO %d -> %d", i+1, leo, l.LogEndOffset())
			}
		case err != nil:
			t.Fatalf("step %d (%+v): %v", i+1, s, err)
		case s.dupOf > 0:
			orig := infos[s.dupOf-1]
			if !info.Duplicate || info.FirstOffset != orig.FirstOffset || info.LastOffset != orig.LastOffset {
				t.Fatalf("step %d: got %+v, want duplicate of %+v", i+1, info, orig)
			}
			if l.LogEndOffset() != leo {
				t.Fatalf("step %d: duplicate was written", i+1)
			}
		default:
			if info.Duplicate || info.FirstOffset != leo || info.LastOffset != leo+int64(max(s.n, 1))-1 {
				t.Fatalf("step %d: got %+v at LEO %d", i+1, info, leo)
			}
		}
	}
	return infos
}

var idempotenceCases = []struct {
	name  string
	steps []step
}{
	{"unknown producer starts anywhere", []step{{pid: 1, seq: 17, n: 2}, {pid: 1, seq: 19}}},
	{"in sequence", []step{{pid: 1, seq: 0, n: 3}, {pid: 1, seq: 3, n: 2}, {pid: 1, seq: 5}}},
	{"duplicate of the last batch", []step{{pid: 1, seq: 0, n: 3}, {pid: 1, seq: 3, n: 2}, {pid: 1, seq: 3, n: 2, dupOf: 2}}},
	{"duplicate inside the window", []step{
		{pid: 1, seq: 0}, {pid: 1, seq: 1}, {pid: 1, seq: 2}, {pid: 1, seq: 3}, {pid: 1, seq: 4},
		{pid: 1, seq: 0, dupOf: 1}, {pid: 1, seq: 2, dupOf: 3}, {pid: 1, seq: 5},
	}},
	{"duplicate outside the window", []step{
		{pid: 1, seq: 0}, {pid: 1, seq: 1}, {pid: 1, seq: 2}, {pid: 1, seq: 3}, {pid: 1, seq: 4}, {pid: 1, seq: 5},
		{pid: 1, seq: 0, err: ErrOutOfOrderSequence},
	}},
	{"same first sequence, different length", []step{{pid: 1, seq: 0, n: 3}, {pid: 1, seq: 0, n: 2, err: ErrOutOfOrderSequence}}},
	{"gap", []step{{pid: 1, seq: 0, n: 2}, {pid: 1, seq: 3, err: ErrOutOfOrderSequence}, {pid: 1, seq: 2}}},
	{"stale epoch", []step{{pid: 1, epoch: 3, seq: 0}, {pid: 1, epoch: 2, seq: 1, err: ErrInvalidProducerEpoch}, {pid: 1, epoch: 2, seq: 0, err: ErrInvalidProducerEpoch}}},
	{"new epoch at sequence 0", []step{{pid: 1, epoch: 0, seq: 0, n: 4}, {pid: 1, epoch: 1, seq: 0}, {pid: 1, epoch: 1, seq: 1}}},
	{"new epoch past sequence 0", []step{{pid: 1, epoch: 0, seq: 0, n: 4}, {pid: 1, epoch: 1, seq: 5, err: ErrOutOfOrderSequence}}},
	{"old epoch batches are no duplicates", []step{{pid: 1, epoch: 0, seq: 0}, {pid: 1, epoch: 1, seq: 0}, {pid: 1, epoch: 0, seq: 0, err: ErrInvalidProducerEpoch}}},
	{"sequence wraps", []step{
		{pid: 1, seq: math.MaxInt32 - 1, n: 2}, {pid: 1, seq: 0, n: 2},
		{pid: 1, seq: 2, n: 1}, {pid: 1, seq: 0, n: 2, dupOf: 2},
	}},
	{"batch spanning the wrap", []step{{pid: 1, seq: math.MaxInt32 - 1, n: 4}, {pid: 1, seq: 2}, {pid: 1, seq: math.MaxInt32 - 1, n: 4, dupOf: 1}}},
	{"producers are independent", []step{{pid: 1, seq: 0}, {pid: 2, seq: 9}, {pid: 1, seq: 1}, {pid: 2, seq: 11, err: ErrOutOfOrderSequence}, {pid: 2, seq: 10}}},
	{"non-idempotent batches are not checked", []step{{pid: -1, epoch: -1, seq: -1}, {pid: -1, epoch: -1, seq: -1}}},
}

func TestIdempotentProducer(t *testing.T) {
	for _, tc := range idempotenceCases {
		t.Run(tc.name, func(t *testing.T) {
			runSteps(t, openTest(t, t.TempDir(), smallConfig()), tc.steps)
		})
	}
}

func TestIdempotentAppendIsAtomic(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	runSteps(t, l, []step{{pid: 1, seq: 0, n: 2}})
	// Two batches in one call: the second has a gap, so neither is written.
	raw := append(build(spec{pid: 1, seq: 2, n: 1}), build(spec{pid: 1, seq: 9, n: 1})...)
	_, err := l.Append(split(t, raw), 0, -1)
	expectErr(t, err, ErrOutOfOrderSequence)
	if l.LogEndOffset() != 2 {
		t.Fatalf("LEO %d after a rejected append", l.LogEndOffset())
	}
	// The producer state did not move either: seq 2 is still next.
	raw = append(build(spec{pid: 1, seq: 2, n: 1}), build(spec{pid: 1, seq: 3, n: 2})...)
	info, err := l.Append(split(t, raw), 0, -1)
	if err != nil || info.FirstOffset != 2 || info.LastOffset != 4 {
		t.Fatalf("append %+v %v", info, err)
	}
	dup, err := l.Append(split(t, build(spec{pid: 1, seq: 3, n: 2})), 0, -1)
	if err != nil || !dup.Duplicate || dup.FirstOffset != 3 || dup.LastOffset != 4 {
		t.Fatalf("duplicate of the second batch of a call: %+v %v", dup, err)
	}
}

// TestProducerStateSurvivesReopen checks that duplicates are still
// recognised and sequences still enforced after reopening, however the log
// was left.
func TestProducerStateSurvivesReopen(t *testing.T) {
	leave := map[string]func(t *testing.T, l *Log, dir string){
		"clean close": func(t *testing.T, l *Log, dir string) {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		},
		"clean close without snapshots": func(t *testing.T, l *Log, dir string) {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			removeGlob(t, dir, "*"+snapshotSuffix)
		},
		"crash": func(t *testing.T, l *Log, dir string) { l.crashForTest() },
		"crash without snapshots": func(t *testing.T, l *Log, dir string) {
			l.crashForTest()
			removeGlob(t, dir, "*"+snapshotSuffix)
		},
		"corrupt newest snapshot": func(t *testing.T, l *Log, dir string) {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			snaps := listDir(t, dir, snapshotSuffix)
			flipByte(t, snaps[len(snaps)-1], 12)
		},
	}
	for name, how := range leave {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(dir, smallConfig(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			// Producer 1's batches straddle many rolls (a snapshot each);
			// producer 2 only wrote into the first segment.
			var steps []step
			steps = append(steps, step{pid: 2, epoch: 4, seq: 100, n: 3})
			for i := range 40 {
				steps = append(steps, step{pid: 1, epoch: 2, seq: int32(i * 5), n: 5})
			}
			infos := runSteps(t, l, steps)
			mustWaitDurable(t, l, l.LogEndOffset())
			if l.NumSegments() < 3 {
				t.Fatalf("%d segments", l.NumSegments())
			}
			how(t, l, dir)

			l2 := openTest(t, dir, smallConfig())
			after := []step{
				{pid: 1, epoch: 2, seq: 195, n: 5, dupOf: 41},
				{pid: 1, epoch: 2, seq: 185, n: 5, dupOf: 39},
				{pid: 1, epoch: 2, seq: 170, n: 5, err: ErrOutOfOrderSequence}, // left the window
				{pid: 1, epoch: 1, seq: 200, err: ErrInvalidProducerEpoch},
				{pid: 1, epoch: 2, seq: 201, err: ErrOutOfOrderSequence},
				{pid: 2, epoch: 4, seq: 100, n: 3, dupOf: 1},
				{pid: 2, epoch: 3, seq: 103, err: ErrInvalidProducerEpoch},
				{pid: 1, epoch: 2, seq: 200, n: 2},
				{pid: 2, epoch: 4, seq: 103},
			}
			// Prefix the steps with the originals so dupOf indexes line up.
			got := make([]AppendInfo, 0, len(infos)+len(after))
			got = append(got, infos...)
			for _, s := range after {
				got = append(got, runStepsFrom(t, l2, got, s))
			}
		})
	}
}

// runStepsFrom runs one step with the earlier results available for dupOf.
func runStepsFrom(t *testing.T, l *Log, prior []AppendInfo, s step) AppendInfo {
	t.Helper()
	leo := l.LogEndOffset()
	info, err := l.Append(split(t, build(spec{pid: s.pid, epoch: s.epoch, seq: s.seq, n: max(s.n, 1)})), 0, -1)
	switch {
	case s.err != nil:
		expectErr(t, err, s.err)
	case err != nil:
		t.Fatalf("%+v: %v", s, err)
	case s.dupOf > 0:
		orig := prior[s.dupOf-1]
		if !info.Duplicate || info.FirstOffset != orig.FirstOffset || info.LastOffset != orig.LastOffset {
			t.Fatalf("%+v: got %+v, want duplicate of %+v", s, info, orig)
		}
	default:
		if info.Duplicate || info.FirstOffset != leo {
			t.Fatalf("%+v: got %+v at LEO %d", s, info, leo)
		}
	}
	return info
}

func TestProducerSnapshotRoundTrip(t *testing.T) {
	ps := newProducerState()
	ps.m[7] = &producerEntry{epoch: 3, n: 2, lastTs: 99, batches: [producerWindow]batchMeta{{1, 2, 10, 11, 5}, {3, 3, 12, 12, 6}}}
	ps.m[-5] = &producerEntry{epoch: 0}
	got, err := decodeProducerSnapshot(ps.encode())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || *got[7] != *ps.m[7] || *got[-5] != *ps.m[-5] {
		t.Fatalf("round trip: %+v", got)
	}
	b := ps.encode()
	b[len(b)-1] ^= 1
	if _, err := decodeProducerSnapshot(b); err == nil {
		t.Fatal("corrupt snapshot decoded")
	}
}

func TestSnapshotsAreWrittenAtRollAndPruned(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	fillLog(t, l, 60)
	mustWaitDurable(t, l, l.LogEndOffset())
	if n := len(listDir(t, dir, snapshotSuffix)); n < 3 {
		t.Fatalf("%d snapshots after several rolls", n)
	}
	if _, err := l.DeleteRecordsBefore(l.HighWatermark()); err != nil {
		t.Fatal(err)
	}
	snaps := listDir(t, dir, snapshotSuffix)
	l.segMu.RLock()
	first := l.segs[0].base
	l.segMu.RUnlock()
	for _, p := range snaps {
		off, _ := parseOffsetName(filepath.Base(p), snapshotSuffix)
		if off < first && p != snaps[len(snaps)-1] {
			t.Fatalf("snapshot %s below the first segment %d kept", p, first)
		}
	}
}

func TestForeignFilesAreLeftAlone(t *testing.T) {
	dir := t.TempDir()
	foreign := []string{"partition.metadata", "partition.metadata.tmp", "notes.txt"}
	for _, f := range foreign {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A temporary file of ours, left by a crash mid-checkpoint, goes.
	if err := os.WriteFile(filepath.Join(dir, logStartFile+tmpSuffix), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := openTest(t, dir, smallConfig())
	fillLog(t, l, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	openTest(t, dir, smallConfig())
	for _, f := range foreign {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, logStartFile+tmpSuffix)); !os.IsNotExist(err) {
		t.Fatalf("stale temporary file kept: %v", err)
	}
}

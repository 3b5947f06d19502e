package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// remoteConfig is smallConfig for a tiered log with the given local
// retention; total retention deletes everything, to show it is not applied.
func remoteConfig(localBytes, localMs int64) Config {
	c := smallConfig()
	c.RemoteEnabled = true
	c.RetentionBytes, c.RetentionMs = 0, 0
	c.LocalRetentionBytes, c.LocalRetentionMs = localBytes, localMs
	return c
}

// segBases lists the local segments' base offsets, the active one last.
func segBases(l *Log) []int64 {
	l.segMu.RLock()
	defer l.segMu.RUnlock()
	var bs []int64
	for _, s := range l.segs {
		bs = append(bs, s.base)
	}
	return bs
}

func enforce(t *testing.T, l *Log) int {
	t.Helper()
	n, err := l.EnforceRetention()
	if err != nil {
		t.Fatalf("retention: %v", err)
	}
	return n
}

func TestLocalRetentionWithRemote(t *testing.T) {
	const hourMs = int64(time.Hour / time.Millisecond)
	for _, tc := range []struct {
		name string
		cfg  Config
		// after the remote end covers everything: how the local tail
		// must look (l, first fresh offset, clock)
		check func(t *testing.T, l *Log, fresh int64, clk *fakeClock)
	}{
		{
			name: "local.retention.bytes",
			cfg:  remoteConfig(3000, -1),
			check: func(t *testing.T, l *Log, _ int64, _ *fakeClock) {
				// Kafka's rule: delete while what remains stays >= the limit.
				l.segMu.RLock()
				oldest := l.segs[0].size
				l.segMu.RUnlock()
				if size := l.Size(); size < 3000 || size-oldest >= 3000 {
					t.Fatalf("local size %d (oldest segment %d) for local.retention.bytes 3000", size, oldest)
				}
			},
		},
		{
			name: "local.retention.ms",
			cfg:  remoteConfig(-1, hourMs),
			check: func(t *testing.T, l *Log, fresh int64, clk *fakeClock) {
				l.segMu.RLock()
				first := l.segs[0]
				l.segMu.RUnlock()
				if first.base > fresh || first.maxTs < clk.Ms()-hourMs {
					t.Fatalf("first local segment %d (max ts %d): want the first with fresh data (fresh from %d)", first.base, first.maxTs, fresh)
				}
			},
		},
		{
			name: "-2 takes retention.bytes",
			cfg: func() Config {
				c := remoteConfig(-2, -1)
				c.RetentionBytes = 3000
				return c
			}(),
			check: func(t *testing.T, l *Log, _ int64, _ *fakeClock) {
				if size := l.Size(); size < 3000 || size > 3000+2048 {
					t.Fatalf("local size %d for retention.bytes 3000", size)
				}
			},
		},
		{
			name: "unlimited local retention keeps everything",
			cfg:  remoteConfig(-1, -1),
			check: func(t *testing.T, l *Log, _ int64, _ *fakeClock) {
				if got := l.LocalLogStartOffset(); got != 0 {
					t.Fatalf("local log start %d, want 0", got)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			l := openTest(t, t.TempDir(), tc.cfg, Options{Now: clk.Now})
			for range 60 {
				appendNumbered(t, l, 3, clk.Ms(), 20)
			}
			clk.Advance(2 * time.Hour)
			fresh := l.LogEndOffset()
			for range 40 {
				appendNumbered(t, l, 3, clk.Ms(), 20)
			}
			mustWaitDurable(t, l, l.LogEndOffset())
			bases := segBases(l)
			if len(bases) < 6 {
				t.Fatalf("only %d segments", len(bases))
			}
			unlimited := tc.cfg.LocalRetentionBytes == -1 && tc.cfg.LocalRetentionMs == -1

			// Nothing uploaded: nothing goes, whatever the retention says.
			if n := enforce(t, l); n != 0 || l.NumSegments() != len(bases) {
				t.Fatalf("deleted %d segments with nothing uploaded", n)
			}
			// The upload of the first two is recorded: exactly those may go
			// (a remote end inside the third protects it whole).
			l.SetRemoteEnd(bases[2] + 1)
			want := 2
			if unlimited {
				want = 0
			}
			if n := enforce(t, l); n != want {
				t.Fatalf("deleted %d segments below remote end %d, want %d", n, bases[2]+1, want)
			}
			if unlimited {
				return
			}
			if ls, local := l.LogStartOffset(), l.LocalLogStartOffset(); ls != 0 || local != bases[2] {
				t.Fatalf("log start %d, local log start %d; want 0 and %d", ls, local, bases[2])
			}
			_, err := l.Read(0, l.LogEndOffset(), 1000, true)
			expectErr(t, err, ErrOffsetTiered)
			readAll(t, l, bases[2])
			// Local deletion keeps the epoch history of the remote offsets.
			if e := l.EpochForOffset(0); e != 7 {
				t.Fatalf("epoch of offset 0 after local deletion: %d", e)
			}

			l.SetRemoteEnd(l.LogEndOffset())
			enforce(t, l)
			if l.LogStartOffset() != 0 {
				t.Fatalf("global log start moved to %d", l.LogStartOffset())
			}
			if l.NumSegments() < 1 || l.LocalLogStartOffset() < bases[2] {
				t.Fatalf("local log start %d", l.LocalLogStartOffset())
			}
			tc.check(t, l, fresh, clk)
			readAll(t, l, l.LocalLogStartOffset())
		})
	}
}

// Without RemoteEnabled neither the remote end nor local.retention.* play
// a part: retention.* deletes and the log start follows, as before tiering.
func TestRetentionUnchangedWhenRemoteDisabled(t *testing.T) {
	cfg := smallConfig()
	cfg.RetentionBytes = 0
	cfg.LocalRetentionBytes, cfg.LocalRetentionMs = -1, -1
	l := openTest(t, t.TempDir(), cfg)
	fillLog(t, l, 60)
	mustWaitDurable(t, l, l.LogEndOffset())
	l.SetRemoteEnd(segBases(l)[1])
	n := l.NumSegments()
	if got := enforce(t, l); got != n-1 {
		t.Fatalf("deleted %d of %d segments", got, n)
	}
	if l.LogStartOffset() != l.LocalLogStartOffset() {
		t.Fatalf("log start %d, local log start %d", l.LogStartOffset(), l.LocalLogStartOffset())
	}
}

// tieredLog builds a log whose first three segments went local after their
// upload: local log start bases[3], global log start 0.
func tieredLog(t *testing.T, dir string) (*Log, []int64) {
	t.Helper()
	l := openTest(t, dir, remoteConfig(0, -1))
	for range 80 {
		appendNumbered(t, l, 3, 1000, 20)
	}
	mustWaitDurable(t, l, l.LogEndOffset())
	bases := segBases(l)
	l.SetRemoteEnd(bases[3])
	if n := enforce(t, l); n != 3 {
		t.Fatalf("deleted %d segments, want 3", n)
	}
	return l, bases
}

func TestReadAcrossTiers(t *testing.T) {
	l, bases := tieredLog(t, t.TempDir())
	if _, err := l.DeleteRecordsBefore(5); err != nil {
		t.Fatal(err)
	}
	leo := l.LogEndOffset()
	for _, tc := range []struct {
		name   string
		offset int64
		want   error
	}{
		{"below log start", 0, ErrOffsetOutOfRange},
		{"just below log start", 4, ErrOffsetOutOfRange},
		{"log start", 5, ErrOffsetTiered},
		{"just below local start", bases[3] - 1, ErrOffsetTiered},
		{"local start", bases[3], nil},
		{"log end", leo, nil},
		{"past log end", leo + 1, ErrOffsetOutOfRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rr, err := l.Read(tc.offset, leo, 1000, true)
			defer rr.Release()
			if tc.want == nil {
				if err != nil {
					t.Fatalf("read %d: %v", tc.offset, err)
				}
				return
			}
			expectErr(t, err, tc.want)
			if errors.Is(err, ErrOffsetTiered) == errors.Is(err, ErrOffsetOutOfRange) {
				t.Fatalf("error %v is both or neither tiered and out of range", err)
			}
		})
	}
}

func TestDeleteRecordsAcrossTiers(t *testing.T) {
	for _, tc := range []struct {
		name string
		// offset to delete before, from the old segment bases
		offset        func(bases []int64) int64
		wantLocal     func(bases []int64) int64
		wantSegsGone  int
		wantTieredRef func(bases []int64) int64 // an offset that must read as tiered, -1 none
	}{
		{
			name:          "below the local start moves only the checkpoint",
			offset:        func(b []int64) int64 { return b[1] + 2 },
			wantLocal:     func(b []int64) int64 { return b[3] },
			wantTieredRef: func(b []int64) int64 { return b[1] + 2 },
		},
		{
			name:          "at the local start",
			offset:        func(b []int64) int64 { return b[3] },
			wantLocal:     func(b []int64) int64 { return b[3] },
			wantTieredRef: func([]int64) int64 { return -1 },
		},
		{
			name:          "above the local start deletes local segments",
			offset:        func(b []int64) int64 { return b[4] + 1 },
			wantLocal:     func(b []int64) int64 { return b[4] + 1 },
			wantSegsGone:  1,
			wantTieredRef: func([]int64) int64 { return -1 },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, bases := tieredLog(t, dir)
			segs := l.NumSegments()
			off := tc.offset(bases)
			ls, err := l.DeleteRecordsBefore(off)
			if err != nil || ls != off {
				t.Fatalf("delete records before %d: log start %d, %v", off, ls, err)
			}
			check := func(l *Log) {
				t.Helper()
				if got := l.LogStartOffset(); got != off {
					t.Fatalf("log start %d, want %d", got, off)
				}
				if got, want := l.LocalLogStartOffset(), tc.wantLocal(bases); got != want {
					t.Fatalf("local log start %d, want %d", got, want)
				}
				if got := segs - l.NumSegments(); got != tc.wantSegsGone {
					t.Fatalf("%d segments deleted, want %d", got, tc.wantSegsGone)
				}
				_, err := l.Read(off-1, l.LogEndOffset(), 100, true)
				expectErr(t, err, ErrOffsetOutOfRange)
				if tr := tc.wantTieredRef(bases); tr >= 0 {
					_, err := l.Read(tr, l.LogEndOffset(), 100, true)
					expectErr(t, err, ErrOffsetTiered)
				}
				// The epoch history is trimmed at the log start, not at the
				// local start.
				if e := l.EpochForOffset(off - 1); e != -1 {
					t.Fatalf("epoch %d known below the log start", e)
				}
				if e := l.EpochForOffset(off); e != 7 {
					t.Fatalf("epoch of the log start %d: %d", off, e)
				}
				readAll(t, l, l.LocalLogStartOffset())
			}
			check(l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			check(openTest(t, dir, remoteConfig(0, -1)))
		})
	}
}

func TestRemoteEndSurvivesRestart(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(t *testing.T, l *Log, dir string)
		// what the reopened log must say
		wantRemoteEnd func(bases []int64) int64
		wantLogStart  func(bases []int64) int64
	}{
		{
			name:          "clean close",
			stop:          func(t *testing.T, l *Log, _ string) { l.Close() },
			wantRemoteEnd: func(b []int64) int64 { return b[3] },
			wantLogStart:  func([]int64) int64 { return 3 },
		},
		{
			name:          "crash",
			stop:          func(t *testing.T, l *Log, _ string) { l.crashForTest() },
			wantRemoteEnd: func(b []int64) int64 { return b[3] },
			wantLogStart:  func([]int64) int64 { return 3 },
		},
		{
			// A log that does not know of any remote data cannot claim
			// offsets below its first segment.
			name: "remote end checkpoint lost",
			stop: func(t *testing.T, l *Log, dir string) {
				l.Close()
				if err := os.Remove(filepath.Join(dir, remoteEndFile)); err != nil {
					t.Fatal(err)
				}
			},
			wantRemoteEnd: func([]int64) int64 { return 0 },
			wantLogStart:  func(b []int64) int64 { return b[3] },
		},
		{
			// An unreadable one is no proof either way: keep offering the
			// tiered range, delete nothing more for being remote.
			name: "remote end checkpoint corrupt",
			stop: func(t *testing.T, l *Log, dir string) {
				l.Close()
				if err := os.WriteFile(filepath.Join(dir, remoteEndFile), []byte("junk"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			wantRemoteEnd: func([]int64) int64 { return 0 },
			wantLogStart:  func([]int64) int64 { return 3 },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, bases := tieredLog(t, dir)
			if _, err := l.DeleteRecordsBefore(3); err != nil {
				t.Fatal(err)
			}
			l.SetRemoteEnd(bases[1]) // lower: ignored
			if got := l.RemoteEnd(); got != bases[3] {
				t.Fatalf("remote end %d after a lower set, want %d", got, bases[3])
			}
			leo := l.LogEndOffset()
			tc.stop(t, l, dir)

			l2 := openTest(t, dir, remoteConfig(0, -1))
			if got, want := l2.RemoteEnd(), tc.wantRemoteEnd(bases); got != want {
				t.Fatalf("remote end %d after reopen, want %d", got, want)
			}
			if got, want := l2.LogStartOffset(), tc.wantLogStart(bases); got != want {
				t.Fatalf("log start %d after reopen, want %d", got, want)
			}
			if got := l2.LocalLogStartOffset(); got != bases[3] {
				t.Fatalf("local log start %d after reopen, want %d", got, bases[3])
			}
			if l2.LogEndOffset() != leo {
				t.Fatalf("log end %d after reopen, want %d", l2.LogEndOffset(), leo)
			}
			if ls := l2.LogStartOffset(); ls < bases[3] {
				_, err := l2.Read(ls, leo, 100, true)
				expectErr(t, err, ErrOffsetTiered)
				if e := l2.EpochForOffset(ls); e != 7 {
					t.Fatalf("epoch of remote offset %d: %d", ls, e)
				}
			}
			readAll(t, l2, bases[3])
			// Retention after the restart deletes nothing not covered by
			// the remote end it knows.
			enforce(t, l2)
			if got := l2.LocalLogStartOffset(); got != bases[3] {
				t.Fatalf("local log start %d after retention, want %d", got, bases[3])
			}
		})
	}
}

// gateSyncer blocks every fsync until open is closed.
type gateSyncer struct {
	osSyncer
	open chan struct{}
}

func (g gateSyncer) syncData(f *os.File) error { <-g.open; return g.osSyncer.syncData(f) }
func (g gateSyncer) syncDir(d *os.File) error  { <-g.open; return g.osSyncer.syncDir(d) }

func TestSealedSegmentsOnlyWhenDurable(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  func() Config
	}{
		{"safe", smallConfig},
		{"relaxed", func() Config {
			c := smallConfig()
			c.FlushMessages, c.FlushMs = 1<<40, -1
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openTest(t, t.TempDir(), tc.cfg())
			g := gateSyncer{open: make(chan struct{})}
			var once sync.Once
			release := func() { once.Do(func() { close(g.open) }) }
			t.Cleanup(release) // before the Close registered by openTest
			l.flushMu.Lock()
			l.fsys = g
			l.flushMu.Unlock()

			fillLog(t, l, 60)
			if l.NumSegments() < 3 {
				t.Fatalf("only %d segments", l.NumSegments())
			}
			if got := l.SealedSegments(); len(got) != 0 {
				t.Fatalf("%d sealed segments reported before any fsync", len(got))
			}
			_, err := l.OpenSegment(0)
			expectErr(t, err, ErrOffsetOutOfRange)
			release()
			mustWaitDurable(t, l, l.LogEndOffset())
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			if got, want := len(l.SealedSegments()), l.NumSegments()-1; got != want {
				t.Fatalf("%d sealed segments after sync, want %d", got, want)
			}
		})
	}
}

func TestSealedSegmentsAndOpenSegment(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	// Epochs change inside segments and at no particular boundary.
	epochs := []int32{3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 5, 5, 5, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}
	for i, e := range epochs {
		leo := l.LogEndOffset()
		raw := build(spec{n: 1 + i%4, ts: int64(5000 + i*10), pad: 20, val: func(j int) string { return valueAt(leo + int64(j)) }})
		if _, err := l.Append(split(t, raw), e, -1); err != nil {
			t.Fatal(err)
		}
	}
	mustWaitDurable(t, l, l.LogEndOffset())
	if err := l.Sync(); err != nil { // indexes of the last rolled segment
		t.Fatal(err)
	}
	bases := segBases(l)
	all := readAll(t, l, 0)
	sealed := l.SealedSegments()
	if len(sealed) != len(bases)-1 || len(sealed) < 3 {
		t.Fatalf("%d sealed segments of %d", len(sealed), len(bases))
	}
	for i, ss := range sealed {
		// Expectations from the records themselves.
		wantMaxTs := int64(-1)
		var wantEpochs []EpochEntry
		for _, r := range all {
			if r.off < bases[i] || r.off >= bases[i+1] {
				continue
			}
			wantMaxTs = max(wantMaxTs, r.ts)
			if n := len(wantEpochs); n == 0 || wantEpochs[n-1].Epoch != r.epoch {
				wantEpochs = append(wantEpochs, EpochEntry{Epoch: r.epoch, StartOffset: r.off})
			}
		}
		logBytes, err := os.ReadFile(filepath.Join(dir, segmentName(bases[i])))
		if err != nil {
			t.Fatal(err)
		}
		if ss.BaseOffset != bases[i] || ss.NextOffset != bases[i+1] || ss.Size != int64(len(logBytes)) || ss.MaxTimestamp != wantMaxTs {
			t.Fatalf("sealed segment %d: %+v; want base %d next %d size %d max ts %d", i, ss, bases[i], bases[i+1], len(logBytes), wantMaxTs)
		}
		if !slices.Equal(ss.Epochs, wantEpochs) {
			t.Fatalf("segment %d epochs %v, want %v", bases[i], ss.Epochs, wantEpochs)
		}

		sf, err := l.OpenSegment(ss.BaseOffset)
		if err != nil {
			t.Fatalf("open segment %d: %v", ss.BaseOffset, err)
		}
		got := make([]byte, sf.Size)
		if _, err := sf.Log.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		for _, f := range []struct {
			name string
			got  []byte
		}{
			{segmentName(bases[i]), got},
			{indexName(bases[i]), sf.Index},
			{timeIndexName(bases[i]), sf.TimeIndex},
		} {
			want, err := os.ReadFile(filepath.Join(dir, f.name))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f.got, want) {
				t.Fatalf("%s: handle has %d bytes that differ from the %d on disk", f.name, len(f.got), len(want))
			}
		}
		if len(sf.Index) == 0 || len(sf.TimeIndex) == 0 {
			t.Fatalf("segment %d: empty index (%d) or time index (%d)", bases[i], len(sf.Index), len(sf.TimeIndex))
		}
		sf.Release()
		sf.Release() // idempotent
	}

	for _, tc := range []struct {
		name string
		base int64
	}{
		{"active segment", bases[len(bases)-1]},
		{"not a base", bases[1] + 1},
		{"past the end", l.LogEndOffset() + 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := l.OpenSegment(tc.base)
			expectErr(t, err, ErrOffsetOutOfRange)
		})
	}
}

func TestOpenSegmentSurvivesDeletion(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, remoteConfig(0, -1))
	fillLog(t, l, 60)
	mustWaitDurable(t, l, l.LogEndOffset())
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	bases := segBases(l)
	path := filepath.Join(dir, segmentName(bases[0]))
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sf, err := l.OpenSegment(bases[0])
	if err != nil {
		t.Fatal(err)
	}

	// An "upload" reads the handle while retention deletes the segment.
	var wg sync.WaitGroup
	var got []byte
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			got = make([]byte, sf.Size)
			if _, readErr = sf.Log.ReadAt(got, 0); readErr != nil {
				return
			}
		}
	}()
	l.SetRemoteEnd(bases[1])
	n, err := l.EnforceRetention()
	wg.Wait()
	if err != nil || n != 1 {
		t.Fatalf("retention deleted %d, %v", n, err)
	}
	if readErr != nil || !bytes.Equal(got, want) {
		t.Fatalf("read through the handle during deletion: %v (equal %v)", readErr, bytes.Equal(got, want))
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("segment file still there: %v", err)
	}
	// Deleted locally, still readable through the handle.
	if _, err := sf.Log.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read after deletion: %v", err)
	}
	f := sf.Log
	sf.Release()
	if _, err := f.ReadAt(got[:1], 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("file still open after the last release: %v", err)
	}
	if _, err := l.OpenSegment(bases[0]); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("open of a deleted segment: %v", err)
	}
}

func TestResetEmpty(t *testing.T) {
	relaxed := smallConfig()
	relaxed.FlushMessages = 1 << 40
	for _, tc := range []struct {
		name   string
		cfg    Config
		reopen func(l *Log)
	}{
		{"safe, clean close", smallConfig(), func(l *Log) { l.Close() }},
		{"safe, crash", smallConfig(), func(l *Log) { l.crashForTest() }},
		{"relaxed, clean close", relaxed, func(l *Log) { l.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, dir, tc.cfg)
			changed := l.Changed()
			if err := l.ResetEmpty(1000, 400); err != nil {
				t.Fatal(err)
			}
			select {
			case <-changed:
			default:
				t.Fatal("Changed not signalled by the high watermark jump")
			}
			check := func(l *Log, leo int64) {
				t.Helper()
				for _, c := range []struct {
					name      string
					got, want int64
				}{
					{"log end", l.LogEndOffset(), leo},
					{"high watermark", l.HighWatermark(), leo},
					{"log start", l.LogStartOffset(), 400},
					{"local log start", l.LocalLogStartOffset(), 1000},
					{"remote end", l.RemoteEnd(), 1000},
				} {
					if c.got != c.want {
						t.Fatalf("%s %d, want %d", c.name, c.got, c.want)
					}
				}
				_, err := l.Read(400, leo, 100, true)
				expectErr(t, err, ErrOffsetTiered)
				_, err = l.Read(399, leo, 100, true)
				expectErr(t, err, ErrOffsetOutOfRange)
			}
			check(l, 1000)
			if files := segmentFiles(t, dir); len(files) != 1 || filepath.Base(files[0]) != segmentName(1000) {
				t.Fatalf("segment files %v", files)
			}

			info := appendNumbered(t, l, 3, 1, 0)
			if info.FirstOffset != 1000 {
				t.Fatalf("first append after reset at %d", info.FirstOffset)
			}
			for range 30 {
				appendNumbered(t, l, 2, 1, 20)
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			leo := l.LogEndOffset()
			check(l, leo)
			tc.reopen(l)

			l2 := openTest(t, dir, tc.cfg)
			check(l2, leo)
			readAll(t, l2, 1000)
		})
	}
}

func TestResetEmptyRejects(t *testing.T) {
	for _, tc := range []struct {
		name           string
		prepare        func(t *testing.T, l *Log)
		next, logStart int64
		want           error
	}{
		{"log with data", func(t *testing.T, l *Log) { appendNumbered(t, l, 1, 1, 0) }, 1000, 0, ErrNotEmpty},
		{"log start past next offset", nil, 1000, 1001, ErrOffsetOutOfRange},
		{"negative log start", nil, 1000, -1, ErrOffsetOutOfRange},
		{"backwards", func(t *testing.T, l *Log) {
			if err := l.ResetEmpty(1000, 0); err != nil {
				t.Fatal(err)
			}
		}, 999, 0, ErrOffsetOutOfRange},
		{"closed", func(t *testing.T, l *Log) { l.Close() }, 1000, 0, ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openTest(t, t.TempDir(), smallConfig())
			if tc.prepare != nil {
				tc.prepare(t, l)
			}
			expectErr(t, l.ResetEmpty(tc.next, tc.logStart), tc.want)
		})
	}
}

// A crash inside ResetEmpty leaves some prefix of its steps; each must open
// as an empty log, and once the remote end is written, as the reset one.
func TestResetEmptyInterrupted(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		logStart, remoteEnd   int64 // checkpoints present (-1: absent)
		dropSegments          bool
		wantLEO, wantLogStart int64
	}{
		{"log start written", 400, -1, false, 400, 400},
		{"both checkpoints written", 400, 1000, false, 1000, 400},
		{"old segment removed, new one not created", 400, 1000, true, 1000, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, dir, smallConfig())
			l.Close()
			for _, c := range []struct {
				name string
				off  int64
			}{{logStartFile, tc.logStart}, {remoteEndFile, tc.remoteEnd}} {
				if c.off < 0 {
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, c.name), encodeOffsetCheckpoint(c.off), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.dropSegments {
				removeGlob(t, dir, "*"+logSuffix)
			}
			l2 := openTest(t, dir, smallConfig())
			if l2.LogEndOffset() != tc.wantLEO || l2.LogStartOffset() != tc.wantLogStart {
				t.Fatalf("reopened at log end %d, log start %d; want %d, %d", l2.LogEndOffset(), l2.LogStartOffset(), tc.wantLEO, tc.wantLogStart)
			}
			if info := appendNumbered(t, l2, 1, 1, 0); info.FirstOffset != tc.wantLEO {
				t.Fatalf("appended at %d", info.FirstOffset)
			}
		})
	}
}

func TestOpenSegmentProducerSnapshot(t *testing.T) {
	l := openTest(t, t.TempDir(), smallConfig())
	// No producer: nothing to upload.
	for range 30 {
		appendNumbered(t, l, 2, 1000, 40)
	}
	p := &txnProducer{pid: 42}
	for range 30 {
		p.mustSend(t, l, 2, false)
	}
	settle(t, l)
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	sealed := l.SealedSegments()
	if len(sealed) < 3 {
		t.Fatalf("%d sealed segments", len(sealed))
	}
	sawSnapshot := false
	for _, ss := range sealed {
		sf, err := l.OpenSegment(ss.BaseOffset)
		if err != nil {
			t.Fatal(err)
		}
		snap := sf.ProducerSnapshot
		sf.Release()
		if snap == nil {
			continue
		}
		sawSnapshot = true
		m, err := decodeProducerSnapshot(snap)
		if err != nil || m[42] == nil {
			t.Fatalf("segment %d: snapshot %v, %v", ss.BaseOffset, m, err)
		}
		// The state as of the segment's end: its last batch is the
		// producer's last one below NextOffset.
		if last := m[42].batches[m[42].n-1].lastOff; last >= ss.NextOffset {
			t.Fatalf("segment [%d, %d): snapshot knows offset %d", ss.BaseOffset, ss.NextOffset, last)
		}
	}
	if !sawSnapshot {
		t.Fatal("no sealed segment has a producer snapshot")
	}
	if sf, err := l.OpenSegment(sealed[0].BaseOffset); err != nil || sf.ProducerSnapshot != nil {
		t.Fatalf("segment before any producer: snapshot %d bytes, %v", len(sf.ProducerSnapshot), err)
	} else {
		sf.Release()
	}
}

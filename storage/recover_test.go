package storage

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/proto"
)

// lastBatchOf returns the base offset and file position of the last batch
// of the last segment file in dir.
func lastBatchOf(t *testing.T, path string) (base, pos int64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var at int64
	err = proto.SplitBatches(data, true, func(b proto.Batch) error {
		base, pos = b.BaseOffset, at
		at += int64(len(b.Raw))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return base, pos
}

func flipByte(t *testing.T, path string, pos int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b[:], pos); err != nil {
		t.Fatal(err)
	}
}

func appendToFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

func TestRecoveryTruncatesTornTail(t *testing.T) {
	tests := []struct {
		name      string
		keepClean bool // leave the clean-shutdown marker: the active segment is still checked
		corrupt   func(t *testing.T, path string, lastPos int64) (losesLastBatch bool)
	}{
		{"truncated mid batch", false, func(t *testing.T, path string, lastPos int64) bool {
			st, _ := os.Stat(path)
			if err := os.Truncate(path, st.Size()-7); err != nil {
				t.Fatal(err)
			}
			return true
		}},
		{"truncated inside the header", false, func(t *testing.T, path string, lastPos int64) bool {
			if err := os.Truncate(path, lastPos+20); err != nil {
				t.Fatal(err)
			}
			return true
		}},
		{"garbage appended", false, func(t *testing.T, path string, _ int64) bool {
			appendToFile(t, path, []byte("\x00\x00\x00\x00\x00\x00\x00\x63\x00\x00\x01\x00this is not a batch at all"))
			return false
		}},
		{"zeros appended", false, func(t *testing.T, path string, _ int64) bool {
			appendToFile(t, path, make([]byte, 4096))
			return false
		}},
		{"crc mismatch in last batch", false, func(t *testing.T, path string, lastPos int64) bool {
			flipByte(t, path, lastPos+batchHeaderSize+3)
			return true
		}},
		{"crc mismatch with clean marker", true, func(t *testing.T, path string, lastPos int64) bool {
			flipByte(t, path, lastPos+batchHeaderSize+3)
			return true
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, dir, smallConfig())
			leo := fillLog(t, l, 60)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			segs := segmentFiles(t, dir)
			active := segs[len(segs)-1]
			lastBase, lastPos := lastBatchOf(t, active)
			want := leo
			if tc.corrupt(t, active, lastPos) {
				want = lastBase
			}
			removeGlob(t, dir, "*"+indexSuffix)
			removeGlob(t, dir, "*"+timeIndexSuffix)
			if !tc.keepClean {
				if err := os.Remove(filepath.Join(dir, cleanShutdownMrk)); err != nil {
					t.Fatal(err)
				}
			}

			l2 := openTest(t, dir, smallConfig())
			if got := l2.LogEndOffset(); got != want {
				t.Fatalf("LEO after recovery %d, want %d", got, want)
			}
			if got := l2.HighWatermark(); got != want {
				t.Fatalf("HW after recovery %d, want %d", got, want)
			}
			if got := readAll(t, l2, 0); int64(len(got)) != want {
				t.Fatalf("read %d records, want %d", len(got), want)
			}
			// Indexes were rebuilt for the sealed segments.
			l2.segMu.RLock()
			for _, s := range l2.segs[:len(l2.segs)-1] {
				if len(s.index) == 0 || len(s.tindex) == 0 {
					t.Errorf("segment %d: no index after rebuild", s.base)
				}
			}
			l2.segMu.RUnlock()
			info := appendNumbered(t, l2, 4, 9000, 0)
			if info.FirstOffset != want {
				t.Fatalf("append after recovery at %d, want %d", info.FirstOffset, want)
			}
			mustWaitDurable(t, l2, info.LastOffset+1)
			readAll(t, l2, 0)
			if err := l2.Close(); err != nil {
				t.Fatal(err)
			}
			if n, m := len(listDir(t, dir, indexSuffix)), len(segmentFiles(t, dir)); n != m {
				t.Fatalf("%d index files for %d segments after close", n, m)
			}
			l3 := openTest(t, dir, smallConfig())
			if got := readAll(t, l3, 0); int64(len(got)) != want+4 {
				t.Fatalf("after second reopen read %d records, want %d", len(got), want+4)
			}
		})
	}
}

func TestRecoveryCorruptSealedSegmentAfterRecoveryPoint(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir, smallConfig())
	fillLog(t, l, 60)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segmentFiles(t, dir)
	if len(segs) < 4 {
		t.Fatalf("%d segments", len(segs))
	}
	victim := segs[1]
	lastBase, lastPos := lastBatchOf(t, victim)
	flipByte(t, victim, lastPos+batchHeaderSize+1)
	// An unclean shutdown with no recovery point: every segment is checked.
	for _, f := range []string{cleanShutdownMrk, recoveryFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	l2 := openTest(t, dir, smallConfig())
	if got := l2.LogEndOffset(); got != lastBase {
		t.Fatalf("LEO %d, want %d (truncated at the corrupt batch)", got, lastBase)
	}
	if n := l2.NumSegments(); n != 2 {
		t.Fatalf("%d segments, want 2: later ones go with the corruption", n)
	}
	if n := len(segmentFiles(t, dir)); n != 2 {
		t.Fatalf("%d segment files left", n)
	}
	readAll(t, l2, 0)
	info := appendNumbered(t, l2, 2, 0, 0)
	if info.FirstOffset != lastBase {
		t.Fatalf("append at %d", info.FirstOffset)
	}
}

func TestRecoveryRebuildsBadIndexFiles(t *testing.T) {
	corruptions := map[string]func(t *testing.T, path string){
		"odd length": func(t *testing.T, path string) { appendToFile(t, path, []byte{1, 2, 3}) },
		"entry past the end": func(t *testing.T, path string) {
			appendToFile(t, path, []byte{0, 0, 0x10, 0, 0x7f, 0, 0, 0})
		},
		"wrong offset": func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			b[len(b)-5]++ // last entry's relative offset
			os.WriteFile(path, b, 0o644)
		},
		"empty": func(t *testing.T, path string) { os.WriteFile(path, nil, 0o644) },
	}
	for name, corrupt := range corruptions {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			l := openTest(t, dir, smallConfig())
			leo := fillLog(t, l, 60)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			for _, p := range listDir(t, dir, indexSuffix) {
				if st, _ := os.Stat(p); st.Size() > 0 {
					corrupt(t, p)
				}
			}
			if name == "empty" {
				for _, p := range listDir(t, dir, timeIndexSuffix) {
					corrupt(t, p)
				}
			}
			l2 := openTest(t, dir, smallConfig())
			for off := range leo {
				rr, err := l2.Read(off, leo, 1, true)
				if err != nil {
					t.Fatal(err)
				}
				rs := readRecords(t, &rr)
				rr.Release()
				if len(rs) == 0 || rs[0].off > off || rs[len(rs)-1].off < off {
					t.Fatalf("read %d: got %v", off, rs)
				}
			}
			if off, _, _, ok := l2.OffsetForTimestamp(0); !ok || off != 0 {
				t.Fatalf("offset for timestamp 0: %d %v", off, ok)
			}
		})
	}
}

func TestCrashKeepsEverythingAcknowledged(t *testing.T) {
	for _, power := range []bool{false, true} {
		t.Run(map[bool]string{false: "process crash", true: "power cut"}[power], func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(dir, smallConfig(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			model := installPowerModel(t, l)
			var mu sync.Mutex
			acked := map[int64]string{} // first offset -> value of its first record
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						v := fmt.Sprintf("g%d-%d", g, i)
						info, err := l.Append(split(t, build(spec{n: 2, val: func(int) string { return v }})), 1, -1)
						if err != nil {
							return
						}
						if l.WaitDurable(context.Background(), info.LastOffset+1) != nil {
							return
						}
						mu.Lock()
						acked[info.FirstOffset] = v
						n := len(acked)
						mu.Unlock()
						if n == 300 {
							close(stop)
						}
					}
				}()
			}
			<-stop
			l.crashForTest()
			wg.Wait()
			if power {
				model.cut(t)
			}

			l2 := openTest(t, dir, smallConfig())
			mu.Lock()
			defer mu.Unlock()
			for off, v := range acked {
				rr, err := l2.Read(off, l2.LogEndOffset(), 1, true)
				if err != nil {
					t.Fatalf("acknowledged offset %d: %v", off, err)
				}
				rs := readRecords(t, &rr)
				rr.Release()
				if len(rs) == 0 || rs[0].off != off || rs[0].value != v {
					t.Fatalf("acknowledged offset %d: got %v, want value %q", off, rs, v)
				}
			}
		})
	}
}

// TestKillDuringAppends kills a child process (this test binary re-executed)
// while it appends with WaitDurable from several goroutines, and checks that
// every offset the child reported as durable survived, CRC-valid.
func TestKillDuringAppends(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STRATA_STORAGE_KILL_CHILD_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type ack struct {
		first int64
		value string
	}
	var acks []ack
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(acks) < 400 {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] != "durable" {
			continue
		}
		off, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		acks = append(acks, ack{off, f[2]})
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	go func() { // drain, so the child never blocks on a full pipe before dying
		for sc.Scan() {
		}
	}()
	_ = cmd.Wait()
	if len(acks) < 400 {
		t.Fatalf("child reported only %d durable appends", len(acks))
	}

	l := openTest(t, dir, smallConfig())
	for _, a := range acks {
		rr, err := l.Read(a.first, l.LogEndOffset(), 1, true)
		if err != nil {
			t.Fatalf("durable offset %d: %v", a.first, err)
		}
		rs := readRecords(t, &rr) // checks CRCs
		rr.Release()
		if len(rs) == 0 || rs[0].off != a.first || rs[0].value != a.value {
			t.Fatalf("durable offset %d: got %v, want %q", a.first, rs, a.value)
		}
	}
	// The whole recovered log is dense and CRC-valid.
	rr, err := l.Read(0, l.LogEndOffset(), 1<<30, true)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	rs := readRecords(t, &rr)
	for i, r := range rs {
		if r.off != int64(i) {
			t.Fatalf("record %d has offset %d", i, r.off)
		}
	}
}

// TestKillChild is the child of TestKillDuringAppends; it runs until killed
// (or for at most a minute).
func TestKillChild(t *testing.T) {
	dir := os.Getenv("STRATA_STORAGE_KILL_CHILD_DIR")
	if dir == "" {
		t.Skip("only runs as the child of TestKillDuringAppends")
	}
	l, err := Open(dir, smallConfig(), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child open:", err)
		os.Exit(2)
	}
	var outMu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	deadline := time.Now().Add(time.Minute)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				v := fmt.Sprintf("g%d-%d", g, i)
				var bs []proto.Batch
				_ = proto.SplitBatches(build(spec{n: 3, pad: 50, val: func(int) string { return v }}), true, func(b proto.Batch) error {
					bs = append(bs, b)
					return nil
				})
				info, err := l.Append(bs, 1, -1)
				if err != nil {
					fmt.Fprintln(os.Stderr, "child append:", err)
					os.Exit(2)
				}
				if err := l.WaitDurable(context.Background(), info.LastOffset+1); err != nil {
					fmt.Fprintln(os.Stderr, "child wait:", err)
					os.Exit(2)
				}
				outMu.Lock()
				fmt.Fprintf(w, "durable %d %s\n", info.FirstOffset, v)
				w.Flush()
				outMu.Unlock()
			}
		}()
	}
	wg.Wait()
	l.Close()
}

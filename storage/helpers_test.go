package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/proto"
)

// fakeClock is an injectable Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.UnixMilli(1_700_000_000_000)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) Ms() int64 { return c.Now().UnixMilli() }

// smallConfig rolls often and indexes densely so tests cross segments.
func smallConfig() Config {
	c := DefaultConfig()
	c.SegmentBytes = 2048
	c.IndexIntervalBytes = 200
	c.RetentionMs = -1
	return c
}

func openTest(t testing.TB, dir string, cfg Config, opts ...Options) *Log {
	t.Helper()
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	l, err := Open(dir, cfg, o)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// spec describes a test batch.
type spec struct {
	pid   int64
	epoch int16
	seq   int32
	n     int   // records
	ts    int64 // first timestamp; record i has ts+i
	val   func(i int) string
	pad   int // extra value bytes per record
}

// build encodes a batch the way a client would (base offset 0).
func build(s spec) []byte {
	if s.n == 0 {
		s.n = 1
	}
	if s.pid == 0 && s.epoch == 0 && s.seq == 0 {
		s.pid, s.epoch, s.seq = -1, -1, -1
	}
	recs := make([]proto.Record, s.n)
	for i := range recs {
		v := "v" + strconv.Itoa(i)
		if s.val != nil {
			v = s.val(i)
		}
		if s.pad > 0 {
			v += strings.Repeat("x", s.pad)
		}
		recs[i] = proto.Record{TimestampDelta: int64(i), Value: []byte(v), Key: []byte("k")}
	}
	return proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: s.ts, ProducerID: s.pid, ProducerEpoch: s.epoch, BaseSequence: s.seq}, recs)
}

// split parses raw (one or more batches) into batches aliasing it.
func split(t testing.TB, raw []byte) []proto.Batch {
	t.Helper()
	var bs []proto.Batch
	if err := proto.SplitBatches(raw, true, func(b proto.Batch) error { bs = append(bs, b); return nil }); err != nil {
		t.Fatalf("split: %v", err)
	}
	return bs
}

func appendSpec(t testing.TB, l *Log, specs ...spec) AppendInfo {
	t.Helper()
	var raw []byte
	for _, s := range specs {
		raw = append(raw, build(s)...)
	}
	info, err := l.Append(split(t, raw), 7, -1)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	return info
}

// valueAt names records by their offset so reads can be checked anywhere.
func valueAt(off int64) string { return "rec-" + strconv.FormatInt(off, 10) }

// appendNumbered appends a batch of n records whose values are their future
// offsets.
func appendNumbered(t testing.TB, l *Log, n int, ts int64, pad int) AppendInfo {
	t.Helper()
	leo := l.LogEndOffset()
	return appendSpec(t, l, spec{n: n, ts: ts, pad: pad, val: func(i int) string { return valueAt(leo + int64(i)) }})
}

type rec struct {
	off   int64
	ts    int64
	value string
	epoch int32
}

// readRecords decodes a ReadResult, checking every batch's CRC.
func readRecords(t testing.TB, rr *ReadResult) []rec {
	t.Helper()
	var buf bytes.Buffer
	if _, err := rr.WriteTo(&buf); err != nil {
		t.Fatalf("write to: %v", err)
	}
	if int64(buf.Len()) != rr.Len {
		t.Fatalf("read %d bytes, result says %d", buf.Len(), rr.Len)
	}
	var out []rec
	err := proto.SplitBatches(buf.Bytes(), true, func(b proto.Batch) error {
		return proto.ForEachRecord(b, func(r proto.Record) error {
			ts := b.FirstTimestamp + r.TimestampDelta
			if b.LogAppendTime() {
				ts = b.MaxTimestamp
			}
			out = append(out, rec{off: b.BaseOffset + int64(r.OffsetDelta), ts: ts, value: strings.TrimRight(string(r.Value), "x"), epoch: b.PartitionLeaderEpoch})
			return nil
		})
	})
	if err != nil {
		t.Fatalf("read back batches: %v", err)
	}
	return out
}

// readAll reads every record in [from, LEO) and checks offsets are dense
// and values match valueAt.
func readAll(t testing.TB, l *Log, from int64) []rec {
	t.Helper()
	var all []rec
	for off := from; off < l.LogEndOffset(); {
		rr, err := l.Read(off, l.LogEndOffset(), 1000, true)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		rs := readRecords(t, &rr)
		rr.Release()
		if len(rs) == 0 {
			t.Fatalf("read %d: nothing before LEO %d", off, l.LogEndOffset())
		}
		for _, r := range rs {
			if r.off >= off {
				all = append(all, r)
			}
		}
		off = rs[len(rs)-1].off + 1
	}
	for i, r := range all {
		if want := from + int64(i); r.off != want {
			t.Fatalf("record %d has offset %d, want %d", i, r.off, want)
		}
		if r.value != valueAt(r.off) {
			t.Fatalf("offset %d has value %q", r.off, r.value)
		}
	}
	return all
}

func mustWaitDurable(t testing.TB, l *Log, end int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.WaitDurable(ctx, end); err != nil {
		t.Fatalf("wait durable %d: %v", end, err)
	}
}

func listDir(t testing.TB, dir, suffix string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+suffix))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func segmentFiles(t testing.TB, dir string) []string { return listDir(t, dir, logSuffix) }

func expectErr(t testing.TB, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
}

// crashForTest abandons the log as a killed process would: no final flush,
// no index files, no snapshot, no clean-shutdown marker.
func (l *Log) crashForTest() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed.Store(true)
	close(l.stop)
	<-l.flusherDone
	l.flushMu.Lock()
	l.segMu.Lock()
	for _, s := range l.segs {
		s.release()
	}
	l.segs = nil
	l.segMu.Unlock()
	l.dirf.Close()
	l.flushMu.Unlock()
	l.fmu.Lock()
	l.fclosed = true
	close(l.durableCh)
	l.durableCh = closedChan
	l.fmu.Unlock()
	l.closeErr = fmt.Errorf("crashed: %w", ErrClosed)
}

// powerModel is a syncer that remembers what a power cut would keep: of
// each segment file, the bytes it had when last fdatasync'ed, and only the
// files the directory had when last fsynced. It calls the real syncs too.
type powerModel struct {
	mu      sync.Mutex
	dir     string
	synced  map[string]int64 // segment file -> durable size
	entries map[string]bool  // segment files with a durable directory entry
}

// installPowerModel starts modelling a log whose current files are durable
// (Open fsynced them).
func installPowerModel(t testing.TB, l *Log) *powerModel {
	t.Helper()
	m := &powerModel{dir: l.dir, synced: map[string]int64{}, entries: map[string]bool{}}
	for _, p := range segmentFiles(t, l.dir) {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		m.synced[filepath.Base(p)] = st.Size()
		m.entries[filepath.Base(p)] = true
	}
	l.flushMu.Lock()
	l.fsys = m
	l.flushMu.Unlock()
	return m
}

func (m *powerModel) syncData(f *os.File) error {
	st, err := f.Stat() // bytes written before the sync are covered by it
	if err != nil {
		return err
	}
	if err := datasync(f); err != nil {
		return err
	}
	m.mu.Lock()
	m.synced[filepath.Base(f.Name())] = max(m.synced[filepath.Base(f.Name())], st.Size())
	m.mu.Unlock()
	return nil
}

func (m *powerModel) syncDir(d *os.File) error {
	names, err := filepath.Glob(filepath.Join(m.dir, "*"+logSuffix))
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		return err
	}
	m.mu.Lock()
	for _, n := range names {
		m.entries[filepath.Base(n)] = true
	}
	m.mu.Unlock()
	return nil
}

// cut applies the model to the files of an abandoned log: unsynced bytes
// become garbage, files without a durable entry vanish.
func (m *powerModel) cut(t testing.TB) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range segmentFiles(t, m.dir) {
		name := filepath.Base(p)
		if !m.entries[name] {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if keep := m.synced[name]; keep < st.Size() {
			if err := os.Truncate(p, keep); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte("half-written page after a power cut"))
			f.Close()
		}
	}
}

// durableChan returns the channel closed at the next durable advance.
func (l *Log) durableChan() <-chan struct{} {
	l.fmu.Lock()
	defer l.fmu.Unlock()
	return l.durableCh
}

func removeGlob(t testing.TB, dir string, pattern string) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, pattern))
	for _, p := range m {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

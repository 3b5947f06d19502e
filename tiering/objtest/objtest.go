package objtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/strata-broker/strata/tiering/objstore"
)

// LargeSize is the size of the large-object test: above the S3 backend's
// 16 MiB multipart threshold, with a partial last part.
const LargeSize = 2*16<<20 + 12345

// Run runs the conformance suite against stores made by newStore (a
// tiering.ObjectStore is an objstore.Store).
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s objstore.Store)
	}{
		{"PutGet", testPutGet},
		{"GetRanges", testGetRanges},
		{"Overwrite", testOverwrite},
		{"Head", testHead},
		{"NotFound", testNotFound},
		{"EmptyObject", testEmptyObject},
		{"Delete", testDelete},
		{"DeleteMany", testDeleteMany},
		{"ListOrderAndPrefix", testList},
		{"ListStopsOnCallbackError", testListStop},
		{"InvalidKeys", testInvalidKeys},
		{"FailedPutKeepsOldObject", testFailedPut},
		{"LargeObject", testLarge},
		{"Concurrent", testConcurrent},
		{"ContextCanceled", testCanceled},
		{"CanceledDuringPut", testCanceledDuringPut},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newStore(t))
		})
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// data returns n deterministic pseudo-random bytes: distinct per seed so a
// part uploaded at the wrong position cannot go unnoticed.
func data(seed uint64, n int) []byte {
	var key [32]byte
	for i := range 8 {
		key[i] = byte(seed >> (8 * i))
	}
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(key).Read(b) // never fails
	return b
}

func put(t *testing.T, s objstore.Store, key string, b []byte) {
	t.Helper()
	if err := s.Put(ctxFor(t), key, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("Put(%q, %d bytes): %v", key, len(b), err)
	}
}

func get(t *testing.T, s objstore.Store, key string, off, n int64) ([]byte, error) {
	t.Helper()
	rc, err := s.Get(ctxFor(t), key, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	return b, rc.Close()
}

func mustGet(t *testing.T, s objstore.Store, key string, off, n int64) []byte {
	t.Helper()
	b, err := get(t, s, key, off, n)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", key, off, n, err)
	}
	return b
}

func listKeys(t *testing.T, s objstore.Store, prefix string) []objstore.ObjectInfo {
	t.Helper()
	var out []objstore.ObjectInfo
	if err := s.List(ctxFor(t), prefix, func(info objstore.ObjectInfo) error {
		out = append(out, info)
		return nil
	}); err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	return out
}

func keysOf(infos []objstore.ObjectInfo) []string {
	keys := make([]string, len(infos))
	for i, info := range infos {
		keys[i] = info.Key
	}
	return keys
}

func testPutGet(t *testing.T, s objstore.Store) {
	for _, tc := range []struct{ key string }{
		{"a"}, {"x/y/z"}, {"00/cluster/topic/0/00000000000000000000-id.log"},
		{"with space/and+plus=equals&amp"}, {"ünï/cödé"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			want := data(uint64(len(tc.key)), 1000+len(tc.key))
			put(t, s, tc.key, want)
			if got := mustGet(t, s, tc.key, 0, -1); !bytes.Equal(got, want) {
				t.Fatalf("Get whole: %d bytes, want the %d put", len(got), len(want))
			}
		})
	}
}

func testGetRanges(t *testing.T, s objstore.Store) {
	const size = 1000
	obj := data(1, size)
	put(t, s, "r/obj", obj)
	for _, tc := range []struct {
		name    string
		off, n  int64
		want    []byte
		wantErr error
	}{
		{"whole", 0, -1, obj, nil},
		{"head", 0, 10, obj[:10], nil},
		{"middle", 100, 250, obj[100:350], nil},
		{"tail", 900, -1, obj[900:], nil},
		{"last byte", size - 1, 1, obj[size-1:], nil},
		{"n exactly to end", 10, size - 10, obj[10:], nil},
		{"n past end is cut", 990, 100, obj[990:], nil},
		{"huge n", 10, math.MaxInt64, obj[10:], nil},
		{"n zero", 5, 0, []byte{}, nil},
		{"off at end", size, -1, []byte{}, nil},
		{"off at end with n", size, 10, []byte{}, nil},
		{"off past end", size + 1, -1, nil, objstore.ErrInvalidRange},
		{"off far past end with n", size + 1000, 10, nil, objstore.ErrInvalidRange},
		{"negative off", -1, 10, nil, objstore.ErrInvalidRange},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := get(t, s, "r/obj", tc.off, tc.n)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Get(%d, %d) = %d bytes, %v; want %v", tc.off, tc.n, len(got), err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get(%d, %d): %v", tc.off, tc.n, err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Get(%d, %d) = %d bytes, want %d (content differs: %v)", tc.off, tc.n, len(got), len(tc.want), len(got) == len(tc.want))
			}
		})
	}
}

func testOverwrite(t *testing.T, s objstore.Store) {
	v1, v2 := data(1, 5000), data(2, 300)
	put(t, s, "o/k", v1)
	put(t, s, "o/k", v2)
	if got := mustGet(t, s, "o/k", 0, -1); !bytes.Equal(got, v2) {
		t.Fatalf("after overwrite Get = %d bytes, want the second body (%d bytes)", len(got), len(v2))
	}
	info, err := s.Head(ctxFor(t), "o/k")
	if err != nil || info.Size != int64(len(v2)) {
		t.Fatalf("Head after overwrite = %+v, %v; want size %d", info, err, len(v2))
	}
	if got := keysOf(listKeys(t, s, "o/")); !slices.Equal(got, []string{"o/k"}) {
		t.Fatalf("List after overwrite = %q, want one key", got)
	}
}

func testHead(t *testing.T, s objstore.Store) {
	// Object stores keep whole seconds; allow for that and a little skew.
	before := time.Now().Add(-2 * time.Second)
	put(t, s, "h/obj", data(3, 4321))
	after := time.Now().Add(2 * time.Second)
	info, err := s.Head(ctxFor(t), "h/obj")
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if info.Key != "h/obj" || info.Size != 4321 {
		t.Fatalf("Head = %+v, want key h/obj size 4321", info)
	}
	if info.LastModified.Before(before) || info.LastModified.After(after) {
		t.Fatalf("Head LastModified %v not within [%v, %v]", info.LastModified, before, after)
	}
}

func testNotFound(t *testing.T, s objstore.Store) {
	ctx := ctxFor(t)
	put(t, s, "nf/exists", []byte("x"))
	for _, key := range []string{"nf/missing", "missing", "nf/exists/child", "nf"} {
		t.Run(key, func(t *testing.T) {
			for _, r := range [][2]int64{{0, -1}, {0, 0}, {10, 5}} {
				if rc, err := s.Get(ctx, key, r[0], r[1]); !errors.Is(err, objstore.ErrNotFound) {
					if rc != nil {
						rc.Close()
					}
					t.Errorf("Get(%q, %d, %d) error = %v, want ErrNotFound", key, r[0], r[1], err)
				}
			}
			if _, err := s.Head(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
				t.Errorf("Head(%q) error = %v, want ErrNotFound", key, err)
			}
		})
	}
}

func testEmptyObject(t *testing.T, s objstore.Store) {
	put(t, s, "e/empty", nil)
	info, err := s.Head(ctxFor(t), "e/empty")
	if err != nil || info.Size != 0 {
		t.Fatalf("Head = %+v, %v; want size 0", info, err)
	}
	for _, r := range [][2]int64{{0, -1}, {0, 0}, {0, 10}} {
		if got := mustGet(t, s, "e/empty", r[0], r[1]); len(got) != 0 {
			t.Fatalf("Get(%d, %d) = %d bytes, want 0", r[0], r[1], len(got))
		}
	}
	if _, err := get(t, s, "e/empty", 1, -1); !errors.Is(err, objstore.ErrInvalidRange) {
		t.Fatalf("Get(1, -1) of an empty object: %v, want ErrInvalidRange", err)
	}
	infos := listKeys(t, s, "e/")
	if len(infos) != 1 || infos[0].Key != "e/empty" || infos[0].Size != 0 {
		t.Fatalf("List = %+v, want e/empty of size 0", infos)
	}
}

func testDelete(t *testing.T, s objstore.Store) {
	ctx := ctxFor(t)
	for _, k := range []string{"d/a/1", "d/a/2", "d/b/deep/1", "keep/1"} {
		put(t, s, k, []byte(k))
	}
	if err := s.Delete(ctx); err != nil {
		t.Fatalf("Delete() with no keys: %v", err)
	}
	if err := s.Delete(ctx, "d/a/1", "d/missing", "d/b/deep/1", "never/existed"); err != nil {
		t.Fatalf("Delete of present and missing keys: %v", err)
	}
	if err := s.Delete(ctx, "d/a/1"); err != nil {
		t.Fatalf("Delete of an already deleted key: %v", err)
	}
	for _, k := range []string{"d/a/1", "d/b/deep/1"} {
		if _, err := s.Head(ctx, k); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Head(%q) after Delete: %v, want ErrNotFound", k, err)
		}
	}
	if got, want := keysOf(listKeys(t, s, "")), []string{"d/a/2", "keep/1"}; !slices.Equal(got, want) {
		t.Fatalf("List after Delete = %q, want %q", got, want)
	}
	// A key under a prefix whose last object went away can be written again.
	put(t, s, "d/b/deep/1", []byte("again"))
	if got := mustGet(t, s, "d/b/deep/1", 0, -1); string(got) != "again" {
		t.Fatalf("Get after re-Put = %q", got)
	}
}

func testDeleteMany(t *testing.T, s objstore.Store) {
	const n = 1005 // more than one S3 DeleteObjects batch (1000 keys)
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("many/%04d", i)
	}
	parallel(t, 16, keys, func(ctx context.Context, key string) error {
		return s.Put(ctx, key, bytes.NewReader([]byte(key)), int64(len(key)))
	})
	if got := len(listKeys(t, s, "many/")); got != n {
		t.Fatalf("List before Delete: %d keys, want %d", got, n)
	}
	if err := s.Delete(ctxFor(t), append(keys, "many/missing")...); err != nil {
		t.Fatalf("Delete(%d keys): %v", n+1, err)
	}
	if got := keysOf(listKeys(t, s, "many/")); len(got) != 0 {
		t.Fatalf("List after Delete: %d keys left, first %q", len(got), got[0])
	}
}

// parallel runs fn for every item on workers goroutines and fails the test
// on the first error.
func parallel(t *testing.T, workers int, items []string, fn func(ctx context.Context, item string) error) {
	t.Helper()
	ctx := ctxFor(t)
	ch := make(chan string)
	errs := make(chan error, len(items))
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for it := range ch {
				if err := fn(ctx, it); err != nil {
					errs <- fmt.Errorf("%s: %w", it, err)
				}
			}
		})
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func testList(t *testing.T, s objstore.Store) {
	// Chosen so that directory-order walks and lexical order disagree:
	// '-' (0x2d) and '.' sort before '/' (0x2f), '0' after it; capitals
	// before lower case.
	keys := []string{
		"a/b", "a/b-x", "a/bc", "a/c/d", "a-c", "a.d", "a0", "ab",
		"B", "b", "x/y/z/1", "x/y/z/10", "x/y/z/2", "x/y/z/1-",
	}
	for i, k := range keys {
		put(t, s, k, data(uint64(i), i))
	}
	sorted := slices.Sorted(slices.Values(keys))
	infos := listKeys(t, s, "")
	if got := keysOf(infos); !slices.Equal(got, sorted) {
		t.Fatalf("List(\"\") = %q\nwant lexical %q", got, sorted)
	}
	for _, info := range infos {
		if want := int64(slices.Index(keys, info.Key)); info.Size != want {
			t.Errorf("List: %s size %d, want %d", info.Key, info.Size, want)
		}
		if info.LastModified.IsZero() {
			t.Errorf("List: %s has no LastModified", info.Key)
		}
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"a/", []string{"a/b", "a/b-x", "a/bc", "a/c/d"}},
		{"a/b", []string{"a/b", "a/b-x", "a/bc"}},
		{"a", []string{"a-c", "a.d", "a/b", "a/b-x", "a/bc", "a/c/d", "a0", "ab"}},
		{"a/c", []string{"a/c/d"}},
		{"a/c/", []string{"a/c/d"}},
		{"a/c/d", []string{"a/c/d"}},
		{"x/y/z/1", []string{"x/y/z/1", "x/y/z/1-", "x/y/z/10"}},
		{"B", []string{"B"}},
		{"nope", nil},
		{"a/b/", nil},
		{"zzz/", nil},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			if got := keysOf(listKeys(t, s, tc.prefix)); !slices.Equal(got, tc.want) {
				t.Fatalf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
			}
		})
	}
}

func testListStop(t *testing.T, s objstore.Store) {
	for i := range 5 {
		put(t, s, fmt.Sprintf("stop/%d", i), []byte{byte(i)})
	}
	stop := errors.New("enough")
	var seen []string
	err := s.List(ctxFor(t), "stop/", func(info objstore.ObjectInfo) error {
		seen = append(seen, info.Key)
		if len(seen) == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("List error = %v, want the callback's error", err)
	}
	if !slices.Equal(seen, []string{"stop/0", "stop/1"}) {
		t.Fatalf("callback saw %q, want the first two keys and nothing after the error", seen)
	}
}

func testInvalidKeys(t *testing.T, s objstore.Store) {
	ctx := ctxFor(t)
	for _, key := range []string{"", "/abs", "a//b", "a/", "a/../b", "..", ".", "./a", "a\x00b", "a\\b", "\xff"} {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			if err := s.Put(ctx, key, bytes.NewReader([]byte("x")), 1); !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("Put: %v, want ErrInvalidKey", err)
			}
			if _, err := s.Get(ctx, key, 0, -1); !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("Get: %v, want ErrInvalidKey", err)
			}
			if _, err := s.Head(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("Head: %v, want ErrInvalidKey", err)
			}
			if err := s.Delete(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
				t.Errorf("Delete: %v, want ErrInvalidKey", err)
			}
		})
	}
	if got := listKeys(t, s, ""); len(got) != 0 {
		t.Fatalf("List after rejected Puts = %q, want nothing", keysOf(got))
	}
}

// failingReader fails every read that reaches failAt, as a disk error while
// reading a segment would.
type failingReader struct {
	b      []byte
	failAt int64
}

var errDisk = errors.New("objtest: simulated read error")

func (r *failingReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > r.failAt {
		return 0, errDisk
	}
	return copy(p, r.b[off:]), nil
}

func testFailedPut(t *testing.T, s objstore.Store) {
	old := []byte("the old object")
	put(t, s, "f/k", old)
	for _, size := range []int{10 << 10, LargeSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			body := &failingReader{b: data(9, size), failAt: int64(size) - 100}
			err := s.Put(ctxFor(t), "f/k", body, int64(size))
			if err == nil {
				t.Fatal("Put with a failing body succeeded")
			}
			if got := mustGet(t, s, "f/k", 0, -1); !bytes.Equal(got, old) {
				t.Fatalf("after a failed Put the object has %d bytes, want the old %d", len(got), len(old))
			}
			// A body shorter than the size given is an error too, never a
			// truncated object.
			short := data(10, 100)
			if err := s.Put(ctxFor(t), "f/short", bytes.NewReader(short), 200); err == nil {
				t.Fatal("Put with a body shorter than size succeeded")
			}
			if _, err := s.Head(ctxFor(t), "f/short"); !errors.Is(err, objstore.ErrNotFound) {
				t.Fatalf("Head after a short Put: %v, want ErrNotFound", err)
			}
		})
	}
}

func testLarge(t *testing.T, s objstore.Store) {
	want := data(42, LargeSize)
	put(t, s, "large/obj", want)
	info, err := s.Head(ctxFor(t), "large/obj")
	if err != nil || info.Size != LargeSize {
		t.Fatalf("Head = %+v, %v; want size %d", info, err, LargeSize)
	}
	if got := mustGet(t, s, "large/obj", 0, -1); !bytes.Equal(got, want) {
		t.Fatalf("Get whole: %d bytes, content equal %v", len(got), len(got) == len(want))
	}
	// A range across the first part boundary and one in the last part.
	for _, r := range [][2]int64{{16<<20 - 100, 200}, {LargeSize - 5000, -1}} {
		got := mustGet(t, s, "large/obj", r[0], r[1])
		end := int64(LargeSize)
		if r[1] >= 0 {
			end = r[0] + r[1]
		}
		if !bytes.Equal(got, want[r[0]:end]) {
			t.Fatalf("Get(%d, %d) differs", r[0], r[1])
		}
	}
}

func testConcurrent(t *testing.T, s objstore.Store) {
	const workers = 16
	keys := make([]string, workers)
	for i := range keys {
		keys[i] = fmt.Sprintf("c/%02d", i)
	}
	// Distinct keys: each worker writes then reads its own.
	parallel(t, workers, keys, func(ctx context.Context, key string) error {
		for round := range 3 {
			want := data(uint64(len(key)*100+round), 20000+round)
			if err := s.Put(ctx, key, bytes.NewReader(want), int64(len(want))); err != nil {
				return err
			}
			rc, err := s.Get(ctx, key, 0, -1)
			if err != nil {
				return err
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
			if !bytes.Equal(got, want) {
				return fmt.Errorf("round %d: read %d bytes that differ from the %d written", round, len(got), len(want))
			}
		}
		return nil
	})
	// One key, many writers and readers: every read sees one body whole.
	bodies := make(map[string]bool)
	var writers []string
	for i := range workers {
		b := bytes.Repeat([]byte{byte('a' + i)}, 10000+i)
		bodies[string(b)] = true
		writers = append(writers, string(b))
	}
	put(t, s, "c/shared", []byte(writers[0]))
	parallel(t, workers, writers, func(ctx context.Context, body string) error {
		if err := s.Put(ctx, "c/shared", bytes.NewReader([]byte(body)), int64(len(body))); err != nil {
			return err
		}
		rc, err := s.Get(ctx, "c/shared", 0, -1)
		if err != nil {
			return err
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		if !bodies[string(got)] {
			return fmt.Errorf("read a %d-byte body that no writer wrote whole", len(got))
		}
		return nil
	})
}

func testCanceled(t *testing.T, s objstore.Store) {
	put(t, s, "cx/k", []byte("v"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", op, err)
		}
	}
	check("Put", s.Put(ctx, "cx/new", bytes.NewReader([]byte("v")), 1))
	rc, err := s.Get(ctx, "cx/k", 0, -1)
	if rc != nil {
		rc.Close()
	}
	check("Get", err)
	_, err = s.Head(ctx, "cx/k")
	check("Head", err)
	check("Delete", s.Delete(ctx, "cx/k"))
	check("List", s.List(ctx, "", func(objstore.ObjectInfo) error { return nil }))
	if _, err := s.Head(ctxFor(t), "cx/new"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("canceled Put left an object (Head: %v)", err)
	}
}

// cancelingReader cancels the Put's context on its first read.
type cancelingReader struct {
	r      io.ReaderAt
	cancel context.CancelFunc
}

func (c *cancelingReader) ReadAt(p []byte, off int64) (int, error) {
	c.cancel()
	return c.r.ReadAt(p, off)
}

func testCanceledDuringPut(t *testing.T, s objstore.Store) {
	for _, size := range []int{100 << 10, LargeSize} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			key := fmt.Sprintf("cdp/%d", size)
			body := &cancelingReader{r: bytes.NewReader(data(7, size)), cancel: cancel}
			if err := s.Put(ctx, key, body, int64(size)); !errors.Is(err, context.Canceled) {
				t.Fatalf("Put canceled midway: %v, want context.Canceled", err)
			}
			if _, err := s.Head(ctxFor(t), key); !errors.Is(err, objstore.ErrNotFound) {
				t.Fatalf("Head after a canceled Put: %v, want ErrNotFound", err)
			}
		})
	}
}

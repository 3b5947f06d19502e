package filestore_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/strata-broker/strata/tiering/filestore"
	"github.com/strata-broker/strata/tiering/objstore"
	"github.com/strata-broker/strata/tiering/objtest"
)

func TestConformance(t *testing.T) {
	objtest.Run(t, func(t *testing.T) objstore.Store {
		s, err := filestore.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func newStore(t *testing.T) (*filestore.Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := filestore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s, dir
}

func TestLayoutOnDisk(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	body := []byte("segment bytes")
	if err := s.Put(ctx, "ab/cluster/topic/0/00000000000000000000-x.log", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dir, "ab", "cluster", "topic", "0", "00000000000000000000-x.log"))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("file on disk = %q, %v; want the body under the key's path", got, err)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, ".strata-tmp")); len(left) != 0 {
		t.Fatalf("staging directory keeps %d files after a Put", len(left))
	}
	// Deleting the last object removes the directories it leaves empty,
	// but never the root or the staging directory.
	if err := s.Delete(ctx, "ab/cluster/topic/0/00000000000000000000-x.log"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{".strata-tmp"}) {
		t.Fatalf("root after deleting the only object holds %q, want just the staging directory", names)
	}
}

func TestReservedAndMisplacedKeys(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	if err := s.Put(ctx, ".strata-tmp/x", bytes.NewReader(nil), 0); !errors.Is(err, objstore.ErrInvalidKey) {
		t.Fatalf("Put into the staging directory: %v, want ErrInvalidKey", err)
	}
	// Files that are not regular (here a symlink escaping the root) are not
	// objects.
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := s.List(ctx, "", func(info objstore.ObjectInfo) error {
		keys = append(keys, info.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("List shows %q; a symlink is not an object", keys)
	}
	if _, err := s.Get(ctx, "link", 0, -1); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Get of a symlink key: %v, want ErrNotFound", err)
	}
	if _, err := s.Head(ctx, "link"); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("Head of a symlink key: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "link"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Fatalf("Delete of a symlink key touched its target: %v", err)
	}
}

// A key that is a prefix-directory of another cannot be a file as well:
// the Put fails cleanly instead of corrupting either.
func TestFileDirectoryConflict(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	if err := s.Put(ctx, "a/b", bytes.NewReader([]byte("x")), 1); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "a", bytes.NewReader([]byte("y")), 1); err == nil {
		t.Fatal("Put of a key that is a directory succeeded")
	}
	if err := s.Put(ctx, "a/b/c", bytes.NewReader([]byte("z")), 1); err == nil {
		t.Fatal("Put below a key that is a file succeeded")
	}
	if err := s.Delete(ctx, "a"); err != nil {
		t.Fatalf("Delete of a directory name: %v", err)
	}
	if _, err := s.Head(ctx, "a/b"); err != nil {
		t.Fatalf("Delete of the directory name removed its objects: %v", err)
	}
}

func TestSweepsStaleStagingFiles(t *testing.T) {
	dir := t.TempDir()
	staging := filepath.Join(dir, ".strata-tmp")
	if err := os.MkdirAll(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	stale, fresh := filepath.Join(staging, "put-stale"), filepath.Join(staging, "put-fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := filestore.New(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale staging file survived New: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("recent staging file (maybe another process's Put) was removed: %v", err)
	}
}

func TestRelativeRoot(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	s, err := filestore.New("rel/store")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "rel", "store"); s.Root() != want {
		t.Fatalf("Root() = %q, want %q", s.Root(), want)
	}
}

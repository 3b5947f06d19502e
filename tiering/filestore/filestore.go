package filestore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/strata-broker/strata/tiering/objstore"
)

// stagingDir is the root-level directory holding in-flight Puts. Keys may
// not start with it.
const stagingDir = ".strata-tmp"

// staleAfter is how old a staging file must be before New removes it.
const staleAfter = time.Hour

// copyBufSize is the buffer of one Put's copy loop; the context is checked
// between chunks.
const copyBufSize = 256 << 10

// Store is an objstore.Store on a local directory.
type Store struct {
	root    string
	staging string
}

var _ objstore.Store = (*Store)(nil)

// New opens (creating if needed) the directory root as an object store.
// A relative root is made absolute against the working directory.
func New(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("file object store %s: %w", root, err)
	}
	s := &Store{root: abs, staging: filepath.Join(abs, stagingDir)}
	if err := os.MkdirAll(s.staging, 0o755); err != nil {
		return nil, fmt.Errorf("file object store %s: %w", abs, err)
	}
	if err := syncDir(abs); err != nil {
		return nil, fmt.Errorf("file object store %s: %w", abs, err)
	}
	s.sweepStaging(time.Now())
	return s, nil
}

// Root returns the absolute directory of the store.
func (s *Store) Root() string { return s.root }

func (s *Store) sweepStaging(now time.Time) {
	entries, err := os.ReadDir(s.staging)
	if err != nil {
		return
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < staleAfter {
			continue
		}
		_ = os.Remove(filepath.Join(s.staging, e.Name()))
	}
}

// path maps a key to its file, rejecting keys that are invalid or reserved.
func (s *Store) path(key string) (string, error) {
	if err := objstore.CheckKey(key); err != nil {
		return "", err
	}
	if first, _, _ := strings.Cut(key, "/"); first == stagingDir {
		return "", fmt.Errorf("key %q: %s is reserved by the file store: %w", key, stagingDir, objstore.ErrInvalidKey)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put implements objstore.Store.
func (s *Store) Put(ctx context.Context, key string, body io.ReaderAt, size int64) (err error) {
	p, err := s.path(key)
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	if size < 0 {
		return fmt.Errorf("put %s: negative size %d", key, size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	tmp, err := os.CreateTemp(s.staging, "put-*")
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if err := copyBody(ctx, tmp, body, size); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	// The rename is the commit point: a Put whose context ended before it
	// must leave nothing behind.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	// A concurrent Delete may remove an empty directory between our mkdir
	// and rename; ENOENT then means "create it again".
	const attempts = 5
	for i := 0; ; i++ {
		var synced []string
		synced, err = s.mkdirs(filepath.Dir(p))
		if err == nil {
			err = os.Rename(tmpName, p)
		}
		if err == nil {
			for _, d := range append(synced, filepath.Dir(p)) {
				if err = syncDir(d); err != nil {
					return fmt.Errorf("put %s: %w", key, err)
				}
			}
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) || i == attempts-1 {
			return fmt.Errorf("put %s: %w", key, err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
	}
}

// mkdirs creates dir and its missing parents below the root and returns
// the directories whose entries changed (parents of created directories),
// which must be fsynced for the new directories to survive a crash.
func (s *Store) mkdirs(dir string) ([]string, error) {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil, nil
	}
	rel, err := filepath.Rel(s.root, dir)
	if err != nil {
		return nil, err
	}
	var changed []string
	cur := s.root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		next := filepath.Join(cur, part)
		switch err := os.Mkdir(next, 0o755); {
		case err == nil:
			changed = append(changed, cur)
		case errors.Is(err, fs.ErrExist):
			// Either a directory (fine) or a file holding a key that is a
			// prefix of ours; the rename then fails with ENOTDIR.
		default:
			return nil, err
		}
		cur = next
	}
	return changed, nil
}

func copyBody(ctx context.Context, w io.Writer, body io.ReaderAt, size int64) error {
	buf := make([]byte, min(size, copyBufSize))
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		chunk := buf[:min(int64(len(buf)), size-off)]
		n, err := body.ReadAt(chunk, off)
		if n < len(chunk) {
			if err == nil || err == io.EOF {
				err = fmt.Errorf("body ended at %d of %d bytes: %w", off+int64(n), size, io.ErrUnexpectedEOF)
			}
			return err
		}
		// A ReaderAt may return io.EOF with a full read at the very end.
		if _, err := w.Write(chunk); err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

// Get implements objstore.Store.
func (s *Store) Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, fmt.Errorf("get: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	// Only regular files are objects: not directories ("a" when "a/b"
	// exists), nor symlinks someone left in the root, which could point
	// outside it.
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		if err == nil {
			err = objstore.ErrNotFound
		}
		return nil, fmt.Errorf("get %s: %w", key, notFound(err))
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, notFound(err))
	}
	fi, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	length, err := objstore.CheckRange(key, off, n, fi.Size())
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &fileBody{SectionReader: io.NewSectionReader(f, off, length), f: f}, nil
}

// fileBody reads a byte range of an open file with pread, so the file's
// offset is never shared.
type fileBody struct {
	*io.SectionReader
	f *os.File
}

func (b *fileBody) Close() error { return b.f.Close() }

// Head implements objstore.Store.
func (s *Store) Head(ctx context.Context, key string) (objstore.ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("head: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("head %s: %w", key, err)
	}
	fi, err := os.Lstat(p)
	if err == nil && !fi.Mode().IsRegular() {
		err = objstore.ErrNotFound
	}
	if err != nil {
		return objstore.ObjectInfo{}, fmt.Errorf("head %s: %w", key, notFound(err))
	}
	return objstore.ObjectInfo{Key: key, Size: fi.Size(), LastModified: fi.ModTime()}, nil
}

// Delete implements objstore.Store.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	touched := make(map[string]struct{})
	defer func() {
		// Best effort: a lost delete after a crash leaves an orphan that
		// the tiering orphan sweep finds again, not wrong data.
		for d := range touched {
			_ = syncDir(d)
		}
	}()
	for _, key := range keys {
		p, err := s.path(key)
		if err != nil {
			return fmt.Errorf("delete: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			// Missing, or a directory or symlink: not an object either way.
			if err != nil && !isNotExist(err) {
				return fmt.Errorf("delete %s: %w", key, err)
			}
			continue
		}
		if err := os.Remove(p); err != nil && !isNotExist(err) {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		dir := filepath.Dir(p)
		touched[dir] = struct{}{}
		for dir != s.root && len(dir) > len(s.root) {
			if os.Remove(dir) != nil {
				break // not empty (or gone): stop climbing
			}
			delete(touched, dir)
			dir = filepath.Dir(dir)
			touched[dir] = struct{}{}
		}
	}
	return nil
}

// List implements objstore.Store.
func (s *Store) List(ctx context.Context, prefix string, fn func(objstore.ObjectInfo) error) error {
	if err := s.walk(ctx, s.root, "", prefix, fn); err != nil {
		return fmt.Errorf("list %q: %w", prefix, err)
	}
	return nil
}

// walk visits the directory dir, whose keys start with keyPrefix ("" for the
// root, else "path/"), in key order.
func (s *Store) walk(ctx context.Context, dir, keyPrefix, prefix string, fn func(objstore.ObjectInfo) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if isNotExist(err) {
			return nil // removed by a concurrent Delete
		}
		return err
	}
	type item struct {
		sortKey string // key of the file, or key of the directory plus "/"
		entry   fs.DirEntry
	}
	items := make([]item, 0, len(entries))
	for _, e := range entries {
		if keyPrefix == "" && e.Name() == stagingDir {
			continue
		}
		k := keyPrefix + e.Name()
		switch {
		case e.IsDir():
			k += "/"
			// Descend only where keys can match: the directory's keys all
			// start with k.
			if !strings.HasPrefix(k, prefix) && !strings.HasPrefix(prefix, k) {
				continue
			}
		case e.Type().IsRegular():
			if !strings.HasPrefix(k, prefix) {
				continue
			}
		default:
			continue // symlinks, sockets...: not objects
		}
		items = append(items, item{k, e})
	}
	slices.SortFunc(items, func(a, b item) int { return cmp.Compare(a.sortKey, b.sortKey) })
	for _, it := range items {
		if it.entry.IsDir() {
			if err := s.walk(ctx, filepath.Join(dir, it.entry.Name()), it.sortKey, prefix, fn); err != nil {
				return err
			}
			continue
		}
		fi, err := it.entry.Info()
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return err
		}
		if err := fn(objstore.ObjectInfo{Key: it.sortKey, Size: fi.Size(), LastModified: fi.ModTime()}); err != nil {
			return err
		}
	}
	return nil
}

// isNotExist also treats ENOTDIR as missing: the key "a/b" when "a" is a
// file does not exist.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

func notFound(err error) error {
	if isNotExist(err) {
		return objstore.ErrNotFound
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors. Backends wrap them with the operation and the key, so
// match with errors.Is. The texts say "tiering" because package tiering
// re-exports them as its own.
var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = errors.New("tiering: object not found")
	// ErrInvalidRange: Get with off < 0 or off > the object's size.
	ErrInvalidRange = errors.New("tiering: invalid object range")
	// ErrInvalidKey: the key breaks the rules of CheckKey.
	ErrInvalidKey = errors.New("tiering: invalid object key")
)

// ObjectInfo describes a stored object. Key is relative to the store's root
// (without the bucket prefix).
type ObjectInfo struct {
	Key          string
	Size         int64
	LastModified time.Time
}

// Store is an object store addressed by '/'-separated keys relative to the
// store's bucket and prefix (or directory). The package documentation lists
// the semantics all implementations share.
type Store interface {
	// Put stores size bytes read from body at offsets [0, size) under key,
	// atomically; an existing object is replaced. body is read with ReadAt
	// so that a backend can upload parts in parallel and re-read a part on
	// retry.
	Put(ctx context.Context, key string, body io.ReaderAt, size int64) error
	// Get reads n bytes from off (n < 0: to the end). The caller closes the
	// reader.
	Get(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	// Head describes one object.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// Delete removes the keys; missing keys are not an error.
	Delete(ctx context.Context, keys ...string) error
	// List calls fn for every object whose key starts with prefix, in
	// lexical order, until fn returns an error, which List returns.
	List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error
}

// S3Options configure the S3 backend. Zero values mean: AWS's endpoint for
// the region; region from the AWS configuration chain, or us-east-1 when an
// Endpoint is set; virtual-hosted-style addressing; credentials from the
// default AWS chain (environment, shared files, instance or container
// roles) unless both keys are set.
type S3Options struct {
	Endpoint  string // e.g. http://127.0.0.1:9000 for MinIO; must start with http:// or https://
	Region    string
	PathStyle bool // bucket in the path, as most self-hosted S3 servers need
	AccessKey string
	SecretKey string
}

// CheckKey returns an error wrapping ErrInvalidKey when key is not a valid
// object key (see the package documentation).
func CheckKey(key string) error {
	bad := func(why string) error {
		return fmt.Errorf("key %q: %s: %w", key, why, ErrInvalidKey)
	}
	if key == "" {
		return bad("empty")
	}
	if !utf8.ValidString(key) {
		return bad("not UTF-8")
	}
	if strings.ContainsAny(key, "\x00\\") {
		return bad("contains NUL or backslash")
	}
	for seg := range strings.SplitSeq(key, "/") {
		switch seg {
		case "":
			return bad("empty path segment (leading, trailing or double '/')")
		case ".", "..":
			return bad("'.' or '..' segment")
		}
	}
	return nil
}

// CheckRange validates a Get range against an object of the given size and
// returns the number of bytes the Get yields.
func CheckRange(key string, off, n, size int64) (int64, error) {
	if off < 0 || off > size {
		return 0, fmt.Errorf("get %s: offset %d outside object of %d bytes: %w", key, off, size, ErrInvalidRange)
	}
	avail := size - off
	if n < 0 || n > avail {
		return avail, nil
	}
	return n, nil
}

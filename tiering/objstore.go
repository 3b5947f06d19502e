package tiering

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"

	"github.com/strata-broker/strata/tiering/filestore"
	"github.com/strata-broker/strata/tiering/objstore"
	"github.com/strata-broker/strata/tiering/s3store"
)

// The object-store seam. Its types live in the leaf package tiering/objstore
// so that the backends (tiering/filestore, tiering/s3store) can use them
// while Open, here, constructs the backends: declared in this package they
// would make an import cycle. These are aliases, not copies: the backends'
// values are ObjectStores and their errors match these sentinels with
// errors.Is. objstore's package documentation states the semantics every
// backend provides; tiering/objtest checks them.
type (
	// ObjectStore is an object store addressed by '/'-separated keys
	// relative to the store's bucket and prefix (or directory).
	ObjectStore = objstore.Store
	// ObjectInfo describes one stored object.
	ObjectInfo = objstore.ObjectInfo
	// S3Options configure the S3 backend: endpoint, region, path-style
	// addressing and static keys (empty: the default AWS credential chain).
	S3Options = objstore.S3Options
)

var (
	// ErrNotFound: the object does not exist.
	ErrNotFound = objstore.ErrNotFound
	// ErrInvalidRange: a Get with an offset below 0 or past the object's end.
	ErrInvalidRange = objstore.ErrInvalidRange
	// ErrInvalidKey: a key that is empty, absolute, or has empty, "." or
	// ".." segments.
	ErrInvalidKey = objstore.ErrInvalidKey
)

// Open returns the object store named by rawURL:
//
//	file:///abs/dir      a local directory (created if missing)
//	file:rel/dir         a directory relative to the working directory, made
//	                     absolute here (so is file://rel/dir)
//	s3://bucket          a bucket, keys at its root
//	s3://bucket/a/b      keys under the prefix "a/b/"
//
// s3 configures S3 stores and is ignored for file stores. File paths are
// percent-decoded like any URL path. Open sends no request: a wrong
// endpoint, bucket or credential shows up as the first operation's error.
func Open(ctx context.Context, rawURL string, s3 S3Options) (ObjectStore, error) {
	scheme, rest, ok := strings.Cut(rawURL, ":")
	if !ok {
		return nil, fmt.Errorf("object store URL %q: no scheme (want file:///path or s3://bucket/prefix)", rawURL)
	}
	switch strings.ToLower(scheme) {
	case "file":
		dir, err := filePath(rest)
		if err != nil {
			return nil, fmt.Errorf("object store URL %q: %w", rawURL, err)
		}
		st, err := filestore.New(dir)
		if err != nil {
			return nil, fmt.Errorf("object store URL %q: %w", rawURL, err)
		}
		return st, nil
	case "s3":
		bucket, prefix, err := s3Location(rawURL)
		if err != nil {
			return nil, fmt.Errorf("object store URL %q: %w", rawURL, err)
		}
		st, err := s3store.New(ctx, s3store.Config{Bucket: bucket, Prefix: prefix, S3Options: s3})
		if err != nil {
			return nil, fmt.Errorf("object store URL %q: %w", rawURL, err)
		}
		return st, nil
	default:
		return nil, fmt.Errorf("object store URL %q: unsupported scheme %q (want file or s3)", rawURL, scheme)
	}
}

// filePath turns what follows "file:" into an absolute directory. It does
// not use url.Parse's host/path split: "file://data/tier" is meant as the
// relative path data/tier far more often than as host "data".
func filePath(rest string) (string, error) {
	p := strings.TrimPrefix(rest, "//")
	if strings.ContainsAny(p, "?#") {
		return "", fmt.Errorf("query or fragment not allowed in a file path")
	}
	p, err := url.PathUnescape(p)
	if err != nil {
		return "", fmt.Errorf("bad percent-encoding in path: %w", err)
	}
	if p == "" {
		return "", fmt.Errorf("empty path")
	}
	abs, err := filepath.Abs(filepath.FromSlash(p))
	if err != nil {
		return "", fmt.Errorf("resolving path %q: %w", p, err)
	}
	return abs, nil
}

func s3Location(rawURL string) (bucket, prefix string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", "", err
	}
	switch {
	case u.Opaque != "":
		return "", "", fmt.Errorf("want s3://bucket/prefix")
	case u.User != nil:
		return "", "", fmt.Errorf("credentials do not belong in the URL (use the S3 access and secret key settings)")
	case u.RawQuery != "" || u.Fragment != "":
		return "", "", fmt.Errorf("query or fragment not allowed")
	case u.Host == "":
		return "", "", fmt.Errorf("no bucket (want s3://bucket/prefix)")
	case u.Port() != "" || strings.Contains(u.Host, ":"):
		return "", "", fmt.Errorf("bucket %q has a port: the endpoint is a separate setting", u.Host)
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := objstore.CheckKey(prefix); err != nil {
			return "", "", fmt.Errorf("prefix %q: empty, '.' or '..' segments", prefix)
		}
	}
	return u.Host, prefix, nil
}

package tiering_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-broker/strata/tiering"
	"github.com/strata-broker/strata/tiering/s3test"
)

// putAndFind stores one object through st and reports whether it landed at
// path on disk.
func putAndFind(t *testing.T, st tiering.ObjectStore, key, path string) {
	t.Helper()
	body := []byte("object body")
	if err := st.Put(t.Context(), key, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("object not at %s: %q, %v", path, got, err)
	}
}

func TestOpenFile(t *testing.T) {
	base := t.TempDir()
	t.Chdir(base)
	abs := filepath.Join(base, "abs dir")
	for _, tc := range []struct {
		name, url, dir string
	}{
		{"absolute", "file://" + filepath.ToSlash(abs), abs},
		{"percent-encoded", "file://" + strings.ReplaceAll(filepath.ToSlash(abs), " ", "%20"), abs},
		{"relative without slashes", "file:rel/one", filepath.Join(base, "rel", "one")},
		{"relative with slashes", "file://rel/two", filepath.Join(base, "rel", "two")},
		{"dot relative", "file:./rel/three", filepath.Join(base, "rel", "three")},
		{"upper-case scheme", "FILE://" + filepath.ToSlash(abs), abs},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := tiering.Open(t.Context(), tc.url, tiering.S3Options{})
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.url, err)
			}
			putAndFind(t, st, "x/"+tc.name, filepath.Join(tc.dir, "x", tc.name))
			_, err = st.Head(t.Context(), "x/missing")
			if !errors.Is(err, tiering.ErrNotFound) {
				t.Fatalf("Head of a missing key: %v, want tiering.ErrNotFound", err)
			}
		})
	}
}

func TestOpenRejectsBadURLs(t *testing.T) {
	for _, url := range []string{
		"",
		"just-a-path",
		"/abs/path",
		"ftp://host/dir",
		"file:",
		"file://",
		"file:///tmp/a%zz",
		"file:///tmp/x?y=1",
		"s3://",
		"s3:bucket",
		"s3:///prefix",
		"s3://user:secret@bucket/p",
		"s3://bucket:9000/p",
		"s3://bucket/p?versionId=1",
		"s3://bucket/a//b",
		"s3://bucket/a/../b",
		"s3://bucket/a/./b",
	} {
		t.Run(url, func(t *testing.T) {
			st, err := tiering.Open(t.Context(), url, tiering.S3Options{})
			if err == nil {
				t.Fatalf("Open(%q) = %T, want an error", url, st)
			}
			if !strings.Contains(err.Error(), "\""+url+"\"") && !strings.Contains(err.Error(), url) {
				t.Fatalf("error %q does not name the URL", err)
			}
		})
	}
	// Bad S3 options are reported with the URL too.
	_, err := tiering.Open(t.Context(), "s3://bucket", tiering.S3Options{Endpoint: "localhost:9000"})
	if err == nil || !strings.Contains(err.Error(), "s3://bucket") || !strings.Contains(err.Error(), "localhost:9000") {
		t.Fatalf("Open with an endpoint lacking a scheme: %v", err)
	}
}

func TestOpenS3(t *testing.T) {
	srv := s3test.Start(t)
	for _, tc := range []struct {
		name, url, dir string
	}{
		{"server URL", srv.URL(), filepath.Join(srv.BucketDir(), srv.Prefix)},
		{"no prefix", "s3://" + srv.Bucket, srv.BucketDir()},
		{"trailing slash", "s3://" + srv.Bucket + "/p/q/", filepath.Join(srv.BucketDir(), "p", "q")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := tiering.Open(t.Context(), tc.url, srv.Options())
			if err != nil {
				t.Fatalf("Open(%q): %v", tc.url, err)
			}
			putAndFind(t, st, "k/"+strings.ReplaceAll(tc.name, " ", "-"), filepath.Join(tc.dir, "k", strings.ReplaceAll(tc.name, " ", "-")))
			_, err = st.Head(t.Context(), "k/missing")
			if !errors.Is(err, tiering.ErrNotFound) {
				t.Fatalf("Head of a missing key: %v, want tiering.ErrNotFound", err)
			}
		})
	}
}

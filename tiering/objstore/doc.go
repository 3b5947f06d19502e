// Package objstore is the leaf of Strata's object-store seam: the Store
// interface, its sentinel errors, ObjectInfo, S3Options, the key rules every
// backend enforces, and two wrappers for any Store: Instrument (metrics)
// and InstrumentTracing (a span per call, its context handed to the backend).
//
// Why a separate leaf package: tiering.Open constructs the backends
// (tiering/filestore, tiering/s3store), and the backends need the shared
// types. If those types lived in package tiering, tiering would import the
// backends and the backends would import tiering: a cycle. So the types live
// here, the backends import only this package, and package tiering
// re-exports them as aliases (type ObjectStore = objstore.Store, var
// ErrNotFound = objstore.ErrNotFound, ...). An alias is the same type, not a
// copy: a *filestore.Store is a tiering.ObjectStore, and errors.Is(err,
// tiering.ErrNotFound) holds for errors from any backend. Code outside the
// tiering tree should spell the names through package tiering.
//
// # Semantics every backend provides (checked by tiering/objtest)
//
//   - Keys are '/'-separated paths relative to the store's root (a directory
//     or a bucket plus prefix). CheckKey rejects keys a file-system backend
//     could not map safely or an S3 backend would treat oddly: empty keys,
//     leading or trailing '/', empty, "." or ".." segments, NUL and
//     backslash bytes, invalid UTF-8.
//   - Put is atomic: readers see the whole new object or the previous state,
//     never a prefix. Overwrite replaces. A Put that fails leaves the previous
//     state.
//   - Get(off, n): n < 0 reads to the end; n past the end is cut at the end;
//     off == size yields an empty body; off < 0 or off > size is
//     ErrInvalidRange. A missing key is ErrNotFound whatever the range.
//     The file backend's Get reads through an open descriptor, so an
//     overwrite or delete after Get returned does not change its bytes; over
//     S3 that depends on the server, so callers check what they read (Strata
//     checks batch CRCs).
//   - Delete of missing keys succeeds; Delete of many keys is not atomic.
//   - List visits every object whose key starts with prefix (plain string
//     prefix, not a directory), in lexical byte order of the keys, and stops
//     at the first error returned by the callback, returning it.
//
// A file-system backend cannot hold both "a" and "a/b" (a file cannot also be
// a directory); Strata's key layouts never need that, and the conformance
// suite does not ask for it.
//
// # Concurrency
//
// Every Store is safe for concurrent use; concurrent Puts of one key leave
// one of the bodies whole.
package objstore

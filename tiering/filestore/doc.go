// Package filestore is the local-directory backend of Strata's object-store
// seam (tiering/objstore.Store): the embedded default of a single node and
// the backend of most tests. Keys map to files under the root directory,
// '/' to directory separators.
//
// # Durability and atomicity
//
// Put writes the body to a temporary file in the staging directory
// <root>/.strata-tmp, fsyncs it, creates the key's directories (fsyncing the
// parent of each directory it creates), renames the temporary file onto the
// key and fsyncs the key's directory. Rename is atomic within one file
// system, so a reader sees the old object or the whole new one, and after a
// crash the key holds one of them. A crash can leave a temporary file behind
// in the staging directory; New removes those older than an hour (younger
// ones may belong to another process sharing the root). Staging in one
// directory, rather than next to each key, keeps List free of temporary
// names and makes that sweep cheap.
//
// Delete removes the files, then the directories they leave empty, up to
// the root (best effort), and fsyncs each touched directory once.
//
// # Ordering
//
// List walks directories in the order of their keys: a directory "d" sorts
// as "d/", so "a-c" comes before "a/b" as it does in S3.
//
// # Concurrency
//
// A Store has no mutable state of its own; the file system arbitrates. Put
// retries when a concurrent Delete removes a directory it has just created.
// A Get reads through its own file descriptor, so an overwrite or a delete
// after Get returned does not affect the bytes it yields.
package filestore

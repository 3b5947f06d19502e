// Package s3store is the S3 backend of Strata's object-store seam
// (tiering/objstore.Store), on aws-sdk-go-v2. It talks to AWS S3 and to
// S3-compatible servers (MinIO, SeaweedFS, versitygw...): endpoint override,
// path-style addressing, region, static keys or the default AWS credential
// chain.
//
// # Mapping
//
// Object key k is stored as Prefix+k in Bucket. Put sends one PutObject up to
// PartSize (16 MiB) and a multipart upload above it (feature/s3/manager,
// parts read with ReadAt through io.SectionReader, so a retried part is read
// again from the source instead of being buffered). A failed multipart upload
// is aborted with a context of its own, so a canceled Put does not leave
// billable parts behind. Get sends a Range header; a 416 answer is resolved
// with a HeadObject into "empty" (offset == size) or ErrInvalidRange. Delete
// batches DeleteObjects by 1000 keys and switches, for the life of the
// Store, to one DeleteObject per key when the server rejects batch delete
// (some S3 APIs do not implement it or insist on Content-MD5). List pages
// through ListObjectsV2.
//
// # Failures
//
// Every request goes through the SDK's standard retryer: errors on the
// connection, 5xx answers and throttling (503 SlowDown) are retried with
// exponential backoff and jitter, MaxAttempts times, each request on its
// own. The SDK's adaptive mode is not used: after one throttle it slows
// every request of the client for seconds, and a broker's uploads and
// remote reads share one client.
//
// The SDK's retry quota, which stops retrying after a burst of failures, is
// off: the tiering uploader already bounds its concurrency and retries whole
// uploads, and a quota drained by an outage would keep failing requests
// after the server came back. Requests end early only when their context
// does.
//
// Request checksums are computed only when the operation requires them and
// response checksums are not validated, because several S3-compatible
// servers reject or lack the newer flexible checksums; Strata verifies its
// own data with batch CRCs on every remote read.
//
// # Tracing
//
// Every HTTP request carries the W3C trace context of its call's context
// (traceparent, tracestate; objstore.InstrumentTracing puts a span there),
// added after signing so a tracing proxy may rewrite it without breaking
// the signature. Without a span nothing is added.
//
// # Concurrency
//
// A Store is safe for concurrent use; the SDK client pools connections
// (MaxConnsPerHost idle connections are kept per host).
package s3store

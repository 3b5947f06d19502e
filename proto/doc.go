// Package proto is Strata's view of the Kafka wire: request framing,
// request/response codecs (on top of franz-go's kmsg), the zero-copy Fetch
// response encoder, record batch (magic 2) parsing and validation, the
// compression codecs and CRC32C.
//
// proto knows nothing of files, sockets or cluster state. It turns bytes into
// typed values and back, and decides whether bytes a client sent are
// acceptable; what to do with them is the broker's and storage's business.
//
// # Invariants
//
//   - Hostile input never panics and never makes proto allocate much more
//     than the input: frame sizes are checked before reading, kmsg decoding
//     runs under a recover, and decompression is bounded (DefaultDecompressLimit
//     or a caller-supplied limit), so a tiny zstd or gzip "bomb" is rejected
//     with ErrCorrupt instead of exhausting memory.
//   - ValidateProduceBatches accepts a batch only if every byte of it has been
//     checked: lengths, CRC32C, codec, offsets, and every record (after
//     decompression). Storage appends accepted batches as they are, so a
//     consumer can never read bytes that did not pass this check.
//   - EncodeFetchResponse produces exactly the bytes kmsg would for the same
//     response, except that records fields are spliced from caller-provided
//     sources and are never null (librdkafka rejects a null records field).
//   - Parsed values alias their input where the contract says so (record
//     batches in requests, Batch.Raw, Record keys and values). Callers that
//     keep them past the life of the buffer must copy.
//
// # Errors
//
// Every error returned wraps one of the package sentinels (ErrFrameTooLarge,
// ErrBadFrame, ErrTruncated, ErrUnknownAPIKey, ErrUnsupportedVersion,
// ErrCorrupt, ErrInvalidRecord, ErrUnsupportedCodec, ErrBatchTooLarge), or is
// an I/O error from the reader given to ReadFrame. ErrorCode maps the
// sentinels to Kafka error codes.
//
// # Concurrency
//
// All functions are safe for concurrent use. Package state is limited to
// sync.Pools of compression readers, writers and scratch buffers, and one
// shared zstd encoder; none of them start goroutines.
package proto

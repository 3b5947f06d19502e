// Package tiering moves sealed segments of partition logs to object storage
// and reads them back: the object-store seam (ObjectStore, with the file and
// S3 backends in sub-packages), the per-partition remote manifest, the
// uploader, remote retention, the orphan sweep, and the remote reader with
// its on-disk chunk cache. One Manager per broker does all of it.
//
// tiering imports storage (the local log) and proto (batch framing), never
// metadata or broker: the broker hands it a ManifestStore, which it
// implements on the metadata quorum.
//
// # Key layout
//
//	<hh>/<cluster>/<topicID>/<partition>/<20-digit base offset>-<upload id>.log
//	                                                                   .index
//	                                                                   .timeindex
//	                                                                   .txnindex  (optional)
//	                                                                   .snapshot  (optional)
//	<cluster>/manifests/<topicID>/<partition>.json
//
// hh is two hex digits of a hash of topic id and partition (PartitionPrefix):
// S3 limits request rates per key prefix, and thousands of partitions under
// one prefix would throttle each other. The upload id (a fresh uuid per
// upload attempt) makes every upload's keys unique: a retried or repeated
// upload never overwrites a committed object, and whatever an upload left
// behind without committing is recognisable as an orphan. The .index and
// .timeindex objects are the local index files (cut to the uploaded range
// when only part of a local segment is uploaded). The .txnindex object is
// the segment's transaction index (the aborts whose marker is in the
// uploaded range), put only when it is not empty; the .snapshot object is
// the producer snapshot taken at the segment's end, put only when the log
// had producers. The manifest records their sizes (0: no object), so a
// reader never asks for one that is not there. The manifest JSON in the
// bucket is rewritten after every change, so the remote tier can be found
// from the bucket alone.
//
// # Invariants
//
//   - A segment is in at least one durable place at every moment: the
//     uploader puts the objects, then commits the segment to the manifest
//     (ManifestStore.AddSegment), then writes the bucket copy, and only then
//     calls log.SetRemoteEnd, which is what allows the log to delete its
//     local copy.
//   - Manifests are contiguous: a segment is added only at the manifest's end
//     (local segments below it are already remote; a local segment straddling
//     it is uploaded from the end on; the first segment of an empty manifest
//     from the batch holding the log start), and removed only from the start.
//   - Deletion is driven by the committed manifest: retention, DeleteRecords
//     and DeleteTopic remove segments from the manifest first and delete
//     their objects after the removal committed. An object no manifest
//     references (a failed upload, a crash before a commit or after a
//     removal) is deleted by the orphan sweep once it is older than
//     Config.OrphanGrace and no upload of this Manager has it in flight.
//   - Uploads are idempotent by id: a retry reuses the pending upload's id
//     and AddSegment ignores an id it already has, so an ambiguous commit
//     (an error after the quorum applied it) is harmless.
//   - Only segments wholly below the last stable offset are uploaded (as in
//     Kafka): remote data is stable, so a read_committed fetch of it needs
//     no LSO bound, and its aborted transactions are those of the
//     transaction indexes from the fetch offset's segment on, remote then
//     local (Manager.AbortedTransactions, then storage.Log's).
//   - Upload failures never give up and never block produce: the partition
//     backs off (exponentially, capped at 30 s, with jitter) and its local
//     segments stay until the upload commits.
//   - Every byte served from the remote tier passed the batch CRC check and
//     offset checks after download, before it entered the cache; a corrupt
//     or missing object is an error (ErrCorruptRemote, ErrNotFound), logged,
//     and nothing of it is cached.
//
// # Reads
//
// A segment's offset index object (fetched once, kept in a small LRU)
// splits its .log object into chunks of about 4 MiB that start at indexed
// batch boundaries. Read downloads the chunk holding the offset with one
// ranged GET (concurrent readers of a chunk share the download), verifies
// it, writes it to a cache file and returns file ranges of whole batches;
// following chunks are added only if already cached, so one Read waits for
// at most one download. A reader that continues where a recent read of the
// partition ended is sequential: the next chunks are prefetched in the
// background. Downloads run on the Manager's context with their own timeout,
// not on the caller's: a fetch whose max wait expires returns, the download
// completes into the cache, and the retry is served from there.
//
// The cache is bounded by Config.CacheBytes. Trimming is background work:
// inserts only count bytes and poke the trimmer, which evicts least
// recently used chunks down to 90% of the bound. An evicted chunk's file is
// unlinked at once and closed when the last ReadResult holding it is
// released, so eviction never breaks a response being sent.
//
// # Compaction
//
// Compacted topics are tiered too (Kafka refuses this). A pass on the
// leader (compact.go) builds the key -> latest offset map over the remote
// segments and the local ones past the remote end, rewrites each remote
// segment with something to drop through storage's own cleaner rules
// (offsets, epochs and each segment's first and last offset unchanged),
// puts the result under a fresh upload id and swaps old for new in one
// manifest command (ReplaceRemoteSegments), in offset order, so no key is
// ever missing. The replaced objects stay for OrphanGrace after the swap
// (readers holding the old manifest) and then go with the orphan sweep.
//
// # Concurrency
//
// Run owns every goroutine: the upload scheduler, the retention and sweep
// tickers, the cache trimmer, and the goroutines they and Read start (upload
// jobs, downloads, prefetches) through spawn, which Run waits for after ctx
// ends. Uploads run at most UploadConcurrency at a time and one per
// partition; their bytes pass through a shared rate limiter
// (UploadBytesPerSec).
//
// Locks, in the order they may be taken:
//
//	partState.commitMu  serializes a partition's manifest changes and the
//	                    deletions after them (upload commit, retention,
//	                    DeleteRecordsBefore, DeleteTopic, the sweep's view);
//	                    held across store and manifest calls
//	Manager.mu          the partition map
//	partState.mu        a partition's scheduling state (busy, backoff,
//	                    pending upload, stale manifest copy)
//	flightGroup.mu      downloads in flight; held while checking the cache
//	                    so a chunk is never downloaded twice at once
//	diskCache.mu, indexCache.mu, readState.mu   leaves
//
// No lock but commitMu is held across I/O; Manager.mu and partState.mu are
// never held together.
package tiering

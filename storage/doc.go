// Package storage is the durable log of one partition: segment files of
// record batches, their sparse indexes, crash recovery, group-committed
// fsyncs, reads as file ranges for sendfile, idempotent producer state, the
// leader epoch history, and retention.
//
// storage knows nothing of the network or of topics: the broker hands it
// validated batches (proto.ValidateProduceBatches) and asks for byte
// ranges; tiering reads sealed segments. Of replication it knows only the
// log-level primitives below; who leads, the ISR and fetching are the
// broker's.
//
// # Replication
//
// A follower appends what its leader's log holds with AppendReplicated:
// whole batches from Fetch, CRC-checked and required to continue exactly at
// LogEndOffset (ErrOffsetMismatch otherwise), written byte for byte; the
// epoch history and the idempotent producer state are learnt from the
// batches, so a follower that becomes leader answers OffsetForLeaderEpoch
// and detects duplicate produces as the old leader did. After a leader
// change a follower cuts its divergent tail with TruncateTo (at a batch
// boundary), which rebuilds producer state from the newest snapshot at or
// below the cut and drops later epochs. A new leader opens its epoch at the
// log end with AssignLeaderEpoch.
//
// The high watermark has two modes. Off (the default, a single node): it is
// the durable end in safe mode and the log end when relaxed, moved by the
// flusher and Append, and not persisted (Open sets it to the recovered log
// end, all of which is fsynced). On (SetReplicated(true), or
// Options.Replicated at Open): only the leader's AdvanceHighWatermark (what
// the ISR holds, never past the local durable end in safe mode; the flusher
// completes a capped advance as fsyncs finish) and the follower's
// SetHighWatermark (the leader's value, capped at the log end, may go down)
// move it. It is then checkpointed (high-watermark) by the flusher at most
// every 5 s and at Close, a lower bound that Open with Options.Replicated
// restores (the log start when there is none).
//
// # Tiered storage
//
// With Config.RemoteEnabled the log is the local tail of a partition whose
// older segments live in object storage. The tiering manager uploads what
// SealedSegments lists (reading it through OpenSegment), records it in the
// remote manifest, then calls SetRemoteEnd; only then may EnforceRetention
// delete those segments locally, by local.retention.ms/bytes. Two log starts
// follow: LogStartOffset is global (the first offset readable in either
// tier) and LocalLogStartOffset is the first one on local disk; Read of an
// offset between them is ErrOffsetTiered, for the caller to serve from the
// remote tier. retention.ms/bytes span both tiers, so for remote-enabled
// logs the manager applies them with DeleteRecordsBefore, which may move the
// log start below the local start. ResetEmpty restarts an empty log (a lost
// data directory) after the remote tier's end.
//
// # Compaction
//
// Compact is Kafka's log cleaner as a primitive (the broker decides when,
// per topic with cleanup.policy=compact, from CleanableDirtyRatio): it
// keeps the latest record of each key in the cleanable part of the log
// (sealed segments wholly below the high watermark and older than
// min.compaction.lag.ms, never the active segment), drops tombstones whose
// KIP-534 delete horizon (set to now + delete.retention.ms in the batch by
// the first cleaning that keeps them) has passed, drops keyless records,
// and keeps control and transactional batches whole (until transactions
// exist). The dirty part starts at the cleaner checkpoint; a key -> offset
// map of 128-bit key hashes, bounded by CompactOptions.MaxOffsetMapBytes,
// is built over it, several passes when it does not fit. Offsets never
// change: rewritten batches keep base offset, last offset delta, producer
// fields, leader epoch, max timestamp and codec, records keep their offset
// deltas and timestamps. The last batch of every rewritten group, and the
// batch with a producer's last data offset, survive at least as empty
// batches, so cleaned segments end exactly where the old ones did and a
// replay rebuilds idempotent producer state. Small segments are merged up
// to segment.bytes (not on tiered logs: tiering names segments by base).
//
// A group of segments is written to <base>.{log,index,timeindex,txnindex}.cleaned
// and fsynced, renamed to .swap (the .log last: the commit point), the
// replaced segments' files removed, then the .swap files renamed to their
// final names, with a directory fsync after each step. Open first removes
// .cleaned files and completes a .swap: it removes every segment whose base
// lies in the .swap's offset range, then renames it. So after a crash the
// log holds either the old segments or the new one. Readers holding a
// replaced segment keep reading its unlinked file; Compact holds mu only
// for the swap and checks that the segments it read are still there
// unchanged (retention or TruncateTo may have moved), else drops its work.
//
// # Transactions
//
// Producer state also tracks transactions, as Kafka's ProducerStateManager
// does: a transactional batch (attribute bit 4) of an idempotent producer
// opens a transaction at its first offset unless one is open; a
// non-transactional batch while one is open is ErrInvalidTxnState; the
// usual epoch rule (ErrInvalidProducerEpoch) applies to both. The
// coordinator ends a transaction with AppendTxnMarker: a control batch in
// Kafka's format (key {version 0, type 0 abort / 1 commit}, value {version
// 0, coordinator epoch}); an older coordinator epoch than the producer's
// last marker is ErrTransactionCoordinatorFenced. A marker for a producer
// with no open transaction is written and ends nothing. An abort adds an
// entry {producer id, first offset, marker offset, last stable offset} to
// the marker segment's transaction index. Followers (AppendReplicated)
// learn the same state from the copied batches without checks.
//
// LastStableOffset is the first offset of the earliest undecided
// transaction (open, or ended by a marker the high watermark has not passed
// yet, as Kafka keeps "unreplicated" transactions), capped at the high
// watermark and raised to the log start. AbortedTransactions(from, to)
// collects the aborts overlapping a fetched range from the transaction
// indexes of the segment holding from onwards, stopping where an entry's
// last stable offset shows no later abort can overlap (Kafka's
// collectAbortedTxns). Producer snapshots (version 2) hold each producer's
// open transaction and coordinator epoch; version 1 snapshots still load.
// Open rebuilds the transaction index of every segment it rescans (the
// active one always) and of every sealed one whose .txnindex is missing or
// bad, by replaying batches from the newest snapshot at or below the first
// such segment; a transaction that began in segments deleted since (and
// not in a snapshot) cannot be indexed then. TruncateTo drops index entries
// of markers past the cut and rebuilds open transactions with the rest of
// producer state. Retention deletes a segment's .txnindex with it.
//
// # On-disk format
//
// A partition directory holds:
//
//	00000000000000000000.log        batches exactly as received, base offset and
//	                                partition leader epoch (and for LogAppendTime
//	                                topics the max timestamp and CRC) rewritten
//	00000000000000000000.index      sparse offset index: (offset - base uint32,
//	                                position uint32) big endian, one entry each
//	                                time more than index.interval.bytes were written
//	00000000000000000000.timeindex  (max timestamp so far int64, offset - base
//	                                uint32) at the same points, plus a final entry
//	                                with the segment's max timestamp when sealed
//	00000000000000000000.txnindex   aborted transactions whose abort marker is in
//	                                the segment, Kafka's 34-byte entries (version
//	                                int16 0, producer id, first offset, marker
//	                                offset, last stable offset: int64s, big
//	                                endian); written with the other indexes,
//	                                empty when nothing was aborted
//	<offset>.snapshot               producer state as of offset (written at rolls
//	                                and at Close), CRC32C protected, with open
//	                                transactions (producer.go has the format)
//	leader-epoch-checkpoint         "0\n<n>\n<epoch> <start offset>\n"...
//	log-start-offset, recovery-point  "0\n<offset>\n"
//	remote-end                      "0\n<offset>\n": every offset below is in
//	                                the remote tier (absent: none is)
//	high-watermark                  "0\n<offset>\n": replicated mode's high
//	                                watermark (a lower bound; absent: never
//	                                replicated)
//	truncate-to                     "0\n<offset>\n": a TruncateTo in progress;
//	                                Open finishes it, then removes the file
//	.clean-shutdown                 present only between Close and the next Open
//	cleaner-offset-checkpoint       "0\n<offset>\n": compaction's first dirty offset
//	remote-cleaner-checkpoint       where the next compaction pass over the remote tier starts, and the
//	                                earliest delete deadline of a tombstone it kept (compact_export.go)
//	<base>.*.cleaned, <base>.*.swap  a compaction swap in progress (see Compaction)
//
// Segment files are named by their base offset zero-padded to 20 digits.
// Checkpoints and snapshots are replaced atomically (temporary file, fsync,
// rename, directory fsync); index files are replaced by rename too, so a
// crash never leaves a truncated index that still looks plausible. Other
// files in the directory (the broker's partition.metadata) are left alone.
//
// Indexes live in memory as slices; they are written when a segment is
// sealed (by the flusher) and at Close, and loaded at Open for sealed
// segments, or rebuilt from the .log when missing or inconsistent.
//
// # Invariants
//
//   - Offsets are dense and monotonic: Append assigns LEO, LEO+1, ...; every
//     batch's base offset is the previous batch's last offset + 1, across
//     segments, and recovery truncates rather than leave a gap. Compaction
//     removes records and whole batches inside sealed segments but never
//     changes an offset, and each segment's last batch still ends where the
//     next segment begins.
//   - Nothing acknowledged is lost: WaitDurable returns only after the bytes
//     of every offset below its argument were fdatasync'ed, and after the
//     directory was fsynced when a segment file they live in was created.
//     With relaxed flushing (flush.messages > 1) durability is the flush
//     policy's and the caller's acks decide what that means.
//   - Recovery keeps exactly a prefix of well-formed, CRC-valid batches of
//     the active segment (and, after an unclean shutdown, of every segment
//     from the recovery point on), so every byte a reader gets passed CRC
//     validation when it was appended or at recovery.
//   - The high watermark (durable end in safe mode, LEO when relaxed) never
//     decreases, except by TruncateTo and, in replicated mode, by a
//     follower's SetHighWatermark; it never exceeds the log end, and in
//     safe mode a leader's (AdvanceHighWatermark) never exceeds the durable
//     end. Read never returns bytes past the log end, nor a partial batch.
//   - TruncateTo is all or nothing across crashes: the recovery point is
//     lowered to the cut segment and the truncate-to marker made durable
//     before any byte goes; the marker is removed only after the cut, the
//     removal of producer snapshots past it, the epoch and high watermark
//     checkpoints are durable. Open finishes a cut it finds marked. So no
//     record at or past the cut survives, and a stale snapshot or high
//     watermark never describes records written after it.
//   - Bytes of a segment file below its size never change while the segment
//     is in the log, except that TruncateTo shortens the active segment (as
//     in Kafka: a reader holding a range past the cut may read short; the
//     broker cuts only above the high watermark, where consumers do not
//     read).
//   - A segment's file is closed only when the log and every ReadResult
//     (or SegmentFiles) that references it have let go; deleting a segment
//     only unlinks it.
//   - With remote storage on, a segment is deleted locally only when it lies
//     wholly below the remote end, i.e. after its upload is recorded in the
//     remote manifest, and the remote end is checkpointed before it is used:
//     every offset is always on local disk or recorded remotely. (Offsets
//     below the log start are deleted in both tiers and exempt.)
//   - LogStartOffset <= LocalLogStartOffset <= LogEndOffset. The log start
//     lies below the first local segment only while the remote end reaches
//     that segment; Open enforces this from the checkpoints (an unreadable
//     remote-end checkpoint keeps the log start and deletes nothing more:
//     offering deleted offsets beats forgetting tiered ones).
//   - The leader epoch history is trimmed only when the log start moves,
//     never when local segments go, so it keeps describing remote offsets.
//   - Offsets are never reassigned: an empty log whose remote end lies past
//     its end restarts there at Open (this also finishes a ResetEmpty cut
//     short by a crash).
//
// # Concurrency
//
// A Log is safe for concurrent use. It owns one goroutine, the flusher,
// started by Open and stopped and waited for by Close.
//
//   - mu serializes writers: Append, AppendReplicated, TruncateTo,
//     AssignLeaderEpoch, roll, EnforceRetention, DeleteRecordsBefore,
//     SetRemoteEnd, ResetEmpty, SetConfig, Close. Producer state and the
//     write scratch are mu-only.
//   - segMu (RWMutex) guards what readers see: the segment list, each
//     segment's size, indexes and timestamps, LEO, log start offset, the
//     remote end, the epoch history, each segment's transaction index and
//     the transactions holding the last stable offset back (published with
//     the log end they belong to, before any high watermark advance that
//     covers them). Writers hold mu and take segMu
//     exclusively only to publish (after the write system call), so readers (Read,
//     OffsetForTimestamp, EpochForOffset...) never wait for disk I/O of an
//     append. Readers take segMu shared for a few in-memory lookups and do
//     their preads without it, holding a segment reference instead.
//   - flushMu serializes fsync rounds (flusher, Sync, Close); TruncateTo
//     holds it across the cut so no round publishes sizes or a durable end
//     from before it.
//   - hwCkptMu serializes writes of the high watermark checkpoint (the
//     flusher after a round, TruncateTo, Close), so an older value never
//     overwrites a newer one.
//   - fmu guards the durable frontier, the high watermark, its mode and
//     replicated target, its wakeups (Changed) and the sticky failure.
//     AdvanceHighWatermark and SetHighWatermark hold segMu shared around
//     it, so the log end they cap at cannot move under them.
//   - cleanMu serializes Compact; it is held across a whole cleaning, which
//     reads and writes files without mu and takes mu only to swap a group
//     of segments in (and to read producer state and write its checkpoint).
//
// Lock order: cleanMu -> mu -> flushMu -> hwCkptMu -> segMu -> fmu. No
// lock is held across a blocking wait; WaitDurable holds none while it
// waits.
//
// Group commit: in safe mode every Append pokes the flusher; a flush round
// snapshots LEO and the segments with unsynced bytes under segMu, fsyncs
// them without locks, then advances the durable frontier to that LEO and
// wakes every waiter at once. Appends that arrive during a round are covered
// by the next one, so N concurrent producers share far fewer than N fsyncs.
// An fsync error is sticky: the log reports it from then on (the kernel may
// have dropped the dirty pages) and must be reopened, which recovers it.
//
// # Testing crashes
//
// The flush path's fsyncs go through a small seam (syncer). Tests install
// a model that records what each fdatasync and directory fsync covered,
// abandon the Log without closing it, then cut the files down to what a
// power failure would have kept before reopening; another test SIGKILLs a
// child process mid-append. Both check that every offset WaitDurable
// acknowledged survives with a valid CRC. TruncateTo has step hooks
// (Log.testHook): tests stop it at each step in process and SIGKILL a child
// at each step, then check that recovery ends at exactly the cut. Compact's
// segment swap has hooks the same way (compactStep*).
package storage

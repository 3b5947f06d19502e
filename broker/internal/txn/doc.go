// Package txn is Strata's transaction coordinator: InitProducerId,
// AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, ListTransactions and
// DescribeTransactions, behaving on the wire as Apache Kafka's
// TransactionCoordinator does, with transaction timeouts and transactional
// id expiry. The broker wires it in broker/txn_topic.go.
//
// It is a pure component over kmsg requests and responses, with four
// injected seams: Log (the __transaction_state partitions: durable append
// and replay), ProducerIDs (cluster-unique producer ids), MarkerWriter
// (WriteTxnMarkers to the partition leaders) and Clock. Records use Kafka's
// TransactionLog schema (key v0; value v0, or flexible v1 for transactions
// v2 clients), so Kafka's tools can read the topic. PartitionFor maps a
// transactional id to its partition exactly as Kafka does.
//
// # State machine
//
// Each transactional id is Empty, Ongoing, PrepareCommit, PrepareAbort,
// CompleteCommit, CompleteAbort or Dead, numbered as in Kafka:
//
//   - InitProducerId creates an id (new producer id, epoch 0) or bumps the
//     epoch of a completed one, which fences every older producer
//     (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH before KIP-588). An
//     exhausted epoch rotates to a new producer id. A v3+ request's
//     producer id/epoch (KIP-360) must be the current one, the previous
//     epoch (a retry: the same answer again) or, after a rotation, the
//     previous id with its exhausted epoch. An Ongoing transaction is
//     aborted first with the epoch bumped, and the caller gets
//     CONCURRENT_TRANSACTIONS until the abort has completed.
//   - AddPartitionsToTxn / AddOffsetsToTxn move Empty or Complete* to
//     Ongoing (recording the start time) or add to an Ongoing transaction.
//   - EndTxn writes PrepareCommit/PrepareAbort and answers; the coordinator
//     then writes the markers through MarkerWriter, retrying every
//     RetryBackoff until they succeed, and writes CompleteCommit/Abort.
//     Meanwhile requests get CONCURRENT_TRANSACTIONS. Retrying the same
//     outcome succeeds; the other outcome is INVALID_TXN_STATE.
//   - Transactions v2 (KIP-890 part 2): partition leaders add partitions
//     for Produce v12 with AddPartitionsToTxn v5 (not VerifyOnly), which
//     records the transaction as v2. EndTxn v5 bumps the epoch at every
//     commit or abort (the markers carry the bumped epoch, so partition
//     logs refuse the old one) and answers the producer id and epoch to use
//     next; an exhausted epoch moves the producer to a new id once the
//     transaction completes. A v5 EndTxn at the epoch before the bump is a
//     retry (recognised from the durable record, so after a failover too);
//     a commit so retried against an abort is PRODUCER_FENCED
//     (KAFKA-20785). Requests of the next transaction (its epoch is the
//     bumped one) get CONCURRENT_TRANSACTIONS until the markers are
//     written. A v5 abort with nothing in the transaction bumps the epoch
//     and writes no markers. v1 clients keep the v1 rules, per
//     transactional id.
//   - A timer aborts Ongoing transactions older than their timeout, bumping
//     the epoch (Kafka's PrepareEpochFence, never written: the PrepareAbort
//     record carries the bumped epoch), and another writes tombstones for
//     completed ids unused for transactional.id.expiration.ms (Dead is the
//     state of an id whose tombstone is being written).
//   - LoadPartition replays a partition; transactions found in Prepare*
//     get their markers written and complete (coordinator failover).
//     Ongoing ones wait for their producer or their timeout.
//
// # Invariants
//
//   - Memory never gets ahead of the log: a transition is built as a new
//     value, written, and applied only once Log.Append returned nil. While
//     it is being written the id is pending and every other request for it
//     gets CONCURRENT_TRANSACTIONS, so each id has at most one append in
//     flight and the log's last record per id always equals memory.
//   - A failed write changes nothing (an id created by that
//     InitProducerId is forgotten again); the caller gets the Kafka error
//     (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, ...; see errorCode).
//   - Markers of a prepared transaction are written before its Complete
//     record, with the epoch of the Prepare record.
//
// # Concurrency
//
// One loop goroutine owns every transaction. API methods hand it a
// closure over a bounded channel and wait for its reply; replies that
// depend on an append are parked until the append completes. Appends,
// marker writes and producer id allocation run off the loop (they block);
// appends and marker writes report back as events on an unbounded queue,
// as do timers from the injectable Clock. Producer ids are allocated by
// the calling goroutine between two loop steps. Unload and Close cancel
// the contexts of in-flight appends and marker writes; Close waits for
// every goroutine, so nothing is left running.
//
// # Differences from Apache Kafka
//
//   - Transactions v2 is taken from the request version (EndTxn v5,
//     AddPartitionsToTxn v5 adding); there is no cluster-wide
//     transaction.version check here (the broker finalizes it, fixed).
//   - Rotation to a new producer id happens when the bumped epoch would be
//     MaxInt16-1 (Kafka: when the epoch before the bump is), so the
//     fence bump of a timeout never overflows.
//   - A failed epoch fence leaves the epoch unchanged (Kafka keeps the bump
//     in memory); the next attempt bumps it again from the durable value.
//   - ListTransactions patterns are Go RE2 expressions, not Java regexes.
//   - Producer id allocation failures answer COORDINATOR_LOAD_IN_PROGRESS
//     (retriable), as Kafka does while it has no id block.
package txn

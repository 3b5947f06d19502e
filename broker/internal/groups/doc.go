// Package groups is Strata's classic consumer-group coordinator: the
// JoinGroup / SyncGroup / Heartbeat / LeaveGroup rebalance protocol, offset
// commits and fetches, and the group admin APIs (DescribeGroups,
// ListGroups, DeleteGroups, OffsetDelete), behaving on the wire as Apache
// Kafka's GroupCoordinator does.
//
// It is a pure component: it takes and returns kmsg request/response
// values and persists through the Log seam, which the broker implements on
// the __consumer_offsets partitions. Records use Kafka's own schema
// (OffsetCommitKey/Value, GroupMetadataKey/Value), so Kafka tooling can read
// the topic, and Load replays it at startup. PartitionFor maps a group to
// its partition exactly as Kafka does.
//
// # State machine
//
// Each group is Empty, PreparingRebalance, CompletingRebalance, Stable or
// Dead, with Kafka's transitions:
//
//   - A join to an Empty group starts PreparingRebalance, held open for the
//     initial rebalance delay (extended while new members keep arriving, up
//     to the rebalance timeout). Otherwise the join phase ends as soon as
//     every member (and every member id handed out with MEMBER_ID_REQUIRED)
//     has rejoined, or after the largest rebalance timeout, when dynamic
//     members that did not rejoin are removed.
//   - Ending the join phase bumps the generation, selects the protocol every
//     member supports with the most first-choice votes, and answers all
//     parked JoinGroups; only the leader gets the members' metadata.
//   - CompletingRebalance waits for the leader's SyncGroup. Its assignment
//     is written as a GroupMetadataValue; once durable the group is Stable
//     and every parked SyncGroup gets its bytes, exactly as sent (missing
//     members get an empty assignment). Members that never send SyncGroup
//     within the rebalance timeout are removed and the group rebalances.
//   - Session timeouts remove members (members parked in JoinGroup or
//     SyncGroup count as alive; new members are bounded by the new-member
//     join timeout). Leaving, expiring or changing metadata triggers a
//     rebalance; heartbeats answer REBALANCE_IN_PROGRESS meanwhile.
//   - Static members (group.instance.id, KIP-345) that come back with an
//     unknown member id take over their old entry under a new id, fencing
//     the old id (FENCED_INSTANCE_ID); in a Stable group this needs no
//     rebalance.
//   - Dead is transient here: a group being deleted until its tombstones are
//     durable (a failed delete returns it to Empty).
//
// # Invariants
//
//   - Memory never gets ahead of the log: a commit, an assignment, a
//     deletion takes effect in memory only after Log.Append returned nil,
//     and a failed write leaves the state as it was and answers the Kafka
//     error (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE or
//     UNKNOWN_SERVER_ERROR; see errorCode).
//   - Appends to one partition are issued, and their completions applied,
//     in the order the coordinator queued them, so replaying the log
//     reproduces memory. Deletions tombstone offsets whose commits are
//     still in flight too.
//   - Member metadata and assignments are opaque bytes, copied on the way in
//     and passed through unchanged.
//
// # Concurrency
//
// One loop goroutine owns every group. API methods hand it a closure over
// a bounded channel and wait for the reply; calls that must wait (JoinGroup,
// SyncGroup, OffsetCommit, deletions) park a reply function in the group
// and return when it fires, when their ctx ends, or when the coordinator
// closes. Replies never block the loop. Timers (from the injectable Clock)
// and append completions come back as events on an unbounded queue, which
// the loop drains before each request. One writer goroutine per
// __consumer_offsets partition calls Log.Append, combining queued records
// into one append. Close cancels everything and waits for the loop and the
// writers; nothing is left running.
//
// # Differences from Apache Kafka
//
//   - JoinGroup v9 SkipAssignment is always false: a static leader rejoining
//     a Stable group gets the previous leader id (the v8 behaviour).
//   - Parked calls that Kafka would leave unanswered (a JoinGroup or
//     SyncGroup superseded by a retry, or whose member is removed) are
//     answered with REBALANCE_IN_PROGRESS or UNKNOWN_MEMBER_ID so no
//     caller hangs.
//   - TxnOffsetCommit offsets stay pending per producer id until the broker
//     reports the transaction's marker (CompleteTxn); a later plain
//     OffsetCommit of the same partition is overwritten by a committed
//     transaction (Kafka compares log offsets of the two appends). A
//     TxnOffsetCommit with one oversized metadata fails as a whole
//     (Kafka commits the other partitions).
//   - DeleteGroups and offset expiry wait for their tombstones to be durable
//     and report write errors (Kafka answers first and logs them).
//   - OffsetDelete answers NONE for every eligible partition, also those
//     without an offset (Kafka 2.x behaviour; 3.x omits them).
//   - Protocol-selection ties are broken by join order, not hash order.
package groups

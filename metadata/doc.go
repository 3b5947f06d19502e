// Package metadata is Strata's cluster metadata: a Raft replicated state
// machine (hashicorp/raft, raft-boltdb for the log and stable store, file
// snapshots) holding the cluster id, registered brokers, topics by name and
// by UUID, their partitions (replicas, ISR, leader, leader epoch, partition
// epoch), the remote manifest of each tiered partition (the segments
// uploaded to object storage, and the remote log start offset), the next
// free producer id, and the security state: ACL bindings, SCRAM credentials
// and client quotas. It plays the part of Kafka's KRaft controller quorum;
// the Raft leader is the active controller.
//
// This version runs one voter (in-memory transport, no port) or a TCP
// transport that already works for several voters. Broker fencing, ISR
// changes and membership changes arrive as new command types later.
//
// Remote manifests are plain data here: this package does not import
// tiering; the broker adapts tiering.ManifestStore to RemoteManifest,
// AddRemoteSegment and RemoveRemoteSegments. They live in the Raft state,
// so a restart loads them from the snapshot instead of replaying history.
//
// # Files
//
//   - types.go: public types, sentinel errors, Config, ValidTopicName.
//   - command.go: the versioned command envelope (the on-disk log format).
//   - fsm.go: the state, command handlers, snapshots.
//   - remote.go: remote manifests: records, their commands' rules, the
//     Store methods.
//   - security.go: ACLs, SCRAM credentials, client quotas: records, their
//     commands' rules, the Store methods, SecurityVersion.
//   - store.go: Store: Raft wiring, proposals, reads, lifecycle.
//   - transport.go: Raft transports; a TCP stream layer, optionally mutual
//     TLS (Config.TLS), that closes the connections it accepted (Raft's own
//     leaves their goroutines running).
//   - internal/raftlog: hclog -> slog bridge for Raft's own logging.
//
// # Invariants
//
//   - The FSM is deterministic: the outcome of a command depends only on the
//     state and the command bytes. Anything random (cluster id, topic id) or
//     time-dependent is decided by the proposer and carried in the command.
//     A rejected command (say ErrTopicExists) is still in the log; every
//     replica rejects it the same way and changes nothing.
//   - Commands are envelopes {type uint16, version uint16, payload}. Payloads
//     are decoded strictly. An entry of an unknown type, or of a version newer
//     than this binary knows, makes the FSM panic with a message naming the
//     entry: a replica that skipped it would silently diverge, and stopping
//     is the lesser harm. Upgrade all voters before using new commands.
//   - Snapshots are the full state in a versioned JSON document; Restore
//     replaces the state entirely and refuses (with an error, not a panic)
//     a format it does not know. Format 2 adds remote manifests to format 1,
//     format 3 adds the security state to format 2; Persist writes the
//     oldest format that holds the state, and all three are read.
//   - Security values are concrete and checked by the FSM (ACL codes that
//     name one resource type, pattern, operation and permission; SCRAM
//     mechanism and iteration bounds; quota entities, keys and finite
//     values). SecurityVersion, a process-local counter, increases after
//     every applied security change and every snapshot restore.
//   - Records in the state are immutable; a change replaces the record.
//   - A command, once handed to Raft, runs to completion. Callers' contexts
//     bound only how long they wait for the result: a caller that gives up
//     gets ctx's error and the command may still be applied. Never derive a
//     Raft timeout from a caller's deadline.
//   - A remote manifest is sorted and contiguous (each segment starts at
//     the previous LastOffset+1), its segment ids are unique, and its log
//     start offset never decreases and covers every removed segment.
//     Adding a segment is idempotent by id; removal takes only the oldest
//     segments, so no hole can appear. Only existing partitions have one:
//     DeleteTopic drops a topic's manifests.
//   - Producer ids are handed out in disjoint, increasing blocks, also across
//     restarts (the counter is in the replicated state).
//   - A fresh directory is bootstrapped once (raft.HasExistingState); a
//     restart resumes from the latest snapshot plus the log tail and never
//     re-bootstraps. The first leader of a fresh cluster proposes InitCluster
//     with a random Kafka-style id (22 characters of base64url); later
//     InitClusters are no-ops, so the first committed id wins.
//
// # Concurrency
//
// Raft applies entries on its own FSM goroutine, which is the only writer of
// the state. A sync.RWMutex guards the state pointer and the Watch channel;
// readers take the read lock and copy out, so callers own what they get (a
// remote manifest, which may be long, is copied after the unlock: its record
// is immutable). Watch channels are closed under the write lock after each
// change, manifest and security changes included; the security version is
// bumped under the same lock, before the Watch channel closes.
//
// Store.run (one goroutine, owned by the Store) reacts to leadership: after
// becoming leader it issues a Raft barrier so the whole log is applied, then
// initializes the cluster id if needed, then marks the store ready.
//
// Each write is proposed from a short-lived goroutine that blocks on the Raft
// future, so the caller can stop waiting on ctx. Close first refuses new
// proposals and lets those goroutines finish (hashicorp/raft would not
// resolve futures still queued for the FSM at shutdown), then shuts Raft
// down, waits for run, and closes the bolt store. After Close no goroutine
// of this package remains.
package metadata

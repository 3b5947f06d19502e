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
// A single node runs one voter on the in-memory transport (no port). With
// a Raft address the store runs over TCP (optionally mutual TLS) and forms
// a quorum across processes, as KRaft does: controllers (Config.Roles) are
// the voters listed in Config.Voters (ParseVoters reads KRaft's
// controller.quorum.voters), and a broker-only node joins as a Raft
// non-voter, so it receives and applies the committed log locally: that is
// how brokers follow the metadata. Every Store write works on any node: a
// node that does not lead forwards the encoded command to the leader over
// the Raft port and gets the FSM's verdict back. Voters are added and
// removed by an administrator (AddVoter, RemoveServer; nothing is removed
// automatically); DescribeQuorum reports the quorum for Kafka's API 55.
//
// Broker registration with incarnations and endpoints, fencing, ISR
// changes (AlterPartition), leader elections, reassignments and controlled
// shutdown are commands (cluster.go) whose decisions are pure functions
// (controller.go: elections, placement, and the leader-only heartbeat
// tracker, which like Kafka's never enters the log). Brokers heartbeat to
// the active controller (BrokerHeartbeat, forwarded to the leader); the
// controller loop (heartbeat.go) fences a broker whose heartbeats stop for
// Config.BrokerSessionTimeout and unfences one that heartbeats again.
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
//     Store methods; remote_replace.go: the one-command swap of rewritten
//     (compacted) remote segments (ReplaceRemoteSegments).
//   - heartbeat.go: broker heartbeats and the active controller's fencing
//     loop (leader-only memory, never in the log).
//   - security.go: ACLs, SCRAM credentials, client quotas: records, their
//     commands' rules, the Store methods, SecurityVersion.
//   - cluster.go: broker registrations (v2: incarnation, endpoints,
//     fencing), fencing/unfencing, AlterPartition, ElectLeaders,
//     reassignments, controlled shutdown: records, rules, snapshot part,
//     Store methods.
//   - controller.go: controller decisions as pure functions (leader
//     election, ISR shrink, reassignment completion, PlaceReplicas) and
//     HeartbeatTracker.
//   - heartbeat.go: BrokerHeartbeat, IsActiveController, and the active
//     controller loop that fences and unfences brokers by their sessions.
//   - store.go: Store: Raft wiring, bootstrap, reads, lifecycle.
//   - quorum.go: roles and voters (ParseRoles, ParseVoters), proposals
//     that reach the leader from any node, membership changes, the
//     non-voter join loop, DescribeQuorum.
//   - forward.go: the forwarding protocol (versioned, length-prefixed
//     frames), its server and client.
//   - transport.go: Raft transports; a TCP stream layer, optionally mutual
//     TLS (Config.TLS), that closes the connections it accepted (Raft's own
//     leaves their goroutines running) and dials from the bind IP when
//     that is a specific address (so peers and proxies see each node's own
//     address); the mux that shares the Raft port with forwarding by the
//     first byte of each connection.
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
//     format 3 adds the security state to format 2, format 4 adds broker
//     registrations (incarnations, endpoints, fencing) and reassignments;
//     Persist writes the oldest format that holds the state, and all four
//     are read.
//   - Partitions: the leader is -1 or an ISR member that is registered,
//     unfenced and not shutting down; the ISR is a subset of the replicas
//     and never shrinks below one member (the last one stays, leaderless);
//     LeaderEpoch increases on every change of leader (to and from -1
//     too), PartitionEpoch on every change of replicas, ISR or leader, so
//     no (partition, leader epoch) ever names two leaders. A RegisterBroker
//     (v1) broker starts unfenced and never expires; a RegisterBrokerV2
//     broker starts fenced, and a new incarnation replaces (and fences)
//     the old one.
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
//   - A fresh directory of a voter is bootstrapped once
//     (raft.HasExistingState) with the configured voters, addresses exactly
//     as given, so that every voter writes the same first entry; a restart
//     resumes from the latest snapshot plus the log tail and never
//     re-bootstraps. A non-voter never bootstraps: it starts empty and
//     asks the leader to add it (idempotently, at every start). The first leader of a fresh cluster proposes InitCluster
//     with a random Kafka-style id (22 characters of base64url); later
//     InitClusters are no-ops, so the first committed id wins.
//   - Forwarding never makes an outcome up. A refusal before anything
//     was written (not the leader, nobody reachable) is retried, following
//     leader changes, until the caller's deadline (30 s without one); then
//     the error is ErrNotLeader. A proposal whose fate is unknown (the
//     leader lost leadership or the connection after taking it) is not
//     retried, since it might apply twice: it fails with ErrNotLeader
//     saying it may still be applied, as a local leadership loss does.
//     The leader decodes a forwarded command before appending it, so a
//     command it does not know is refused, never logged. A forwarding node
//     returns only once it has applied the entry itself (or its caller's
//     context ended), so its own reads see its writes.
//   - Broker sessions: a heartbeat never writes the log; it is answered
//     from the leader's applied state, and only once that leader has
//     applied the whole log in its term (a barrier), so a lagging new
//     leader never calls a registered broker stale. A new leader gives
//     every broker a full session timeout before fencing it; only a
//     heartbeat it received itself unfences a broker, never the grace
//     period, and never one in controlled shutdown. Fence and unfence
//     commands name the incarnation they judged, and are proposed only on
//     the leader that judged it (never forwarded to its successor).
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
// On a controller node, the controller loop (one goroutine, owned by the
// Store, ended by Close) wakes every max(50ms, min(1s, session timeout/8)),
// on Raft leader observations (its own observer) and when a heartbeat
// finds the leader not ready; it does nothing unless this node leads. It
// proposes through Store.do like any write. The HeartbeatTracker has its
// own mutex; heartbeats touch it from forwarding or caller goroutines.
//
// Each write is proposed from a short-lived goroutine that blocks on the Raft
// future, so the caller can stop waiting on ctx. Close first refuses new
// proposals and lets those goroutines finish (hashicorp/raft would not
// resolve futures still queued for the FSM at shutdown), then shuts Raft
// down, waits for run, and closes the bolt store. After Close no goroutine
// of this package remains.
//
// The TCP transport's mux (transport.go) owns an accept goroutine and one
// goroutine per accepted connection until its first byte is read; a
// forwarded request is served on that goroutine and waits on Raft only
// through do, so Raft's Shutdown, which closes the mux and waits for its
// goroutines, cannot deadlock with it. Forwarding clients run on their
// caller's goroutine; DescribeQuorum polls replicas on goroutines it waits
// for. A broker-only node runs a join goroutine owned by the Store. After
// draining, Close cancels a stop context that ends forwarding waits and
// the join loop.
package metadata

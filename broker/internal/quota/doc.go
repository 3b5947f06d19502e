// Package quota enforces Kafka client quotas (KIP-13, KIP-55, KIP-124,
// KIP-219, KIP-612) for one broker: it measures usage and says how long a
// client must be throttled; the broker puts that in throttle_time_ms and
// mutes the connection for as long (KIP-219), or closes a connection that
// came too fast.
//
// # Entities and precedence
//
// Quotas come from the metadata (AlterClientQuotas) through Update, keyed by
// entity. For the byte-rate and request-time keys the entity is a user, a
// client-id, or both, each either a name or <default>. For one key, the
// first entity that has that key wins, most specific first:
//
//	user + client-id, user + <default> client-id, user,
//	<default> user + client-id, <default> user + <default> client-id, <default> user,
//	client-id, <default> client-id
//
// A key missing at one level falls through to the next even if the entity
// has other keys (each key resolves on its own, as in Kafka, where every
// quota type has its own manager).
//
// Usage is counted per sensor, identified like Kafka's quota metric tags:
// the user and/or client-id of the resolved entity's shape, filled with the
// client's actual names. All clients of a user share the sensor of a user
// quota; every user under a <default> user quota has a sensor of its own.
//
// connection_creation_rate is per IP: the exact IP's quota, else the
// <default> IP's.
//
// # Measuring a rate
//
// A sensor keeps Samples windows of Window each (Kafka's quota.window.num=11
// and quota.window.size.seconds=1), plus one. A window opens at the first
// record after the previous one closed. The rate is the usage of the
// windows not yet a full span (Samples*Window) old, divided by the time
// since the oldest of them opened, but never by less than Samples-1 whole
// windows, so that a new client's first burst is spread over the span
// instead of over its first millisecond.
//
// When the observed rate O exceeds the quota T after recording, the
// throttle is the time needed for O to fall back to T with nothing more
// recorded: (O-T)/T times the measured span, rounded to milliseconds.
// Units: producer_byte_rate and consumer_byte_rate in bytes/s;
// request_percentage in percent of one thread's time per second (handler
// time d counts as d/1s*100); connection_creation_rate in connections/s.
// Caps: byte-rate throttles at the full span (Kafka does not cap them; an
// uncapped throttle after one huge request can outlast the usage it
// punishes); request-time throttles at one Window, as Kafka's
// ClientRequestQuotaManager does. A connection over its IP quota is
// refused and not counted.
//
// # Changes and expiry
//
// Update keeps a sensor's history when its tags still have a quota (the
// bound changes in place) and drops sensors left without one. Cached
// resolutions are discarded, so a client whose quota moved to another
// entity counts in that entity's sensor from its next request. Cached
// clients unused for an hour are dropped, then sensors unused for an hour
// that no cached client still holds, by a sweep that a request runs at
// most once a minute; client-id churn therefore cannot grow memory without
// bound. There is no goroutine to stop.
//
// # Concurrency
//
// All methods are safe for concurrent use. The quota snapshot is an atomic
// pointer: when no entity has a key, recording for that key is one atomic
// load and nothing else. Otherwise a call takes the manager's read lock for
// one map lookup of the cached (user, client-id) resolution, then the
// sensor's mutex; resolving a new client takes the write lock once. Lock
// order: Manager.mu before sensor.mu. No call allocates once a client is
// cached.
package quota

// Package bench measures a Strata broker against the limits of the
// machine it runs on; cmd/strata-bench is its command and `make bench`
// runs that.
//
// One run first measures three ceilings on this machine: loopback TCP
// between two Go sockets, sendfile(2) from a page-cached file to a
// loopback socket, and sequential writes with an fsync per MiB on the
// filesystem of the broker's data dir. It then starts bin/strata as a
// real process (or uses one given with --brokers), creates topics with
// kadm, loads them with franz-go producers and reads them back with a
// franz-go consumer, and prints every figure as a ratio of the ceiling it
// is bounded by, with the aims of the issue marked met or not met.
//
// Invariants the figures rely on:
//   - Limits and broker figures come from the same run, so a busy or slow
//     machine lowers both and the ratios stay comparable.
//   - Throughput is acknowledged record bytes over the time from the first
//     send to the last acknowledgement; records still in flight at the
//     deadline are waited for and counted, never dropped from the tally.
//   - Latency is per record, from handing it to the client to its promise,
//     in a log-linear histogram accurate to 1%; quantiles are reported at
//     the top of their bucket, so an aim met by the report is met by the
//     raw values too.
//   - A row with failed records or an incomplete read-back never meets an
//     aim.
//
// Concurrency: each producer is one kgo client driven by one goroutine,
// with a fixed set of reusable records (slots) as its window; the client
// calls promises serially, and a mutex hands each producer's statistics
// to the goroutine that merges them after Flush. Runs happen one at a
// time, so they do not compete with each other for the two CPUs of a
// small machine; the broker process and the bench always do (and in the
// cold-read run, the S3 server too). The raw GET measurement runs
// ColdGetConcurrency goroutines taking ranges from one channel, with a
// mutex around the shared tallies.
//
// The cold-read run (coldread.go) checks the remote tier: it starts
// versitygw (an S3 server, posix backend) on loopback and a broker tiering
// to it, produces a topic with small segments and local.retention.bytes=0,
// waits until ListOffsets -4 (earliest local) equals the end offset in
// every partition, stops the broker, measures raw ranged GETs of the same
// segment objects with the AWS SDK, restarts the broker on the same data
// dir with an empty remote cache, and times one consumer reading the
// tiered range. Object-store requests come from the broker's /metrics,
// scraped around each phase; the bound admin address is read from the
// broker's log (it listens on port 0).
//
// The cluster run (cluster.go, clustermeta.go) starts three bin/strata
// processes forming one cluster (each a broker and a metadata quorum
// voter), runs the same acks=all load on a replication-factor-1 topic and
// on an RF=3 one, then kills the leader of a single-partition RF=3 topic
// with SIGKILL while one producer writes to it, and times the kill to the
// first write acknowledged after it (by the new leader, the old one being
// gone), restarting the killed broker on its data dir between rounds. It
// polls Metadata with raw requests, to a chosen broker where it must know
// that every broker has applied a change. During the failover rounds one
// goroutine produces every 2 ms; the client's promise goroutine records
// the first acknowledgement after a kill in a mutex-guarded watch and
// closes a channel the round waits on; a third goroutine polls Metadata
// for the new leader until the round stops it.
//
// Nothing imports this package; it imports no Strata package either, and
// talks to the broker only as users and operators do: the Kafka protocol,
// the admin listener's /metrics, and the bucket through the S3 API.
package bench

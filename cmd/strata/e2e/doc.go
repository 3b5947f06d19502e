// Package e2e tests the strata binary as users meet it: a real process on
// a loopback port with its own data directory, driven by unmodified Kafka
// clients (franz-go kgo and kadm, Sarama, segmentio/kafka-go, librdkafka
// through kcat) and by raw TCP for bad input.
//
// The package has only tests. TestMain builds bin/strata once (or uses
// E2E_STRATA_BIN, as `make test-e2e` does); every test starts its own
// broker, so tests run in parallel and never share state. The broker's
// log goes to a file that is printed when a test fails. Tiering tests
// (tiering_test.go) also start their own S3 server, versitygw, through
// tiering/s3test, and look at the bucket through its directory.
//
// Cluster tests (cluster_*_test.go) run three broker processes, each on
// its own loopback IP (127.0.0.11-13), with every inter-node connection
// (Raft and replication) going through a fault proxy (faultproxy_test.go)
// that tells nodes apart by source IP and can cut one off; test clients
// connect directly. They kill -9 partition leaders and the active
// controller, isolate a leader, stop and restart the whole cluster, and
// run transactions across brokers; a ledger of every Metadata answer
// checks that no two brokers ever lead one partition under one epoch.
// They do not run in parallel with each other (tight session timeouts on
// a small machine).
//
// Invariants the tests pin down: bytes read back are the bytes written
// (keys, values, headers, order per partition) for every codec; group
// members share partitions exactly once and resume from committed
// offsets; an acknowledged record survives kill -9 (also in the middle of
// segment uploads, and of a cluster's leaders and controller); tiered data reads back identical from the bucket, an
// outage of the store loses nothing, a corrupt object is an error and
// never wrong bytes, and no object is leaked; bad input gets a
// Kafka error code or a closed connection and never stops the broker
// from serving others; configuration mistakes exit 2 naming the key.
//
// Tests wait for conditions by polling with a deadline, never by fixed
// sleeps, and every test has a hard deadline through its context.
package e2e

// Package broker is the Strata server: the Kafka listener, one handler file
// per Kafka API (api_*.go, each opening with the versions it serves and how
// it differs from Apache Kafka), the replica manager that keeps partition
// logs in step with the metadata quorum, the group coordinator wiring and
// fetch sessions. It is the only package that wires proto, storage,
// metadata and tiering together.
//
// Invariants: a request is answered in the order it arrived on its
// connection; a produce is acknowledged (acks 1 or all) only once its
// batches are durable; bad input gets a Kafka error code or a closed
// connection and a log line, never a crash.
//
// Concurrency: per connection one reader goroutine (decodes and runs each
// handler's synchronous part in order) and one writer goroutine (sends
// replies in order, waiting for deferred ones); deferred work runs in
// goroutines owned by the connection. Lock order is in DESIGN.md.
package broker

// Package s3test runs a real S3-compatible server for tests: versitygw
// (github.com/versity/versitygw) with its posix backend, on a free loopback
// port, serving one bucket from a temporary directory. `make deps-test`
// installs it with `go install github.com/versity/versitygw/cmd/versitygw@v1.8.0`.
//
// Start skips the test when versitygw cannot be found, unless the
// environment has CI=true: CI must not silently skip the S3 tests.
//
// Objects live as plain files under Dir/Bucket/<key>, which lets fault tests
// corrupt or remove an object behind the server's back (BucketDir).
//
// # Concurrency and lifecycle
//
// A Server belongs to the test that started it; Stop and Start may be
// called from that test's goroutines (they are serialized) to simulate an
// outage. The process is killed at t.Cleanup, and with the test binary if it
// dies (Linux parent-death signal).
package s3test

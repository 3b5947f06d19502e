// Command strata runs a Strata broker.
//
// `strata serve` turns configuration into a broker.Config and runs a
// broker.Server until SIGINT or SIGTERM; `strata version` prints the
// version stamped in at build time. `strata
// topics|groups|cluster|tiering|users|acls|quotas` is the admin CLI
// (admin*.go): a Kafka client (kadm) talking to any broker given by
// --bootstrap or STRATA_BOOTSTRAP, over TLS and SASL when asked, printing
// tables or --output json.
//
// Configuration comes from four layers, highest first: --set key=value,
// the other flags, STRATA_* environment variables, a YAML file given by
// --config, and broker.DefaultConfig. One table (configKeys in keys.go)
// lists every key with the Config field it sets; parsing, env and flag
// binding, --help and the README's config reference are all generated
// from it, and a test keeps the README in step.
//
// Invariants: a configuration mistake (unknown key, bad value, unusable
// data dir) exits with code 2 and a message naming the key or path,
// before anything listens; nothing else in the repository reads the
// environment or flags. Only this package and its tests use viper.
//
// Concurrency: main runs the loader once, then blocks in Server.Run; the
// signal context is the only thing shared with the broker.
package main

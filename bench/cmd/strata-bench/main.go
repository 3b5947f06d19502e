// Command strata-bench measures this machine's limits and a Strata broker
// against them; `make bench` runs it. See bench/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/strata-broker/strata/bench"
)

func main() {
	cfg := bench.DefaultConfig()
	fs := flag.NewFlagSet("strata-bench", flag.ExitOnError)
	brokers := fs.String("brokers", "", "`host:port,...` of a running broker to load instead of starting bin/strata (one mode only)")
	fs.StringVar(&cfg.ExternalMode, "external-mode", cfg.ExternalMode, "how the --brokers broker is configured, for the aims: safe, page-cache or external (unknown)")
	fs.StringVar(&cfg.BrokerBin, "broker-bin", cfg.BrokerBin, "broker binary to start (built from ./cmd/strata when missing)")
	modes := fs.String("modes", strings.Join(cfg.Modes, ","), "modes to start the broker in: safe, page-cache")
	fs.StringVar(&cfg.DataRoot, "data-root", cfg.DataRoot, "directory for broker data dirs and the limit files (put it on the broker's disk)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of each produce run")
	sizes := fs.String("sizes", joinInts(cfg.RecordSizes), "record value sizes in bytes, comma separated")
	partitions := fs.Int("partitions", int(cfg.Partitions), "partitions per topic")
	fs.IntVar(&cfg.Producers, "producers", cfg.Producers, "concurrent producer clients in throughput runs")
	fs.IntVar(&cfg.WindowBytes, "window-bytes", cfg.WindowBytes, "bytes of records awaiting acknowledgement per producer")
	fs.IntVar(&cfg.LatencyRate, "latency-rate", cfg.LatencyRate, "records/s of the acks=all latency run (0 skips it)")
	fs.IntVar(&cfg.LatencySize, "latency-size", cfg.LatencySize, "record size of the latency run")
	fs.DurationVar(&cfg.LatencyDuration, "latency-duration", cfg.LatencyDuration, "length of the latency run")
	fs.DurationVar(&cfg.LimitDuration, "limit-duration", cfg.LimitDuration, "length of each machine limit measurement")
	fs.DurationVar(&cfg.ReadyTimeout, "ready-timeout", cfg.ReadyTimeout, "how long a started broker may take to answer")
	fs.DurationVar(&cfg.ConsumeTimeout, "consume-timeout", cfg.ConsumeTimeout, "how long reading one topic back may take")
	fs.BoolVar(&cfg.ColdRead, "cold-read", cfg.ColdRead, "after the modes, run the cold read (broker tiering to a local versitygw S3 server)")
	fs.BoolVar(&cfg.ColdOnly, "cold-only", false, "run only the cold read (no machine limits, no modes)")
	coldMiB := fs.Int64("cold-mib", cfg.ColdBytes/(1<<20), "MiB of 1 KiB records the cold read produces and reads back from the bucket")
	coldParts := fs.Int("cold-partitions", int(cfg.ColdPartitions), "partitions of the cold-read topic")
	fs.Int64Var(&cfg.ColdSegmentBytes, "cold-segment-bytes", cfg.ColdSegmentBytes, "segment.bytes of the cold-read topic")
	fs.IntVar(&cfg.ColdGetConcurrency, "cold-get-concurrency", cfg.ColdGetConcurrency, "raw GETs in flight when measuring the bucket's throughput")
	fs.Int64Var(&cfg.ColdGetRangeBytes, "cold-get-range", cfg.ColdGetRangeBytes, "bytes per raw ranged GET")
	fs.DurationVar(&cfg.ColdTierTimeout, "cold-tier-timeout", cfg.ColdTierTimeout, "how long the cold read waits for every segment to be uploaded and deleted locally")
	fs.StringVar(&cfg.Versitygw, "versitygw", "", "versitygw binary (default: PATH, then $(go env GOPATH)/bin)")
	fs.BoolVar(&cfg.Cluster, "cluster", cfg.Cluster, "after the modes, run the cluster (3 brokers: RF=1 against RF=3 with acks=all, then leader failovers)")
	fs.BoolVar(&cfg.ClusterOnly, "cluster-only", false, "run only the cluster (no machine limits, no modes; with -cold-only, those two)")
	fs.DurationVar(&cfg.ClusterDuration, "cluster-duration", cfg.ClusterDuration, "length of each produce run on the cluster")
	fs.IntVar(&cfg.ClusterLatencyRate, "cluster-latency-rate", cfg.ClusterLatencyRate, "records/s of the fixed-rate run on the cluster, per replication factor (0 skips it)")
	fs.IntVar(&cfg.ClusterFailovers, "cluster-failovers", cfg.ClusterFailovers, "how many times the cluster run kills the partition leader (0 skips failover)")
	fs.DurationVar(&cfg.ClusterSessionTimeout, "cluster-session-timeout", cfg.ClusterSessionTimeout, "broker.session.timeout.ms of the cluster's brokers (Kafka's default is 9s)")
	fs.DurationVar(&cfg.ClusterHeartbeat, "cluster-heartbeat", cfg.ClusterHeartbeat, "broker.heartbeat.interval.ms of the cluster's brokers")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	verbose := fs.Bool("v", false, "log progress at debug level")
	fs.Parse(os.Args[1:])

	var err error
	if cfg.RecordSizes, err = parseInts(*sizes); err != nil {
		fatal("--sizes: %v", err)
	}
	cfg.Partitions = int32(*partitions)
	cfg.ColdBytes = *coldMiB << 20
	cfg.ColdPartitions = int32(*coldParts)
	if *brokers != "" {
		cfg.Brokers = strings.Split(*brokers, ",")
	}
	cfg.Modes = strings.Split(*modes, ",")
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, err := bench.Run(ctx, cfg)
	if report == nil {
		fatal("%v", err)
	}
	if *asJSON {
		err = bench.WriteJSON(os.Stdout, report)
	} else {
		err = bench.WriteTable(os.Stdout, report)
	}
	if err != nil {
		fatal("writing report: %v", err)
	}
	for _, m := range report.Modes {
		if len(m.Errors) > 0 {
			os.Exit(1)
		}
	}
	if c := report.ColdRead; c != nil && len(c.Errors) > 0 {
		os.Exit(1)
	}
	if c := report.Cluster; c != nil && len(c.Errors) > 0 {
		os.Exit(1)
	}
	if ctx.Err() != nil {
		os.Exit(1)
	}
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "strata-bench: "+format+"\n", args...)
	os.Exit(1)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/strata-broker/strata/broker"
)

// cleanEnv hides any STRATA_* variable of the developer's shell from the
// test (and restores it afterwards).
func cleanEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix) {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadDefaults(t *testing.T) {
	cleanEnv(t)
	got, warnings, err := loadOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := defaultOptions()
	if got.Broker.NodeID != want.Broker.NodeID || got.Broker.DataDir != "./data" || got.Broker.Listen != "127.0.0.1:9092" ||
		got.Broker.LogRetentionMs != want.Broker.LogRetentionMs || got.LogLevel != "info" || got.LogFormat != "text" {
		t.Fatalf("defaults changed: got %+v", got)
	}
	if len(warnings) != 0 {
		t.Fatalf("unexpected warnings %v", warnings)
	}
}

func TestLoadLayers(t *testing.T) {
	file := `
node-id: 5
data-dir: /from/file
listen: 127.0.0.1:9001
num.partitions: 2
log.retention.hours: 1
log:
  segment:
    bytes: 2048
  flush.interval.messages: 10
group.initial.rebalance.delay.ms: 0
auto.create.topics.enable: false
log.message.timestamp.type: LogAppendTime
`
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, o options)
	}{
		{
			name: "file only",
			check: func(t *testing.T, o options) {
				b := o.Broker
				if b.NodeID != 5 || b.DataDir != "/from/file" || b.Listen != "127.0.0.1:9001" || b.NumPartitions != 2 {
					t.Errorf("plain keys: %+v", b)
				}
				if b.LogRetentionMs != 3600*1000 {
					t.Errorf("log.retention.hours=1 gave %d ms", b.LogRetentionMs)
				}
				if b.LogSegmentBytes != 2048 || b.LogFlushIntervalMessages != 10 {
					t.Errorf("nested keys: segment %d flush %d", b.LogSegmentBytes, b.LogFlushIntervalMessages)
				}
				if b.GroupInitialRebalanceDelayMs != 0 || b.AutoCreateTopicsEnable || b.LogMessageTimestampType != "LogAppendTime" {
					t.Errorf("flat keys: %+v", b)
				}
				// Set keys are explicit (for STATIC_BROKER_CONFIG), under
				// the name written and the broker's millisecond name.
				for _, k := range []string{"num.partitions", "log.retention.hours", "log.retention.ms", "log.segment.bytes", "node-id"} {
					if !b.ExplicitKeys[k] {
						t.Errorf("ExplicitKeys lacks %s: %v", k, b.ExplicitKeys)
					}
				}
				for _, k := range []string{"log.retention.bytes", "log.roll.ms", "message.max.bytes"} {
					if b.ExplicitKeys[k] {
						t.Errorf("ExplicitKeys has %s, which was not set", k)
					}
				}
			},
		},
		{
			name: "env beats file",
			env:  map[string]string{"STRATA_NUM_PARTITIONS": "3", "STRATA_NODE_ID": "6", "STRATA_LOG_RETENTION_MS": "5000"},
			check: func(t *testing.T, o options) {
				if o.Broker.NumPartitions != 3 || o.Broker.NodeID != 6 {
					t.Errorf("got partitions %d node %d", o.Broker.NumPartitions, o.Broker.NodeID)
				}
				if o.Broker.LogRetentionMs != 5000 {
					t.Errorf("env log.retention.ms should beat file log.retention.hours, got %d", o.Broker.LogRetentionMs)
				}
				if o.Broker.DataDir != "/from/file" {
					t.Errorf("untouched key lost its file value: %q", o.Broker.DataDir)
				}
			},
		},
		{
			name: "flags beat env",
			args: []string{"--node-id", "7", "--data-dir=/from/flag", "--log-level=debug"},
			env:  map[string]string{"STRATA_NODE_ID": "6", "STRATA_DATA_DIR": "/from/env"},
			check: func(t *testing.T, o options) {
				if o.Broker.NodeID != 7 || o.Broker.DataDir != "/from/flag" || o.LogLevel != "debug" {
					t.Errorf("got node %d dir %q level %q", o.Broker.NodeID, o.Broker.DataDir, o.LogLevel)
				}
			},
		},
		{
			name: "--set beats everything",
			args: []string{"--node-id", "7", "--set", "node-id=8", "--set", "num.partitions=4", "--set", "num.partitions=9"},
			env:  map[string]string{"STRATA_NUM_PARTITIONS": "3"},
			check: func(t *testing.T, o options) {
				if o.Broker.NodeID != 8 || o.Broker.NumPartitions != 9 {
					t.Errorf("got node %d partitions %d (last --set wins)", o.Broker.NodeID, o.Broker.NumPartitions)
				}
			},
		},
		{
			name: "finest unit wins within a layer",
			args: []string{"--set", "log.retention.hours=2", "--set", "log.retention.minutes=3", "--set", "log.roll.hours=1"},
			check: func(t *testing.T, o options) {
				if o.Broker.LogRetentionMs != 3*60*1000 {
					t.Errorf("log.retention.minutes should win over hours, got %d ms", o.Broker.LogRetentionMs)
				}
				if o.Broker.LogSegmentMs != 3600*1000 {
					t.Errorf("log.roll.hours=1 gave %d ms", o.Broker.LogSegmentMs)
				}
			},
		},
		{
			name: "minus one hours is unlimited",
			env:  map[string]string{"STRATA_LOG_RETENTION_HOURS": "-1"},
			check: func(t *testing.T, o options) {
				if o.Broker.LogRetentionMs != -1 {
					t.Errorf("got %d", o.Broker.LogRetentionMs)
				}
			},
		},
		{
			name: "empty env is unset",
			env:  map[string]string{"STRATA_NUM_PARTITIONS": ""},
			check: func(t *testing.T, o options) {
				if o.Broker.NumPartitions != 2 {
					t.Errorf("got %d", o.Broker.NumPartitions)
				}
			},
		},
	}
	path := writeFile(t, "strata.yaml", file)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			o, _, err := loadOptions(append([]string{"--config", path}, tc.args...))
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

func TestLoadConfigFileFromEnv(t *testing.T) {
	cleanEnv(t)
	t.Setenv(envConfigFile, writeFile(t, "s.yaml", "num.partitions: 12\n"))
	o, _, err := loadOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Broker.NumPartitions != 12 {
		t.Fatalf("got %d", o.Broker.NumPartitions)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		file    string // config file content, if any
		args    []string
		env     map[string]string
		wantKey string // ConfigError.Key expected among the errors
		wantMsg string // substring of the whole message
	}{
		{name: "set not a number", args: []string{"--set", "num.partitions=abc"}, wantKey: "num.partitions", wantMsg: `"abc" is not a whole number (from --set)`},
		{name: "set unknown key", args: []string{"--set", "num.partition=3"}, wantKey: "num.partition", wantMsg: "did you mean num.partitions?"},
		{name: "set without value", args: []string{"--set", "num.partitions"}, wantKey: "num.partitions", wantMsg: "key=value"},
		{name: "file unknown key", file: "node-id: 1\nbogus.key: 3\n", wantKey: "bogus.key", wantMsg: "line 2"},
		{name: "file nested unknown key", file: "log:\n  retention:\n    weeks: 3\n", wantKey: "log.retention.weeks", wantMsg: "unknown config key"},
		{name: "file key set twice", file: "log.segment.bytes: 2048\nlog:\n  segment.bytes: 4096\n", wantKey: "log.segment.bytes", wantMsg: "already set on line 1"},
		{name: "file list value", file: "num.partitions: [1, 2]\n", wantKey: "num.partitions", wantMsg: "single value"},
		{name: "file null value", file: "num.partitions:\n", wantKey: "num.partitions", wantMsg: "no value"},
		{name: "file bad value", file: "message.max.bytes: lots\n", wantKey: "message.max.bytes", wantMsg: "line 1"},
		{name: "file not yaml", file: "num.partitions: [\n", wantKey: "config", wantMsg: "strata.yaml"},
		{name: "file missing", args: []string{"--config", "/nonexistent/strata.yaml"}, wantKey: "config", wantMsg: "/nonexistent/strata.yaml"},
		{name: "env bad value", env: map[string]string{"STRATA_NUM_PARTITIONS": "x"}, wantKey: "num.partitions", wantMsg: "STRATA_NUM_PARTITIONS"},
		{name: "env bad bool", env: map[string]string{"STRATA_AUTO_CREATE_TOPICS_ENABLE": "yes"}, wantKey: "auto.create.topics.enable", wantMsg: "not true or false"},
		{name: "flag bad value", args: []string{"--node-id", "one"}, wantKey: "node-id", wantMsg: "--node-id"},
		{name: "out of range int32", args: []string{"--set", "message.max.bytes=3000000000"}, wantKey: "message.max.bytes", wantMsg: "out of range"},
		{name: "out of range after unit", args: []string{"--set", "log.retention.hours=9223372036854775807"}, wantKey: "log.retention.hours", wantMsg: "out of range"},
		{name: "validate range", args: []string{"--set", "num.partitions=0"}, wantKey: "num.partitions", wantMsg: "must be >= 1"},
		{name: "validate names the key written", args: []string{"--set", "log.retention.hours=0"}, wantKey: "log.retention.hours", wantMsg: "as log.retention.ms"},
		{name: "validate negative node", args: []string{"--node-id=-1"}, wantKey: "node-id", wantMsg: ">= 0"},
		{name: "validate listen", args: []string{"--listen", "nope"}, wantKey: "listen", wantMsg: "host:port"},
		{name: "log level", args: []string{"--log-level", "loud"}, wantKey: "log-level", wantMsg: "loud"},
		// Cluster keys: parse errors here, value checks in broker.Config.Validate.
		{name: "session timeout not a number", env: map[string]string{"STRATA_BROKER_SESSION_TIMEOUT_MS": "9s"}, wantKey: "broker.session.timeout.ms", wantMsg: "STRATA_BROKER_SESSION_TIMEOUT_MS"},
		{name: "unclean election not a bool", args: []string{"--set", "unclean.leader.election.enable=maybe"}, wantKey: "unclean.leader.election.enable", wantMsg: "not true or false"},
		{name: "offsets rf out of range", file: "offsets.topic.replication.factor: 40000\n", wantKey: "offsets.topic.replication.factor", wantMsg: "16-bit"},
		{name: "unknown role", args: []string{"--process-roles", "broker,observer"}, wantKey: "process-roles", wantMsg: "observer"},
		{name: "voter without id", args: []string{"--controller-listen", "127.0.0.1:19092", "--controller-voters", "127.0.0.1:19092"}, wantKey: "controller-voters", wantMsg: "127.0.0.1:19092"},
		{name: "broker-only node without voters", args: []string{"--process-roles", "broker"}, wantKey: "controller-voters", wantMsg: "broker-only"},
		{name: "voters without controller-listen", args: []string{"--controller-voters", "1@127.0.0.1:19092,2@127.0.0.1:19093,3@127.0.0.1:19094"}, wantKey: "controller-listen", wantMsg: "controller-voters"},
		{name: "controller missing from the voters", args: []string{"--node-id=4", "--controller-listen=127.0.0.1:19095", "--controller-voters", "1@127.0.0.1:19092,2@127.0.0.1:19093,3@127.0.0.1:19094"}, wantKey: "controller-voters", wantMsg: "not among the voters"},
		{name: "heartbeat not below session timeout", env: map[string]string{"STRATA_BROKER_HEARTBEAT_INTERVAL_MS": "9000"}, wantKey: "broker.heartbeat.interval.ms", wantMsg: "(from STRATA_BROKER_HEARTBEAT_INTERVAL_MS)"},
		{name: "log format", env: map[string]string{"STRATA_LOG_FORMAT": "xml"}, wantKey: "log-format", wantMsg: "xml"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cleanEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeFile(t, "strata.yaml", tc.file)}, args...)
			}
			_, _, err := loadOptions(args)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tc.wantMsg)
			}
			found := false
			for _, e := range flatten(err) {
				var ce *broker.ConfigError
				if errors.As(e, &ce) && ce.Key == tc.wantKey {
					found = true
				}
			}
			if !found {
				t.Errorf("no ConfigError with key %q in %q", tc.wantKey, err)
			}
		})
	}
}

// TestLoadClusterConfig loads what one node of a three-node cluster is
// given, through each layer, and checks every cluster key lands in its
// broker.Config field and passes validation.
func TestLoadClusterConfig(t *testing.T) {
	cleanEnv(t)
	const voters = "1@127.0.0.1:19092,2@127.0.0.1:19093,3@127.0.0.1:19094"
	file := writeFile(t, "strata.yaml", `
node-id: 2
data-dir: /var/lib/strata
listeners: PLAINTEXT://127.0.0.1:9093,INTERNAL://127.0.0.1:9193
listener.security.protocol.map: PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT
inter.broker.listener.name: INTERNAL
default.replication.factor: 3
min.insync.replicas: 2
offsets.topic.replication.factor: 3
transaction.state.log.replication.factor: 2
broker:
  rack: eu-west-1b
  session.timeout.ms: 12000
  heartbeat.interval.ms: 1500
replica:
  lag.time.max.ms: 20000
  fetch.max.bytes: 2097152
  fetch.response.max.bytes: 20971520
  fetch.wait.max.ms: 250
  fetch.backoff.ms: 500
unclean.leader.election.enable: true
controlled.shutdown.enable: false
`)
	t.Setenv("STRATA_CONTROLLER_VOTERS", voters)
	o, warnings, err := loadOptions([]string{"--config", file, "--process-roles", "broker,controller", "--controller-listen", "127.0.0.1:19093"})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings %v", warnings)
	}
	b := o.Broker
	for _, c := range []struct {
		key       string
		got, want any
	}{
		{"node-id", b.NodeID, int32(2)},
		{"process-roles", b.ProcessRoles, "broker,controller"},
		{"controller-voters", b.ControllerVoters, voters},
		{"controller-listen", b.ControllerAddr, "127.0.0.1:19093"},
		{"inter.broker.listener.name", b.InterBrokerListenerName, "INTERNAL"},
		{"default.replication.factor", b.DefaultReplicationFactor, int16(3)},
		{"min.insync.replicas", b.MinInsyncReplicas, int32(2)},
		{"offsets.topic.replication.factor", b.OffsetsTopicReplicationFactor, int16(3)},
		{"transaction.state.log.replication.factor", b.TransactionStateLogReplicationFactor, int16(2)},
		{"broker.rack", b.BrokerRack, "eu-west-1b"},
		{"broker.session.timeout.ms", b.BrokerSessionTimeoutMs, int64(12000)},
		{"broker.heartbeat.interval.ms", b.BrokerHeartbeatIntervalMs, int64(1500)},
		{"replica.lag.time.max.ms", b.ReplicaLagTimeMaxMs, int64(20000)},
		{"replica.fetch.max.bytes", b.ReplicaFetchMaxBytes, int32(2097152)},
		{"replica.fetch.response.max.bytes", b.ReplicaFetchResponseMaxBytes, int32(20971520)},
		{"replica.fetch.wait.max.ms", b.ReplicaFetchWaitMaxMs, int32(250)},
		{"replica.fetch.backoff.ms", b.ReplicaFetchBackoffMs, int32(500)},
		{"unclean.leader.election.enable", b.UncleanLeaderElectionEnable, true},
		{"controlled.shutdown.enable", b.ControlledShutdownEnable, false},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.key, c.got, c.want)
		}
		if !b.ExplicitKeys[c.key] {
			t.Errorf("%s is not among the explicitly set keys", c.key)
		}
	}

	// A broker-only node: no controller role, not among the voters, and
	// reachable for the metadata log at its advertised Raft address.
	cleanEnv(t)
	o, _, err = loadOptions([]string{"--node-id=4", "--process-roles=broker", "--controller-voters=" + voters,
		"--controller-listen=0.0.0.0:19095", "--controller-advertised-addr=broker-4.example:19095", "--listen=127.0.0.1:9095"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Broker.ProcessRoles != "broker" || o.Broker.ControllerAdvertisedAddr != "broker-4.example:19095" {
		t.Errorf("broker-only node: roles %q advertised %q", o.Broker.ProcessRoles, o.Broker.ControllerAdvertisedAddr)
	}
}

// TestClusterDefaults pins the defaults operators read in the README:
// Kafka's, and a single node that needs no cluster key at all.
func TestClusterDefaults(t *testing.T) {
	cleanEnv(t)
	o, _, err := loadOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := o.Broker
	if b.ProcessRoles != "broker,controller" || b.ControllerVoters != "" || b.ControllerAddr != "" {
		t.Errorf("a single node should be a combined one-voter quorum with no port: roles %q voters %q listen %q", b.ProcessRoles, b.ControllerVoters, b.ControllerAddr)
	}
	if b.BrokerSessionTimeoutMs != 9000 || b.BrokerHeartbeatIntervalMs != 2000 || b.ReplicaLagTimeMaxMs != 30000 {
		t.Errorf("session %d heartbeat %d lag %d: want Kafka's 9000, 2000, 30000", b.BrokerSessionTimeoutMs, b.BrokerHeartbeatIntervalMs, b.ReplicaLagTimeMaxMs)
	}
	if b.OffsetsTopicReplicationFactor != 3 || b.TransactionStateLogReplicationFactor != 3 || b.DefaultReplicationFactor != 1 || b.MinInsyncReplicas != 1 {
		t.Errorf("replication defaults: offsets %d txn %d default %d min.insync %d", b.OffsetsTopicReplicationFactor, b.TransactionStateLogReplicationFactor, b.DefaultReplicationFactor, b.MinInsyncReplicas)
	}
	if b.UncleanLeaderElectionEnable || !b.ControlledShutdownEnable {
		t.Errorf("unclean election %v controlled shutdown %v: want false, true", b.UncleanLeaderElectionEnable, b.ControlledShutdownEnable)
	}
	for _, name := range []string{"process-roles", "controller-voters", "controller-advertised-addr"} {
		if k := keyIndex[name]; k == nil || !k.flag {
			t.Errorf("%s should be a flag", name)
		}
	}
}

func TestLoadUsageErrors(t *testing.T) {
	cleanEnv(t)
	if _, _, err := loadOptions([]string{"--help"}); !errors.Is(err, pflag.ErrHelp) {
		t.Errorf("--help: got %v", err)
	}
	if _, _, err := loadOptions([]string{"--no-such-flag"}); err == nil || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("unknown flag: got %v", err)
	}
	if _, _, err := loadOptions([]string{"extra"}); err == nil || !strings.Contains(err.Error(), `"extra"`) {
		t.Errorf("positional argument: got %v", err)
	}
}

func TestLoadWarnsOnUnknownEnv(t *testing.T) {
	cleanEnv(t)
	// Kubernetes injects STRATA_PORT and friends for a service named
	// strata: they must not stop the broker.
	t.Setenv("STRATA_PORT", "tcp://10.0.0.1:9092")
	_, warnings, err := loadOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "STRATA_PORT") {
		t.Fatalf("warnings %v", warnings)
	}
}

func TestKeyTable(t *testing.T) {
	for _, k := range configKeys {
		t.Run(k.Name, func(t *testing.T) {
			if k.Doc == "" {
				t.Error("no doc")
			}
			// Every key's default must parse back to itself, or --help
			// and the README would advertise a value the loader rejects.
			o := defaultOptions()
			def := k.defaultString()
			if def == "" {
				return
			}
			if err := setField(&k, &o, def); err != nil {
				t.Fatalf("default %q does not parse: %v", def, err)
			}
			d := defaultOptions()
			if got, want := derefField(k.field(&o)), derefField(k.field(&d)); got != want {
				t.Errorf("default %q parses to %v, want %v", def, got, want)
			}
		})
	}
	if env := keyIndex["log.retention.check.interval.ms"].Env(); env != "STRATA_LOG_RETENTION_CHECK_INTERVAL_MS" {
		t.Errorf("env name %s", env)
	}
	if env := keyIndex["node-id"].Env(); env != "STRATA_NODE_ID" {
		t.Errorf("env name %s", env)
	}
}

func derefField(p any) any {
	switch p := p.(type) {
	case *int16:
		return *p
	case *int32:
		return *p
	case *int64:
		return *p
	case *bool:
		return *p
	case *string:
		return *p
	}
	return nil
}

func TestRun(t *testing.T) {
	cleanEnv(t)
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: "strata dev (go"},
		{name: "no command", args: nil, wantCode: 2, wantStderr: "Usage:"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "serve help", args: []string{"serve", "--help"}, wantCode: 0, wantStdout: "log.retention.check.interval.ms"},
		{name: "serve bad value", args: []string{"serve", "--set", "num.partitions=abc"}, wantCode: 2, wantStderr: "strata: config num.partitions:"},
		{name: "serve two errors", args: []string{"serve", "--set", "num.partitions=0", "--set", "queued.max.requests=0"}, wantCode: 2, wantStderr: "config queued.max.requests"},
		{name: "serve unknown key", args: []string{"serve", "--set", "no.such.key=1"}, wantCode: 2, wantStderr: "no.such.key"},
		{name: "serve unknown flag", args: []string{"serve", "--frob"}, wantCode: 2, wantStderr: "frob"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr %s", code, tc.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tc.wantStdout)
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

package broker

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/storage"
	"github.com/strata-broker/strata/tiering"
)

// Topic configs use Apache Kafka's names, types and ranges. A topic's
// configs in the metadata hold only what was set on the topic; everything
// else falls back to the broker default named by brokerKey.

type configType int8

const (
	typeBool configType = iota + 1
	typeString
	typeInt
	typeShort
	typeLong
	typeDouble
	typeList
)

// kafkaType is the ConfigType enum of DescribeConfigs v3+.
func (t configType) kafkaType() kmsg.ConfigType {
	switch t {
	case typeBool:
		return kmsg.ConfigTypeBoolean
	case typeString:
		return kmsg.ConfigTypeString
	case typeInt:
		return kmsg.ConfigTypeInt
	case typeShort:
		return kmsg.ConfigTypeShort
	case typeLong:
		return kmsg.ConfigTypeLong
	case typeDouble:
		return kmsg.ConfigTypeDouble
	case typeList:
		return kmsg.ConfigTypeList
	}
	return kmsg.ConfigTypeUnknown
}

type topicConfigDef struct {
	name      string
	typ       configType
	brokerKey string                 // the broker-level default's name ("" = fixed default)
	def       func(c *Config) string // broker default
	check     func(v string) error   // beyond type parsing
	doc       string
}

func longMax(*Config) string { return strconv.FormatInt(math.MaxInt64, 10) }

func fixed(v string) func(*Config) string { return func(*Config) string { return v } }

func atLeast(minV float64) func(string) error {
	return func(v string) error {
		f, _ := strconv.ParseFloat(v, 64)
		if f < minV {
			return fmt.Errorf("must be at least %v", minV)
		}
		return nil
	}
}

func oneOf(vals ...string) func(string) error {
	return func(v string) error {
		for _, ok := range vals {
			if v == ok {
				return nil
			}
		}
		return fmt.Errorf("must be one of %s", strings.Join(vals, ", "))
	}
}

func i64(v int64) string { return strconv.FormatInt(v, 10) }

var topicConfigDefs = []topicConfigDef{
	{name: "cleanup.policy", typ: typeList, brokerKey: "log.cleanup.policy", def: fixed("delete"), check: func(v string) error {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "delete" && p != "compact" {
				return fmt.Errorf("must be a list of delete, compact; got %q", p)
			}
		}
		return nil
	}},
	{name: "compression.type", typ: typeString, brokerKey: "compression.type", def: fixed("producer"), check: func(v string) error {
		if err := oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")(v); err != nil {
			return err
		}
		if v != "producer" {
			return fmt.Errorf("broker-side recompression is not supported; only producer is accepted")
		}
		return nil
	}},
	{name: "delete.retention.ms", typ: typeLong, brokerKey: "log.cleaner.delete.retention.ms", def: func(c *Config) string { return i64(c.LogCleanerDeleteRetentionMs) }, check: atLeast(0)},
	{name: "file.delete.delay.ms", typ: typeLong, brokerKey: "log.segment.delete.delay.ms", def: fixed("60000"), check: atLeast(0)},
	{name: "flush.messages", typ: typeLong, brokerKey: "log.flush.interval.messages", def: func(c *Config) string { return i64(c.LogFlushIntervalMessages) }, check: atLeast(1)},
	{name: "flush.ms", typ: typeLong, brokerKey: "log.flush.interval.ms", def: func(c *Config) string { return i64(c.LogFlushIntervalMs) }, check: atLeast(0)},
	{name: "index.interval.bytes", typ: typeInt, brokerKey: "log.index.interval.bytes", def: func(c *Config) string { return i64(int64(c.LogIndexIntervalBytes)) }, check: atLeast(0)},
	{name: "local.retention.bytes", typ: typeLong, brokerKey: "log.local.retention.bytes", def: func(c *Config) string { return i64(c.LogLocalRetentionBytes) }, check: atLeast(-2)},
	{name: "local.retention.ms", typ: typeLong, brokerKey: "log.local.retention.ms", def: func(c *Config) string { return i64(c.LogLocalRetentionMs) }, check: atLeast(-2)},
	{name: "max.compaction.lag.ms", typ: typeLong, brokerKey: "log.cleaner.max.compaction.lag.ms", def: longMax, check: atLeast(1)},
	{name: "max.message.bytes", typ: typeInt, brokerKey: "message.max.bytes", def: func(c *Config) string { return i64(int64(c.MessageMaxBytes)) }, check: atLeast(0)},
	{name: "message.timestamp.type", typ: typeString, brokerKey: "log.message.timestamp.type", def: func(c *Config) string { return c.LogMessageTimestampType }, check: oneOf("CreateTime", "LogAppendTime")},
	{name: "message.timestamp.before.max.ms", typ: typeLong, brokerKey: "log.message.timestamp.before.max.ms", def: longMax, check: atLeast(0)},
	{name: "message.timestamp.after.max.ms", typ: typeLong, brokerKey: "log.message.timestamp.after.max.ms", def: longMax, check: atLeast(0)},
	{name: "min.cleanable.dirty.ratio", typ: typeDouble, brokerKey: "log.cleaner.min.cleanable.ratio", def: fixed("0.5"), check: func(v string) error {
		f, _ := strconv.ParseFloat(v, 64)
		if f < 0 || f > 1 {
			return fmt.Errorf("must be between 0 and 1")
		}
		return nil
	}},
	{name: "min.compaction.lag.ms", typ: typeLong, brokerKey: "log.cleaner.min.compaction.lag.ms", def: fixed("0"), check: atLeast(0)},
	{name: "min.insync.replicas", typ: typeInt, brokerKey: "min.insync.replicas", def: func(c *Config) string { return i64(int64(c.MinInsyncReplicas)) }, check: atLeast(1)},
	{name: "preallocate", typ: typeBool, brokerKey: "log.preallocate", def: fixed("false")},
	{name: "remote.storage.enable", typ: typeBool, brokerKey: "log.remote.storage.enable", def: func(c *Config) string { return strconv.FormatBool(c.RemoteStorageEnable) }},
	{name: "retention.bytes", typ: typeLong, brokerKey: "log.retention.bytes", def: func(c *Config) string { return i64(c.LogRetentionBytes) }, check: atLeast(-1)},
	{name: "retention.ms", typ: typeLong, brokerKey: "log.retention.ms", def: func(c *Config) string { return i64(c.LogRetentionMs) }, check: atLeast(-1)},
	{name: "segment.bytes", typ: typeInt, brokerKey: "log.segment.bytes", def: func(c *Config) string { return i64(c.LogSegmentBytes) }, check: atLeast(14)},
	{name: "segment.index.bytes", typ: typeInt, brokerKey: "log.index.size.max.bytes", def: fixed("10485760"), check: atLeast(4)},
	{name: "segment.jitter.ms", typ: typeLong, brokerKey: "log.roll.jitter.ms", def: fixed("0"), check: atLeast(0)},
	{name: "segment.ms", typ: typeLong, brokerKey: "log.roll.ms", def: func(c *Config) string { return i64(c.LogSegmentMs) }, check: atLeast(1)},
	{name: "unclean.leader.election.enable", typ: typeBool, brokerKey: "unclean.leader.election.enable", def: func(c *Config) string { return strconv.FormatBool(c.UncleanLeaderElectionEnable) }},
}

var topicConfigByName = func() map[string]*topicConfigDef {
	m := make(map[string]*topicConfigDef, len(topicConfigDefs))
	for i := range topicConfigDefs {
		m[topicConfigDefs[i].name] = &topicConfigDefs[i]
	}
	return m
}()

// validateTopicConfig checks one name=value pair as Kafka would.
func validateTopicConfig(name, value string) error {
	d, ok := topicConfigByName[name]
	if !ok {
		return fmt.Errorf("%w: unknown topic config %q", errInvalidConfig, name)
	}
	if err := checkType(d.typ, value); err != nil {
		return fmt.Errorf("%w: %s=%q: %v", errInvalidConfig, name, value, err)
	}
	if d.check != nil {
		if err := d.check(value); err != nil {
			return fmt.Errorf("%w: %s=%q: %v", errInvalidConfig, name, value, err)
		}
	}
	return nil
}

// validateTopicConfigs checks a topic's whole config set: each value, then
// the rules that tie configs together (as Kafka: local retention within
// total retention; tiering cannot be switched off once on). old is the
// current set (nil for a new topic).
func (s *Server) validateTopicConfigs(next, old map[string]string) error {
	for k, v := range next {
		if err := validateTopicConfig(k, v); err != nil {
			return err
		}
	}
	get := func(m map[string]string, name string) string {
		v, _ := s.effectiveConfig(m, topicConfigByName[name])
		return v
	}
	num := func(name string) int64 {
		v, _ := strconv.ParseInt(get(next, name), 10, 64)
		return v
	}
	for _, pair := range [][2]string{{"local.retention.ms", "retention.ms"}, {"local.retention.bytes", "retention.bytes"}} {
		local, total := num(pair[0]), num(pair[1])
		if local != -2 && total != -1 && (local == -1 || local > total) {
			return errInvalidConfigf("%s (%d) must not exceed %s (%d)", pair[0], local, pair[1], total)
		}
	}
	if old != nil && get(old, "remote.storage.enable") == "true" && get(next, "remote.storage.enable") == "false" {
		return errInvalidConfigf("remote.storage.enable cannot be switched off once on; delete the topic instead")
	}
	return nil
}

func checkType(t configType, v string) error {
	var err error
	switch t {
	case typeBool:
		if v != "true" && v != "false" {
			err = fmt.Errorf("not a boolean")
		}
	case typeInt:
		_, err = strconv.ParseInt(v, 10, 32)
	case typeShort:
		_, err = strconv.ParseInt(v, 10, 16)
	case typeLong:
		_, err = strconv.ParseInt(v, 10, 64)
	case typeDouble:
		_, err = strconv.ParseFloat(v, 64)
	}
	if err != nil {
		return fmt.Errorf("not a valid %s", typeName(t))
	}
	return nil
}

func typeName(t configType) string {
	return map[configType]string{typeBool: "boolean", typeString: "string", typeInt: "int", typeShort: "short", typeLong: "long", typeDouble: "double", typeList: "list"}[t]
}

// topicConfig is a topic's effective configuration, parsed once per
// metadata change so hot paths read plain fields.
type topicConfig struct {
	maxMessageBytes   int32
	logAppendTime     bool
	tsBeforeMaxMs     int64
	tsAfterMaxMs      int64
	minInsyncReplicas int32
	cleanupPolicy     string
	compact           *storage.CompactOptions // nil unless cleanup.policy has compact; Now is set per run
	storage           storage.Config
	tier              tiering.PartitionConfig
}

// effectiveConfig resolves one config: the topic's own value, else the
// broker default. source follows DescribeConfigs' ConfigSource.
func (s *Server) effectiveConfig(topicConfigs map[string]string, d *topicConfigDef) (value string, source kmsg.ConfigSource) {
	if v, ok := topicConfigs[d.name]; ok {
		return v, kmsg.ConfigSourceDynamicTopicConfig
	}
	if s.cfg.ExplicitKeys[d.brokerKey] {
		return d.def(&s.cfg), kmsg.ConfigSourceStaticBrokerConfig
	}
	return d.def(&s.cfg), kmsg.ConfigSourceDefaultConfig
}

func (s *Server) topicConfig(configs map[string]string) topicConfig {
	get := func(name string) string {
		v, _ := s.effectiveConfig(configs, topicConfigByName[name])
		return v
	}
	n := func(name string) int64 {
		v, err := strconv.ParseInt(get(name), 10, 64)
		if err != nil { // validated on the way in; a default never fails
			return 0
		}
		return v
	}
	f := func(name string) float64 {
		v, _ := strconv.ParseFloat(get(name), 64)
		return v
	}
	ms := func(name string) time.Duration {
		v := n(name)
		if v >= math.MaxInt64/int64(time.Millisecond) {
			return math.MaxInt64 // Long.MAX_VALUE ms: forever, without overflowing
		}
		return time.Duration(v) * time.Millisecond
	}
	policy := get("cleanup.policy")
	var compact *storage.CompactOptions
	deletes := false
	for _, p := range strings.Split(policy, ",") {
		switch strings.TrimSpace(p) {
		case "compact":
			maxLag := ms("max.compaction.lag.ms")
			if maxLag == math.MaxInt64 {
				maxLag = 0 // the default, Long.MAX_VALUE: no maximum
			}
			compact = &storage.CompactOptions{
				DeleteRetention:        ms("delete.retention.ms"),
				MinCompactionLag:       ms("min.compaction.lag.ms"),
				MaxCompactionLag:       maxLag,
				MinCleanableDirtyRatio: f("min.cleanable.dirty.ratio"),
			}
		case "delete":
			deletes = true
		}
	}
	tc := topicConfig{
		tier: tiering.PartitionConfig{
			RemoteEnabled:       get("remote.storage.enable") == "true",
			RetentionMs:         n("retention.ms"),
			RetentionBytes:      n("retention.bytes"),
			LocalRetentionMs:    n("local.retention.ms"),
			LocalRetentionBytes: n("local.retention.bytes"),
		},
		maxMessageBytes:   int32(n("max.message.bytes")),
		logAppendTime:     get("message.timestamp.type") == "LogAppendTime",
		tsBeforeMaxMs:     n("message.timestamp.before.max.ms"),
		tsAfterMaxMs:      n("message.timestamp.after.max.ms"),
		minInsyncReplicas: int32(n("min.insync.replicas")),
		cleanupPolicy:     policy,
		compact:           compact,
		storage: storage.Config{
			SegmentBytes:        n("segment.bytes"),
			SegmentMs:           n("segment.ms"),
			RetentionBytes:      n("retention.bytes"),
			RetentionMs:         n("retention.ms"),
			FlushMessages:       n("flush.messages"),
			FlushMs:             n("flush.ms"),
			IndexIntervalBytes:  int32(n("index.interval.bytes")),
			SegmentIndexBytes:   int32(n("segment.index.bytes")),
			RemoteEnabled:       get("remote.storage.enable") == "true",
			LocalRetentionBytes: n("local.retention.bytes"),
			LocalRetentionMs:    n("local.retention.ms"),
		},
	}
	if !deletes {
		// cleanup.policy=compact alone: records live until compaction
		// supersedes them, never deleted by age or size (Kafka's rule).
		tc.storage.RetentionMs, tc.storage.RetentionBytes = -1, -1
		tc.tier.RetentionMs, tc.tier.RetentionBytes = -1, -1
	}
	return tc
}

// describeTopicConfigs lists every topic config with its value and source,
// sorted by name, optionally restricted to names.
func (s *Server) describeTopicConfigs(configs map[string]string, names []string, synonyms bool) []kmsg.DescribeConfigsResponseResourceConfig {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for i := range topicConfigDefs {
		d := &topicConfigDefs[i]
		if len(want) > 0 && !want[d.name] {
			continue
		}
		v, src := s.effectiveConfig(configs, d)
		rc := kmsg.NewDescribeConfigsResponseResourceConfig()
		rc.Name = d.name
		rc.Value = kmsg.StringPtr(v)
		rc.Source = src
		rc.IsDefault = src == kmsg.ConfigSourceDefaultConfig
		rc.ConfigType = d.typ.kafkaType()
		if synonyms {
			if tv, ok := configs[d.name]; ok {
				rc.ConfigSynonyms = append(rc.ConfigSynonyms, kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{Name: d.name, Value: kmsg.StringPtr(tv), Source: kmsg.ConfigSourceDynamicTopicConfig})
			}
			if d.brokerKey != "" {
				bsrc := kmsg.ConfigSourceDefaultConfig
				if s.cfg.ExplicitKeys[d.brokerKey] {
					bsrc = kmsg.ConfigSourceStaticBrokerConfig
				}
				rc.ConfigSynonyms = append(rc.ConfigSynonyms, kmsg.DescribeConfigsResponseResourceConfigConfigSynonym{Name: d.brokerKey, Value: kmsg.StringPtr(d.def(&s.cfg)), Source: bsrc})
			}
		}
		out = append(out, rc)
	}
	return out
}

// brokerConfigs are the broker-level settings DescribeConfigs shows for a
// BROKER resource; all read-only (static) in this version.
func (s *Server) brokerConfigs() map[string]string {
	c := &s.cfg
	m := map[string]string{
		"node.id":                                   i64(int64(c.NodeID)),
		"broker.id":                                 i64(int64(c.NodeID)),
		"log.dirs":                                  c.DataDir,
		"num.partitions":                            i64(int64(c.NumPartitions)),
		"default.replication.factor":                i64(int64(c.DefaultReplicationFactor)),
		"auto.create.topics.enable":                 strconv.FormatBool(c.AutoCreateTopicsEnable),
		"delete.topic.enable":                       strconv.FormatBool(c.DeleteTopicEnable),
		"socket.request.max.bytes":                  i64(int64(c.SocketRequestMaxBytes)),
		"log.retention.check.interval.ms":           i64(c.LogRetentionCheckIntervalMs),
		"offsets.topic.num.partitions":              i64(int64(c.OffsetsTopicNumPartitions)),
		"offsets.retention.minutes":                 i64(c.OffsetsRetentionMinutes),
		"group.min.session.timeout.ms":              i64(int64(c.GroupMinSessionTimeoutMs)),
		"group.max.session.timeout.ms":              i64(int64(c.GroupMaxSessionTimeoutMs)),
		"group.initial.rebalance.delay.ms":          i64(int64(c.GroupInitialRebalanceDelayMs)),
		"max.incremental.fetch.session.cache.slots": i64(int64(c.FetchMaxSessions)),
		"connections.max.idle.ms":                   i64(c.ConnectionsMaxIdleMs),
		"queued.max.requests":                       i64(int64(c.QueuedMaxRequests)),
	}
	for i := range topicConfigDefs {
		d := &topicConfigDefs[i]
		if d.brokerKey != "" {
			m[d.brokerKey] = d.def(c)
		}
	}
	return m
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

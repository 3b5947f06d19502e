package main

import (
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/google/uuid"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
)

// configSourceTopic is kmsg.ConfigSourceDynamicTopicConfig: a value set on
// the topic itself, as opposed to a broker default. (cmd may not import
// kmsg; the number is fixed by the protocol.)
const configSourceTopic = 1

var topicCommands = map[string]adminCommand{
	"list": {
		help: "list topics",
		setup: func(*pflag.FlagSet) adminRun {
			return func(ctx context.Context, a *kadm.Client, _ []string) (adminResult, error) { return topicsList(ctx, a) }
		},
	},
	"describe": {
		args: []string{"TOPIC"},
		help: "partitions, leaders, replicas, offsets and the configs set on a topic",
		setup: func(*pflag.FlagSet) adminRun {
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				return topicDescribe(ctx, a, args[0])
			}
		},
	},
	"create": {
		args: []string{"TOPIC"},
		help: "create a topic",
		setup: func(fs *pflag.FlagSet) adminRun {
			partitions := fs.Int32("partitions", -1, "number of partitions (-1: the broker's num.partitions)")
			rf := fs.Int16("replication-factor", -1, "replicas per partition (-1: the broker's default)")
			configs := fs.StringArray("config", nil, "topic config key=value (repeatable)")
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				kvs, err := parseKVs("config", *configs)
				if err != nil {
					return nil, err
				}
				return topicCreate(ctx, a, args[0], *partitions, *rf, kvs)
			}
		},
	},
	"delete": {
		args: []string{"TOPIC"},
		help: "delete a topic and its data",
		setup: func(*pflag.FlagSet) adminRun {
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				return topicDelete(ctx, a, args[0])
			}
		},
	},
	"alter": {
		args: []string{"TOPIC"},
		help: "set or remove topic configs",
		setup: func(fs *pflag.FlagSet) adminRun {
			set := fs.StringArray("set", nil, "config key=value to set (repeatable)")
			del := fs.StringArray("delete", nil, "config key to remove, back to the default (repeatable)")
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				kvs, err := parseKVs("set", *set)
				if err != nil {
					return nil, err
				}
				if len(kvs) == 0 && len(*del) == 0 {
					return nil, usagef("nothing to alter: give --set key=value or --delete key")
				}
				return topicAlter(ctx, a, args[0], kvs, *del)
			}
		},
	},
}

// topicSummary is one row of `topics list`.
type topicSummary struct {
	Name              string `json:"name"`
	ID                string `json:"id"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	Internal          bool   `json:"internal"`
}

type topicListResult struct {
	Topics []topicSummary `json:"topics"`
}

func (r topicListResult) writeTable(w io.Writer) {
	rows := make([][]string, 0, len(r.Topics))
	for _, t := range r.Topics {
		internal := ""
		if t.Internal {
			internal = "yes"
		}
		rows = append(rows, []string{t.Name, itoa(t.Partitions), itoa(t.ReplicationFactor), internal, t.ID})
	}
	table(w, []string{"TOPIC", "PARTITIONS", "RF", "INTERNAL", "ID"}, rows)
}

func topicsList(ctx context.Context, a *kadm.Client) (topicListResult, error) {
	md, err := a.Metadata(ctx)
	if err != nil {
		return topicListResult{}, brokerErr("metadata", err)
	}
	res := topicListResult{Topics: []topicSummary{}}
	for _, td := range md.Topics.Sorted() {
		if td.Err != nil {
			return res, kafkaErr("topic "+td.Topic, td.Err, "")
		}
		res.Topics = append(res.Topics, summarize(td))
	}
	return res, nil
}

func summarize(td kadm.TopicDetail) topicSummary {
	rf := 0
	for _, p := range td.Partitions {
		rf = max(rf, len(p.Replicas))
	}
	return topicSummary{
		Name:              td.Topic,
		ID:                uuid.UUID(td.ID).String(),
		Partitions:        len(td.Partitions),
		ReplicationFactor: rf,
		Internal:          td.IsInternal,
	}
}

type partitionInfo struct {
	Partition      int32   `json:"partition"`
	Leader         int32   `json:"leader"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	Replicas       []int32 `json:"replicas"`
	ISR            []int32 `json:"isr"`
	LogStartOffset int64   `json:"log_start_offset"`
	LogEndOffset   int64   `json:"log_end_offset"`
	Error          string  `json:"error,omitempty"`
}

type topicDescribeResult struct {
	topicSummary
	PartitionInfo []partitionInfo   `json:"partition_details"`
	Configs       map[string]string `json:"configs"` // only those set on the topic
}

func (r topicDescribeResult) writeTable(w io.Writer) {
	fmt.Fprintf(w, "Topic: %s  ID: %s  Partitions: %d  Replication factor: %d\n\n",
		r.Name, r.ID, r.Partitions, r.ReplicationFactor)
	rows := make([][]string, 0, len(r.PartitionInfo))
	for _, p := range r.PartitionInfo {
		rows = append(rows, []string{itoa(p.Partition), itoa(p.Leader), itoa(p.LeaderEpoch), int32List(p.Replicas),
			int32List(p.ISR), offsetString(p.LogStartOffset), offsetString(p.LogEndOffset), p.Error})
	}
	table(w, []string{"PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "LOG-END", "ERROR"}, rows)
	fmt.Fprintln(w)
	if len(r.Configs) == 0 {
		fmt.Fprintln(w, "Configs: none set (broker defaults apply)")
		return
	}
	fmt.Fprintln(w, "Configs:")
	crows := make([][]string, 0, len(r.Configs))
	for _, k := range sortedKeys(r.Configs) {
		crows = append(crows, []string{k, r.Configs[k]})
	}
	table(w, []string{"KEY", "VALUE"}, crows)
}

// topicDetail fetches one topic's metadata, failing for an unknown topic.
func topicDetail(ctx context.Context, a *kadm.Client, topic string) (kadm.TopicDetail, error) {
	md, err := a.Metadata(ctx, topic)
	if err != nil {
		return kadm.TopicDetail{}, brokerErr("metadata", err)
	}
	td, ok := md.Topics[topic]
	if !ok {
		return td, fmt.Errorf("topic %s: not in the broker's metadata", topic)
	}
	if td.Err != nil {
		return td, kafkaErr("topic "+topic, td.Err, "")
	}
	return td, nil
}

// listOffsets returns one offset per partition of a topic from a kadm
// ListOffsets helper (-1 where the broker reported none).
func listOffsets(ctx context.Context, what, topic string,
	list func(context.Context, ...string) (kadm.ListedOffsets, error),
) (map[int32]int64, error) {
	lo, err := list(ctx, topic)
	if err != nil {
		return nil, brokerErr("list "+what+" offsets", err)
	}
	out := map[int32]int64{}
	var ferr error
	lo.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			if ferr == nil {
				ferr = kafkaErr(fmt.Sprintf("list %s offsets %s/%d", what, o.Topic, o.Partition), o.Err, "")
			}
			return
		}
		out[o.Partition] = o.Offset
	})
	return out, ferr
}

func offsetOr(m map[int32]int64, p int32) int64 {
	if v, ok := m[p]; ok {
		return v
	}
	return -1
}

// topicConfigs returns the topic's configs, calling keep to choose.
func topicConfigs(ctx context.Context, a *kadm.Client, topic string, keep func(kadm.Config) bool) (map[string]string, error) {
	rcs, err := a.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return nil, brokerErr("describe configs", err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return nil, brokerErr("describe configs", err)
	}
	if rc.Err != nil {
		return nil, kafkaErr("describe configs "+topic, rc.Err, rc.ErrMessage)
	}
	out := map[string]string{}
	for _, c := range rc.Configs {
		if !keep(c) {
			continue
		}
		v := ""
		if c.Value != nil {
			v = *c.Value
		}
		if c.Sensitive {
			v = "(sensitive)"
		}
		out[c.Key] = v
	}
	return out, nil
}

func topicDescribe(ctx context.Context, a *kadm.Client, topic string) (topicDescribeResult, error) {
	td, err := topicDetail(ctx, a, topic)
	if err != nil {
		return topicDescribeResult{}, err
	}
	start, err := listOffsets(ctx, "start", topic, a.ListStartOffsets)
	if err != nil {
		return topicDescribeResult{}, err
	}
	end, err := listOffsets(ctx, "end", topic, a.ListEndOffsets)
	if err != nil {
		return topicDescribeResult{}, err
	}
	configs, err := topicConfigs(ctx, a, topic, func(c kadm.Config) bool { return c.Source == configSourceTopic })
	if err != nil {
		return topicDescribeResult{}, err
	}
	res := topicDescribeResult{topicSummary: summarize(td), Configs: configs}
	for _, p := range td.Partitions.Sorted() {
		pi := partitionInfo{
			Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
			Replicas: orEmpty(p.Replicas), ISR: orEmpty(p.ISR),
			LogStartOffset: offsetOr(start, p.Partition), LogEndOffset: offsetOr(end, p.Partition),
		}
		if p.Err != nil {
			pi.Error = p.Err.Error()
		}
		res.PartitionInfo = append(res.PartitionInfo, pi)
	}
	return res, nil
}

func orEmpty(v []int32) []int32 {
	if v == nil {
		return []int32{}
	}
	return slices.Clone(v)
}

// topicChange is the result of create, delete and alter.
type topicChange struct {
	Action            string            `json:"action"` // created, deleted, altered
	Topic             string            `json:"topic"`
	ID                string            `json:"id,omitempty"`
	Partitions        int32             `json:"partitions,omitempty"`
	ReplicationFactor int16             `json:"replication_factor,omitempty"`
	Set               map[string]string `json:"set,omitempty"`
	Deleted           []string          `json:"deleted,omitempty"`
}

func (r topicChange) writeTable(w io.Writer) {
	switch r.Action {
	case "created":
		fmt.Fprintf(w, "created topic %s (%d partitions, replication factor %d, id %s)\n",
			r.Topic, r.Partitions, r.ReplicationFactor, r.ID)
	case "altered":
		fmt.Fprintf(w, "altered topic %s\n", r.Topic)
		for _, k := range sortedKeys(r.Set) {
			fmt.Fprintf(w, "  set    %s=%s\n", k, r.Set[k])
		}
		for _, k := range r.Deleted {
			fmt.Fprintf(w, "  delete %s\n", k)
		}
	default:
		fmt.Fprintf(w, "%s topic %s\n", r.Action, r.Topic)
	}
}

func topicCreate(ctx context.Context, a *kadm.Client, topic string, partitions int32, rf int16, configs map[string]string) (topicChange, error) {
	cfg := make(map[string]*string, len(configs))
	for k, v := range configs {
		cfg[k] = &v
	}
	resps, err := a.CreateTopics(ctx, partitions, rf, cfg, topic)
	if err != nil {
		return topicChange{}, brokerErr("create topic", err)
	}
	r, err := resps.On(topic, nil)
	if err != nil {
		return topicChange{}, brokerErr("create topic", err)
	}
	if r.Err != nil {
		return topicChange{}, kafkaErr("create topic "+topic, r.Err, r.ErrMessage)
	}
	return topicChange{Action: "created", Topic: topic, ID: uuid.UUID(r.ID).String(),
		Partitions: r.NumPartitions, ReplicationFactor: r.ReplicationFactor}, nil
}

func topicDelete(ctx context.Context, a *kadm.Client, topic string) (topicChange, error) {
	resps, err := a.DeleteTopics(ctx, topic)
	if err != nil {
		return topicChange{}, brokerErr("delete topic", err)
	}
	r, err := resps.On(topic, nil)
	if err != nil {
		return topicChange{}, brokerErr("delete topic", err)
	}
	if r.Err != nil {
		return topicChange{}, kafkaErr("delete topic "+topic, r.Err, r.ErrMessage)
	}
	return topicChange{Action: "deleted", Topic: topic}, nil
}

func topicAlter(ctx context.Context, a *kadm.Client, topic string, set map[string]string, del []string) (topicChange, error) {
	var alters []kadm.AlterConfig
	for _, k := range sortedKeys(set) {
		v := set[k]
		alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
	}
	for _, k := range del {
		alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
	}
	resps, err := a.AlterTopicConfigs(ctx, alters, topic)
	if err != nil {
		return topicChange{}, brokerErr("alter configs", err)
	}
	r, err := resps.On(topic, nil)
	if err != nil {
		return topicChange{}, brokerErr("alter configs", err)
	}
	if r.Err != nil {
		return topicChange{}, kafkaErr("alter configs "+topic, r.Err, r.ErrMessage)
	}
	return topicChange{Action: "altered", Topic: topic, Set: set, Deleted: del}, nil
}

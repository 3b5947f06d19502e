package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
)

var clusterCommands = map[string]adminCommand{
	"describe": {
		help: "cluster id, controller and brokers",
		setup: func(*pflag.FlagSet) adminRun {
			return func(ctx context.Context, a *kadm.Client, _ []string) (adminResult, error) {
				return clusterDescribe(ctx, a)
			}
		},
	},
}

var tieringCommands = map[string]adminCommand{
	"status": {
		args: []string{"TOPIC"},
		help: "local and remote offset ranges and sizes per partition, and the upload lag",
		setup: func(*pflag.FlagSet) adminRun {
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				return tieringStatus(ctx, a, args[0])
			}
		},
	},
}

type brokerInfo struct {
	ID   int32  `json:"id"`
	Host string `json:"host"`
	Port int32  `json:"port"`
	Rack string `json:"rack,omitempty"`
}

type clusterResult struct {
	ClusterID  string       `json:"cluster_id"`
	Controller int32        `json:"controller"`
	Brokers    []brokerInfo `json:"brokers"`
}

func (r clusterResult) writeTable(w io.Writer) {
	fmt.Fprintf(w, "Cluster ID: %s\nController: %d\n\n", r.ClusterID, r.Controller)
	rows := make([][]string, 0, len(r.Brokers))
	for _, b := range r.Brokers {
		role := ""
		if b.ID == r.Controller {
			role = "controller"
		}
		rows = append(rows, []string{itoa(b.ID), b.Host, itoa(b.Port), b.Rack, role})
	}
	table(w, []string{"BROKER", "HOST", "PORT", "RACK", "ROLE"}, rows)
}

func clusterDescribe(ctx context.Context, a *kadm.Client) (clusterResult, error) {
	md, err := a.BrokerMetadata(ctx)
	if err != nil {
		return clusterResult{}, brokerErr("metadata", err)
	}
	res := clusterResult{ClusterID: md.Cluster, Controller: md.Controller, Brokers: []brokerInfo{}}
	for _, b := range md.Brokers {
		bi := brokerInfo{ID: b.NodeID, Host: b.Host, Port: b.Port}
		if b.Rack != nil {
			bi.Rack = *b.Rack
		}
		res.Brokers = append(res.Brokers, bi)
	}
	return res, nil
}

// Read-only entries the broker adds to a topic's DescribeConfigs answer.
const (
	cfgLocalSize     = "strata.local.size.bytes"
	cfgRemoteSize    = "strata.remote.size.bytes"
	cfgRemoteEnabled = "remote.storage.enable"
	// remoteDirPrefix names the log dir in which the broker reports each
	// partition's size in the object store.
	remoteDirPrefix = "remote:"
)

type tierPartition struct {
	Partition int32 `json:"partition"`
	// Offsets: [LogStart, End) is readable; [LocalStart, End) is on local
	// disk; [LogStart, LatestTiered] is in the object store (-1: nothing).
	LogStart     int64 `json:"log_start_offset"`
	LocalStart   int64 `json:"local_start_offset"`
	LatestTiered int64 `json:"latest_tiered_offset"`
	End          int64 `json:"end_offset"`
	LocalBytes   int64 `json:"local_bytes"`
	RemoteBytes  int64 `json:"remote_bytes"`
	// UploadLag counts offsets not yet in the object store (the active
	// segment always is, until it rolls).
	UploadLag int64 `json:"upload_lag_offsets"`
}

type tieringResult struct {
	Topic         string          `json:"topic"`
	RemoteEnabled bool            `json:"remote_storage_enable"`
	RemoteStore   string          `json:"remote_store,omitempty"`
	LocalBytes    int64           `json:"local_bytes"`
	RemoteBytes   int64           `json:"remote_bytes"`
	Partitions    []tierPartition `json:"partitions"`
}

func (r tieringResult) writeTable(w io.Writer) {
	fmt.Fprintf(w, "Topic: %s  Remote storage: %t  Local: %s  Remote: %s\n", r.Topic, r.RemoteEnabled,
		byteSize(r.LocalBytes), byteSize(r.RemoteBytes))
	if r.RemoteStore != "" {
		fmt.Fprintf(w, "Object store: %s\n", r.RemoteStore)
	}
	fmt.Fprintln(w)
	rows := make([][]string, 0, len(r.Partitions))
	for _, p := range r.Partitions {
		remote := "-"
		if p.LatestTiered >= 0 {
			remote = fmt.Sprintf("%d-%d", p.LogStart, p.LatestTiered)
		}
		local := "-"
		if p.End > p.LocalStart {
			local = fmt.Sprintf("%d-%d", p.LocalStart, p.End-1)
		}
		rows = append(rows, []string{itoa(p.Partition), itoa(p.LogStart), itoa(p.LocalStart), offsetString(p.LatestTiered),
			itoa(p.End), remote, local, byteSize(p.RemoteBytes), byteSize(p.LocalBytes), itoa(p.UploadLag)})
	}
	table(w, []string{"PARTITION", "LOG-START", "LOCAL-START", "LATEST-TIERED", "END", "REMOTE-RANGE", "LOCAL-RANGE",
		"REMOTE-SIZE", "LOCAL-SIZE", "UPLOAD-LAG"}, rows)
}

// byteSize prints exact bytes for small values, and a rounded binary unit
// with the exact count for larger ones, so neither precision nor
// readability is lost.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

func tieringStatus(ctx context.Context, a *kadm.Client, topic string) (tieringResult, error) {
	td, err := topicDetail(ctx, a, topic)
	if err != nil {
		return tieringResult{}, err
	}
	lists := []struct {
		what string
		fn   func(context.Context, ...string) (kadm.ListedOffsets, error)
		into *map[int32]int64
	}{
		{what: "start", fn: a.ListStartOffsets},
		{what: "local start", fn: a.ListLocalLogStartOffsets},
		{what: "latest tiered", fn: a.ListLatestRemoteOffsets},
		{what: "end", fn: a.ListEndOffsets},
	}
	offs := make([]map[int32]int64, len(lists))
	for i, l := range lists {
		if offs[i], err = listOffsets(ctx, l.what, topic, l.fn); err != nil {
			return tieringResult{}, err
		}
	}
	cfg, err := topicConfigs(ctx, a, topic, func(c kadm.Config) bool {
		return c.Key == cfgLocalSize || c.Key == cfgRemoteSize || c.Key == cfgRemoteEnabled
	})
	if err != nil {
		return tieringResult{}, err
	}
	res := tieringResult{Topic: topic, RemoteEnabled: cfg[cfgRemoteEnabled] == "true", Partitions: []tierPartition{}}
	res.LocalBytes, _ = strconv.ParseInt(cfg[cfgLocalSize], 10, 64)
	res.RemoteBytes, _ = strconv.ParseInt(cfg[cfgRemoteSize], 10, 64)

	set := kadm.TopicsSet{}
	set.Add(topic, td.Partitions.Numbers()...)
	dirs, err := a.DescribeAllLogDirs(ctx, set)
	if err != nil {
		return tieringResult{}, brokerErr("describe log dirs", err)
	}
	local, remote := map[int32]int64{}, map[int32]int64{}
	var derr error
	dirs.Each(func(d kadm.DescribedLogDir) {
		if d.Err != nil {
			derr = kafkaErr("describe log dir "+d.Dir, d.Err, "")
			return
		}
		into := local
		if strings.HasPrefix(d.Dir, remoteDirPrefix) {
			into = remote
			res.RemoteStore = strings.TrimPrefix(d.Dir, remoteDirPrefix)
		}
		for _, p := range d.Topics[topic] {
			into[p.Partition] += p.Size
		}
	})
	if derr != nil {
		return tieringResult{}, derr
	}

	for _, p := range td.Partitions.Sorted() {
		tp := tierPartition{
			Partition:    p.Partition,
			LogStart:     offsetOr(offs[0], p.Partition),
			LocalStart:   offsetOr(offs[1], p.Partition),
			LatestTiered: offsetOr(offs[2], p.Partition),
			End:          offsetOr(offs[3], p.Partition),
			LocalBytes:   local[p.Partition],
			RemoteBytes:  remote[p.Partition],
		}
		tp.UploadLag = uploadLag(tp)
		res.Partitions = append(res.Partitions, tp)
	}
	return res, nil
}

// uploadLag is the number of offsets not yet in the object store: all of
// [LogStart, End) when nothing is tiered, else what follows LatestTiered.
func uploadLag(p tierPartition) int64 {
	from := p.LogStart
	if p.LatestTiered >= 0 {
		from = p.LatestTiered + 1
	}
	return max(p.End-from, 0)
}

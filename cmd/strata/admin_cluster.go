package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/strata-broker/strata/broker"
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
	"quorum": {
		help: "the metadata quorum: leader, epoch, high watermark, voters and observers with their lag",
		setup: func(*pflag.FlagSet) adminRun {
			return func(ctx context.Context, a *kadm.Client, _ []string) (adminResult, error) {
				return clusterQuorum(ctx, a)
			}
		},
	},
	"add-voter": {
		args: []string{"ID", "HOST:PORT"},
		help: "make a node that follows the metadata quorum (process-roles=broker) a voter; HOST:PORT is its controller-listen address",
		setup: func(*pflag.FlagSet) adminRun {
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				id, err := parseNodeID(args[0])
				if err != nil {
					return nil, err
				}
				if err := checkRaftAddr(args[1]); err != nil {
					return nil, err
				}
				return addVoter(ctx, a, id, args[1])
			}
		},
	},
	"remove-voter": {
		args: []string{"ID"},
		help: "take a voter out of the metadata quorum",
		setup: func(*pflag.FlagSet) adminRun {
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				id, err := parseNodeID(args[0])
				if err != nil {
					return nil, err
				}
				return removeVoter(ctx, a, id)
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

// quorumReplica is one member of the metadata quorum. Lag is how far its
// log end is behind the leader's (-1: unknown, it did not answer).
type quorumReplica struct {
	ID           int32    `json:"id"`
	Role         string   `json:"role"` // leader, follower or observer
	LogEndOffset int64    `json:"log_end_offset"`
	Lag          int64    `json:"lag"`
	LastFetch    int64    `json:"last_fetch_timestamp_ms"`     // Unix ms, -1 if unknown
	LastCaughtUp int64    `json:"last_caught_up_timestamp_ms"` // Unix ms, -1 if unknown
	Endpoints    []string `json:"endpoints,omitempty"`
}

type quorumResult struct {
	LeaderID      int32           `json:"leader_id"`
	LeaderEpoch   int32           `json:"leader_epoch"`
	HighWatermark int64           `json:"high_watermark"`
	Voters        []quorumReplica `json:"voters"`
	Observers     []quorumReplica `json:"observers"`
	now           time.Time       // for "ago" in the table
}

func (r quorumResult) writeTable(w io.Writer) {
	fmt.Fprintf(w, "Leader: %d  Epoch: %d  High watermark: %d\n\n", r.LeaderID, r.LeaderEpoch, r.HighWatermark)
	ago := func(ms int64) string {
		if ms < 0 {
			return "-"
		}
		return r.now.Sub(time.UnixMilli(ms)).Round(time.Millisecond).String() + " ago"
	}
	rows := make([][]string, 0, len(r.Voters)+len(r.Observers))
	for _, m := range append(append([]quorumReplica{}, r.Voters...), r.Observers...) {
		lag := "-"
		if m.Lag >= 0 {
			lag = itoa(m.Lag)
		}
		endpoints := "-"
		if len(m.Endpoints) > 0 {
			endpoints = strings.Join(m.Endpoints, ",")
		}
		rows = append(rows, []string{itoa(m.ID), m.Role, offsetString(m.LogEndOffset), lag, ago(m.LastFetch), ago(m.LastCaughtUp), endpoints})
	}
	table(w, []string{"NODE", "ROLE", "LOG-END", "LAG", "LAST-FETCH", "LAST-CAUGHT-UP", "ENDPOINTS"}, rows)
}

func clusterQuorum(ctx context.Context, a *kadm.Client) (quorumResult, error) {
	cl, err := kgoClient(ctx)
	if err != nil {
		return quorumResult{}, err
	}
	q, err := broker.AdminDescribeQuorum(ctx, cl)
	if err != nil {
		return quorumResult{}, brokerErr("describe quorum", err)
	}
	return quorumResultOf(q, time.Now()), nil
}

func quorumResultOf(q broker.QuorumDescription, now time.Time) quorumResult {
	leaderEnd := int64(-1)
	for _, v := range q.Voters {
		if v.ID == q.LeaderID {
			leaderEnd = v.LogEndOffset
		}
	}
	conv := func(in []broker.QuorumReplica, voters bool) []quorumReplica {
		out := make([]quorumReplica, 0, len(in))
		for _, m := range in {
			role := "observer"
			switch {
			case voters && m.ID == q.LeaderID:
				role = "leader"
			case voters:
				role = "follower"
			}
			lag := int64(-1)
			if m.LogEndOffset >= 0 && leaderEnd >= 0 {
				lag = max(leaderEnd-m.LogEndOffset, 0)
			}
			out = append(out, quorumReplica{ID: m.ID, Role: role, LogEndOffset: m.LogEndOffset, Lag: lag,
				LastFetch: m.LastFetchTimestamp, LastCaughtUp: m.LastCaughtUpTimestamp, Endpoints: m.Endpoints})
		}
		return out
	}
	return quorumResult{LeaderID: q.LeaderID, LeaderEpoch: q.LeaderEpoch, HighWatermark: q.HighWatermark,
		Voters: conv(q.Voters, true), Observers: conv(q.Observers, false), now: now}
}

// voterChange is the result of add-voter and remove-voter.
type voterChange struct {
	Action string `json:"action"` // added, removed
	ID     int32  `json:"id"`
	Addr   string `json:"addr,omitempty"`
}

func (r voterChange) writeTable(w io.Writer) {
	if r.Addr != "" {
		fmt.Fprintf(w, "%s voter %d at %s\n", r.Action, r.ID, r.Addr)
		return
	}
	fmt.Fprintf(w, "%s voter %d\n", r.Action, r.ID)
}

func addVoter(ctx context.Context, a *kadm.Client, id int32, addr string) (voterChange, error) {
	cl, err := kgoClient(ctx)
	if err != nil {
		return voterChange{}, err
	}
	// The broker waits for the commit as long as this command may.
	var wait time.Duration
	if dl, ok := ctx.Deadline(); ok {
		wait = time.Until(dl)
	}
	if err := broker.AdminAddRaftVoter(ctx, cl, id, addr, wait); err != nil {
		return voterChange{}, brokerErr(fmt.Sprintf("add voter %d at %s", id, addr), err)
	}
	return voterChange{Action: "added", ID: id, Addr: addr}, nil
}

func removeVoter(ctx context.Context, a *kadm.Client, id int32) (voterChange, error) {
	cl, err := kgoClient(ctx)
	if err != nil {
		return voterChange{}, err
	}
	if err := broker.AdminRemoveRaftVoter(ctx, cl, id); err != nil {
		return voterChange{}, brokerErr(fmt.Sprintf("remove voter %d", id), err)
	}
	return voterChange{Action: "removed", ID: id}, nil
}

func parseNodeID(s string) (int32, error) {
	id, err := strconv.ParseInt(s, 10, 32)
	if err != nil || id < 0 {
		return 0, usagef("node id %q: want an integer >= 0", s)
	}
	return int32(id), nil
}

func checkRaftAddr(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return usagef("%q: want HOST:PORT (the node's controller-listen address)", s)
	}
	if p, err := strconv.ParseUint(port, 10, 16); host == "" || err != nil || p == 0 {
		return usagef("%q: want HOST:PORT with a port in 1..65535", s)
	}
	return nil
}

type kgoClientKey struct{}

// withKgoClient hands commands the Kafka client under their kadm client:
// the quorum requests have no kadm call (v1.20).
func withKgoClient(ctx context.Context, cl *kgo.Client) context.Context {
	return context.WithValue(ctx, kgoClientKey{}, cl)
}

// kgoClient is the client withKgoClient attached to ctx.
func kgoClient(ctx context.Context) (*kgo.Client, error) {
	cl, ok := ctx.Value(kgoClientKey{}).(*kgo.Client)
	if !ok || cl == nil {
		return nil, errors.New("no Kafka client in the command's context")
	}
	return cl, nil
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

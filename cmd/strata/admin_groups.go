package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
)

var groupCommands = map[string]adminCommand{
	"list": {
		help: "list consumer groups",
		setup: func(*pflag.FlagSet) adminRun {
			return func(ctx context.Context, a *kadm.Client, _ []string) (adminResult, error) { return groupsList(ctx, a) }
		},
	},
	"describe": {
		args: []string{"GROUP"},
		help: "state, members, committed offsets and lag of a group",
		setup: func(*pflag.FlagSet) adminRun {
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				return groupDescribe(ctx, a, args[0])
			}
		},
	},
	"reset-offsets": {
		args: []string{"GROUP"},
		help: "move a group's committed offsets on a topic (dry run unless --execute)",
		setup: func(fs *pflag.FlagSet) adminRun {
			topic := fs.String("topic", "", "topic whose offsets to reset (required)")
			earliest := fs.Bool("to-earliest", false, "reset to the log start offset")
			latest := fs.Bool("to-latest", false, "reset to the log end offset")
			to := fs.Int64("to-offset", -1, "reset to this offset (clamped to the log's range)")
			execute := fs.Bool("execute", false, "commit the new offsets (default: only print the plan)")
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				spec, err := resetSpecFrom(*topic, *earliest, *latest, fs.Changed("to-offset"), *to)
				if err != nil {
					return nil, err
				}
				return groupResetOffsets(ctx, a, args[0], spec, *execute)
			}
		},
	},
	"delete": {
		args: []string{"GROUP"},
		help: "delete an empty group and its committed offsets",
		setup: func(*pflag.FlagSet) adminRun {
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				return groupDelete(ctx, a, args[0])
			}
		},
	},
}

type groupSummary struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	ProtocolType string `json:"protocol_type"`
	Coordinator  int32  `json:"coordinator"`
}

type groupListResult struct {
	Groups []groupSummary `json:"groups"`
}

func (r groupListResult) writeTable(w io.Writer) {
	rows := make([][]string, 0, len(r.Groups))
	for _, g := range r.Groups {
		rows = append(rows, []string{g.Group, g.State, g.ProtocolType, itoa(g.Coordinator)})
	}
	table(w, []string{"GROUP", "STATE", "PROTOCOL-TYPE", "COORDINATOR"}, rows)
}

func groupsList(ctx context.Context, a *kadm.Client) (groupListResult, error) {
	lg, err := a.ListGroups(ctx)
	if err != nil {
		return groupListResult{}, brokerErr("list groups", err)
	}
	res := groupListResult{Groups: []groupSummary{}}
	for _, g := range lg.Sorted() {
		res.Groups = append(res.Groups, groupSummary{Group: g.Group, State: g.State, ProtocolType: g.ProtocolType, Coordinator: g.Coordinator})
	}
	return res, nil
}

type groupMember struct {
	MemberID   string   `json:"member_id"`
	InstanceID string   `json:"instance_id,omitempty"`
	ClientID   string   `json:"client_id"`
	ClientHost string   `json:"client_host"`
	Assigned   []string `json:"assigned"` // topic/partition
}

type groupOffset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed"` // -1: none
	End       int64  `json:"end"`
	Lag       int64  `json:"lag"` // -1: unknown
	MemberID  string `json:"member_id,omitempty"`
	Error     string `json:"error,omitempty"`
}

type groupDescribeResult struct {
	Group        string        `json:"group"`
	State        string        `json:"state"`
	ProtocolType string        `json:"protocol_type"`
	Protocol     string        `json:"protocol"`
	Coordinator  int32         `json:"coordinator"`
	Members      []groupMember `json:"members"`
	Offsets      []groupOffset `json:"offsets"`
	TotalLag     int64         `json:"total_lag"`
}

func (r groupDescribeResult) writeTable(w io.Writer) {
	fmt.Fprintf(w, "Group: %s  State: %s  Protocol: %s/%s  Coordinator: %d\n\n",
		r.Group, r.State, r.ProtocolType, r.Protocol, r.Coordinator)
	if len(r.Members) == 0 {
		fmt.Fprintln(w, "Members: none")
	} else {
		rows := make([][]string, 0, len(r.Members))
		for _, m := range r.Members {
			rows = append(rows, []string{m.MemberID, m.ClientID, m.ClientHost, strings.Join(m.Assigned, ",")})
		}
		table(w, []string{"MEMBER", "CLIENT-ID", "HOST", "ASSIGNED"}, rows)
	}
	fmt.Fprintln(w)
	if len(r.Offsets) == 0 {
		fmt.Fprintln(w, "Offsets: none committed")
		return
	}
	rows := make([][]string, 0, len(r.Offsets))
	for _, o := range r.Offsets {
		rows = append(rows, []string{o.Topic, itoa(o.Partition), offsetString(o.Committed), offsetString(o.End),
			offsetString(o.Lag), o.MemberID, o.Error})
	}
	table(w, []string{"TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER", "ERROR"}, rows)
	fmt.Fprintf(w, "\nTotal lag: %d\n", r.TotalLag)
}

func groupDescribe(ctx context.Context, a *kadm.Client, group string) (groupDescribeResult, error) {
	lags, err := a.Lag(ctx, group)
	if err != nil {
		return groupDescribeResult{}, brokerErr("describe group", err)
	}
	l, ok := lags[group]
	if !ok {
		return groupDescribeResult{}, fmt.Errorf("describe group %s: missing from the answer", group)
	}
	if l.DescribeErr != nil {
		return groupDescribeResult{}, kafkaErr("describe group "+group, l.DescribeErr, "")
	}
	if l.FetchErr != nil {
		return groupDescribeResult{}, kafkaErr("fetch offsets of group "+group, l.FetchErr, "")
	}
	if l.State == "Dead" && len(l.Members) == 0 && len(l.Lag) == 0 {
		// What a coordinator answers for a group it does not know.
		return groupDescribeResult{}, fmt.Errorf("describe group %s: no such group", group)
	}
	res := groupDescribeResult{
		Group: group, State: l.State, ProtocolType: l.ProtocolType, Protocol: l.Protocol,
		Coordinator: l.Coordinator.NodeID, Members: []groupMember{}, Offsets: []groupOffset{},
	}
	for _, m := range l.Members {
		gm := groupMember{MemberID: m.MemberID, ClientID: m.ClientID, ClientHost: m.ClientHost, Assigned: []string{}}
		if m.InstanceID != nil {
			gm.InstanceID = *m.InstanceID
		}
		if ca, ok := m.Assigned.AsConsumer(); ok {
			for _, t := range ca.Topics {
				for _, p := range t.Partitions {
					gm.Assigned = append(gm.Assigned, fmt.Sprintf("%s/%d", t.Topic, p))
				}
			}
		}
		res.Members = append(res.Members, gm)
	}
	for _, ml := range l.Lag.Sorted() {
		o := groupOffset{Topic: ml.Topic, Partition: ml.Partition, Committed: ml.Commit.At, End: ml.End.Offset, Lag: ml.Lag}
		if ml.Member != nil {
			o.MemberID = ml.Member.MemberID
		}
		if ml.Err != nil {
			o.Error = ml.Err.Error()
		}
		if o.Lag > 0 {
			res.TotalLag += o.Lag
		}
		res.Offsets = append(res.Offsets, o)
	}
	return res, nil
}

// resetSpec says where reset-offsets moves a group.
type resetSpec struct {
	Topic  string
	To     string // earliest, latest, offset
	Offset int64
}

func resetSpecFrom(topic string, earliest, latest, toSet bool, to int64) (resetSpec, error) {
	if topic == "" {
		return resetSpec{}, usagef("--topic is required")
	}
	n := 0
	spec := resetSpec{Topic: topic}
	if earliest {
		n++
		spec.To = "earliest"
	}
	if latest {
		n++
		spec.To = "latest"
	}
	if toSet {
		n++
		if to < 0 {
			return resetSpec{}, usagef("--to-offset must be >= 0")
		}
		spec.To, spec.Offset = "offset", to
	}
	if n != 1 {
		return resetSpec{}, usagef("give exactly one of --to-earliest, --to-latest, --to-offset N")
	}
	return spec, nil
}

// target is where one partition goes, clamped into [start, end] as Kafka's
// tool does.
func (s resetSpec) target(start, end int64) int64 {
	switch s.To {
	case "earliest":
		return start
	case "latest":
		return end
	}
	return min(max(s.Offset, start), end)
}

type resetRow struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Current   int64  `json:"current"` // -1: none committed
	New       int64  `json:"new"`
}

type resetResult struct {
	Group    string     `json:"group"`
	Executed bool       `json:"executed"`
	Plan     []resetRow `json:"partitions"`
}

func (r resetResult) writeTable(w io.Writer) {
	rows := make([][]string, 0, len(r.Plan))
	for _, p := range r.Plan {
		rows = append(rows, []string{p.Topic, itoa(p.Partition), offsetString(p.Current), itoa(p.New)})
	}
	table(w, []string{"TOPIC", "PARTITION", "CURRENT", "NEW"}, rows)
	if r.Executed {
		fmt.Fprintf(w, "\ncommitted the new offsets for group %s\n", r.Group)
	} else {
		fmt.Fprintln(w, "\ndry run: nothing changed; add --execute to commit these offsets")
	}
}

// activeGroupStates are states in which members own the offsets; Kafka's
// tool refuses to reset them too, since the members would overwrite the
// reset with their next commit.
var activeGroupStates = map[string]bool{"Stable": true, "PreparingRebalance": true, "CompletingRebalance": true}

func groupResetOffsets(ctx context.Context, a *kadm.Client, group string, spec resetSpec, execute bool) (resetResult, error) {
	td, err := topicDetail(ctx, a, spec.Topic)
	if err != nil {
		return resetResult{}, err
	}
	start, err := listOffsets(ctx, "start", spec.Topic, a.ListStartOffsets)
	if err != nil {
		return resetResult{}, err
	}
	end, err := listOffsets(ctx, "end", spec.Topic, a.ListEndOffsets)
	if err != nil {
		return resetResult{}, err
	}
	dg, err := a.DescribeGroups(ctx, group)
	if err != nil {
		return resetResult{}, brokerErr("describe group", err)
	}
	if d, ok := dg[group]; ok {
		if d.Err != nil {
			return resetResult{}, kafkaErr("describe group "+group, d.Err, d.ErrMessage)
		}
		if execute && activeGroupStates[d.State] {
			return resetResult{}, fmt.Errorf("group %s is %s with %d member(s): stop its consumers first", group, d.State, len(d.Members))
		}
	}
	committed, err := a.FetchOffsetsForTopics(ctx, group, spec.Topic)
	if err != nil {
		return resetResult{}, brokerErr("fetch offsets", err)
	}

	res := resetResult{Group: group, Plan: []resetRow{}}
	commit := kadm.Offsets{}
	for _, p := range td.Partitions.Sorted() {
		row := resetRow{Topic: spec.Topic, Partition: p.Partition, Current: -1,
			New: spec.target(offsetOr(start, p.Partition), offsetOr(end, p.Partition))}
		if c, ok := committed.Lookup(spec.Topic, p.Partition); ok && c.Err == nil {
			row.Current = c.At
		}
		res.Plan = append(res.Plan, row)
		commit.Add(kadm.Offset{Topic: spec.Topic, Partition: p.Partition, At: row.New, LeaderEpoch: -1})
	}
	if !execute {
		return res, nil
	}
	resps, err := a.CommitOffsets(ctx, group, commit)
	if err != nil {
		return res, brokerErr("commit offsets", err)
	}
	if err := resps.Error(); err != nil {
		return res, kafkaErr("commit offsets of group "+group, err, "")
	}
	res.Executed = true
	return res, nil
}

type groupDeleteResult struct {
	Group   string `json:"group"`
	Deleted bool   `json:"deleted"`
}

func (r groupDeleteResult) writeTable(w io.Writer) { fmt.Fprintf(w, "deleted group %s\n", r.Group) }

func groupDelete(ctx context.Context, a *kadm.Client, group string) (groupDeleteResult, error) {
	r, err := a.DeleteGroup(ctx, group)
	if err != nil {
		return groupDeleteResult{}, brokerErr("delete group "+group, err)
	}
	if r.Err != nil {
		return groupDeleteResult{}, kafkaErr("delete group "+group, r.Err, r.ErrMessage)
	}
	return groupDeleteResult{Group: group, Deleted: true}, nil
}

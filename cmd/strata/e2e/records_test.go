package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// codecs are the compression codecs every client produces with.
var codecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

type header struct {
	Key   string
	Value []byte
}

// rec is a record as the tests compare it, whichever client wrote or read it.
type rec struct {
	Partition int32
	Key       []byte
	Value     []byte
	Headers   []header
}

func (r rec) String() string {
	v := r.Value
	if len(v) > 24 {
		v = v[:24]
	}
	return fmt.Sprintf("p%d key=%q value=%q(%d bytes) headers=%d", r.Partition, r.Key, v, len(r.Value), len(r.Headers))
}

// equal compares bytes, treating nil and empty alike: clients differ in
// which they hand back for an empty field.
func (r rec) equal(o rec) bool {
	if r.Partition != o.Partition || !bytes.Equal(r.Key, o.Key) || !bytes.Equal(r.Value, o.Value) || len(r.Headers) != len(o.Headers) {
		return false
	}
	for i := range r.Headers {
		if r.Headers[i].Key != o.Headers[i].Key || !bytes.Equal(r.Headers[i].Value, o.Headers[i].Value) {
			return false
		}
	}
	return true
}

// makeRecords makes n records spread over partitions, tagged with name
// (used in keys) and with a mix of shapes: compressible text, random
// bytes, a large value, a null key, binary and empty headers.
func makeRecords(name string, n int, partitions int32, seed uint64) []rec {
	rng := rand.New(rand.NewPCG(seed, 0x5157a7a))
	out := make([]rec, 0, n)
	for i := range n {
		r := rec{Partition: int32(i) % partitions, Key: fmt.Appendf(nil, "%s-k%04d", name, i)}
		switch i % 5 {
		case 0:
			r.Value = []byte(strings.Repeat(fmt.Sprintf("%s record %d compresses well; ", name, i), 20))
		case 1:
			r.Value = make([]byte, 10+rng.IntN(500))
			for j := range r.Value {
				r.Value[j] = byte(rng.Uint32())
			}
		case 2:
			r.Key = nil // null key
			r.Value = fmt.Appendf(nil, "%s value %d with a null key", name, i)
		case 3:
			r.Value = fmt.Appendf(nil, "%s value %d", name, i)
			r.Headers = []header{{Key: "trace", Value: []byte{0, 1, 2, 0xff}}, {Key: "empty", Value: []byte{}}}
		case 4:
			r.Value = fmt.Appendf(nil, "%s value %d", name, i)
			r.Headers = []header{{Key: "n", Value: fmt.Appendf(nil, "%d", i)}}
		}
		if i == n/2 {
			// One record much larger than the rest (64 KiB), to cross
			// fetch size boundaries.
			r.Value = bytes.Repeat([]byte(name+" big "), 64<<10/(len(name)+5))
		}
		out = append(out, r)
	}
	return out
}

// byPartition groups records per partition, keeping their order.
func byPartition(rs []rec) map[int32][]rec {
	m := map[int32][]rec{}
	for _, r := range rs {
		m[r.Partition] = append(m[r.Partition], r)
	}
	return m
}

// samePerPartition fails the test unless got holds exactly want, in the
// same order within each partition.
func samePerPartition(t *testing.T, what string, want, got []rec) {
	t.Helper()
	w, g := byPartition(want), byPartition(got)
	parts := map[int32]bool{}
	for p := range w {
		parts[p] = true
	}
	for p := range g {
		parts[p] = true
	}
	bad := 0
	for p := range parts {
		wp, gp := w[p], g[p]
		if len(wp) != len(gp) {
			t.Errorf("%s: partition %d: got %d records, want %d", what, p, len(gp), len(wp))
			bad++
		}
		for i := 0; i < min(len(wp), len(gp)) && bad < 10; i++ {
			if !wp[i].equal(gp[i]) {
				t.Errorf("%s: partition %d record %d:\n got  %v\n want %v", what, p, i, gp[i], wp[i])
				bad++
			}
		}
	}
}

func kgoCodec(name string) kgo.CompressionCodec {
	switch name {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

func toKgo(topic string, r rec) *kgo.Record {
	kr := &kgo.Record{Topic: topic, Partition: r.Partition, Key: r.Key, Value: r.Value}
	for _, h := range r.Headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return kr
}

func fromKgo(kr *kgo.Record) rec {
	r := rec{Partition: kr.Partition, Key: kr.Key, Value: kr.Value}
	for _, h := range kr.Headers {
		r.Headers = append(r.Headers, header{Key: h.Key, Value: h.Value})
	}
	return r
}

// consumed is a record as some group member received it.
type consumed struct {
	Member string
	Offset int64
	rec
}

// collector gathers what group members consume, from many goroutines.
type collector struct {
	mu   sync.Mutex
	recs []consumed
}

func (c *collector) add(member string, offset int64, r rec) {
	c.mu.Lock()
	c.recs = append(c.recs, consumed{Member: member, Offset: offset, rec: r})
	c.mu.Unlock()
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

// since returns what was consumed from index i on.
func (c *collector) since(i int) []consumed {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.recs[i:])
}

func recsOf(cs []consumed) []rec {
	out := make([]rec, len(cs))
	for i, c := range cs {
		out[i] = c.rec
	}
	return out
}

func (c *collector) waitCount(ctx context.Context, t *testing.T, what string, n int) {
	t.Helper()
	waitFor(ctx, t, what, func() (bool, string) {
		got := c.len()
		return got >= n, fmt.Sprintf("%d of %d records", got, n)
	})
}

// groupView is what DescribeGroups says about a group.
type groupView struct {
	State   string
	Members map[string][]int32 // member id -> partitions of the topic, sorted
}

func describeGroup(ctx context.Context, adm *kadm.Client, group, topic string) (groupView, error) {
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return groupView{}, err
	}
	g, err := described.On(group, nil)
	if err != nil {
		return groupView{}, err
	}
	if g.Err != nil {
		return groupView{}, g.Err
	}
	v := groupView{State: g.State, Members: map[string][]int32{}}
	for _, m := range g.Members {
		var ps []int32
		if a, ok := m.Assigned.AsConsumer(); ok {
			for _, at := range a.Topics {
				if at.Topic == topic {
					ps = append(ps, at.Partitions...)
				}
			}
		}
		slices.Sort(ps)
		v.Members[m.MemberID] = ps
	}
	return v, nil
}

// waitBalanced waits until the group is Stable with members members whose
// assignments are all non-empty and cover partitions 0..partitions-1
// exactly once. It returns that view.
func waitBalanced(ctx context.Context, t *testing.T, adm *kadm.Client, group, topic string, members int, partitions int32) groupView {
	t.Helper()
	var view groupView
	waitFor(ctx, t, fmt.Sprintf("group %s balanced over %d members", group, members), func() (bool, string) {
		v, err := describeGroup(ctx, adm, group, topic)
		if err != nil {
			return false, err.Error()
		}
		view = v
		if v.State != "Stable" || len(v.Members) != members {
			return false, fmt.Sprintf("state %s, members %v", v.State, v.Members)
		}
		seen := map[int32]int{}
		for _, ps := range v.Members {
			if len(ps) == 0 {
				return false, fmt.Sprintf("a member has no partition: %v", v.Members)
			}
			for _, p := range ps {
				seen[p]++
			}
		}
		for p := range partitions {
			if seen[p] != 1 {
				return false, fmt.Sprintf("partition %d assigned %d times: %v", p, seen[p], v.Members)
			}
		}
		return len(seen) == int(partitions), fmt.Sprintf("assignments %v", v.Members)
	})
	return view
}

// waitCommitted waits until the group's committed offsets for topic equal
// want (partition -> offset).
func waitCommitted(ctx context.Context, t *testing.T, adm *kadm.Client, group, topic string, want map[int32]int64) {
	t.Helper()
	waitFor(ctx, t, "committed offsets of "+group, func() (bool, string) {
		resps, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return false, err.Error()
		}
		got := map[int32]int64{}
		resps.Each(func(o kadm.OffsetResponse) {
			if o.Topic == topic && o.Err == nil {
				got[o.Partition] = o.At
			}
		})
		for p, w := range want {
			if got[p] != w {
				return false, fmt.Sprintf("got %v, want %v", got, want)
			}
		}
		return true, ""
	})
}

// endOffsets lists the end offset of each partition of topic.
func endOffsets(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	listed, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("ListEndOffsets %s: %v", topic, err)
	}
	out := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			t.Fatalf("ListEndOffsets %s/%d: %v", topic, o.Partition, o.Err)
		}
		out[o.Partition] = o.Offset
	})
	return out
}

func countPerPartition(rs []rec) map[int32]int64 {
	m := map[int32]int64{}
	for _, r := range rs {
		m[r.Partition]++
	}
	return m
}

func createTopic(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, partitions int32, configs map[string]*string) {
	t.Helper()
	resp, err := adm.CreateTopic(ctx, partitions, 1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// checkTakeover checks the records a group consumed after a second member
// joined: exactly the phase-2 records, once each, in partition order, each
// partition read by one member only, starting where the first member
// committed, and both members got some.
func checkTakeover(t *testing.T, after []consumed, phase2 []rec, view groupView, committed map[int32]int64) {
	t.Helper()
	samePerPartition(t, "after the rebalance", phase2, recsOf(after))
	first := map[int32]int64{}
	members := map[string]bool{}
	reader := map[int32]string{}
	for _, c := range after {
		members[c.Member] = true
		if _, ok := first[c.Partition]; !ok {
			first[c.Partition] = c.Offset
		}
		if m, ok := reader[c.Partition]; ok && m != c.Member {
			t.Errorf("partition %d read by both %s and %s after the rebalance", c.Partition, m, c.Member)
		}
		reader[c.Partition] = c.Member
	}
	if len(view.Members) != 2 {
		t.Errorf("group has members %v, want 2", view.Members)
	}
	for p, off := range first {
		if off != committed[p] {
			t.Errorf("partition %d: consumption resumed at offset %d, want the committed %d", p, off, committed[p])
		}
	}
	if len(members) != 2 {
		t.Errorf("after the rebalance records went to members %v, want both", sortedKeys(members))
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

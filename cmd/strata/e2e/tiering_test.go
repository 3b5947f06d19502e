package e2e

// Tiered storage end to end: the broker as a process, versitygw as a real
// S3 server (tiering/s3test), franz-go and kcat as clients. Small
// segment.bytes and local.retention.bytes make segments roll, upload and
// leave the local disk within seconds.
//
// The bucket is inspected through versitygw's directory (s3test.BucketDir):
// every object is a plain file there, which also lets a test corrupt one
// behind the server's back.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/tiering/s3test"
)

// Tiering settings of the test topics: segments of ~20 KB, of which only
// the active one and at most one more stay on local disk once uploaded.
const (
	tierSegmentBytes   = 20000
	tierLocalRetention = 10000
)

// tierBrokerArgs points the broker at the test S3 server. Retention (which
// deletes uploaded local segments) is checked often so tests wait for
// milliseconds, not the 10 s default tick.
func tierBrokerArgs(s3 *s3test.Server) []string {
	return []string{
		"--object-store=" + s3.URL(),
		"--s3-endpoint=" + s3.Endpoint,
		"--s3-region=" + s3test.Region,
		"--s3-path-style=true",
		// Keys have no flags (they belong in the environment or a file);
		// the harness clears STRATA_* variables, so --set it is.
		"--set", "s3-access-key=" + s3.AccessKey,
		"--set", "s3-secret-key=" + s3.SecretKey,
		"--set", "log.retention.check.interval.ms=200",
	}
}

func tierTopicConfigs() map[string]*string {
	return map[string]*string{
		"remote.storage.enable": str("true"),
		"segment.bytes":         str(strconv.Itoa(tierSegmentBytes)),
		"local.retention.bytes": str(strconv.Itoa(tierLocalRetention)),
		"retention.ms":          str("-1"),
	}
}

// tierTopic is what the tests need to know about a topic to find it in the
// bucket and on disk.
type tierTopic struct {
	Name       string
	ID         string // uuid as in object keys
	Cluster    string
	Partitions int32
}

func describeTierTopic(ctx context.Context, t *testing.T, adm *kadm.Client, topic string) tierTopic {
	t.Helper()
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatalf("metadata %s: %v", topic, err)
	}
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		t.Fatalf("metadata %s: %v", topic, td.Err)
	}
	if md.Cluster == "" {
		t.Fatal("Metadata has no cluster id: objects cannot be located")
	}
	return tierTopic{Name: topic, ID: uuid.UUID(td.ID).String(), Cluster: md.Cluster, Partitions: int32(len(td.Partitions))}
}

// tierRecords makes n records per partition with text keys and headers
// (kcat prints those as text) and values that mix random bytes,
// compressible text and, once per partition, a value bigger than a whole
// segment.
func tierRecords(name string, partitions int32, n int, seed uint64) map[int32][]rec {
	rng := rand.New(rand.NewPCG(seed, 0x7ee7))
	out := map[int32][]rec{}
	for p := range partitions {
		rs := make([]rec, n)
		for i := range rs {
			r := rec{
				Partition: p,
				Key:       fmt.Appendf(nil, "%s-p%d-k%05d", name, p, i),
				Headers:   []header{{Key: "n", Value: fmt.Appendf(nil, "%d", i)}},
			}
			switch i % 4 {
			case 0:
				r.Value = make([]byte, 200+rng.IntN(800))
				for j := range r.Value {
					r.Value[j] = byte(rng.Uint32())
				}
			case 1:
				r.Value = []byte(strings.Repeat(fmt.Sprintf("%s %d/%d tiers well; ", name, p, i), 1+rng.IntN(20)))
			case 2:
				r.Key = nil
				r.Value = fmt.Appendf(nil, "%s p%d #%d\nwith a newline and | bars |", name, p, i)
			case 3:
				r.Value = []byte{} // empty, not null
			}
			if i == n/3 {
				r.Value = bytes.Repeat([]byte{byte(p), 0, '\n', 0xff}, (tierSegmentBytes+5000)/4)
			}
			rs[i] = r
		}
		out[p] = rs
	}
	return out
}

// produceTier writes want[p][from:to] for every partition in calls of per
// records per partition, so that each call is a batch of its own and
// segments roll many times. Each call is acknowledged by all in-sync
// replicas before the next one starts.
func produceTier(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, want map[int32][]rec, from, to, per int) {
	t.Helper()
	for i := from; i < to; i += per {
		var krs []*kgo.Record
		for p := range int32(len(want)) {
			for _, r := range want[p][i:min(i+per, to)] {
				krs = append(krs, toKgo(topic, r))
			}
		}
		if err := cl.ProduceSync(ctx, krs...).FirstErr(); err != nil {
			t.Fatalf("produce records %d..%d: %v", i, min(i+per, to), err)
		}
	}
}

func tierProducer(b *brokerProc, codec string) *kgo.Client {
	return b.Client(
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(kgoCodec(codec)),
		kgo.ProducerLinger(0),
	)
}

// listOffsetsAt asks ListOffsets for every partition of topic at ts (-1
// latest, -2 earliest, -4 earliest local, -5 latest tiered).
func listOffsetsAt(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, partitions int32, ts int64) map[int32]int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for p := range partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p
		rp.Timestamp = ts
		rp.CurrentLeaderEpoch = -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("ListOffsets %s at %d: %v", topic, ts, err)
	}
	out := map[int32]int64{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
				t.Fatalf("ListOffsets %s/%d at %d (v%d): %v", topic, rp.Partition, ts, resp.Version, err)
			}
			out[rp.Partition] = rp.Offset
		}
	}
	if len(out) != int(partitions) {
		t.Fatalf("ListOffsets %s at %d: %d partitions answered, want %d", topic, ts, len(out), partitions)
	}
	return out
}

// The bucket, seen through versitygw's directory.

type bucketObject struct {
	Key  string
	Size int64
}

// bucketObjects lists every object of the store (keys relative to the
// store's prefix), skipping versitygw's own temporary files.
func bucketObjects(t *testing.T, s3 *s3test.Server) []bucketObject {
	t.Helper()
	root := filepath.Join(s3.BucketDir(), s3.Prefix)
	var out []bucketObject
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // deleted while walking
			}
			return err
		}
		if strings.HasPrefix(d.Name(), ".sgwtmp") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		out = append(out, bucketObject{Key: filepath.ToSlash(rel), Size: fi.Size()})
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("listing the bucket: %v", err)
	}
	return out
}

// remoteSegment and remoteManifest mirror the manifest copy the broker
// writes to the bucket: the format operators and recovery tools read.
type remoteSegment struct {
	ID         string `json:"id"`
	BaseOffset int64  `json:"baseOffset"`
	LastOffset int64  `json:"lastOffset"`
	Size       int64  `json:"size"`
}

type remoteManifest struct {
	LogStartOffset int64           `json:"logStartOffset"`
	Segments       []remoteSegment `json:"segments"`
}

// end is the offset after the last remote segment, or -1 with none.
func (m remoteManifest) end() int64 {
	if n := len(m.Segments); n > 0 {
		return m.Segments[n-1].LastOffset + 1
	}
	return -1
}

func manifestKey(tt tierTopic, p int32) string {
	return fmt.Sprintf("%s/manifests/%s/%d.json", tt.Cluster, tt.ID, p)
}

// readManifest reads the bucket copy of a partition's manifest; ok is false
// while there is none. A copy is replaced atomically by the server, so a
// torn read is a real failure.
func readManifest(t *testing.T, s3 *s3test.Server, tt tierTopic, p int32) (remoteManifest, bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s3.BucketDir(), s3.Prefix, filepath.FromSlash(manifestKey(tt, p))))
	if errors.Is(err, fs.ErrNotExist) {
		return remoteManifest{}, false
	}
	if err != nil {
		t.Fatalf("manifest copy of %s/%d: %v", tt.Name, p, err)
	}
	var m remoteManifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("manifest copy of %s/%d: %v\n%s", tt.Name, p, err, data)
	}
	return m, true
}

// segmentObject is a segment object's key split into its parts:
// "<hh>/<cluster>/<topicID>/<partition>/<20-digit base>-<upload id>.<kind>".
type segmentObject struct {
	bucketObject
	Partition int32
	Base      int64
	UploadID  string
	Kind      string // log, index, timeindex
}

// segmentObjects lists the segment objects of the topic, by partition.
func segmentObjects(t *testing.T, objs []bucketObject, tt tierTopic) map[int32][]segmentObject {
	t.Helper()
	out := map[int32][]segmentObject{}
	for _, o := range objs {
		parts := strings.Split(o.Key, "/")
		if len(parts) != 5 || parts[1] != tt.Cluster || parts[2] != tt.ID {
			continue
		}
		p, err := strconv.ParseInt(parts[3], 10, 32)
		name := parts[4]
		dot := strings.LastIndexByte(name, '.')
		if err != nil || len(parts[0]) != 2 || dot < 22 || name[20] != '-' {
			t.Errorf("object %s of topic %s has a key outside the layout", o.Key, tt.Name)
			continue
		}
		base, err := strconv.ParseInt(name[:20], 10, 64)
		if err != nil {
			t.Errorf("object %s: base offset: %v", o.Key, err)
			continue
		}
		out[int32(p)] = append(out[int32(p)], segmentObject{
			bucketObject: o, Partition: int32(p), Base: base, UploadID: name[21:dot], Kind: name[dot+1:],
		})
	}
	return out
}

// checkManifestObjects checks that every segment of the manifest has its
// three objects, the .log one of the recorded size. It returns the objects
// of the partition no manifest segment owns.
func checkManifestObjects(t *testing.T, m remoteManifest, objs []segmentObject, what string) (unowned []segmentObject) {
	t.Helper()
	type owner struct {
		base int64
		id   string
	}
	owned := map[owner]remoteSegment{}
	for _, s := range m.Segments {
		owned[owner{s.BaseOffset, s.ID}] = s
	}
	found := map[owner]map[string]int64{}
	for _, o := range objs {
		k := owner{o.Base, o.UploadID}
		if _, ok := owned[k]; !ok {
			unowned = append(unowned, o)
			continue
		}
		if found[k] == nil {
			found[k] = map[string]int64{}
		}
		found[k][o.Kind] = o.Size
	}
	for k, s := range owned {
		kinds := found[k]
		for _, kind := range []string{"log", "index", "timeindex"} {
			if _, ok := kinds[kind]; !ok {
				t.Errorf("%s: manifest segment %d-%s (offsets %d..%d) has no .%s object", what, s.BaseOffset, s.ID, s.BaseOffset, s.LastOffset, kind)
			}
		}
		if size, ok := kinds["log"]; ok && size != s.Size {
			t.Errorf("%s: segment %d-%s: .log object is %d bytes, manifest says %d", what, s.BaseOffset, s.ID, size, s.Size)
		}
	}
	return unowned
}

// localSegments lists the base offsets of a partition's local segment
// files, oldest first.
func localSegments(t *testing.T, b *brokerProc, topic string, p int32) []int64 {
	t.Helper()
	dir := filepath.Join(b.DataDir, "logs", fmt.Sprintf("%s-%d", topic, p))
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("local log of %s/%d: %v", topic, p, err)
	}
	var bases []int64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok || len(name) != 20 {
			continue
		}
		if base, err := strconv.ParseInt(name, 10, 64); err == nil {
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)
	return bases
}

// waitTiered waits until every partition is settled: all sealed segments
// uploaded (the remote tier ends where the active local segment starts),
// the bucket's manifest copy says the same, and local retention has
// removed the oldest local segments. It returns the remote end per
// partition.
func waitTiered(ctx context.Context, t *testing.T, b *brokerProc, s3 *s3test.Server, cl *kgo.Client, tt tierTopic) map[int32]int64 {
	t.Helper()
	var ends map[int32]int64
	waitFor(ctx, t, "tiering of "+tt.Name+" to settle", func() (bool, string) {
		tiered := listOffsetsAt(ctx, t, cl, tt.Name, tt.Partitions, -5)
		local := listOffsetsAt(ctx, t, cl, tt.Name, tt.Partitions, -4)
		ends = map[int32]int64{}
		for p := range tt.Partitions {
			segs := localSegments(t, b, tt.Name, p)
			if len(segs) == 0 {
				return false, fmt.Sprintf("partition %d: no local segment", p)
			}
			active := segs[len(segs)-1]
			if tiered[p]+1 != active {
				return false, fmt.Sprintf("partition %d: latest tiered %d, active local segment starts at %d", p, tiered[p], active)
			}
			if segs[0] == 0 || local[p] != segs[0] {
				return false, fmt.Sprintf("partition %d: earliest local %d, local segments %v", p, local[p], segs)
			}
			m, ok := readManifest(t, s3, tt, p)
			if !ok || m.end() != active {
				return false, fmt.Sprintf("partition %d: bucket manifest copy ends at %d (present %v), want %d", p, m.end(), ok, active)
			}
			ends[p] = active
		}
		return true, ""
	})
	return ends
}

// consumed records with their offsets, per partition.
type offsetRec struct {
	Offset int64
	rec
}

// readKgo reads every partition of topic from offset from[p] until end[p]
// with franz-go and fails on any fetch error.
func readKgo(ctx context.Context, t *testing.T, b *brokerProc, topic string, from, end map[int32]int64) map[int32][]offsetRec {
	t.Helper()
	offs := map[int32]kgo.Offset{}
	for p, o := range from {
		offs[p] = kgo.NewOffset().At(o)
	}
	cl := b.Client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offs}), kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	got := map[int32][]offsetRec{}
	done := func() bool {
		for p, e := range end {
			n := int64(len(got[p]))
			if from[p]+n < e {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("kgo reading %s: %v; got %v records per partition, want up to %v", topic, ctx.Err(), counts(got), end)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Fatalf("kgo fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got[r.Partition] = append(got[r.Partition], offsetRec{r.Offset, fromKgo(r)}) })
	}
	return got
}

func counts(m map[int32][]offsetRec) map[int32]int {
	out := map[int32]int{}
	for p, rs := range m {
		out[p] = len(rs)
	}
	return out
}

// kcatTierFormat prints each record as a text line with the key and value
// lengths (-1 for null), then the raw key and value bytes, then the
// headers: binary-safe for keys and values.
const kcatTierFormat = "%p %o %K %S\n%k%s\n%h\n"

// readKcat reads the topic from the beginning to its end with kcat
// (librdkafka), exiting at the end of every partition.
func readKcat(ctx context.Context, t *testing.T, b *brokerProc, topic string, extra ...string) map[int32][]offsetRec {
	t.Helper()
	kcat := requireKcat(t)
	args := append([]string{"-b", b.Addr, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", kcatTierFormat,
		"-X", "client.id=e2e-kcat-tiering"}, extra...)
	cmd := exec.CommandContext(ctx, kcat, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kcat -C %s: %v\n%s", topic, err, stderr.String())
	}
	got, err := parseKcatTier(out)
	if err != nil {
		t.Fatalf("kcat -C %s: %v", topic, err)
	}
	return got
}

func parseKcatTier(out []byte) (map[int32][]offsetRec, error) {
	got := map[int32][]offsetRec{}
	rd := bufio.NewReader(bytes.NewReader(out))
	readN := func(n int64) ([]byte, error) {
		if n < 0 {
			return nil, nil
		}
		buf := make([]byte, n)
		_, err := io.ReadFull(rd, buf)
		return buf, err
	}
	for {
		line, err := rd.ReadString('\n')
		if err == io.EOF && line == "" {
			return got, nil
		}
		if err != nil {
			return nil, fmt.Errorf("record line %q: %v", line, err)
		}
		var p int32
		var off, klen, vlen int64
		if _, err := fmt.Sscanf(line, "%d %d %d %d\n", &p, &off, &klen, &vlen); err != nil {
			return nil, fmt.Errorf("record line %q: %v", line, err)
		}
		key, err := readN(klen)
		if err != nil {
			return nil, fmt.Errorf("offset %d: key: %v", off, err)
		}
		val, err := readN(vlen)
		if err != nil {
			return nil, fmt.Errorf("offset %d: value: %v", off, err)
		}
		if nl, err := rd.ReadByte(); err != nil || nl != '\n' {
			return nil, fmt.Errorf("offset %d: no newline after the value", off)
		}
		hdrs, err := rd.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("offset %d: headers: %v", off, err)
		}
		r := rec{Partition: p, Key: key, Value: val}
		if vlen == 0 {
			r.Value = []byte{}
		}
		if h := strings.TrimSuffix(hdrs, "\n"); h != "" {
			for kv := range strings.SplitSeq(h, ",") {
				k, v, _ := strings.Cut(kv, "=")
				r.Headers = append(r.Headers, header{Key: k, Value: []byte(v)})
			}
		}
		got[p] = append(got[p], offsetRec{off, r})
	}
}

// checkRead fails unless got[p] holds want[p][from[p]:end[p]] at dense
// offsets from from[p], byte for byte and in order.
func checkRead(t *testing.T, what string, want map[int32][]rec, got map[int32][]offsetRec, from, end map[int32]int64) {
	t.Helper()
	for p, e := range end {
		rs := got[p]
		if n := int64(len(rs)); n != e-from[p] {
			t.Errorf("%s: partition %d: %d records, want %d (offsets %d..%d)", what, p, n, e-from[p], from[p], e-1)
		}
		bad := 0
		for i, r := range rs {
			wantOff := from[p] + int64(i)
			if r.Offset != wantOff {
				t.Errorf("%s: partition %d: record %d at offset %d, want %d (a gap or a repeat)", what, p, i, r.Offset, wantOff)
				bad++
			} else if wantOff >= int64(len(want[p])) || !r.rec.equal(want[p][wantOff]) {
				var w rec
				if wantOff < int64(len(want[p])) {
					w = want[p][wantOff]
				}
				t.Errorf("%s: partition %d offset %d:\n got  %v\n want %v", what, p, r.Offset, r.rec, w)
				bad++
			}
			if bad >= 5 {
				break
			}
		}
	}
}

func zeros(partitions int32) map[int32]int64 {
	m := map[int32]int64{}
	for p := range partitions {
		m[p] = 0
	}
	return m
}

func countLines(s, substr string) int { return strings.Count(s, substr) }

// TestTieringS3 is the happy path: segments go to S3, local copies go
// away, ListOffsets reports both tiers, and two different clients read
// every record back from offset 0, byte for byte.
func TestTieringS3(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	s3 := s3test.Start(t)
	b := startBroker(t, tierBrokerArgs(s3)...)
	adm := b.Admin()
	const topic, partitions, n = "tiered", 2, 600
	createTopic(ctx, t, adm, topic, partitions, tierTopicConfigs())
	tt := describeTierTopic(ctx, t, adm, topic)
	want := tierRecords(topic, partitions, n, 1)
	// Each codec writes a share of the records, in calls of 30 per
	// partition: many batches, many segments.
	for i, codec := range codecs {
		from, to := i*n/len(codecs), (i+1)*n/len(codecs)
		produceTier(ctx, t, tierProducer(b, codec), topic, want, from, to, 30)
	}
	cl := b.Client()
	ends := waitTiered(ctx, t, b, s3, cl, tt)

	latest := listOffsetsAt(ctx, t, cl, topic, partitions, -1)
	earliest := listOffsetsAt(ctx, t, cl, topic, partitions, -2)
	local := listOffsetsAt(ctx, t, cl, topic, partitions, -4)
	tiered := listOffsetsAt(ctx, t, cl, topic, partitions, -5)
	objs := segmentObjects(t, bucketObjects(t, s3), tt)
	for p := range int32(partitions) {
		if latest[p] != n || earliest[p] != 0 {
			t.Errorf("partition %d: ListOffsets latest %d earliest %d, want %d and 0", p, latest[p], earliest[p], n)
		}
		if local[p] <= 0 || tiered[p] < local[p]-1 || tiered[p] >= latest[p] {
			t.Errorf("partition %d: earliest local %d, latest tiered %d, latest %d: want 0 < local <= tiered+1 < latest", p, local[p], tiered[p], latest[p])
		}
		segs := localSegments(t, b, topic, p)
		m, _ := readManifest(t, s3, tt, p)
		t.Logf("partition %d: %d remote segments up to %d, local segments %v", p, len(m.Segments), ends[p], segs)
		if len(m.Segments) < 3 {
			t.Errorf("partition %d: only %d segments uploaded; the test wants several", p, len(m.Segments))
		}
		if m.Segments[0].BaseOffset != 0 || m.LogStartOffset > 0 {
			t.Errorf("partition %d: manifest starts at %d (log start %d), want 0", p, m.Segments[0].BaseOffset, m.LogStartOffset)
		}
		if len(segs) >= len(m.Segments)+1 {
			t.Errorf("partition %d: %d local segments for %d remote ones: local retention deleted nothing", p, len(segs), len(m.Segments))
		}
		if m.Segments[len(m.Segments)-1].LastOffset != tiered[p] {
			t.Errorf("partition %d: ListOffsets -5 = %d, manifest's last offset %d", p, tiered[p], m.Segments[len(m.Segments)-1].LastOffset)
		}
		if unowned := checkManifestObjects(t, m, objs[p], fmt.Sprintf("partition %d", p)); len(unowned) > 0 {
			t.Errorf("partition %d: objects no manifest segment owns: %v", p, unowned)
		}
	}

	all := map[int32]int64{0: n, 1: n}
	checkRead(t, "kgo from offset 0", want, readKgo(ctx, t, b, topic, zeros(partitions), all), zeros(partitions), all)
	checkRead(t, "kcat from the beginning", want, readKcat(ctx, t, b, topic), zeros(partitions), all)
}

// TestTieringS3Outage stops the S3 server while segments are waiting to
// be uploaded: producing goes on, nothing that is not in the bucket leaves
// the local disk, and once S3 is back the uploads resume and every record
// is readable from offset 0.
func TestTieringS3Outage(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	s3 := s3test.Start(t)
	b := startBroker(t, tierBrokerArgs(s3)...)
	adm := b.Admin()
	const topic, partitions, n = "outage", 1, 600
	createTopic(ctx, t, adm, topic, partitions, tierTopicConfigs())
	tt := describeTierTopic(ctx, t, adm, topic)
	want := tierRecords(topic, partitions, n, 2)
	prod := tierProducer(b, "lz4")
	cl := b.Client()

	produceTier(ctx, t, prod, topic, want, 0, n/3, 20)
	waitFor(ctx, t, "a first upload", func() (bool, string) {
		tiered := listOffsetsAt(ctx, t, cl, topic, partitions, -5)
		return tiered[0] >= 0, fmt.Sprintf("latest tiered %d", tiered[0])
	})

	s3.Stop()
	start := time.Now()
	failures := func() int { return countLines(b.Log(), "upload failed") }
	before := failures()
	// Producing with acks=all keeps working while the bucket is away.
	produceTier(ctx, t, prod, topic, want, n/3, n, 20)
	t.Logf("produced %d records in %v with S3 down", n-n/3, time.Since(start))
	// Wait for an upload attempt to fail (the S3 client retries for a
	// while first). One upload runs per partition, so after a failure
	// nothing more can commit; retention meanwhile ran every 200 ms with
	// far more than local.retention.bytes sealed.
	waitFor(ctx, t, "an upload to fail", func() (bool, string) {
		return failures() > before, fmt.Sprintf("%d failures", failures()-before)
	})
	remoteEnd := listOffsetsAt(ctx, t, cl, topic, partitions, -5)[0] + 1
	if remoteEnd < 1 {
		t.Fatalf("remote end %d: the first upload is gone from the manifest", remoteEnd)
	}
	segs := localSegments(t, b, topic, 0)
	localStart := listOffsetsAt(ctx, t, cl, topic, partitions, -4)[0]
	if len(segs) == 0 || segs[0] > remoteEnd || localStart > remoteEnd {
		t.Fatalf("local segments %v (earliest local %d) while S3 is down: everything from the remote end %d on must stay local", segs, localStart, remoteEnd)
	}
	t.Logf("while S3 is down: remote end %d, %d local segments from %d", remoteEnd, len(segs), segs[0])
	// What is only local is readable meanwhile.
	checkRead(t, "kgo during the outage", want,
		readKgo(ctx, t, b, topic, map[int32]int64{0: remoteEnd}, map[int32]int64{0: n}),
		map[int32]int64{0: remoteEnd}, map[int32]int64{0: n})

	down := time.Since(start)
	s3.Start()
	start = time.Now()
	waitTiered(ctx, t, b, s3, cl, tt)
	t.Logf("S3 was down for %v (%d failed uploads); uploads caught up %v after it returned", down, failures()-before, time.Since(start))
	m, _ := readManifest(t, s3, tt, 0)
	if m.end() <= remoteEnd {
		t.Errorf("after S3 came back the remote end is %d, was %d", m.end(), remoteEnd)
	}
	all := map[int32]int64{0: n}
	checkRead(t, "kgo from offset 0 after the outage", want, readKgo(ctx, t, b, topic, zeros(partitions), all), zeros(partitions), all)
	objs := segmentObjects(t, bucketObjects(t, s3), tt)
	unowned := checkManifestObjects(t, m, objs[0], "after the outage")
	t.Logf("%d objects not in the manifest (failed uploads, left to the orphan sweep)", len(unowned))
}

// TestTieringCorruptObject flips bytes of an uploaded segment object after
// its local copy is gone: fetching that range is an error for that
// partition and a log line; no record with wrong content reaches a
// client; the rest of the partition and the other partitions keep working.
func TestTieringCorruptObject(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	s3 := s3test.Start(t)
	b := startBroker(t, tierBrokerArgs(s3)...)
	adm := b.Admin()
	const topic, partitions, n = "corrupt", 2, 400
	createTopic(ctx, t, adm, topic, partitions, tierTopicConfigs())
	tt := describeTierTopic(ctx, t, adm, topic)
	want := tierRecords(topic, partitions, n, 3)
	produceTier(ctx, t, tierProducer(b, "none"), topic, want, 0, n, 25)
	cl := b.Client()
	waitTiered(ctx, t, b, s3, cl, tt)

	m, _ := readManifest(t, s3, tt, 0)
	if len(m.Segments) < 3 {
		t.Fatalf("partition 0 has %d remote segments; want at least 3", len(m.Segments))
	}
	bad := m.Segments[1]
	var victim string
	for _, o := range segmentObjects(t, bucketObjects(t, s3), tt)[0] {
		if o.Base == bad.BaseOffset && o.UploadID == bad.ID && o.Kind == "log" {
			victim = filepath.Join(s3.BucketDir(), s3.Prefix, filepath.FromSlash(o.Key))
		}
	}
	if victim == "" {
		t.Fatalf("no .log object for segment %d-%s", bad.BaseOffset, bad.ID)
	}
	// Flip 16 bytes in the middle of the object: inside some batch, whose
	// CRC (or framing) then no longer holds.
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data) / 2; i < len(data)/2+16; i++ {
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(victim, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("corrupted %s (offsets %d..%d)", victim, bad.BaseOffset, bad.LastOffset)
	// A restart empties the remote read cache, so the corrupt bytes must
	// come from the bucket.
	b.Terminate(15 * time.Second)
	b.Restart()

	// franz-go hides retriable fetch errors unless asked to keep them.
	cons := b.Client(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(0), 1: kgo.NewOffset().At(0)}}),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.KeepRetryableFetchErrors(),
	)
	got := map[int32][]offsetRec{}
	var p0Err error
	for p0Err == nil || int64(len(got[1])) < n || int64(len(got[0])) < bad.BaseOffset {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("waiting for the corrupt range: error %v, got %v records per partition (corrupt segment starts at %d)", p0Err, counts(got), bad.BaseOffset)
		}
		fs.EachError(func(_ string, p int32, err error) {
			switch {
			case p == 0 && errors.Is(err, kerr.KafkaStorageError):
				p0Err = err
			case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			default:
				t.Errorf("fetch %s/%d: %v", topic, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) { got[r.Partition] = append(got[r.Partition], offsetRec{r.Offset, fromKgo(r)}) })
	}
	cons.Close()
	t.Logf("partition 0 fetch error: %v", p0Err)
	// Partition 1 whole. Partition 0 from 0 up to the corrupt segment, or
	// into it as far as the batches before the damage (a reader may serve
	// those), every record as written; never the whole segment.
	delivered := int64(len(got[0]))
	checkRead(t, "kgo around a corrupt object", want, got, zeros(partitions), map[int32]int64{0: delivered, 1: n})
	if delivered < bad.BaseOffset || delivered > bad.LastOffset {
		t.Errorf("partition 0: %d records delivered; the corrupt segment holds offsets %d..%d", delivered, bad.BaseOffset, bad.LastOffset)
	}

	logText := b.Log()
	if !strings.Contains(logText, "remote segment corrupt") || !strings.Contains(logText, bad.ID) {
		t.Errorf("the broker log has no line naming the corrupt segment %s", bad.ID)
	}

	// librdkafka gets nothing wrong either: kcat, asked for the whole
	// corrupt segment, gets at most the batches before the damage, each as
	// written, by the time we stop it.
	kcat := requireKcat(t)
	kctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	segLen := bad.LastOffset - bad.BaseOffset + 1
	cmd := exec.CommandContext(kctx, kcat, "-b", b.Addr, "-C", "-t", topic, "-p", "0",
		"-o", strconv.FormatInt(bad.BaseOffset, 10), "-c", strconv.FormatInt(segLen, 10), "-f", kcatTierFormat)
	var kcatErr bytes.Buffer
	cmd.Stderr = &kcatErr
	out, _ := cmd.Output() // killed at the deadline: expected
	kgot, err := parseKcatTier(out)
	if err != nil && kctx.Err() == nil {
		t.Errorf("kcat output: %v", err) // a cut-off last record is fine once killed
	}
	if k := int64(len(kgot[0])); k >= segLen {
		t.Errorf("kcat read all %d records of the corrupt segment", k)
	} else {
		checkRead(t, "kcat in the corrupt segment", want, kgot,
			map[int32]int64{0: bad.BaseOffset}, map[int32]int64{0: bad.BaseOffset + k})
	}
	t.Logf("kcat in the corrupt segment: %d records; stderr %q", len(kgot[0]), kcatErr.String())

	// The partition still serves what is not corrupt: its local tail, and
	// new records.
	extra := tierRecords(topic+"-more", partitions, 10, 33)
	for p := range int32(partitions) {
		want[p] = append(want[p], extra[p]...)
	}
	produceTier(ctx, t, tierProducer(b, "zstd"), topic, want, n, n+10, 10)
	local := listOffsetsAt(ctx, t, cl, topic, partitions, -4)
	end := map[int32]int64{0: n + 10, 1: n + 10}
	checkRead(t, "kgo from the local start after corruption", want, readKgo(ctx, t, b, topic, local, end), local, end)
	// And the segments before the corrupt one still come from S3.
	checkRead(t, "kgo partition 0 below the corrupt segment", want,
		readKgo(ctx, t, b, topic, map[int32]int64{0: 0}, map[int32]int64{0: bad.BaseOffset}),
		map[int32]int64{0: 0}, map[int32]int64{0: bad.BaseOffset})
}

// TestTieringKillDuringUpload kills the broker with SIGKILL while segments
// of two partitions are being uploaded, twice, and restarts it: no
// acknowledged record is lost, the manifests' segments all have their
// objects, and every record is readable from offset 0.
func TestTieringKillDuringUpload(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 4))
	s3 := s3test.Start(t)
	// A short orphan grace, so the sweep of what a kill left behind can be
	// checked within the test.
	b := startBroker(t, append(tierBrokerArgs(s3), "--set", "remote-orphan-grace-ms=2000")...)
	adm := b.Admin()
	const topic, partitions = "killed", 2
	createTopic(ctx, t, adm, topic, partitions, tierTopicConfigs())
	tt := describeTierTopic(ctx, t, adm, topic)

	pad := strings.Repeat("x", 150)
	value := func(i int) []byte { return fmt.Appendf(nil, "%08d %s", i, pad) }
	type pos struct {
		partition int32
		offset    int64
	}
	var (
		mu       sync.Mutex
		acked    = map[int]pos{} // record number -> where it was acknowledged
		nAcked   atomic.Int64
		produced atomic.Int64
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	prod := b.Client(
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.MaxBufferedRecords(1000),
		// Uncompressed: ~170 bytes a record on disk, so segments seal often.
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		// A restarting broker may not know the topic for a moment.
		kgo.UnknownTopicRetries(-1),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		// A steady ~1 MB/s: segments seal several times a second per
		// partition, so uploads are always under way, and the backlog
		// stays small enough to drain in seconds.
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for i := 0; !stop.Load() && ctx.Err() == nil; {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			for range 6 {
				n := i
				i++
				r := &kgo.Record{Topic: topic, Partition: int32(n % partitions), Value: value(n)}
				prod.Produce(ctx, r, func(r *kgo.Record, err error) {
					if err != nil {
						return // never acknowledged: allowed to be missing
					}
					mu.Lock()
					acked[n] = pos{r.Partition, r.Offset}
					mu.Unlock()
					nAcked.Add(1)
				})
				produced.Store(int64(i))
			}
		}
	}()
	uploads := func() int { return countLines(b.Log(), "segment uploaded") }
	for round := range 2 {
		// The uploader scans once a second and then uploads every sealed
		// segment, one after the other: kill just after a burst started,
		// at a random moment inside it (mid-PUT, between the PUTs and the
		// manifest commit, between commit and local deletion).
		acks, ups := nAcked.Load(), uploads()
		waitFor(ctx, t, "acks and uploads", func() (bool, string) {
			return nAcked.Load() >= acks+2000 && uploads() > ups,
				fmt.Sprintf("%d acks and %d uploads this round", nAcked.Load()-acks, uploads()-ups)
		})
		ups = uploads()
		waitFor(ctx, t, "an upload burst", func() (bool, string) {
			return uploads() > ups, fmt.Sprintf("%d uploads", uploads()-ups)
		})
		select {
		case <-time.After(time.Duration(rng.IntN(100)) * time.Millisecond):
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
		b.Kill()
		t.Logf("round %d: killed after %d acks of %d records, %d uploads", round, nAcked.Load(), produced.Load(), uploads())
		b.Restart()
	}
	target := nAcked.Load() + 1000
	waitFor(ctx, t, "the producer to resume", func() (bool, string) {
		return nAcked.Load() >= target, fmt.Sprintf("%d acks, want %d", nAcked.Load(), target)
	})
	stop.Store(true)
	wg.Wait()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := prod.Flush(fctx); err != nil {
		t.Fatalf("flush: %v", err)
	}

	cl := b.Client()
	start := time.Now()
	waitTiered(ctx, t, b, s3, cl, tt)
	t.Logf("uploads caught up %v after the producer stopped", time.Since(start))
	end := listOffsetsAt(ctx, t, cl, topic, partitions, -1)
	got := readKgo(ctx, t, b, topic, zeros(partitions), end)
	mu.Lock()
	lost := 0
	for i, at := range acked {
		rs := got[at.partition]
		if at.offset >= int64(len(rs)) || !bytes.Equal(rs[at.offset].Value, value(i)) {
			if lost++; lost <= 10 {
				t.Errorf("acknowledged record %d at %d/%d is not there", i, at.partition, at.offset)
			}
		}
	}
	t.Logf("%d records produced, %d acknowledged, %d lost; end offsets %v", produced.Load(), len(acked), lost, end)
	mu.Unlock()
	seen := map[string]pos{}
	for p, rs := range got {
		for _, r := range rs {
			if prev, dup := seen[string(r.Value)]; dup {
				t.Errorf("record %q at %d/%d and %d/%d", r.Value[:8], prev.partition, prev.offset, p, r.Offset)
			}
			seen[string(r.Value)] = pos{p, r.Offset}
		}
	}

	// Every committed segment has its objects and the manifests are
	// contiguous from 0. Objects of uploads a kill cut short are in no
	// manifest: the orphan sweep deletes them once they are older than its
	// grace (2 s here), so none may remain for long.
	deadline := time.Now().Add(30 * time.Second)
	for {
		objs := segmentObjects(t, bucketObjects(t, s3), tt)
		left := 0
		for p := range int32(partitions) {
			m, _ := readManifest(t, s3, tt, p)
			left += len(unownedObjects(m, objs[p]))
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%d objects in no manifest still in the bucket 30 s after the last kill: leaked", left)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	objs := segmentObjects(t, bucketObjects(t, s3), tt)
	for p := range int32(partitions) {
		m, _ := readManifest(t, s3, tt, p)
		for i, s := range m.Segments {
			if i == 0 && s.BaseOffset != 0 {
				t.Errorf("partition %d: manifest starts at %d", p, s.BaseOffset)
			}
			if i > 0 && s.BaseOffset != m.Segments[i-1].LastOffset+1 {
				t.Errorf("partition %d: manifest is not contiguous: segment at %d follows one ending at %d", p, s.BaseOffset, m.Segments[i-1].LastOffset)
			}
		}
		unowned := checkManifestObjects(t, m, objs[p], fmt.Sprintf("partition %d after kill -9", p))
		t.Logf("partition %d: %d segments in the manifest, %d objects in none (left to the orphan sweep)", p, len(m.Segments), len(unowned))
		for _, o := range unowned {
			t.Logf("  %s (%d bytes)", o.Key, o.Size)
		}
	}
}

// TestTieringWipedDataDir deletes a broker's partition logs and remote
// cache but keeps its metadata: after a restart every tiered record is
// served again from offset 0 and the log continues at the remote end.
func TestTieringWipedDataDir(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	s3 := s3test.Start(t)
	b := startBroker(t, tierBrokerArgs(s3)...)
	adm := b.Admin()
	const topic, partitions, n = "wiped", 2, 400
	createTopic(ctx, t, adm, topic, partitions, tierTopicConfigs())
	tt := describeTierTopic(ctx, t, adm, topic)
	want := tierRecords(topic, partitions, n, 5)
	produceTier(ctx, t, tierProducer(b, "snappy"), topic, want, 0, n, 25)
	cl := b.Client()
	ends := waitTiered(ctx, t, b, s3, cl, tt)

	b.Terminate(15 * time.Second)
	for _, dir := range []string{"logs", "remote-cache"} {
		if err := os.RemoveAll(filepath.Join(b.DataDir, dir)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(b.DataDir, "meta")); err != nil {
		t.Fatalf("metadata dir: %v", err)
	}
	b.Restart()

	cl = b.Client()
	var latest, earliest, local, tiered map[int32]int64
	waitFor(ctx, t, "the partitions to restart at the remote end", func() (bool, string) {
		latest = listOffsetsAt(ctx, t, cl, topic, partitions, -1)
		for p := range int32(partitions) {
			if latest[p] != ends[p] {
				return false, fmt.Sprintf("latest %v, remote ends %v", latest, ends)
			}
		}
		return true, ""
	})
	earliest = listOffsetsAt(ctx, t, cl, topic, partitions, -2)
	local = listOffsetsAt(ctx, t, cl, topic, partitions, -4)
	tiered = listOffsetsAt(ctx, t, cl, topic, partitions, -5)
	for p := range int32(partitions) {
		if earliest[p] != 0 || local[p] != ends[p] || tiered[p] != ends[p]-1 {
			t.Errorf("partition %d after the wipe: earliest %d, earliest local %d, latest tiered %d; want 0, %d, %d",
				p, earliest[p], local[p], tiered[p], ends[p], ends[p]-1)
		}
	}
	checkRead(t, "kgo from offset 0 after the wipe", want, readKgo(ctx, t, b, topic, zeros(partitions), ends), zeros(partitions), ends)

	// New records continue at the remote end.
	more := tierRecords(topic+"-after", partitions, 20, 55)
	next := map[int32][]rec{}
	for p := range int32(partitions) {
		next[p] = append(slices.Clone(want[p][:ends[p]]), more[p]...)
	}
	prod := tierProducer(b, "none")
	for p := range int32(partitions) {
		var krs []*kgo.Record
		for _, r := range more[p] {
			krs = append(krs, toKgo(topic, r))
		}
		res := prod.ProduceSync(ctx, krs...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce after the wipe: %v", err)
		}
		if first := res[0].Record.Offset; first != ends[p] {
			t.Errorf("partition %d: first record after the wipe at offset %d, want the remote end %d", p, first, ends[p])
		}
	}
	all := map[int32]int64{}
	for p := range int32(partitions) {
		all[p] = ends[p] + 20
	}
	checkRead(t, "kcat after the wipe", next, readKcat(ctx, t, b, topic), zeros(partitions), all)
}

// TestTieringDeleteTopic deletes a tiered topic: its objects and manifest
// copies leave the bucket, and another topic's stay.
func TestTieringDeleteTopic(t *testing.T) {
	t.Parallel()
	ctx := testContext(t, 2*time.Minute)
	s3 := s3test.Start(t)
	b := startBroker(t, tierBrokerArgs(s3)...)
	adm := b.Admin()
	const partitions, n = 2, 200
	cl := b.Client()
	topics := map[string]tierTopic{}
	for _, topic := range []string{"doomed", "kept"} {
		createTopic(ctx, t, adm, topic, partitions, tierTopicConfigs())
		topics[topic] = describeTierTopic(ctx, t, adm, topic)
		produceTier(ctx, t, tierProducer(b, "gzip"), topic, tierRecords(topic, partitions, n, 6), 0, n, 25)
	}
	for _, tt := range topics {
		waitFor(ctx, t, "uploads of "+tt.Name, func() (bool, string) {
			tiered := listOffsetsAt(ctx, t, cl, tt.Name, partitions, -5)
			for p := range int32(partitions) {
				if _, ok := readManifest(t, s3, tt, p); !ok || tiered[p] < 0 {
					return false, fmt.Sprintf("partition %d: latest tiered %d, manifest copy %v", p, tiered[p], ok)
				}
			}
			return true, ""
		})
	}
	ofTopic := func(tt tierTopic) []string {
		var keys []string
		for _, o := range bucketObjects(t, s3) {
			if strings.Contains(o.Key, "/"+tt.ID+"/") {
				keys = append(keys, o.Key)
			}
		}
		return keys
	}
	keptBefore := ofTopic(topics["kept"])
	doomedBefore := ofTopic(topics["doomed"])
	if len(doomedBefore) == 0 {
		t.Fatal("the topic to delete has no objects in the bucket")
	}
	t.Logf("deleting a topic with %d objects in the bucket", len(doomedBefore))

	resp, err := adm.DeleteTopic(ctx, "doomed")
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("delete topic: %v", err)
	}
	waitFor(ctx, t, "the deleted topic's objects to go", func() (bool, string) {
		left := ofTopic(topics["doomed"])
		return len(left) == 0, fmt.Sprintf("%d objects left: %v", len(left), left)
	})
	if _, err := os.Stat(filepath.Join(b.DataDir, "logs", "doomed-0")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("local log of the deleted topic: %v", err)
	}
	keptAfter := ofTopic(topics["kept"])
	for _, k := range keptBefore {
		if strings.HasSuffix(k, ".log") && !slices.Contains(keptAfter, k) {
			t.Errorf("object %s of the other topic is gone", k)
		}
	}
}

// unownedObjects are the segment objects no manifest segment claims.
func unownedObjects(m remoteManifest, objs []segmentObject) []segmentObject {
	owned := map[string]bool{}
	for _, s := range m.Segments {
		owned[fmt.Sprintf("%d-%s", s.BaseOffset, s.ID)] = true
	}
	var out []segmentObject
	for _, o := range objs {
		if !owned[fmt.Sprintf("%d-%s", o.Base, o.UploadID)] {
			out = append(out, o)
		}
	}
	return out
}

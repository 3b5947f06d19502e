package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The bad-input broker has small limits so oversize input is cheap to send.
const (
	badMaxRequest = 1 << 20 // socket.request.max.bytes
	badMaxMessage = 10000   // message.max.bytes
)

func TestBadInput(t *testing.T) {
	t.Parallel()
	b := startBroker(t,
		"--set", fmt.Sprintf("socket.request.max.bytes=%d", badMaxRequest),
		"--set", fmt.Sprintf("message.max.bytes=%d", badMaxMessage))
	ctx := testContext(t, 2*time.Minute)
	adm := b.Admin()
	createTopic(ctx, t, adm, "bad", 1, nil)

	// Framing: the broker closes the connection, as Kafka does.
	t.Run("HTTP request", func(t *testing.T) {
		// "GET " as a size prefix is ~1.2 GB: far over the limit.
		c := dial(t, b.Addr)
		write(t, c, []byte("GET / HTTP/1.1\r\nHost: strata\r\n\r\n"))
		expectClosed(t, c)
		healthy(ctx, t, b)
	})
	t.Run("frame over socket.request.max.bytes", func(t *testing.T) {
		c := dial(t, b.Addr)
		// Only the size prefix: the broker must not wait for the body.
		write(t, c, binary.BigEndian.AppendUint32(nil, badMaxRequest+1))
		expectClosed(t, c)
		healthy(ctx, t, b)
	})
	t.Run("negative frame size", func(t *testing.T) {
		c := dial(t, b.Addr)
		write(t, c, []byte{0xff, 0xff, 0xff, 0xf0})
		expectClosed(t, c)
		healthy(ctx, t, b)
	})
	t.Run("garbage frame", func(t *testing.T) {
		c := dial(t, b.Addr)
		body := []byte{0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1, 0xff, 0xff, 0x13, 0x37, 0x42}
		write(t, c, frame(body))
		expectClosed(t, c)
		healthy(ctx, t, b)
	})
	t.Run("connection closed mid-frame", func(t *testing.T) {
		c := dial(t, b.Addr)
		write(t, c, append(binary.BigEndian.AppendUint32(nil, 100), make([]byte, 10)...))
		_ = c.(*net.TCPConn).CloseWrite()
		expectClosed(t, c)
		healthy(ctx, t, b)
	})
	t.Run("truncated request body", func(t *testing.T) {
		// A Metadata v4 request whose topic array claims 5 topics and
		// holds none.
		c := dial(t, b.Addr)
		msg := reqHeader(3, 4, 1, false)
		msg = binary.BigEndian.AppendUint32(msg, 5)
		write(t, c, frame(msg))
		expectClosed(t, c)
		healthy(ctx, t, b)
	})
	t.Run("unknown API key", func(t *testing.T) {
		c := dial(t, b.Addr)
		write(t, c, frame(reqHeader(9999, 0, 1, false)))
		expectClosed(t, c)
		healthy(ctx, t, b)
	})
	t.Run("ApiVersions version 999", func(t *testing.T) { apiVersions999(ctx, t, b) })
	t.Run("hostile JoinGroup", func(t *testing.T) { hostileJoin(ctx, t, b) })
	t.Run("bad produce", func(t *testing.T) { badProduce(ctx, t, b, adm) })
	t.Run("bad topics and partitions", func(t *testing.T) { badTopics(ctx, t, b, adm) })

	if t.Failed() {
		return
	}
	// After all of it the broker still serves, and logged nothing fatal.
	healthy(ctx, t, b)
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	return c
}

func write(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func frame(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg...)
}

// reqHeader is a request header: v1, or v2 (with an empty tag section) for
// flexible requests.
func reqHeader(key, version int16, corr int32, flexible bool) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 3)
	b = append(b, "e2e"...)
	if flexible {
		b = append(b, 0)
	}
	return b
}

// expectClosed reads until the broker closes the connection. A broker may
// answer before closing, but it must close, and it must do so promptly.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the broker kept the connection open")
	}
	// nil (EOF) or a reset: closed either way.
}

func readFrame(t *testing.T, c net.Conn) []byte {
	t.Helper()
	var size [4]byte
	if _, err := io.ReadFull(c, size[:]); err != nil {
		t.Fatalf("read response size: %v", err)
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > 1<<20 {
		t.Fatalf("response size %d", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read response: %v", err)
	}
	return b
}

// healthy checks that a new client on a new connection can still produce
// and read back.
func healthy(ctx context.Context, t *testing.T, b *brokerProc) {
	t.Helper()
	select {
	case <-b.exited():
		t.Fatalf("the broker died: %v", b.exitErr())
	default:
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.AllowAutoTopicCreation(),
		kgo.ConsumeTopics("health"), kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd().Relative(-1)),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	value := fmt.Appendf(nil, "alive after %s", t.Name())
	res := cl.ProduceSync(ctx, &kgo.Record{Topic: "health", Value: value})
	if err := res.FirstErr(); err != nil {
		t.Fatalf("broker unhealthy: produce: %v", err)
	}
	want := res[0].Record.Offset
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("broker unhealthy: reading offset %d back: %v", want, ctx.Err())
		}
		var found bool
		fs.EachRecord(func(r *kgo.Record) { found = found || (r.Offset == want && string(r.Value) == string(value)) })
		if found {
			return
		}
	}
}

func apiVersions999(ctx context.Context, t *testing.T, b *brokerProc) {
	c := dial(t, b.Addr)
	// An ApiVersions request from a client newer than the broker: the
	// header is v2 (flexible), the body is whatever v999 is.
	msg := reqHeader(18, 999, 42, true)
	msg = append(msg, 4, 'e', '2', 'e', 2, '1', 0) // compact strings + tags, like v3
	write(t, c, frame(msg))
	resp := readFrame(t, c)
	// A v0 response: correlation id, error code, [api key, min, max].
	if len(resp) < 10 {
		t.Fatalf("response too short: %x", resp)
	}
	corr := int32(binary.BigEndian.Uint32(resp[0:]))
	code := int16(binary.BigEndian.Uint16(resp[4:]))
	n := int(binary.BigEndian.Uint32(resp[6:]))
	if corr != 42 || code != kerr.UnsupportedVersion.Code {
		t.Fatalf("correlation %d error %d, want 42 and %d", corr, code, kerr.UnsupportedVersion.Code)
	}
	if n <= 0 || len(resp) != 10+6*n {
		t.Fatalf("%d keys in a %d-byte response: not v0-shaped", n, len(resp))
	}
	keys := map[int16][2]int16{}
	for i := range n {
		e := resp[10+6*i:]
		keys[int16(binary.BigEndian.Uint16(e))] = [2]int16{int16(binary.BigEndian.Uint16(e[2:])), int16(binary.BigEndian.Uint16(e[4:]))}
	}
	if v, ok := keys[18]; !ok || v[0] != 0 || v[1] < 3 {
		t.Errorf("ApiVersions range %v, want 0..>=3", v)
	}
	for _, k := range []int16{0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 19, 22} {
		if _, ok := keys[k]; !ok {
			t.Errorf("api key %d not advertised", k)
		}
	}
	// The connection stays usable: the client retries with a version
	// the broker knows.
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName = "e2e"
	req.ClientSoftwareVersion = "1"
	write(t, c, frame(append(reqHeader(18, 3, 43, true), req.AppendTo(nil)...)))
	resp = readFrame(t, c)
	// ApiVersions responses have a v0 header whatever their version.
	var av kmsg.ApiVersionsResponse
	av.Version = 3
	if corr := int32(binary.BigEndian.Uint32(resp)); corr != 43 {
		t.Fatalf("retry: correlation %d", corr)
	}
	if err := av.ReadFrom(resp[4:]); err != nil || av.ErrorCode != 0 || len(av.ApiKeys) != n {
		t.Fatalf("retry with v3: err %v code %d, %d keys (v0 answer had %d)", err, av.ErrorCode, len(av.ApiKeys), n)
	}
	healthy(ctx, t, b)
}

// rawRequest sends req at version on c and decodes the response.
func rawRequest(t *testing.T, c net.Conn, req kmsg.Request, version int16, corr int32) kmsg.Response {
	t.Helper()
	req.SetVersion(version)
	write(t, c, frame(append(reqHeader(req.Key(), version, corr, req.IsFlexible()), req.AppendTo(nil)...)))
	resp := readFrame(t, c)
	if got := int32(binary.BigEndian.Uint32(resp)); got != corr {
		t.Fatalf("correlation %d, want %d", got, corr)
	}
	body := resp[4:]
	if req.IsFlexible() {
		if len(body) == 0 || body[0] != 0 {
			t.Fatalf("flexible response header with tags: %x", body[:min(len(body), 8)])
		}
		body = body[1:]
	}
	kr := req.ResponseKind()
	kr.SetVersion(version)
	if err := kr.ReadFrom(body); err != nil {
		t.Fatalf("decode %T: %v", kr, err)
	}
	return kr
}

func hostileJoin(ctx context.Context, t *testing.T, b *brokerProc) {
	c := dial(t, b.Addr)
	join := func(group string, session int32) int16 {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group = group
		req.SessionTimeoutMillis = session
		req.RebalanceTimeoutMillis = 1000
		req.ProtocolType = "consumer"
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name = "range"
		p.Metadata = []byte{0, 1, 0, 0, 0, 0}
		req.Protocols = append(req.Protocols, p)
		return rawRequest(t, c, req, 5, 7).(*kmsg.JoinGroupResponse).ErrorCode
	}
	if code := join("", 10000); code != kerr.InvalidGroupID.Code {
		t.Errorf("JoinGroup with an empty group id: error %d, want INVALID_GROUP_ID", code)
	}
	if code := join("e2e-hostile", 1); code != kerr.InvalidSessionTimeout.Code {
		t.Errorf("JoinGroup with a 1 ms session: error %d, want INVALID_SESSION_TIMEOUT", code)
	}
	healthy(ctx, t, b)
}

// batch is a hand-built record batch (magic 2) so tests can break it in
// precise ways; fix recomputes the CRC after an edit.
type batch []byte

func newBatch(values ...[]byte) batch {
	var recs []byte
	for i, v := range values {
		var r []byte
		r = append(r, 0)                     // attributes
		r = binary.AppendVarint(r, 0)        // timestamp delta
		r = binary.AppendVarint(r, int64(i)) // offset delta
		r = binary.AppendVarint(r, -1)       // null key
		r = binary.AppendVarint(r, int64(len(v)))
		r = append(r, v...)
		r = binary.AppendVarint(r, 0) // no headers
		recs = binary.AppendVarint(recs, int64(len(r)))
		recs = append(recs, r...)
	}
	now := time.Now().UnixMilli()
	b := make([]byte, 61, 61+len(recs))
	be := binary.BigEndian
	be.PutUint64(b[0:], 0)                       // base offset
	be.PutUint32(b[8:], uint32(61-12+len(recs))) // batch length
	be.PutUint32(b[12:], 0xffffffff)             // partition leader epoch -1
	b[16] = 2                                    // magic
	be.PutUint16(b[21:], 0)                      // attributes
	be.PutUint32(b[23:], uint32(len(values)-1))  // last offset delta
	be.PutUint64(b[27:], uint64(now))            // first timestamp
	be.PutUint64(b[35:], uint64(now))            // max timestamp
	be.PutUint64(b[43:], 0xffffffffffffffff)     // producer id -1
	be.PutUint16(b[51:], 0xffff)                 // producer epoch -1
	be.PutUint32(b[53:], 0xffffffff)             // base sequence -1
	be.PutUint32(b[57:], uint32(len(values)))    // record count
	b = append(b, recs...)
	return batch(b).fix()
}

func (b batch) fix() batch {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func (b batch) clone() batch { return slices.Clone(b) }

// produceVersion is the Produce version of the raw requests: the first
// flexible one (v9), so the tagged-field paths are exercised too.
const produceVersion = 9

// produceRaw sends one Produce request (acks=all) on c with records as the
// partition's record set and returns the partition's error code and base
// offset.
func produceRaw(t *testing.T, c net.Conn, version int16, topic string, partition int32, records []byte) (int16, int64) {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks = -1
	req.TimeoutMillis = 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition = partition
	rp.Records = records
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := rawRequest(t, c, req, version, 11).(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("produce response shape: %+v", resp)
	}
	p := resp.Topics[0].Partitions[0]
	return p.ErrorCode, p.BaseOffset
}

func badProduce(ctx context.Context, t *testing.T, b *brokerProc, adm *kadm.Client) {
	c := dial(t, b.Addr)

	// The builder is right: a good batch is accepted, at a flexible and
	// at a non-flexible version.
	good := newBatch([]byte("one"), []byte("two"))
	if code, off := produceRaw(t, c, produceVersion, "bad", 0, good); code != 0 || off != 0 {
		t.Fatalf("good batch: error %d offset %d", code, off)
	}
	if code, off := produceRaw(t, c, 7, "bad", 0, newBatch([]byte("three"))); code != 0 || off != 2 {
		t.Fatalf("good batch at v7: error %d offset %d", code, off)
	}
	want := endOffsets(ctx, t, adm, "bad")
	if want[0] != 3 {
		t.Fatalf("end offset %d after 3 records", want[0])
	}

	corrupt := good.clone()
	corrupt[len(corrupt)-2] ^= 0xff // a value byte: the CRC no longer matches
	lyingLength := good.clone()
	binary.BigEndian.PutUint32(lyingLength[8:], uint32(len(good)-12+8))
	lyingCount := good.clone()
	binary.BigEndian.PutUint32(lyingCount[57:], 3)
	lyingCount.fix()
	lyingDelta := good.clone()
	binary.BigEndian.PutUint32(lyingDelta[23:], 5)
	lyingDelta.fix()
	badCodec := good.clone()
	binary.BigEndian.PutUint16(badCodec[21:], 7)
	badCodec.fix()
	magic1 := good.clone()
	magic1[16] = 1
	nonZeroBase := good.clone()
	binary.BigEndian.PutUint64(nonZeroBase[0:], 7) // outside the CRC; must be 0 from a client
	truncated := good[:len(good)-3]
	big := newBatch(make([]byte, badMaxMessage+100))

	codes := func(es ...*kerr.Error) []int16 {
		var cs []int16
		for _, e := range es {
			cs = append(cs, e.Code)
		}
		return cs
	}
	tests := []struct {
		name    string
		records []byte
		want    []int16 // any of
	}{
		{"corrupt CRC", corrupt, codes(kerr.CorruptMessage)},
		{"batch length lies", lyingLength, codes(kerr.CorruptMessage, kerr.InvalidRecord)},
		{"record count lies", lyingCount, codes(kerr.CorruptMessage, kerr.InvalidRecord)},
		{"last offset delta lies", lyingDelta, codes(kerr.CorruptMessage, kerr.InvalidRecord)},
		{"unknown codec", badCodec, codes(kerr.UnsupportedCompressionType, kerr.CorruptMessage, kerr.InvalidRecord)},
		{"magic 1", magic1, codes(kerr.UnsupportedForMessageFormat, kerr.CorruptMessage, kerr.InvalidRecord)},
		{"base offset not 0", nonZeroBase, codes(kerr.InvalidRecord, kerr.CorruptMessage)},
		{"truncated batch", truncated, codes(kerr.CorruptMessage, kerr.InvalidRecord)},
		{"over message.max.bytes", big, codes(kerr.MessageTooLarge)},
		{"good then corrupt: all or nothing", append(good.clone(), corrupt...), codes(kerr.CorruptMessage)},
	}
	for _, tc := range tests {
		code, _ := produceRaw(t, c, produceVersion, "bad", 0, tc.records)
		if !slices.Contains(tc.want, code) {
			t.Errorf("%s: error %d (%v), want one of %v", tc.name, code, kerr.ErrorForCode(code), tc.want)
		}
		if got := endOffsets(ctx, t, adm, "bad"); got[0] != want[0] {
			t.Fatalf("%s: end offset moved from %d to %d", tc.name, want[0], got[0])
		}
	}

	// Nothing but the good batch can be read.
	rd := b.Client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"bad": {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(200*time.Millisecond))
	var got []string
	for len(got) < 3 {
		fs := rd.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading back: %v", ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if !slices.Equal(got, []string{"one", "two", "three"}) {
		t.Errorf("log holds %q, want [one two three]", got)
	}
	healthy(ctx, t, b)
}

func badTopics(ctx context.Context, t *testing.T, b *brokerProc, adm *kadm.Client) {
	cl := b.Client()
	c := dial(t, b.Addr)
	good := newBatch([]byte("x"))

	for _, tc := range []struct {
		name      string
		topic     string
		partition int32
		want      []int16
	}{
		{"negative partition", "bad", -1, []int16{kerr.UnknownTopicOrPartition.Code}},
		{"missing partition", "bad", 99, []int16{kerr.UnknownTopicOrPartition.Code}},
		{"unknown topic", "no-such-topic", 0, []int16{kerr.UnknownTopicOrPartition.Code}},
		// Kafka answers a produce to an invalid name as to any unknown topic.
		{"invalid topic name", "bad name!", 0, []int16{kerr.InvalidTopicException.Code, kerr.UnknownTopicOrPartition.Code}},
	} {
		if code, _ := produceRaw(t, c, produceVersion, tc.topic, tc.partition, good); !slices.Contains(tc.want, code) {
			t.Errorf("produce to %s: error %d (%v), want one of %v", tc.name, code, kerr.ErrorForCode(code), tc.want)
		}
	}

	// Metadata that may auto-create: an invalid name is refused by name.
	md := kmsg.NewPtrMetadataRequest()
	md.AllowAutoTopicCreation = true
	for _, name := range []string{"bad name!", "..", "no/slash"} {
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(name)
		md.Topics = append(md.Topics, mt)
	}
	resp, err := md.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	for _, mt := range resp.Topics {
		if mt.ErrorCode != kerr.InvalidTopicException.Code {
			t.Errorf("Metadata for %q: error %d, want INVALID_TOPIC_EXCEPTION", *mt.Topic, mt.ErrorCode)
		}
	}
	if len(resp.Topics) != 3 {
		t.Errorf("Metadata answered %d of 3 topics", len(resp.Topics))
	}

	// Fetch and ListOffsets of a negative partition.
	topics, err := adm.ListTopics(ctx, "bad")
	if err != nil {
		t.Fatal(err)
	}
	fr := kmsg.NewPtrFetchRequest()
	fr.ReplicaID = -1
	fr.MaxWaitMillis = 100
	fr.MaxBytes = 1 << 20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "bad"
	ft.TopicID = topics["bad"].ID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.Partition = -1
	fp.PartitionMaxBytes = 1 << 20
	fp.CurrentLeaderEpoch = -1
	ft.Partitions = append(ft.Partitions, fp)
	fr.Topics = append(fr.Topics, ft)
	fresp, err := fr.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if fresp.ErrorCode != 0 || len(fresp.Topics) != 1 || len(fresp.Topics[0].Partitions) != 1 ||
		fresp.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("Fetch of partition -1: %+v, want UNKNOWN_TOPIC_OR_PARTITION for it", fresp)
	}
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.ReplicaID = -1
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "bad"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Partition = -1
	lp.Timestamp = -1
	lp.CurrentLeaderEpoch = -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	// Raw: kgo would answer for a partition it knows has no leader
	// without asking the broker.
	lr := rawRequest(t, c, lo, 5, 12).(*kmsg.ListOffsetsResponse)
	if len(lr.Topics) != 1 || len(lr.Topics[0].Partitions) != 1 || lr.Topics[0].Partitions[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("ListOffsets of partition -1: %+v, want UNKNOWN_TOPIC_OR_PARTITION", lr)
	}

	// Nothing was created along the way.
	all, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range all.Names() {
		if name != "bad" && name != "health" {
			t.Errorf("topic %q exists after bad requests", name)
		}
	}
	healthy(ctx, t, b)
}

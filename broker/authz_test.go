package broker

import (
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
	"github.com/strata-broker/strata/proto"
)

// Tests act as a principal through a seam that exists only in the test
// binary: a request whose client id is testPrincipalPrefix+principal makes
// its connection act as that principal from then on. The connection's
// reader goroutine sets it while handling that request, as SASL does, so
// handlers read it without a race (setting cc.principal from the test
// goroutine would race with them).
const testPrincipalPrefix = "strata-test-principal="

func init() {
	for k, e := range apis {
		h := e.h
		e.h = func(s *Server, ctx context.Context, r *request) *reply {
			if id := r.hdr.ClientID; id != nil && strings.HasPrefix(*id, testPrincipalPrefix) {
				r.cc.principal = strings.TrimPrefix(*id, testPrincipalPrefix)
			}
			return h(s, ctx, r)
		}
		apis[k] = e
	}
}

const (
	authzClassName = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
	alice          = "User:alice" // holds only what a test grants
	admin          = "User:admin" // super user
)

const (
	topicRes   = kmsg.ACLResourceTypeTopic
	groupRes   = kmsg.ACLResourceTypeGroup
	clusterRes = kmsg.ACLResourceTypeCluster
	literal    = kmsg.ACLResourcePatternTypeLiteral
	prefixed   = kmsg.ACLResourcePatternTypePrefixed
)

var (
	codeTopicAuthz   = kerr.TopicAuthorizationFailed.Code
	codeGroupAuthz   = kerr.GroupAuthorizationFailed.Code
	codeClusterAuthz = kerr.ClusterAuthorizationFailed.Code
	codeTxnAuthz     = kerr.TransactionalIDAuthorizationFailed.Code
)

// startAuthzServer runs a broker with ACL enforcement and admin as the
// super user; nobody else holds any ACL yet.
func startAuthzServer(t *testing.T) *testServer {
	t.Helper()
	ts := startServer(t, func(c *Config) {
		c.AuthorizerClassName = authzClassName
		c.SuperUsers = admin
	})
	if ts.authz == nil {
		t.Fatal("authorizer.class.name set but no authorizer configured")
	}
	return ts
}

// grant adds ALLOW bindings for principal from any host and puts them in
// force at once.
func (ts *testServer) grant(t *testing.T, principal string, rt kmsg.ACLResourceType, pat kmsg.ACLResourcePatternType, name string, ops ...kmsg.ACLOperation) {
	t.Helper()
	var acls []metadata.ACL
	for _, op := range ops {
		acls = append(acls, metadata.ACL{ResourceType: int8(rt), ResourceName: name, PatternType: int8(pat),
			Principal: principal, Host: "*", Operation: int8(op), Permission: int8(kmsg.ACLPermissionTypeAllow)})
	}
	if err := ts.meta.CreateACLs(context.Background(), acls); err != nil {
		t.Fatalf("create ACLs: %v", err)
	}
	ts.authz.Update(ts.meta.ACLs())
}

// rawAs is a raw connection acting as principal.
func (ts *testServer) rawAs(t *testing.T, principal string) *rawConn {
	t.Helper()
	rc := ts.raw(t)
	rc.corr++
	req := kmsg.NewPtrApiVersionsRequest()
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID(testPrincipalPrefix + principal))
	if _, err := rc.c.Write(f.AppendRequest(nil, req, rc.corr)); err != nil {
		t.Fatal(err)
	}
	if corr, _, err := rc.readFrame(10 * time.Second); err != nil || corr != rc.corr {
		t.Fatalf("ApiVersions: corr %d err %v", corr, err)
	}
	return rc
}

// clientAs is a franz-go client acting as principal.
func (ts *testServer) clientAs(t *testing.T, principal string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return ts.client(t, append([]kgo.Opt{kgo.ClientID(testPrincipalPrefix + principal)}, opts...)...)
}

// adminTopic creates a topic as the super user.
func (ts *testServer) adminTopic(t *testing.T, name string, partitions int32) uuid.UUID {
	t.Helper()
	resp, err := kadm.NewClient(ts.clientAs(t, admin)).CreateTopic(context.Background(), partitions, 1, nil, name)
	if err != nil || resp.Err != nil {
		t.Fatalf("create topic %s: %v %v", name, err, resp.Err)
	}
	return uuid.UUID(resp.ID)
}

func denials(t *testing.T, ts *testServer, principal, rt, op string) float64 {
	t.Helper()
	v := metricValue(scrape(t, ts), "strata_broker_authorization_denials_total",
		`principal="`+principal+`"`, `resource_type="`+rt+`"`, `operation="`+op+`"`)
	return max(v, 0)
}

func TestSupportedOps(t *testing.T) {
	bits := func(ops ...kmsg.ACLOperation) int32 {
		var b int32
		for _, op := range ops {
			b |= 1 << op
		}
		return b
	}
	for _, tc := range []struct {
		rt   kmsg.ACLResourceType
		want int32
	}{
		{topicRes, bits(3, 4, 5, 6, 7, 8, 10, 11)},
		{groupRes, bits(3, 6, 8, 10, 11)},
		{clusterRes, bits(5, 7, 8, 9, 10, 11, 12)},
		{kmsg.ACLResourceTypeTransactionalId, bits(4, 8)},
		{kmsg.ACLResourceTypeAny, 0},
	} {
		if got := supportedOps(tc.rt); got != tc.want {
			t.Errorf("%v: %b, want %b", tc.rt, got, tc.want)
		}
	}
}

func TestAuthzProduce(t *testing.T) {
	ts := startAuthzServer(t)
	ts.adminTopic(t, "orders", 3)
	rc := ts.rawAs(t, alice)

	// Three partitions of an existing topic and one of a topic that does
	// not exist: all refused alike, one denial counted per topic.
	req := produceReq(-1, "orders", 0, batchOf(-1, -1, -1, "a"))
	for _, p := range []int32{1, 2} {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = p, batchOf(-1, -1, -1, "b")
		req.Topics[0].Partitions = append(req.Topics[0].Partitions, rp)
	}
	ghost := kmsg.NewProduceRequestTopic()
	ghost.Topic = "ghost"
	gp := kmsg.NewProduceRequestTopicPartition()
	gp.Records = batchOf(-1, -1, -1, "c")
	ghost.Partitions = append(ghost.Partitions, gp)
	req.Topics = append(req.Topics, ghost)

	resp := rc.do(req).(*kmsg.ProduceResponse)
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if p.ErrorCode != codeTopicAuthz {
				t.Errorf("%s-%d: error %d, want TOPIC_AUTHORIZATION_FAILED", rt.Topic, p.Partition, p.ErrorCode)
			}
		}
	}
	for p := int32(0); p < 3; p++ {
		if hw := ts.hw(t, "orders", p); hw != 0 {
			t.Errorf("orders-%d high watermark %d after a refused produce, want 0", p, hw)
		}
	}
	if _, ok := ts.meta.Topic("ghost"); ok {
		t.Error("a refused produce created its topic")
	}
	if got := denials(t, ts, alice, "TOPIC", "WRITE"); got != 2 {
		t.Errorf("WRITE denials counted %v, want 2 (once per topic)", got)
	}

	// Transactional batches without a transactional id: the whole
	// request is refused, as in Kafka.
	txn := proto.AppendBatch(nil, proto.BatchSpec{FirstTimestamp: time.Now().UnixMilli(), ProducerID: 5, Transactional: true},
		[]proto.Record{{Value: []byte("t")}})
	if p := producePart(rc.do(produceReq(-1, "orders", 0, txn))); p.ErrorCode != codeTxnAuthz {
		t.Errorf("transactional batch without id: error %d, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", p.ErrorCode)
	}

	ts.grant(t, alice, topicRes, literal, "orders", kmsg.ACLOperationWrite)
	if p := producePart(rc.do(produceReq(-1, "orders", 0, batchOf(-1, -1, -1, "ok")))); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("produce with WRITE: error %d offset %d", p.ErrorCode, p.BaseOffset)
	}
	if hw := ts.hw(t, "orders", 0); hw != 1 {
		t.Errorf("high watermark %d, want 1", hw)
	}
}

func TestAuthzFetch(t *testing.T) {
	ts := startAuthzServer(t)
	id := ts.adminTopic(t, "logs", 1)
	ts.produce(t, ts.clientAs(t, admin), "logs", 0, "x")
	rc := ts.rawAs(t, alice)

	follower := func(r *kmsg.FetchRequest) *kmsg.FetchRequest { r.ReplicaID = 1; return r }
	tests := []struct {
		name string
		req  *kmsg.FetchRequest
		want int16
	}{
		{"existing topic", fetchReq(11, 0, -1, "logs", [16]byte{}, map[int32]int64{0: 0}), codeTopicAuthz},
		{"missing topic", fetchReq(11, 0, -1, "ghost", [16]byte{}, map[int32]int64{0: 0}), codeTopicAuthz},
		{"known topic id", fetchReq(13, 0, -1, "", id, map[int32]int64{0: 0}), codeTopicAuthz},
		{"unknown topic id", fetchReq(13, 0, -1, "", uuid.New(), map[int32]int64{0: 0}), kerr.UnknownTopicID.Code},
		{"follower", follower(fetchReq(11, 0, -1, "logs", [16]byte{}, map[int32]int64{0: 0})), codeTopicAuthz},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A fetch with nothing it may serve is answered at once, not
			// after MaxWait (which outlasts the read deadline of do).
			tc.req.MinBytes, tc.req.MaxWaitMillis = 1, 60_000
			resp := rc.do(tc.req).(*kmsg.FetchResponse)
			p := partitionsOf(resp)[0]
			if p.ErrorCode != tc.want || len(p.RecordBatches) != 0 {
				t.Errorf("error %d with %d record bytes, want %d and none", p.ErrorCode, len(p.RecordBatches), tc.want)
			}
		})
	}

	ts.grant(t, alice, topicRes, literal, "logs", kmsg.ACLOperationRead)
	resp := rc.do(fetchReq(11, 0, -1, "logs", [16]byte{}, map[int32]int64{0: 0})).(*kmsg.FetchResponse)
	if p := partitionsOf(resp)[0]; p.ErrorCode != 0 || !slices.Equal(values(t, p), []string{"x"}) {
		t.Errorf("fetch with READ: error %d values %v", p.ErrorCode, values(t, p))
	}
	// Replicas need CLUSTER_ACTION, READ on the topic is not enough.
	resp = rc.do(follower(fetchReq(11, 0, -1, "logs", [16]byte{}, map[int32]int64{0: 0}))).(*kmsg.FetchResponse)
	if p := partitionsOf(resp)[0]; p.ErrorCode != codeTopicAuthz {
		t.Errorf("follower fetch without CLUSTER_ACTION: error %d", p.ErrorCode)
	}
}

func metadataReq(version int16, topics ...string) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	req.Version = version
	for _, n := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(n)
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func metadataTopics(resp kmsg.Response) map[string]kmsg.MetadataResponseTopic {
	out := map[string]kmsg.MetadataResponseTopic{}
	for _, t := range resp.(*kmsg.MetadataResponse).Topics {
		if t.Topic != nil {
			out[*t.Topic] = t
		}
	}
	return out
}

func TestAuthzMetadata(t *testing.T) {
	ts := startAuthzServer(t)
	ts.adminTopic(t, "visible", 2)
	hiddenID := ts.adminTopic(t, "hidden", 1)
	ts.grant(t, alice, topicRes, literal, "visible", kmsg.ACLOperationDescribe)
	ts.grant(t, alice, topicRes, prefixed, "maybe-", kmsg.ACLOperationDescribe)
	rc := ts.rawAs(t, alice)

	t.Run("list all leaves out what may not be described", func(t *testing.T) {
		before := denials(t, ts, alice, "TOPIC", "DESCRIBE")
		got := metadataTopics(rc.do(metadataReq(12)))
		if len(got) != 1 || got["visible"].ErrorCode != 0 || len(got["visible"].Partitions) != 2 {
			t.Errorf("topics %v, want only visible with its 2 partitions", slices.Sorted(maps.Keys(got)))
		}
		if after := denials(t, ts, alice, "TOPIC", "DESCRIBE"); after != before {
			t.Errorf("filtering a list-all counted %v denials", after-before)
		}
	})

	t.Run("named topics", func(t *testing.T) {
		req := metadataReq(12, "hidden", "ghost", "visible", "maybe-missing")
		req.AllowAutoTopicCreation = false
		req.IncludeTopicAuthorizedOperations = true
		got := metadataTopics(rc.do(req))
		for _, name := range []string{"hidden", "ghost"} {
			mt := got[name]
			if mt.ErrorCode != codeTopicAuthz || len(mt.Partitions) != 0 || mt.TopicID != ([16]byte{}) || mt.AuthorizedOperations != opsNotRequested {
				t.Errorf("%s: error %d, %d partitions, id %v, ops %d: want TOPIC_AUTHORIZATION_FAILED and nothing else",
					name, mt.ErrorCode, len(mt.Partitions), mt.TopicID, mt.AuthorizedOperations)
			}
		}
		describe := int32(1) << kmsg.ACLOperationDescribe
		if v := got["visible"]; v.ErrorCode != 0 || len(v.Partitions) != 2 || v.AuthorizedOperations != describe {
			t.Errorf("visible: error %d, %d partitions, ops %b", v.ErrorCode, len(v.Partitions), v.AuthorizedOperations)
		}
		if m := got["maybe-missing"]; m.ErrorCode != kerr.UnknownTopicOrPartition.Code || m.AuthorizedOperations != describe {
			t.Errorf("describable missing topic: error %d ops %b, want UNKNOWN_TOPIC_OR_PARTITION", m.ErrorCode, m.AuthorizedOperations)
		}
	})

	t.Run("topic id", func(t *testing.T) {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 12
		rt := kmsg.NewMetadataRequestTopic()
		rt.TopicID = hiddenID
		req.Topics = append(req.Topics, rt)
		resp := rc.do(req).(*kmsg.MetadataResponse)
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != codeTopicAuthz || resp.Topics[0].Topic != nil {
			t.Errorf("hidden topic by id: %+v, want TOPIC_AUTHORIZATION_FAILED without its name", resp.Topics)
		}
	})

	t.Run("auto-create needs CREATE", func(t *testing.T) {
		req := metadataReq(12, "maybe-auto")
		req.AllowAutoTopicCreation = true
		if got := metadataTopics(rc.do(req))["maybe-auto"]; got.ErrorCode != codeTopicAuthz {
			t.Errorf("auto-create without CREATE: error %d", got.ErrorCode)
		}
		if _, ok := ts.meta.Topic("maybe-auto"); ok {
			t.Fatal("topic auto-created without CREATE")
		}
		ts.grant(t, alice, clusterRes, literal, clusterResourceName, kmsg.ACLOperationCreate)
		if got := metadataTopics(rc.do(req))["maybe-auto"]; got.ErrorCode != 0 || len(got.Partitions) == 0 {
			t.Errorf("auto-create with CREATE on the cluster: error %d", got.ErrorCode)
		}
	})

	t.Run("cluster operations need DESCRIBE on the cluster", func(t *testing.T) {
		req := metadataReq(10, "visible")
		req.IncludeClusterAuthorizedOperations = true
		if got := rc.do(req).(*kmsg.MetadataResponse).AuthorizedOperations; got != 0 {
			t.Errorf("cluster ops %b without DESCRIBE, want 0", got)
		}
	})
}

func TestAuthorizedOpsWithoutAuthorizer(t *testing.T) {
	ts := startServer(t)
	ts.createTopic(t, "plain", 1)
	rc := ts.raw(t)
	req := metadataReq(10, "plain")
	req.IncludeClusterAuthorizedOperations, req.IncludeTopicAuthorizedOperations = true, true
	resp := rc.do(req).(*kmsg.MetadataResponse)
	if resp.AuthorizedOperations != supportedOps(clusterRes) || resp.Topics[0].AuthorizedOperations != supportedOps(topicRes) {
		t.Errorf("ops cluster %b topic %b, want every supported operation", resp.AuthorizedOperations, resp.Topics[0].AuthorizedOperations)
	}
	resp = rc.do(metadataReq(10, "plain")).(*kmsg.MetadataResponse)
	if resp.AuthorizedOperations != opsNotRequested || resp.Topics[0].AuthorizedOperations != opsNotRequested {
		t.Errorf("ops not asked for: cluster %d topic %d, want %d", resp.AuthorizedOperations, resp.Topics[0].AuthorizedOperations, opsNotRequested)
	}
	dc := kmsg.NewPtrDescribeClusterRequest()
	dc.IncludeClusterAuthorizedOperations = true
	if got := rc.do(dc).(*kmsg.DescribeClusterResponse).ClusterAuthorizedOperations; got != supportedOps(clusterRes) {
		t.Errorf("DescribeCluster ops %b", got)
	}
}

func createTopicsReq(names ...string) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = 7
	req.TimeoutMillis = 5000
	for _, n := range names {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = n, 1, 1
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func TestAuthzCreateTopics(t *testing.T) {
	ts := startAuthzServer(t)
	rc := ts.rawAs(t, alice)

	st := rc.do(createTopicsReq("new-a")).(*kmsg.CreateTopicsResponse).Topics[0]
	if st.ErrorCode != codeTopicAuthz || st.ErrorMessage == nil {
		t.Errorf("create without CREATE: error %d message %v", st.ErrorCode, st.ErrorMessage)
	}
	if _, ok := ts.meta.Topic("new-a"); ok {
		t.Fatal("topic created without CREATE")
	}

	// CREATE without DESCRIBE_CONFIGS: created, but its configs (and
	// partition count, replication factor) are not shown.
	ts.grant(t, alice, topicRes, literal, "new-a", kmsg.ACLOperationCreate)
	st = rc.do(createTopicsReq("new-a")).(*kmsg.CreateTopicsResponse).Topics[0]
	if st.ErrorCode != 0 || st.ConfigErrorCode != codeTopicAuthz || len(st.Configs) != 0 || st.NumPartitions != -1 || st.TopicID == ([16]byte{}) {
		t.Errorf("create without DESCRIBE_CONFIGS: error %d config error %d, %d configs, %d partitions",
			st.ErrorCode, st.ConfigErrorCode, len(st.Configs), st.NumPartitions)
	}
	if _, ok := ts.meta.Topic("new-a"); !ok {
		t.Fatal("topic not created with CREATE")
	}

	ts.grant(t, alice, topicRes, literal, "new-b", kmsg.ACLOperationCreate, kmsg.ACLOperationDescribeConfigs)
	st = rc.do(createTopicsReq("new-b")).(*kmsg.CreateTopicsResponse).Topics[0]
	if st.ErrorCode != 0 || st.ConfigErrorCode != 0 || len(st.Configs) == 0 || st.NumPartitions != 1 {
		t.Errorf("create with DESCRIBE_CONFIGS: error %d config error %d, %d configs", st.ErrorCode, st.ConfigErrorCode, len(st.Configs))
	}

	ts.grant(t, alice, clusterRes, literal, clusterResourceName, kmsg.ACLOperationCreate)
	if st = rc.do(createTopicsReq("new-c")).(*kmsg.CreateTopicsResponse).Topics[0]; st.ErrorCode != 0 {
		t.Errorf("create with CREATE on the cluster: error %d", st.ErrorCode)
	}
}

func TestAuthzDeleteTopics(t *testing.T) {
	ts := startAuthzServer(t)
	victimID := ts.adminTopic(t, "victim", 1)
	shownID := ts.adminTopic(t, "shown", 1)
	ts.grant(t, alice, topicRes, literal, "shown", kmsg.ACLOperationDescribe)
	rc := ts.rawAs(t, alice)

	del := func(byName []string, byID ...uuid.UUID) []kmsg.DeleteTopicsResponseTopic {
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.Version = 6
		req.TimeoutMillis = 5000
		for _, n := range byName {
			rt := kmsg.NewDeleteTopicsRequestTopic()
			rt.Topic = kmsg.StringPtr(n)
			req.Topics = append(req.Topics, rt)
		}
		for _, id := range byID {
			rt := kmsg.NewDeleteTopicsRequestTopic()
			rt.TopicID = id
			req.Topics = append(req.Topics, rt)
		}
		return rc.do(req).(*kmsg.DeleteTopicsResponse).Topics
	}

	got := del([]string{"victim", "ghost", "shown"}, victimID, shownID)
	for i, want := range []struct {
		name *string
		code int16
	}{
		{kmsg.StringPtr("victim"), codeTopicAuthz},
		{kmsg.StringPtr("ghost"), codeTopicAuthz}, // absent, but that is not revealed
		{kmsg.StringPtr("shown"), codeTopicAuthz}, // DESCRIBE is not DELETE
		{nil, codeTopicAuthz},                     // by id: no name without DESCRIBE
		{kmsg.StringPtr("shown"), codeTopicAuthz}, // by id: named with DESCRIBE
	} {
		if g := got[i]; g.ErrorCode != want.code || !equalPtr(g.Topic, want.name) {
			t.Errorf("entry %d: topic %v error %d, want %v %d", i, strOr(g.Topic), g.ErrorCode, strOr(want.name), want.code)
		}
	}
	if _, ok := ts.meta.Topic("victim"); !ok {
		t.Fatal("refused delete deleted the topic")
	}

	ts.grant(t, alice, topicRes, literal, "ghost", kmsg.ACLOperationDescribe)
	if g := del([]string{"ghost"})[0]; g.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("describable missing topic: error %d, want UNKNOWN_TOPIC_OR_PARTITION", g.ErrorCode)
	}
	ts.grant(t, alice, topicRes, literal, "victim", kmsg.ACLOperationDelete)
	if g := del(nil, victimID)[0]; g.ErrorCode != 0 {
		t.Errorf("delete with DELETE: error %d", g.ErrorCode)
	}
	if _, ok := ts.meta.Topic("victim"); ok {
		t.Error("topic still exists after an allowed delete")
	}
}

func equalPtr(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func strOr(s *string) string {
	if s == nil {
		return "<null>"
	}
	return *s
}

// commitReq commits an offset for partition 0 of each topic with a simple
// (generation -1, no member) commit.
func commitReq(group string, offsets map[string]int64) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 8
	req.Group, req.Generation = group, -1
	for _, topic := range slices.Sorted(maps.Keys(offsets)) {
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Offset = offsets[topic]
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func commitCodes(resp kmsg.Response) map[string]int16 {
	out := map[string]int16{}
	for _, t := range resp.(*kmsg.OffsetCommitResponse).Topics {
		for _, p := range t.Partitions {
			out[t.Topic] = p.ErrorCode
		}
	}
	return out
}

func offsetFetchReq(version int16, group string, topics ...string) *kmsg.OffsetFetchRequest {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version, req.Group = version, group
	for _, n := range topics {
		rt := kmsg.NewOffsetFetchRequestTopic()
		rt.Topic, rt.Partitions = n, []int32{0}
		req.Topics = append(req.Topics, rt)
	}
	return req
}

func TestAuthzGroups(t *testing.T) {
	ts := startAuthzServer(t)
	ts.adminTopic(t, "events", 1)
	ts.adminTopic(t, "secret", 1)
	adm := ts.rawAs(t, admin)
	if got := commitCodes(adm.do(commitReq("team", map[string]int64{"secret": 5}))); got["secret"] != 0 {
		t.Fatalf("admin commit: %v", got)
	}
	rc := ts.rawAs(t, alice)

	t.Run("no ACLs", func(t *testing.T) {
		join := kmsg.NewPtrJoinGroupRequest()
		join.Version, join.Group, join.ProtocolType = 5, "team", "consumer"
		join.SessionTimeoutMillis, join.RebalanceTimeoutMillis = 10000, 10000
		join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
		if r := rc.do(join).(*kmsg.JoinGroupResponse); r.ErrorCode != codeGroupAuthz || r.MemberID != "" || r.Generation != -1 {
			t.Errorf("JoinGroup: error %d member %q generation %d", r.ErrorCode, r.MemberID, r.Generation)
		}
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Version, hb.Group, hb.MemberID = 3, "team", "m"
		if r := rc.do(hb).(*kmsg.HeartbeatResponse); r.ErrorCode != codeGroupAuthz {
			t.Errorf("Heartbeat: error %d", r.ErrorCode)
		}
		sync := kmsg.NewPtrSyncGroupRequest()
		sync.Version, sync.Group, sync.MemberID = 3, "team", "m"
		if r := rc.do(sync).(*kmsg.SyncGroupResponse); r.ErrorCode != codeGroupAuthz {
			t.Errorf("SyncGroup: error %d", r.ErrorCode)
		}
		leave := kmsg.NewPtrLeaveGroupRequest()
		leave.Version, leave.Group = 3, "team"
		leave.Members = []kmsg.LeaveGroupRequestMember{{MemberID: "m"}}
		if r := rc.do(leave).(*kmsg.LeaveGroupResponse); r.ErrorCode != codeGroupAuthz || len(r.Members) != 0 {
			t.Errorf("LeaveGroup: error %d members %d", r.ErrorCode, len(r.Members))
		}
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.Version, fc.CoordinatorKeys = 4, []string{"team"}
		if c := rc.do(fc).(*kmsg.FindCoordinatorResponse).Coordinators[0]; c.ErrorCode != codeGroupAuthz || c.NodeID != -1 {
			t.Errorf("FindCoordinator: error %d node %d", c.ErrorCode, c.NodeID)
		}
		fc = kmsg.NewPtrFindCoordinatorRequest()
		fc.Version, fc.CoordinatorKey, fc.CoordinatorType = 3, "tx", 1
		if r := rc.do(fc).(*kmsg.FindCoordinatorResponse); r.ErrorCode != codeTxnAuthz {
			t.Errorf("FindCoordinator for a transactional id: error %d", r.ErrorCode)
		}
		if got := commitCodes(rc.do(commitReq("team", map[string]int64{"events": 1}))); got["events"] != codeGroupAuthz {
			t.Errorf("OffsetCommit: %v, want GROUP_AUTHORIZATION_FAILED", got)
		}
		if r := rc.do(offsetFetchReq(7, "team", "events")).(*kmsg.OffsetFetchResponse); r.ErrorCode != codeGroupAuthz || len(r.Topics) != 0 {
			t.Errorf("OffsetFetch v7: error %d topics %d", r.ErrorCode, len(r.Topics))
		}
		if r := rc.do(offsetFetchReq(1, "team", "events")).(*kmsg.OffsetFetchResponse); len(r.Topics) != 1 || r.Topics[0].Partitions[0].ErrorCode != codeGroupAuthz {
			t.Errorf("OffsetFetch v1 (no group error field): %+v", r.Topics)
		}
	})

	ts.grant(t, alice, groupRes, literal, "team", kmsg.ACLOperationRead)
	t.Run("group but no topic", func(t *testing.T) {
		got := commitCodes(rc.do(commitReq("team", map[string]int64{"events": 1, "ghost": 1})))
		if got["events"] != codeTopicAuthz || got["ghost"] != codeTopicAuthz {
			t.Errorf("OffsetCommit: %v, want TOPIC_AUTHORIZATION_FAILED for both", got)
		}
	})

	ts.grant(t, alice, topicRes, literal, "events", kmsg.ACLOperationRead)
	t.Run("group and topic", func(t *testing.T) {
		got := commitCodes(rc.do(commitReq("team", map[string]int64{"events": 1, "ghost": 1})))
		if got["events"] != 0 || got["ghost"] != codeTopicAuthz {
			t.Errorf("OffsetCommit: %v, want events committed and ghost refused", got)
		}
		// Named topics: the refused one says so.
		r := rc.do(offsetFetchReq(7, "team", "events", "secret")).(*kmsg.OffsetFetchResponse)
		offsets := map[string]kmsg.OffsetFetchResponseTopicPartition{}
		for _, t := range r.Topics {
			offsets[t.Topic] = t.Partitions[0]
		}
		if r.ErrorCode != 0 || offsets["events"].Offset != 1 || offsets["secret"].ErrorCode != codeTopicAuthz || offsets["secret"].Offset != -1 {
			t.Errorf("OffsetFetch named: error %d offsets %+v", r.ErrorCode, offsets)
		}
		// All topics: the one alice may not describe is left out.
		all := offsetFetchReq(7, "team")
		all.Topics = nil
		r = rc.do(all).(*kmsg.OffsetFetchResponse)
		if len(r.Topics) != 1 || r.Topics[0].Topic != "events" {
			t.Errorf("OffsetFetch all topics: %+v, want only events", r.Topics)
		}
		// v8 batches groups: each is authorized on its own.
		batch := kmsg.NewPtrOffsetFetchRequest()
		batch.Version = 8
		batch.Groups = []kmsg.OffsetFetchRequestGroup{{Group: "team"}, {Group: "other"}}
		groups := rc.do(batch).(*kmsg.OffsetFetchResponse).Groups
		if len(groups) != 2 || groups[0].ErrorCode != 0 || len(groups[0].Topics) != 1 || groups[0].Topics[0].Topic != "events" ||
			groups[1].Group != "other" || groups[1].ErrorCode != codeGroupAuthz {
			t.Errorf("OffsetFetch v8: %+v", groups)
		}
	})
}

func TestAuthzListAndDescribeGroups(t *testing.T) {
	ts := startAuthzServer(t)
	ts.adminTopic(t, "t", 1)
	adm := ts.rawAs(t, admin)
	for _, g := range []string{"g-mine", "g-other"} {
		if got := commitCodes(adm.do(commitReq(g, map[string]int64{"t": 1}))); got["t"] != 0 {
			t.Fatalf("admin commit for %s: %v", g, got)
		}
	}
	ts.grant(t, alice, groupRes, literal, "g-mine", kmsg.ACLOperationDescribe)
	rc := ts.rawAs(t, alice)

	list := func() []string {
		req := kmsg.NewPtrListGroupsRequest()
		req.Version = 4
		resp := rc.do(req).(*kmsg.ListGroupsResponse)
		var out []string
		for _, g := range resp.Groups {
			out = append(out, g.Group)
		}
		slices.Sort(out)
		return out
	}
	if got := list(); !slices.Equal(got, []string{"g-mine"}) {
		t.Errorf("ListGroups without DESCRIBE on the cluster: %v, want [g-mine]", got)
	}

	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Version, dg.Groups, dg.IncludeAuthorizedOperations = 5, []string{"g-other", "g-mine"}, true
	groups := rc.do(dg).(*kmsg.DescribeGroupsResponse).Groups
	if len(groups) != 2 || groups[0].Group != "g-other" || groups[0].ErrorCode != codeGroupAuthz || groups[0].AuthorizedOperations != opsNotRequested {
		t.Errorf("DescribeGroups refused entry: %+v", groups)
	} else if g := groups[1]; g.Group != "g-mine" || g.ErrorCode != 0 || g.AuthorizedOperations != 1<<kmsg.ACLOperationDescribe {
		t.Errorf("DescribeGroups allowed entry: error %d ops %b", g.ErrorCode, g.AuthorizedOperations)
	}

	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Version, del.Groups = 2, []string{"g-other"}
	if r := rc.do(del).(*kmsg.DeleteGroupsResponse).Groups[0]; r.ErrorCode != codeGroupAuthz {
		t.Errorf("DeleteGroups: error %d", r.ErrorCode)
	}
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = "g-other"
	if r := rc.do(od).(*kmsg.OffsetDeleteResponse); r.ErrorCode != codeGroupAuthz {
		t.Errorf("OffsetDelete: error %d", r.ErrorCode)
	}

	ts.grant(t, alice, clusterRes, literal, clusterResourceName, kmsg.ACLOperationDescribe)
	if got := list(); !slices.Equal(got, []string{"g-mine", "g-other"}) {
		t.Errorf("ListGroups with DESCRIBE on the cluster: %v", got)
	}
}

func TestAuthzConfigs(t *testing.T) {
	ts := startAuthzServer(t)
	ts.adminTopic(t, "cfg", 1)
	rc := ts.rawAs(t, alice)

	describe := func() []kmsg.DescribeConfigsResponseResource {
		req := kmsg.NewPtrDescribeConfigsRequest()
		req.Version = 4
		for _, r := range []struct {
			typ  kmsg.ConfigResourceType
			name string
		}{{kmsg.ConfigResourceTypeTopic, "cfg"}, {kmsg.ConfigResourceTypeTopic, "ghost"}, {kmsg.ConfigResourceTypeBroker, strconv.Itoa(int(ts.cfg.NodeID))}} {
			rr := kmsg.NewDescribeConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = r.typ, r.name
			req.Resources = append(req.Resources, rr)
		}
		return rc.do(req).(*kmsg.DescribeConfigsResponse).Resources
	}
	got := describe()
	for i, want := range []int16{codeTopicAuthz, codeTopicAuthz, codeClusterAuthz} {
		if got[i].ErrorCode != want || len(got[i].Configs) != 0 || got[i].ErrorMessage == nil {
			t.Errorf("resource %s: error %d, %d configs", got[i].ResourceName, got[i].ErrorCode, len(got[i].Configs))
		}
	}
	ts.grant(t, alice, topicRes, literal, "cfg", kmsg.ACLOperationDescribeConfigs)
	if got = describe(); got[0].ErrorCode != 0 || len(got[0].Configs) == 0 {
		t.Errorf("describe with DESCRIBE_CONFIGS: error %d", got[0].ErrorCode)
	}

	alter := func() int16 {
		req := kmsg.NewPtrIncrementalAlterConfigsRequest()
		rr := kmsg.NewIncrementalAlterConfigsRequestResource()
		rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "cfg"
		c := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		c.Name, c.Value = "retention.ms", kmsg.StringPtr("60000")
		rr.Configs = append(rr.Configs, c)
		req.Resources = append(req.Resources, rr)
		return rc.do(req).(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode
	}
	if code := alter(); code != codeTopicAuthz {
		t.Errorf("alter without ALTER_CONFIGS: error %d", code)
	}
	if topic, _ := ts.meta.Topic("cfg"); topic.Configs["retention.ms"] != "" {
		t.Fatal("refused alter changed the config")
	}
	ts.grant(t, alice, topicRes, literal, "cfg", kmsg.ACLOperationAlterConfigs)
	if code := alter(); code != 0 {
		t.Errorf("alter with ALTER_CONFIGS: error %d", code)
	}
}

func TestAuthzTopicAndClusterAPIs(t *testing.T) {
	ts := startAuthzServer(t)
	ts.adminTopic(t, "data", 1)
	rc := ts.rawAs(t, alice)

	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version = 7
	lo.ReplicaID = -1
	for _, n := range []string{"data", "ghost"} {
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = n
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = -1
		rt.Partitions = append(rt.Partitions, rp)
		lo.Topics = append(lo.Topics, rt)
	}
	for _, rt := range rc.do(lo).(*kmsg.ListOffsetsResponse).Topics {
		if p := rt.Partitions[0]; p.ErrorCode != codeTopicAuthz || p.Offset != -1 {
			t.Errorf("ListOffsets %s: error %d offset %d", rt.Topic, p.ErrorCode, p.Offset)
		}
	}

	oe := kmsg.NewPtrOffsetForLeaderEpochRequest()
	oe.Version, oe.ReplicaID = 4, -1
	oet := kmsg.NewOffsetForLeaderEpochRequestTopic()
	oet.Topic = "data"
	oet.Partitions = []kmsg.OffsetForLeaderEpochRequestTopicPartition{{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 0}}
	oe.Topics = append(oe.Topics, oet)
	if p := rc.do(oe).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]; p.ErrorCode != codeTopicAuthz || p.EndOffset != -1 {
		t.Errorf("OffsetForLeaderEpoch: error %d end %d", p.ErrorCode, p.EndOffset)
	}

	dr := kmsg.NewPtrDeleteRecordsRequest()
	dr.Version, dr.TimeoutMillis = 2, 5000
	drt := kmsg.NewDeleteRecordsRequestTopic()
	drt.Topic = "data"
	drt.Partitions = []kmsg.DeleteRecordsRequestTopicPartition{{Partition: 0, Offset: -1}}
	dr.Topics = append(dr.Topics, drt)
	if p := rc.do(dr).(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0]; p.ErrorCode != codeTopicAuthz || p.LowWatermark != -1 {
		t.Errorf("DeleteRecords: error %d low watermark %d", p.ErrorCode, p.LowWatermark)
	}

	cp := kmsg.NewPtrCreatePartitionsRequest()
	cp.Version, cp.TimeoutMillis = 3, 5000
	cp.Topics = []kmsg.CreatePartitionsRequestTopic{{Topic: "data", Count: 4}, {Topic: "ghost", Count: 4}}
	for _, st := range rc.do(cp).(*kmsg.CreatePartitionsResponse).Topics {
		if st.ErrorCode != codeTopicAuthz {
			t.Errorf("CreatePartitions %s: error %d", st.Topic, st.ErrorCode)
		}
	}
	if topic, _ := ts.meta.Topic("data"); len(topic.Partitions) != 1 {
		t.Errorf("refused CreatePartitions left %d partitions", len(topic.Partitions))
	}

	ld := kmsg.NewPtrDescribeLogDirsRequest()
	ld.Version = 4
	if r := rc.do(ld).(*kmsg.DescribeLogDirsResponse); r.ErrorCode != codeClusterAuthz || len(r.Dirs) != 0 {
		t.Errorf("DescribeLogDirs: error %d, %d dirs", r.ErrorCode, len(r.Dirs))
	}

	dc := kmsg.NewPtrDescribeClusterRequest()
	dc.IncludeClusterAuthorizedOperations = true
	if r := rc.do(dc).(*kmsg.DescribeClusterResponse); r.ErrorCode != 0 || r.ClusterAuthorizedOperations != 0 || len(r.Brokers) == 0 {
		t.Errorf("DescribeCluster: error %d ops %b, %d brokers", r.ErrorCode, r.ClusterAuthorizedOperations, len(r.Brokers))
	}

	pid := func(txn *string) int16 {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.Version, req.TransactionalID, req.TransactionTimeoutMillis = 4, txn, 60000
		return rc.do(req).(*kmsg.InitProducerIDResponse).ErrorCode
	}
	if code := pid(nil); code != codeClusterAuthz {
		t.Errorf("InitProducerId without WRITE anywhere: error %d", code)
	}
	if code := pid(kmsg.StringPtr("tx")); code != codeTxnAuthz {
		t.Errorf("InitProducerId with a transactional id: error %d", code)
	}
	// WRITE on some topic is enough for an idempotent producer (KIP-679).
	ts.grant(t, alice, topicRes, prefixed, "data", kmsg.ACLOperationWrite)
	if code := pid(nil); code != 0 {
		t.Errorf("InitProducerId with WRITE on a topic: error %d", code)
	}
}

// TestAuthzClientWithACLs runs a real producer and consumer group as a
// principal holding exactly the ACLs a Kafka deployment would grant them.
func TestAuthzClientWithACLs(t *testing.T) {
	ts := startAuthzServer(t)
	ts.adminTopic(t, "stream", 1)
	ts.grant(t, alice, topicRes, literal, "stream", kmsg.ACLOperationWrite, kmsg.ACLOperationRead)
	ts.grant(t, alice, groupRes, literal, "readers", kmsg.ACLOperationRead)

	ts.produce(t, ts.clientAs(t, alice), "stream", 0, "a", "b")
	cl := ts.clientAs(t, alice, kgo.ConsumeTopics("stream"), kgo.ConsumerGroup("readers"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []string
	for len(got) < 2 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("poll: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("consumed %v", got)
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Errorf("commit: %v", err)
	}
}

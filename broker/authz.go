package broker

// Authorization as Apache Kafka's request handlers do it (KafkaApis,
// ControllerApis, AuthHelper). Each api_<name>.go decides which operation
// on which resource its request needs and what a denial looks like on the
// wire (that is per API and easy to get subtly wrong, so the handler file
// says it next to the code); the decision itself, the denial metric and
// the denial log live here.
//
// Rules every handler follows, because Kafka does:
//   - Topic existence is never revealed to a principal without DESCRIBE on
//     the topic: an unauthorized name gets TOPIC_AUTHORIZATION_FAILED
//     whether the topic exists or not, and the authorization check comes
//     before the existence check.
//   - Views of "everything" (Metadata for all topics, ListGroups, the
//     all-topics OffsetFetch) silently leave out what the principal may not
//     describe instead of failing.
//   - Without an authorizer (authorizer.class.name empty) everything is
//     allowed and authorized_operations fields report every operation the
//     resource type supports.
//
// Concurrency: the helpers only read the Server's authorizer, which is
// safe for concurrent use; an authzBatch belongs to one request.

import (
	"context"
	"log/slog"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// clusterResourceName is the one name of the CLUSTER resource, as in Kafka.
const clusterResourceName = "kafka-cluster"

// opsNotRequested is what an authorized_operations field carries when the
// client did not ask for it: the schema default, Integer.MIN_VALUE.
const opsNotRequested int32 = math.MinInt32

// denialsMetric counts denied authorizations. The resource name is not a
// label (every topic and group a client names would mint a series); it is
// in the debug log line instead.
const denialsMetric = "strata_broker_authorization_denials"

// allow reports whether the request's principal, from its host, may do op
// on the resource. A denial is counted and logged (at debug: a client
// retrying a forbidden request would flood anything louder).
func (s *Server) allow(r *request, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	if s.authz == nil {
		return true
	}
	if s.authz.Authorize(r.principal(), r.clientHost(), int8(op), int8(rt), name) {
		return true
	}
	s.denied(r, op, rt, name)
	return false
}

// allowQuiet is allow without counting or logging a denial, for checks
// whose "no" is not an error the client sees: filtering a list-all view,
// or a broad permission tried before a narrow one (Kafka's
// logIfDenied=false).
func (s *Server) allowQuiet(r *request, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) bool {
	return s.authz == nil || s.authz.Authorize(r.principal(), r.clientHost(), int8(op), int8(rt), name)
}

// allowCluster is allow on the CLUSTER resource.
func (s *Server) allowCluster(r *request, op kmsg.ACLOperation) bool {
	return s.allow(r, op, kmsg.ACLResourceTypeCluster, clusterResourceName)
}

// allowClusterQuiet is allowQuiet on the CLUSTER resource.
func (s *Server) allowClusterQuiet(r *request, op kmsg.ACLOperation) bool {
	return s.allowQuiet(r, op, kmsg.ACLResourceTypeCluster, clusterResourceName)
}

// allowAny reports whether the principal may do op on at least one
// resource of type rt (Kafka's authorizeByResourceType, KIP-679).
func (s *Server) allowAny(r *request, op kmsg.ACLOperation, rt kmsg.ACLResourceType) bool {
	return s.authz == nil || s.authz.AuthorizeAny(r.principal(), r.clientHost(), int8(op), int8(rt))
}

// denied records one refused authorization: a debug line with the
// resource name and a count by principal, resource type and operation.
func (s *Server) denied(r *request, op kmsg.ACLOperation, rt kmsg.ACLResourceType, name string) {
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("authorization denied", "principal", r.principal(), "host", r.clientHost(),
			"operation", op.String(), "resource_type", rt.String(), "resource", name,
			"api", kmsg.NameForKey(r.hdr.APIKey))
	}
	if s.metrics == nil {
		return
	}
	// The SDK returns the instrument it already made for this name, so
	// looking it up per denial keeps the Server free of another field;
	// denials are not a hot path.
	c, err := s.metrics.meter.Int64Counter(denialsMetric,
		metric.WithDescription("Requests (or parts of requests) refused by the authorizer, by principal, resource type and operation."))
	if err != nil {
		return
	}
	c.Add(context.Background(), 1, metric.WithAttributeSet(attribute.NewSet(
		attribute.String("principal", r.principal()),
		attribute.String("resource_type", rt.String()),
		attribute.String("operation", op.String()),
	)))
}

// authzBatch answers one operation on many resources of one type for one
// request, asking the authorizer (and counting a denial) once per distinct
// name, however many partitions name it.
type authzBatch struct {
	s     *Server
	r     *request
	op    kmsg.ACLOperation
	rt    kmsg.ACLResourceType
	quiet bool
	seen  map[string]bool
}

// batchAuthz returns an authzBatch for op on resources of type rt.
func (s *Server) batchAuthz(r *request, op kmsg.ACLOperation, rt kmsg.ACLResourceType) *authzBatch {
	return &authzBatch{s: s, r: r, op: op, rt: rt}
}

// quietly makes the batch's denials uncounted (see allowQuiet).
func (b *authzBatch) quietly() *authzBatch {
	b.quiet = true
	return b
}

// allow reports whether the principal may do the batch's operation on name.
func (b *authzBatch) allow(name string) bool {
	if b.s.authz == nil {
		return true
	}
	if ok, done := b.seen[name]; done {
		return ok
	}
	var ok bool
	if b.quiet {
		ok = b.s.allowQuiet(b.r, b.op, b.rt, name)
	} else {
		ok = b.s.allow(b.r, b.op, b.rt, name)
	}
	if b.seen == nil {
		b.seen = make(map[string]bool)
	}
	b.seen[name] = ok
	return ok
}

// authorizedOps is the authorized_operations bitfield (bit 1<<op) for a
// resource: the operations of its type the principal may do, or all of
// them without an authorizer.
func (s *Server) authorizedOps(r *request, rt kmsg.ACLResourceType, name string) int32 {
	supported := supportedOps(rt)
	if s.authz == nil {
		return supported
	}
	return s.authz.Ops(r.principal(), r.clientHost(), int8(rt), name) & supported
}

// supportedOps is the bitfield of operations that apply to a resource
// type, as Kafka lists them for authorized_operations. ALL is not among
// them: it is a grant, not an operation a client performs.
func supportedOps(rt kmsg.ACLResourceType) int32 {
	var ops []kmsg.ACLOperation
	switch rt {
	case kmsg.ACLResourceTypeTopic:
		ops = []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationCreate,
			kmsg.ACLOperationDescribe, kmsg.ACLOperationDelete, kmsg.ACLOperationAlter,
			kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationAlterConfigs}
	case kmsg.ACLResourceTypeGroup:
		ops = []kmsg.ACLOperation{kmsg.ACLOperationRead, kmsg.ACLOperationDescribe, kmsg.ACLOperationDelete,
			kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationAlterConfigs}
	case kmsg.ACLResourceTypeCluster:
		ops = []kmsg.ACLOperation{kmsg.ACLOperationCreate, kmsg.ACLOperationClusterAction,
			kmsg.ACLOperationDescribeConfigs, kmsg.ACLOperationAlterConfigs, kmsg.ACLOperationIdempotentWrite,
			kmsg.ACLOperationAlter, kmsg.ACLOperationDescribe}
	case kmsg.ACLResourceTypeTransactionalId:
		ops = []kmsg.ACLOperation{kmsg.ACLOperationDescribe, kmsg.ACLOperationWrite}
	case kmsg.ACLResourceTypeDelegationToken:
		ops = []kmsg.ACLOperation{kmsg.ACLOperationDescribe}
	case kmsg.ACLResourceTypeUser:
		ops = []kmsg.ACLOperation{kmsg.ACLOperationCreateTokens, kmsg.ACLOperationDescribeTokens}
	}
	var bits int32
	for _, op := range ops {
		bits |= 1 << uint(op)
	}
	return bits
}

// configResourceAuthz checks op (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a
// config resource the way Kafka does: topics against the topic, group
// configs against the group, broker, broker-logger and client-metrics
// resources against the cluster. It returns the error code
// of a denial, or 0 when allowed or when the type is one the handler
// rejects on its own (Kafka does not authorize those either).
func (s *Server) configResourceAuthz(r *request, op kmsg.ACLOperation, typ kmsg.ConfigResourceType, name string) int16 {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		if !s.allow(r, op, kmsg.ACLResourceTypeTopic, name) {
			return kerr.TopicAuthorizationFailed.Code
		}
	case kmsg.ConfigResourceTypeBroker, kmsg.ConfigResourceTypeBrokerLogger, kmsg.ConfigResourceTypeClientMetrics:
		if !s.allowCluster(r, op) {
			return kerr.ClusterAuthorizationFailed.Code
		}
	case kmsg.ConfigResourceTypeGroupConfig:
		if !s.allow(r, op, kmsg.ACLResourceTypeGroup, name) {
			return kerr.GroupAuthorizationFailed.Code
		}
	}
	return 0
}

// authzError is an authorization failure as an error: errorCode finds the
// Kafka code through Unwrap, and ErrorMessage fields get a short message
// that names nothing the client did not send.
type authzError struct{ code *kerr.Error }

func (e authzError) Error() string { return authzMessage(e.code.Code) }
func (e authzError) Unwrap() error { return e.code }

var (
	errTopicAuthz   error = authzError{kerr.TopicAuthorizationFailed}
	errGroupAuthz   error = authzError{kerr.GroupAuthorizationFailed}
	errClusterAuthz error = authzError{kerr.ClusterAuthorizationFailed}
)

// authzMessage is the error message sent with an authorization failure in
// the responses that carry one.
func authzMessage(code int16) string {
	switch code {
	case kerr.TopicAuthorizationFailed.Code:
		return "not authorized to access the topic"
	case kerr.GroupAuthorizationFailed.Code:
		return "not authorized to access the group"
	case kerr.ClusterAuthorizationFailed.Code:
		return "not authorized to access the cluster"
	case kerr.TransactionalIDAuthorizationFailed.Code:
		return "not authorized to use the transactional id"
	}
	return "not authorized"
}

package acl

import "strconv"

// Kafka's wire codes for ACL fields (ResourceType, PatternType, AclOperation,
// AclPermissionType). Codes Kafka does not know decode to UNKNOWN there; here
// they are simply out of range and treated the same way.
const (
	ResourceUnknown         int8 = 0
	ResourceAny             int8 = 1
	ResourceTopic           int8 = 2
	ResourceGroup           int8 = 3
	ResourceCluster         int8 = 4
	ResourceTransactionalID int8 = 5
	ResourceDelegationToken int8 = 6
	ResourceUser            int8 = 7

	PatternUnknown  int8 = 0
	PatternAny      int8 = 1
	PatternMatch    int8 = 2
	PatternLiteral  int8 = 3
	PatternPrefixed int8 = 4

	OpUnknown         int8 = 0
	OpAny             int8 = 1
	OpAll             int8 = 2
	OpRead            int8 = 3
	OpWrite           int8 = 4
	OpCreate          int8 = 5
	OpDelete          int8 = 6
	OpAlter           int8 = 7
	OpDescribe        int8 = 8
	OpClusterAction   int8 = 9
	OpDescribeConfigs int8 = 10
	OpAlterConfigs    int8 = 11
	OpIdempotentWrite int8 = 12
	OpCreateTokens    int8 = 13
	OpDescribeTokens  int8 = 14

	PermissionUnknown int8 = 0
	PermissionAny     int8 = 1
	PermissionDeny    int8 = 2
	PermissionAllow   int8 = 3
)

const (
	// Wildcard is the LITERAL resource name matching every resource of its
	// type, and the host matching every host.
	Wildcard = "*"
	// WildcardPrincipal is the principal matching every principal (of any
	// principal type, as in Kafka).
	WildcardPrincipal = "User:*"
	// ClusterName is the only name a CLUSTER resource has.
	ClusterName = "kafka-cluster"
)

const (
	numResourceTypes = 8
	maxOp            = OpDescribeTokens
)

var resourceNames = [...]string{"UNKNOWN", "ANY", "TOPIC", "GROUP", "CLUSTER", "TRANSACTIONAL_ID", "DELEGATION_TOKEN", "USER"}
var patternNames = [...]string{"UNKNOWN", "ANY", "MATCH", "LITERAL", "PREFIXED"}
var opNames = [...]string{"UNKNOWN", "ANY", "ALL", "READ", "WRITE", "CREATE", "DELETE", "ALTER", "DESCRIBE",
	"CLUSTER_ACTION", "DESCRIBE_CONFIGS", "ALTER_CONFIGS", "IDEMPOTENT_WRITE", "CREATE_TOKENS", "DESCRIBE_TOKENS"}
var permissionNames = [...]string{"UNKNOWN", "ANY", "DENY", "ALLOW"}

func codeName(names []string, c int8) string {
	if c >= 0 && int(c) < len(names) {
		return names[c]
	}
	return "UNKNOWN(" + strconv.Itoa(int(c)) + ")"
}

// ResourceTypeName is Kafka's name of a resource type code ("TOPIC"), for
// logs and error messages.
func ResourceTypeName(c int8) string { return codeName(resourceNames[:], c) }

// PatternTypeName is Kafka's name of a pattern type code ("PREFIXED").
func PatternTypeName(c int8) string { return codeName(patternNames[:], c) }

// OperationName is Kafka's name of an operation code ("DESCRIBE_CONFIGS").
func OperationName(c int8) string { return codeName(opNames[:], c) }

// PermissionName is Kafka's name of a permission code ("ALLOW").
func PermissionName(c int8) string { return codeName(permissionNames[:], c) }

// supportedOps is, per resource type, the operations Kafka reports in
// authorized_operations fields (AclEntry.supportedOperations). Kafka 4 also
// lists DESCRIBE_CONFIGS and ALTER_CONFIGS for GROUP (KIP-848 group
// configs); Strata has no group configs, so it does not claim them.
var supportedOps = [numResourceTypes]uint32{
	ResourceTopic: bits(OpRead, OpWrite, OpCreate, OpDelete, OpAlter, OpDescribe,
		OpDescribeConfigs, OpAlterConfigs),
	ResourceGroup: bits(OpRead, OpDescribe, OpDelete),
	ResourceCluster: bits(OpCreate, OpClusterAction, OpDescribeConfigs, OpAlterConfigs,
		OpIdempotentWrite, OpAlter, OpDescribe),
	ResourceTransactionalID: bits(OpDescribe, OpWrite),
	ResourceDelegationToken: bits(OpDescribe),
	ResourceUser:            bits(OpCreateTokens, OpDescribeTokens),
}

// SupportedOps is the bit field (bit 1<<op) of the operations Kafka reports
// for a resource type in authorized_operations fields; 0 for ANY/UNKNOWN.
func SupportedOps(resType int8) int32 {
	if !concreteResourceType(resType) {
		return 0
	}
	return int32(supportedOps[resType])
}

func bits(ops ...int8) uint32 {
	var m uint32
	for _, op := range ops {
		m |= 1 << uint(op)
	}
	return m
}

// allOps is what a binding with operation ALL grants or denies: every
// concrete operation, ALL itself included so that a request for ALL (which
// Kafka never makes) is granted only by an ALL binding.
var allOps = func() uint32 {
	var m uint32
	for op := OpAll; op <= maxOp; op++ {
		m |= 1 << uint(op)
	}
	return m
}()

// allowMask is the set of operations an ALLOW binding of op grants,
// including the implied DESCRIBE and DESCRIBE_CONFIGS.
func allowMask(op int8) uint32 {
	switch op {
	case OpAll:
		return allOps
	case OpRead, OpWrite, OpDelete, OpAlter:
		return 1<<uint(op) | 1<<uint(OpDescribe)
	case OpAlterConfigs:
		return 1<<uint(op) | 1<<uint(OpDescribeConfigs)
	}
	if concreteOp(op) {
		return 1 << uint(op)
	}
	return 0
}

// denyMask is the set of operations a DENY binding of op refuses: a DENY
// implies nothing beyond its own operation.
func denyMask(op int8) uint32 {
	if op == OpAll {
		return allOps
	}
	if concreteOp(op) {
		return 1 << uint(op)
	}
	return 0
}

func concreteResourceType(t int8) bool { return t >= ResourceTopic && t < numResourceTypes }
func concreteOp(op int8) bool          { return op >= OpAll && op <= maxOp }

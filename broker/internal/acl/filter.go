package acl

import (
	"errors"
	"strconv"
	"strings"

	"github.com/strata-broker/strata/metadata"
)

// ErrInvalid marks a binding or filter Kafka refuses with INVALID_REQUEST.
// The error returned by ValidateBinding or ValidateFilter matches it with
// errors.Is, and its Error text alone is the explanation meant for the
// response's error_message.
var ErrInvalid = errors.New("acl: invalid binding or filter")

type invalidError struct{ msg string }

func (e *invalidError) Error() string        { return e.msg }
func (e *invalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(msg string) error { return &invalidError{msg: msg} }

// Filter is Kafka's AclBindingFilter, as DescribeAcls and DeleteAcls carry
// it: nil strings and the ANY codes match everything.
type Filter struct {
	ResourceType          int8
	ResourceName          *string
	PatternType           int8
	Principal, Host       *string
	Operation, Permission int8
}

// Matches reports whether binding b matches the filter, with Kafka's
// semantics:
//   - ResourceType ANY matches every type, otherwise the type is equal.
//   - PatternType ANY matches any pattern type with the same name; LITERAL
//     and PREFIXED match that pattern type and the same name; MATCH matches
//     the bindings that would apply to a resource of that name: LITERAL of
//     the same name, LITERAL "*", and PREFIXED whose name the filter's name
//     starts with. A nil ResourceName matches every name (with MATCH, every
//     LITERAL and PREFIXED binding).
//   - Principal and Host: nil matches all, otherwise equal (no wildcard
//     expansion: a "User:*" filter finds the "User:*" bindings only).
//   - Operation and Permission: ANY matches all, otherwise equal.
func (f Filter) Matches(b metadata.ACL) bool {
	if f.ResourceType != ResourceAny && f.ResourceType != b.ResourceType {
		return false
	}
	if f.PatternType != PatternAny && f.PatternType != PatternMatch && f.PatternType != b.PatternType {
		return false
	}
	if f.ResourceName != nil && !f.matchesName(b) {
		return false
	}
	if f.Principal != nil && *f.Principal != b.Principal {
		return false
	}
	if f.Host != nil && *f.Host != b.Host {
		return false
	}
	if f.Operation != OpAny && f.Operation != b.Operation {
		return false
	}
	return f.Permission == PermissionAny || f.Permission == b.Permission
}

func (f Filter) matchesName(b metadata.ACL) bool {
	name := *f.ResourceName
	if f.PatternType != PatternMatch {
		return name == b.ResourceName
	}
	switch b.PatternType {
	case PatternLiteral:
		return name == b.ResourceName || b.ResourceName == Wildcard
	case PatternPrefixed:
		return strings.HasPrefix(name, b.ResourceName)
	}
	return false
}

// ValidateFilter checks a DescribeAcls or DeleteAcls filter. Like Kafka it
// refuses only UNKNOWN codes (and codes Kafka does not know, which it
// decodes as UNKNOWN); ANY and MATCH are what filters are for.
func ValidateFilter(f Filter) error {
	switch {
	case f.ResourceType < ResourceAny || f.ResourceType >= numResourceTypes:
		return invalid("unknown resource type " + ResourceTypeName(f.ResourceType) + " in ACL filter")
	case f.PatternType < PatternAny || f.PatternType > PatternPrefixed:
		return invalid("unknown pattern type " + PatternTypeName(f.PatternType) + " in ACL filter")
	case f.Operation < OpAny || f.Operation > maxOp:
		return invalid("unknown operation " + OperationName(f.Operation) + " in ACL filter")
	case f.Permission < PermissionAny || f.Permission > PermissionAllow:
		return invalid("unknown permission type " + PermissionName(f.Permission) + " in ACL filter")
	}
	return nil
}

// ValidateBinding checks a CreateAcls binding, with the rules of Kafka's
// broker (AclApis) and controller (AclControlManager): a concrete resource
// type (not UNKNOWN or ANY), pattern LITERAL or PREFIXED, a non-empty
// name, "kafka-cluster" as the only CLUSTER name, a principal "Type:name"
// with a non-empty type, a non-empty host, a concrete operation (ALL
// included; any operation is accepted on any resource type, as in Kafka)
// and permission ALLOW or DENY. PREFIXED "*" is accepted, as in Kafka: it
// applies to names starting with '*', not to every name.
func ValidateBinding(b metadata.ACL) error {
	switch {
	case !concreteResourceType(b.ResourceType):
		return invalid("invalid resource type " + ResourceTypeName(b.ResourceType) + ": an ACL binding needs a concrete resource type")
	case b.PatternType != PatternLiteral && b.PatternType != PatternPrefixed:
		return invalid("invalid pattern type " + PatternTypeName(b.PatternType) + ": an ACL binding is LITERAL or PREFIXED")
	case b.ResourceType == ResourceCluster && b.ResourceName != ClusterName:
		// Kafka's wording, which clients and tools show as is.
		return invalid("The only valid name for the CLUSTER resource is " + ClusterName)
	case b.ResourceName == "":
		return invalid("invalid empty resource name")
	}
	if i := strings.IndexByte(b.Principal, ':'); i <= 0 {
		return invalid("invalid principal " + strconv.Quote(b.Principal) + ": expected principalType:principalName, such as User:alice")
	}
	switch {
	case b.Host == "":
		return invalid("invalid empty host: use * for every host")
	case !concreteOp(b.Operation):
		return invalid("invalid operation " + OperationName(b.Operation) + ": an ACL binding needs a concrete operation")
	case b.Permission != PermissionAllow && b.Permission != PermissionDeny:
		return invalid("invalid permission type " + PermissionName(b.Permission) + ": an ACL binding is ALLOW or DENY")
	}
	return nil
}

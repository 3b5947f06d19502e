// Package acl is Strata's authorizer: Apache Kafka's ACL model (the KRaft
// StandardAuthorizer) evaluated in memory over the bindings stored in the
// Raft metadata.
//
// # Rules
//
// A request is (principal, host, operation, resource type, resource name).
// Super users (exact principal strings such as "User:admin") may do
// anything. Otherwise the bindings that apply to the resource are those of
// the same resource type whose pattern is LITERAL with the same name or the
// name "*", or PREFIXED with a name the resource name starts with. Of those,
// a binding matches the request when its principal is the request's or
// "User:*", its host is the request's or "*", and its operation is the
// request's or ALL. Any matching DENY refuses; otherwise any matching ALLOW
// grants. An ALLOW of READ, WRITE, DELETE or ALTER also grants DESCRIBE,
// and an ALLOW of ALTER_CONFIGS also grants DESCRIBE_CONFIGS; a DENY never
// implies anything. With no matching ALLOW the request is refused, unless
// allow.everyone.if.no.acl.found is set and no binding at all (of any
// principal, host, operation or permission) applies to the resource.
//
// AuthorizeAny is Kafka's authorizeByResourceType, Ops computes the
// authorized_operations bit fields, and Filter is Kafka's AclBindingFilter
// (DescribeAcls, DeleteAcls). ValidateBinding and ValidateFilter hold the
// INVALID_REQUEST rules of CreateAcls, DescribeAcls and DeleteAcls.
//
// # Invariants
//
//   - The index is immutable once published: Update builds a complete new
//     one and swaps it in, so a reader sees either the old set or the new
//     set, never a mixture.
//   - Authorize and Ops do not allocate and never scan the whole set:
//     bindings are grouped by resource type, then by LITERAL name, "*" or
//     PREFIXED name, then by principal, so a request reads only its own
//     principal's entries and "User:*"'s. Prefixed bindings are found by
//     looking the request name up cut at each distinct prefix length in the
//     set; the cost grows with the number of distinct prefix lengths, not
//     with the number of bindings.
//
// # Concurrency
//
// An Authorizer is safe for concurrent use. Readers load the current index
// through an atomic pointer and take no lock. Update may run concurrently
// with readers; concurrent Updates are each atomic, and the last one to
// finish wins, so callers feed Update from a single goroutine (the broker's
// SecurityVersion watcher) to keep the newest set.
package acl

package broker

// CreateAcls v0-v3, DescribeAcls v0-v3, DeleteAcls v0-v3 (KIP-140;
// prefixed patterns from v1, KIP-290). v0 requests carry no pattern type:
// they create, describe and delete LITERAL bindings only.
//
// As in Kafka: the cluster check comes first (ALTER on CLUSTER for create
// and delete, DESCRIBE for describe; CLUSTER_AUTHORIZATION_FAILED for
// every entry), then, with no authorizer configured, SECURITY_DISABLED.
// Valid creations go to the metadata quorum in one command, invalid ones
// get INVALID_REQUEST with the reason; the bindings all delete filters
// match are removed in one command and each filter's result lists what it
// matched (a binding matched by two filters is listed by both). Describe
// groups bindings by resource pattern.
//
// Differences from Apache Kafka: a describe or delete filter with UNKNOWN
// elements is answered INVALID_REQUEST in its result, where Kafka fails
// to parse the request and closes the connection. This broker's
// authorizer is refreshed before the reply, so a change is in force here
// by the time the client hears of it.

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/internal/acl"
	"github.com/strata-broker/strata/metadata"
)

func init() {
	register(29, 0, 3, handleDescribeACLs)
	register(30, 0, 3, handleCreateACLs)
	register(31, 0, 3, handleDeleteACLs)
}

// msgNoAuthorizer goes with SECURITY_DISABLED: without an authorizer the
// cluster check passes (everything is allowed), so the ACL APIs must say
// themselves that ACLs are off.
const msgNoAuthorizer = "no authorizer is configured on the broker (authorizer.class.name)"

// clusterDenied is the message of a CLUSTER_AUTHORIZATION_FAILED answer.
var clusterDenied = authzMessage(kerr.ClusterAuthorizationFailed.Code)

func handleCreateACLs(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.CreateACLsRequest)
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	bindings := make([]metadata.ACL, len(req.Creations))
	for i, c := range req.Creations {
		bindings[i] = metadata.ACL{
			ResourceType: int8(c.ResourceType), ResourceName: c.ResourceName, PatternType: int8(c.ResourcePatternType),
			Principal: c.Principal, Host: c.Host, Operation: int8(c.Operation), Permission: int8(c.PermissionType),
		}
	}
	resp.Results = make([]kmsg.CreateACLsResponseResult, len(bindings))
	setAll := func(code int16, msg string) {
		for i := range resp.Results {
			resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, kmsg.StringPtr(msg)
		}
	}
	switch {
	case !s.allowCluster(r, kmsg.ACLOperationAlter):
		setAll(kerr.ClusterAuthorizationFailed.Code, clusterDenied)
	case s.authz == nil:
		setAll(kerr.SecurityDisabled.Code, msgNoAuthorizer)
	default:
		var valid []metadata.ACL
		var idx []int
		for i, b := range bindings {
			if err := acl.ValidateBinding(b); err != nil {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr(err.Error())
				continue
			}
			valid = append(valid, b)
			idx = append(idx, i)
		}
		if len(valid) == 0 {
			break
		}
		if err := s.meta.CreateACLs(ctx, valid); err != nil {
			code := errorCode(s.log, err)
			for _, i := range idx {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, kmsg.StringPtr(err.Error())
			}
			break
		}
		s.refreshSecurity()
	}
	for i, b := range bindings {
		res := resp.Results[i]
		s.audit(r, "CreateAcls", append([]any{aclAttr("acl", b)}, auditOutcome(res.ErrorCode, res.ErrorMessage)...)...)
	}
	return respond(resp)
}

func handleDescribeACLs(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.DescribeACLsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	f := acl.Filter{
		ResourceType: int8(req.ResourceType), ResourceName: req.ResourceName, PatternType: int8(req.ResourcePatternType),
		Principal: req.Principal, Host: req.Host, Operation: int8(req.Operation), Permission: int8(req.PermissionType),
	}
	switch {
	case !s.allowCluster(r, kmsg.ACLOperationDescribe):
		resp.ErrorCode, resp.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, kmsg.StringPtr(clusterDenied)
	case s.authz == nil:
		resp.ErrorCode, resp.ErrorMessage = kerr.SecurityDisabled.Code, kmsg.StringPtr(msgNoAuthorizer)
	default:
		if err := acl.ValidateFilter(f); err != nil {
			resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, kmsg.StringPtr(err.Error())
			break
		}
		resp.Resources = describeACLResources(s.meta.ACLs(), f)
	}
	return respond(resp)
}

// describeACLResources groups the bindings f matches by resource pattern,
// in the order the patterns first appear in acls.
func describeACLResources(acls []metadata.ACL, f acl.Filter) []kmsg.DescribeACLsResponseResource {
	type pattern struct {
		typ, pat int8
		name     string
	}
	var out []kmsg.DescribeACLsResponseResource
	at := map[pattern]int{}
	for _, b := range acls {
		if !f.Matches(b) {
			continue
		}
		p := pattern{b.ResourceType, b.PatternType, b.ResourceName}
		i, ok := at[p]
		if !ok {
			res := kmsg.NewDescribeACLsResponseResource()
			res.ResourceType = kmsg.ACLResourceType(b.ResourceType)
			res.ResourceName = b.ResourceName
			res.ResourcePatternType = kmsg.ACLResourcePatternType(b.PatternType)
			i = len(out)
			at[p] = i
			out = append(out, res)
		}
		d := kmsg.NewDescribeACLsResponseResourceACL()
		d.Principal, d.Host = b.Principal, b.Host
		d.Operation, d.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
		out[i].ACLs = append(out[i].ACLs, d)
	}
	return out
}

func handleDeleteACLs(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.DeleteACLsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	filters := make([]acl.Filter, len(req.Filters))
	for i, rf := range req.Filters {
		filters[i] = acl.Filter{
			ResourceType: int8(rf.ResourceType), ResourceName: rf.ResourceName, PatternType: int8(rf.ResourcePatternType),
			Principal: rf.Principal, Host: rf.Host, Operation: int8(rf.Operation), Permission: int8(rf.PermissionType),
		}
	}
	resp.Results = make([]kmsg.DeleteACLsResponseResult, len(filters))
	matched := make([][]metadata.ACL, len(filters))
	setErr := func(i int, code int16, msg string) {
		resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = code, kmsg.StringPtr(msg)
	}
	switch {
	case !s.allowCluster(r, kmsg.ACLOperationAlter):
		for i := range filters {
			setErr(i, kerr.ClusterAuthorizationFailed.Code, clusterDenied)
		}
	case s.authz == nil:
		for i := range filters {
			setErr(i, kerr.SecurityDisabled.Code, msgNoAuthorizer)
		}
	default:
		all := s.meta.ACLs()
		var union []metadata.ACL
		seen := map[metadata.ACL]bool{}
		for i, f := range filters {
			if err := acl.ValidateFilter(f); err != nil {
				setErr(i, kerr.InvalidRequest.Code, err.Error())
				continue
			}
			for _, b := range all {
				if f.Matches(b) {
					matched[i] = append(matched[i], b)
					if !seen[b] {
						seen[b] = true
						union = append(union, b)
					}
				}
			}
		}
		if len(union) == 0 {
			break
		}
		removed, err := s.meta.DeleteACLs(ctx, union)
		if err != nil {
			code := errorCode(s.log, err)
			for i := range filters {
				if resp.Results[i].ErrorCode == 0 {
					setErr(i, code, err.Error())
				}
				matched[i] = nil
			}
			break
		}
		// A binding deleted by someone else between our read and the
		// command is not ours to report.
		gone := make(map[metadata.ACL]bool, len(removed))
		for _, b := range removed {
			gone[b] = true
		}
		for i, m := range matched {
			kept := m[:0]
			for _, b := range m {
				if gone[b] {
					kept = append(kept, b)
				}
			}
			matched[i] = kept
		}
		s.refreshSecurity()
	}
	for i, f := range filters {
		res := &resp.Results[i]
		deleted := make([]string, 0, len(matched[i]))
		for _, b := range matched[i] {
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, m.ResourceName = kmsg.ACLResourceType(b.ResourceType), b.ResourceName
			m.ResourcePatternType = kmsg.ACLResourcePatternType(b.PatternType)
			m.Principal, m.Host = b.Principal, b.Host
			m.Operation, m.PermissionType = kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission)
			res.MatchingACLs = append(res.MatchingACLs, m)
			deleted = append(deleted, aclString(b))
		}
		s.audit(r, "DeleteAcls", append([]any{filterAttr(f), "deleted", deleted}, auditOutcome(res.ErrorCode, res.ErrorMessage)...)...)
	}
	return respond(resp)
}

// aclAttr is a binding as a structured log attribute.
func aclAttr(key string, b metadata.ACL) slog.Attr {
	return slog.Group(key,
		"resource_type", kmsg.ACLResourceType(b.ResourceType).String(),
		"resource_name", b.ResourceName,
		"pattern_type", kmsg.ACLResourcePatternType(b.PatternType).String(),
		"principal", b.Principal,
		"host", b.Host,
		"operation", kmsg.ACLOperation(b.Operation).String(),
		"permission", kmsg.ACLPermissionType(b.Permission).String(),
	)
}

// aclString is a binding in one short line (audit lists of deletions).
func aclString(b metadata.ACL) string {
	return fmt.Sprintf("%s:%s:%s %s@%s %s %s",
		kmsg.ACLResourceType(b.ResourceType), kmsg.ACLResourcePatternType(b.PatternType), b.ResourceName,
		b.Principal, b.Host, kmsg.ACLOperation(b.Operation), kmsg.ACLPermissionType(b.Permission))
}

// filterAttr is a delete filter as a structured log attribute; null
// strings (match anything) show as "null", as Kafka prints them.
func filterAttr(f acl.Filter) slog.Attr {
	str := func(p *string) string {
		if p == nil {
			return "null"
		}
		return *p
	}
	return slog.Group("filter",
		"resource_type", kmsg.ACLResourceType(f.ResourceType).String(),
		"resource_name", str(f.ResourceName),
		"pattern_type", kmsg.ACLResourcePatternType(f.PatternType).String(),
		"principal", str(f.Principal),
		"host", str(f.Host),
		"operation", kmsg.ACLOperation(f.Operation).String(),
		"permission", kmsg.ACLPermissionType(f.Permission).String(),
	)
}

package broker

// DescribeUserScramCredentials v0 and AlterUserScramCredentials v0 (KIP-554).
//
// Credentials live in the metadata quorum as salt, StoredKey, ServerKey and
// iteration count (RFC 5802); the password never reaches the broker (the
// client sends the salted password, from which the keys are derived here)
// and Describe only ever answers user, mechanism and iterations.
//
// As in Kafka (KRaft): DESCRIBE on CLUSTER to describe (else a top-level
// CLUSTER_AUTHORIZATION_FAILED), ALTER on CLUSTER to alter (else every
// user gets it). One result per distinct user. A user named twice in one
// request gets DUPLICATE_RESOURCE, even for different mechanisms, and
// nothing of it is applied; an empty user name or an iteration count
// outside 4096..16384 is UNACCEPTABLE_CREDENTIAL; a mechanism other than
// SCRAM-SHA-256/512 is UNSUPPORTED_SASL_MECHANISM; deleting a credential
// that does not exist is RESOURCE_NOT_FOUND. All accepted changes go to
// the metadata quorum in one command.
//
// Differences from Apache Kafka: an upsertion with an empty salt, or a
// salted password whose length is not the mechanism's hash size (which
// could never authenticate), is UNACCEPTABLE_CREDENTIAL instead of being
// stored.

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/broker/internal/sasl"
	"github.com/strata-broker/strata/metadata"
)

func init() {
	register(50, 0, 0, handleDescribeUserSCRAMCredentials)
	register(51, 0, 0, handleAlterUserSCRAMCredentials)
}

// scramMechanismName is the mechanism for a KIP-554 mechanism code, or ""
// for UNKNOWN and anything else.
func scramMechanismName(code int8) string {
	switch code {
	case 1:
		return sasl.ScramSHA256
	case 2:
		return sasl.ScramSHA512
	}
	return ""
}

// scramKeySize is the hash output size, which is also the length of a
// correctly salted password.
func scramKeySize(code int8) int {
	if code == 2 {
		return 64
	}
	return 32
}

func handleDescribeUserSCRAMCredentials(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.DescribeUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !s.allowCluster(r, kmsg.ACLOperationDescribe) {
		resp.ErrorCode, resp.ErrorMessage = kerr.ClusterAuthorizationFailed.Code, kmsg.StringPtr(clusterDenied)
		return respond(resp)
	}
	infos := map[string][]kmsg.DescribeUserSCRAMCredentialsResponseResultCredentialInfo{}
	var all []string // sorted: ScramCredentials is sorted by user
	for _, c := range s.meta.ScramCredentials() {
		if _, ok := infos[c.User]; !ok {
			all = append(all, c.User)
		}
		ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
		ci.Mechanism, ci.Iterations = c.Mechanism, c.Iterations
		infos[c.User] = append(infos[c.User], ci)
	}
	users, count := all, map[string]int{}
	if len(req.Users) > 0 { // null or empty: every user
		users = nil
		for _, u := range req.Users {
			if count[u.Name] == 0 {
				users = append(users, u.Name)
			}
			count[u.Name]++
		}
	}
	for _, u := range users {
		res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		res.User = u
		switch ci, ok := infos[u]; {
		case count[u] > 1:
			res.ErrorCode = kerr.DuplicateResource.Code
			res.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("user %q is named more than once in the request", u))
		case !ok:
			res.ErrorCode = kerr.ResourceNotFound.Code
			res.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("user %q has no SCRAM credentials", u))
		default:
			res.CredentialInfos = ci
		}
		resp.Results = append(resp.Results, res)
	}
	return respond(resp)
}

func handleAlterUserSCRAMCredentials(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.AlterUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)

	// One result per distinct user, in order of first appearance
	// (deletions first, as they are read first).
	var users []string
	results := map[string]*kmsg.AlterUserSCRAMCredentialsResponseResult{}
	result := func(u string) *kmsg.AlterUserSCRAMCredentialsResponseResult {
		res, ok := results[u]
		if !ok {
			rr := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
			rr.User = u
			res = &rr
			results[u] = res
			users = append(users, u)
		}
		return res
	}
	fail := func(u string, code int16, format string, args ...any) {
		res := result(u)
		res.ErrorCode, res.ErrorMessage = code, kmsg.StringPtr(fmt.Sprintf(format, args...))
	}
	for _, d := range req.Deletions {
		result(d.Name)
	}
	for _, u := range req.Upsertions {
		result(u.Name)
	}

	if !s.allowCluster(r, kmsg.ACLOperationAlter) {
		for _, u := range users {
			fail(u, kerr.ClusterAuthorizationFailed.Code, "%s", clusterDenied)
		}
	} else {
		s.alterSCRAM(ctx, req, fail)
	}

	for _, u := range users {
		resp.Results = append(resp.Results, *results[u])
	}
	for _, d := range req.Deletions {
		res := results[d.Name]
		s.audit(r, "AlterUserScramCredentials", append([]any{"op", "delete", "user", d.Name,
			"mechanism", scramMechanismLabel(d.Mechanism)}, auditOutcome(res.ErrorCode, res.ErrorMessage)...)...)
	}
	for _, u := range req.Upsertions {
		res := results[u.Name]
		s.audit(r, "AlterUserScramCredentials", append([]any{"op", "upsert", "user", u.Name,
			"mechanism", scramMechanismLabel(u.Mechanism), "iterations", u.Iterations}, auditOutcome(res.ErrorCode, res.ErrorMessage)...)...)
	}
	return respond(resp)
}

// alterSCRAM validates the request's changes, reports refusals through
// fail (per user) and commits the accepted ones in one command.
func (s *Server) alterSCRAM(ctx context.Context, req *kmsg.AlterUserSCRAMCredentialsRequest, fail func(u string, code int16, format string, args ...any)) {
	failed := map[string]bool{}
	refuse := func(u string, code int16, format string, args ...any) {
		failed[u] = true
		fail(u, code, format, args...)
	}
	seen := map[string]bool{}
	// check applies the rules every change shares; false = refused.
	check := func(user string, mech int8) bool {
		if failed[user] {
			return false
		}
		if seen[user] {
			refuse(user, kerr.DuplicateResource.Code, "user %q is altered more than once in the request", user)
			return false
		}
		seen[user] = true
		if user == "" {
			refuse(user, kerr.UnacceptableCredential.Code, "the user name must not be empty")
			return false
		}
		if scramMechanismName(mech) == "" {
			refuse(user, kerr.UnsupportedSaslMechanism.Code, "unknown SCRAM mechanism %d", mech)
			return false
		}
		return true
	}

	type pending struct {
		del    *metadata.ScramKey
		upsert *metadata.ScramCredential
	}
	byUser := map[string]pending{}
	var order []string
	for _, d := range req.Deletions {
		if !check(d.Name, d.Mechanism) {
			continue
		}
		if _, ok := s.meta.ScramCredential(d.Name, d.Mechanism); !ok {
			refuse(d.Name, kerr.ResourceNotFound.Code, "user %q has no %s credential to delete", d.Name, scramMechanismName(d.Mechanism))
			continue
		}
		byUser[d.Name] = pending{del: &metadata.ScramKey{User: d.Name, Mechanism: d.Mechanism}}
		order = append(order, d.Name)
	}
	for _, u := range req.Upsertions {
		if !check(u.Name, u.Mechanism) {
			continue
		}
		mech := scramMechanismName(u.Mechanism)
		switch {
		case u.Iterations < sasl.MinIterations:
			refuse(u.Name, kerr.UnacceptableCredential.Code, "too few iterations: %d (minimum %d)", u.Iterations, sasl.MinIterations)
			continue
		case u.Iterations > sasl.MaxIterations:
			refuse(u.Name, kerr.UnacceptableCredential.Code, "too many iterations: %d (maximum %d)", u.Iterations, sasl.MaxIterations)
			continue
		case len(u.Salt) == 0:
			refuse(u.Name, kerr.UnacceptableCredential.Code, "the salt must not be empty")
			continue
		case len(u.SaltedPassword) != scramKeySize(u.Mechanism):
			refuse(u.Name, kerr.UnacceptableCredential.Code, "a %s salted password is %d bytes, got %d", mech, scramKeySize(u.Mechanism), len(u.SaltedPassword))
			continue
		}
		c := sasl.CredentialFromSalted(mech, u.Salt, u.SaltedPassword, int(u.Iterations))
		byUser[u.Name] = pending{upsert: &metadata.ScramCredential{
			User: u.Name, Mechanism: u.Mechanism, Iterations: u.Iterations,
			Salt: c.Salt, StoredKey: c.StoredKey, ServerKey: c.ServerKey,
		}}
		order = append(order, u.Name)
	}

	var upserts []metadata.ScramCredential
	var deletes []metadata.ScramKey
	var applied []string
	for _, u := range order {
		p, ok := byUser[u]
		if !ok || failed[u] { // a later duplicate refused it
			continue
		}
		applied = append(applied, u)
		if p.del != nil {
			deletes = append(deletes, *p.del)
		} else {
			upserts = append(upserts, *p.upsert)
		}
	}
	if len(applied) == 0 {
		return
	}
	if err := s.meta.AlterScramCredentials(ctx, upserts, deletes); err != nil {
		code := errorCode(s.log, err)
		for _, u := range applied {
			fail(u, code, "%v", err)
		}
	}
}

// scramMechanismLabel names a mechanism code for logs, unknown ones too.
func scramMechanismLabel(code int8) string {
	if n := scramMechanismName(code); n != "" {
		return n
	}
	return fmt.Sprintf("UNKNOWN(%d)", code)
}

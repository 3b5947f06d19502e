package main

// `strata users|acls|quotas`: SCRAM credentials (KIP-554), ACLs (KIP-140,
// prefixed patterns from KIP-290) and client quotas (KIP-546), through
// kadm, with the same table/JSON rendering as the other admin commands.
//
// Passwords of new users never come from a flag (argv is visible to every
// user of the machine): `users set` reads STRATA_USER_PASSWORD, else one
// line of standard input. Filters of `acls list|delete` default to ANY,
// as Kafka's filters do, but `acls delete` refuses to run with no filter
// at all unless --all says that every ACL is meant.

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
)

const envUserPassword = envPrefix + "USER_PASSWORD"

// adminStdin is where `users set` reads a password when
// STRATA_USER_PASSWORD is unset; tests replace it.
var adminStdin io.Reader = os.Stdin

// The iteration bounds Kafka (and this broker) accept for SCRAM.
const (
	minScramIterations = 4096
	maxScramIterations = 16384
)

// Quota match types of DescribeClientQuotas. (cmd may not import kmsg;
// the numbers are fixed by the protocol.)
const (
	quotaMatchExact   kadm.QuotasMatchType = 0
	quotaMatchDefault kadm.QuotasMatchType = 1
)

// ---------------------------------------------------------------------
// users

var userCommands = map[string]adminCommand{
	"list": {
		more: "USER",
		help: "SCRAM credentials (user, mechanism, iterations) of all users or of those named",
		setup: func(*pflag.FlagSet) adminRun {
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				return usersList(ctx, a, args)
			}
		},
	},
	"set": {
		args: []string{"USER"},
		help: "create or replace a user's SCRAM credential; the password is read from " + envUserPassword + ", else from one line of standard input",
		setup: func(fs *pflag.FlagSet) adminRun {
			mech := fs.String("mechanism", "", "SCRAM-SHA-256 or SCRAM-SHA-512 (required)")
			iters := fs.Int32("iterations", 8192, fmt.Sprintf("PBKDF2 iterations, %d to %d", minScramIterations, maxScramIterations))
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				m, err := scramMechanism(*mech)
				if err != nil {
					return nil, err
				}
				if *iters < minScramIterations || *iters > maxScramIterations {
					return nil, usagef("--iterations %d: want %d to %d", *iters, minScramIterations, maxScramIterations)
				}
				pass, err := newUserPassword(args[0])
				if err != nil {
					return nil, err
				}
				return userSet(ctx, a, args[0], m, *iters, pass)
			}
		},
	},
	"delete": {
		args: []string{"USER"},
		help: "delete a user's SCRAM credential for one mechanism",
		setup: func(fs *pflag.FlagSet) adminRun {
			mech := fs.String("mechanism", "", "SCRAM-SHA-256 or SCRAM-SHA-512 (required)")
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				m, err := scramMechanism(*mech)
				if err != nil {
					return nil, err
				}
				return userDelete(ctx, a, args[0], m)
			}
		},
	},
}

func scramMechanism(s string) (kadm.ScramMechanism, error) {
	if s == "" {
		return 0, usagef("--mechanism is required: %s or %s", kadm.ScramSha256, kadm.ScramSha512)
	}
	for _, m := range []kadm.ScramMechanism{kadm.ScramSha256, kadm.ScramSha512} {
		if strings.EqualFold(s, m.String()) {
			return m, nil
		}
	}
	return 0, usagef("--mechanism %q: want %s or %s", s, kadm.ScramSha256, kadm.ScramSha512)
}

// newUserPassword reads the password for `users set`: the environment
// first, so that scripts need no pipe, else the first line of stdin.
func newUserPassword(user string) (string, error) {
	if p := os.Getenv(envUserPassword); p != "" {
		return p, nil
	}
	if f, ok := adminStdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			// Someone at a terminal would otherwise see a silent hang.
			fmt.Fprintf(os.Stderr, "New password for %s (it will be echoed; %s or a pipe avoid that): ", user, envUserPassword)
		}
	}
	line, err := bufio.NewReader(adminStdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read the password from standard input: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", usagef("no password: set %s or write it as one line to standard input", envUserPassword)
	}
	return line, nil
}

type scramCredential struct {
	User       string `json:"user"`
	Mechanism  string `json:"mechanism"`
	Iterations int32  `json:"iterations"`
}

type userListResult struct {
	Credentials []scramCredential `json:"credentials"`
}

func (r userListResult) writeTable(w io.Writer) {
	rows := make([][]string, 0, len(r.Credentials))
	for _, c := range r.Credentials {
		rows = append(rows, []string{c.User, c.Mechanism, itoa(c.Iterations)})
	}
	table(w, []string{"USER", "MECHANISM", "ITERATIONS"}, rows)
}

func usersList(ctx context.Context, a *kadm.Client, users []string) (userListResult, error) {
	described, err := a.DescribeUserSCRAMs(ctx, users...)
	if err != nil {
		return userListResult{}, brokerErr("describe SCRAM credentials", err)
	}
	res := userListResult{Credentials: []scramCredential{}}
	for _, d := range described.Sorted() {
		if d.Err != nil {
			return userListResult{}, kafkaErr("describe SCRAM credentials of user "+d.User, d.Err, d.ErrMessage)
		}
		infos := slices.Clone(d.CredInfos)
		slices.SortFunc(infos, func(x, y kadm.CredInfo) int { return cmp.Compare(x.Mechanism, y.Mechanism) })
		for _, ci := range infos {
			res.Credentials = append(res.Credentials, scramCredential{User: d.User, Mechanism: ci.Mechanism.String(), Iterations: ci.Iterations})
		}
	}
	return res, nil
}

// userChange is the result of `users set` and `users delete`.
type userChange struct {
	Action     string `json:"action"` // set, deleted
	User       string `json:"user"`
	Mechanism  string `json:"mechanism"`
	Iterations int32  `json:"iterations,omitempty"`
}

func (r userChange) writeTable(w io.Writer) {
	if r.Action == "set" {
		fmt.Fprintf(w, "set %s credential of user %s (%d iterations)\n", r.Mechanism, r.User, r.Iterations)
		return
	}
	fmt.Fprintf(w, "%s %s credential of user %s\n", r.Action, r.Mechanism, r.User)
}

func userSet(ctx context.Context, a *kadm.Client, user string, m kadm.ScramMechanism, iters int32, pass string) (userChange, error) {
	up := []kadm.UpsertSCRAM{{User: user, Mechanism: m, Iterations: iters, Password: pass}}
	if err := alterSCRAM(ctx, a, user, "set", nil, up); err != nil {
		return userChange{}, err
	}
	return userChange{Action: "set", User: user, Mechanism: m.String(), Iterations: iters}, nil
}

func userDelete(ctx context.Context, a *kadm.Client, user string, m kadm.ScramMechanism) (userChange, error) {
	if err := alterSCRAM(ctx, a, user, "delete", []kadm.DeleteSCRAM{{User: user, Mechanism: m}}, nil); err != nil {
		return userChange{}, err
	}
	return userChange{Action: "deleted", User: user, Mechanism: m.String()}, nil
}

func alterSCRAM(ctx context.Context, a *kadm.Client, user, verb string, del []kadm.DeleteSCRAM, up []kadm.UpsertSCRAM) error {
	res, err := a.AlterUserSCRAMs(ctx, del, up)
	if err != nil {
		return brokerErr(verb+" SCRAM credential", err)
	}
	r, ok := res[user]
	if !ok {
		return fmt.Errorf("%s SCRAM credential of user %s: the broker's answer does not mention the user", verb, user)
	}
	if r.Err != nil {
		return kafkaErr(verb+" SCRAM credential of user "+user, r.Err, r.ErrMessage)
	}
	return nil
}

// ---------------------------------------------------------------------
// acls

var aclCommands = map[string]adminCommand{
	"list": {
		help: "ACLs matching the filter flags (each defaults to any)",
		setup: func(fs *pflag.FlagSet) adminRun {
			f := addACLFilterFlags(fs)
			return func(ctx context.Context, a *kadm.Client, _ []string) (adminResult, error) {
				b, err := f.builder(fs)
				if err != nil {
					return nil, err
				}
				return aclsList(ctx, a, b)
			}
		},
	},
	"create": {
		help: "allow (or --deny) principals operations on a topic, group, transactional id or the cluster",
		setup: func(fs *pflag.FlagSet) adminRun {
			principals := fs.StringArray("principal", nil, "`TYPE:NAME` of a principal, e.g. User:alice (required, repeatable)")
			ops := fs.StringSlice("operation", nil, "`OPERATIONS`, comma-separated: "+strings.ToLower(aclOperationList())+" (required)")
			res := addACLResourceFlags(fs)
			prefixed := fs.Bool("prefixed", false, "the resource name is a prefix (PREFIXED pattern) rather than a whole name")
			deny := fs.Bool("deny", false, "create DENY entries (default ALLOW)")
			host := fs.String("host", "*", "`IP` address of the hosts the entries apply to")
			return func(ctx context.Context, a *kadm.Client, _ []string) (adminResult, error) {
				b, err := aclCreateBuilder(fs, *principals, *ops, res, *prefixed, *deny, *host)
				if err != nil {
					return nil, err
				}
				return aclsCreate(ctx, a, b)
			}
		},
	},
	"delete": {
		help: "delete the ACLs matching the filter flags (each defaults to any; --all for every ACL)",
		setup: func(fs *pflag.FlagSet) adminRun {
			f := addACLFilterFlags(fs)
			all := fs.Bool("all", false, "delete every ACL (no filter flags)")
			return func(ctx context.Context, a *kadm.Client, _ []string) (adminResult, error) {
				narrowed := f.narrowed(fs)
				switch {
				case *all && narrowed:
					return nil, usagef("--all deletes every ACL: it takes no filter flags")
				case !*all && !narrowed:
					return nil, usagef("refusing to delete every ACL: give filter flags (see --help), or --all")
				}
				b, err := f.builder(fs)
				if err != nil {
					return nil, err
				}
				return aclsDelete(ctx, a, b)
			}
		},
	},
}

// aclOperations are the operations an ACL entry can name; their String()
// is Kafka's name.
var aclOperations = []kadm.ACLOperation{
	kadm.OpAll, kadm.OpRead, kadm.OpWrite, kadm.OpCreate, kadm.OpDelete, kadm.OpAlter, kadm.OpDescribe,
	kadm.OpClusterAction, kadm.OpDescribeConfigs, kadm.OpAlterConfigs, kadm.OpIdempotentWrite,
}

func aclOperationList() string {
	names := make([]string, len(aclOperations))
	for i, op := range aclOperations {
		names[i] = op.String()
	}
	return strings.Join(names, ",")
}

// aclName normalizes an enum name as typed: describe-configs and
// describe_configs are DESCRIBE_CONFIGS.
func aclName(s string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), "-", "_"))
}

// parseACLOperations parses --operation; ANY is only for filters.
func parseACLOperations(in []string, filter bool) ([]kadm.ACLOperation, error) {
	var ops []kadm.ACLOperation
	for _, s := range in {
		name := aclName(s)
		var op kadm.ACLOperation
		if i := slices.IndexFunc(aclOperations, func(o kadm.ACLOperation) bool { return o.String() == name }); i >= 0 {
			op = aclOperations[i]
		} else if filter && name == kadm.OpAny.String() {
			op = kadm.OpAny
		} else {
			return nil, usagef("--operation %q: want one of %s", s, strings.ToLower(aclOperationList()))
		}
		if !slices.Contains(ops, op) {
			ops = append(ops, op)
		}
	}
	return ops, nil
}

func checkPrincipals(ps []string) error {
	for _, p := range ps {
		if typ, name, ok := strings.Cut(p, ":"); !ok || typ == "" || name == "" {
			return usagef("--principal %q: want TYPE:NAME, e.g. User:alice", p)
		}
	}
	return nil
}

// aclResource is the resource flags: at most one of them.
type aclResource struct {
	topic, group, txnID string
	cluster             bool
}

func addACLResourceFlags(fs *pflag.FlagSet) *aclResource {
	r := &aclResource{}
	fs.StringVar(&r.topic, "topic", "", "`TOPIC` name (a prefix with --prefixed)")
	fs.StringVar(&r.group, "group", "", "consumer `GROUP` id (a prefix with --prefixed)")
	fs.StringVar(&r.txnID, "transactional-id", "", "transactional `ID` (a prefix with --prefixed)")
	fs.BoolVar(&r.cluster, "cluster", false, "the cluster")
	return r
}

var aclResourceFlags = []string{"topic", "group", "transactional-id", "cluster"}

// apply sets the one resource given on b; ok=false when none is.
func (r *aclResource) apply(fs *pflag.FlagSet, b *kadm.ACLBuilder) (ok bool, err error) {
	var given []string
	for _, f := range aclResourceFlags {
		if fs.Changed(f) {
			given = append(given, "--"+f)
		}
	}
	if len(given) > 1 {
		return false, usagef("%s: give only one of --topic, --group, --transactional-id, --cluster", strings.Join(given, " and "))
	}
	switch {
	case fs.Changed("topic"):
		if r.topic == "" {
			return false, usagef("--topic needs a name")
		}
		b.Topics(r.topic)
	case fs.Changed("group"):
		if r.group == "" {
			return false, usagef("--group needs a name")
		}
		b.Groups(r.group)
	case fs.Changed("transactional-id"):
		if r.txnID == "" {
			return false, usagef("--transactional-id needs a name")
		}
		b.TransactionalIDs(r.txnID)
	case fs.Changed("cluster"):
		if !r.cluster {
			return false, nil
		}
		b.Clusters()
	default:
		return false, nil
	}
	return true, nil
}

func aclCreateBuilder(fs *pflag.FlagSet, principals, opNames []string, res *aclResource, prefixed, deny bool, host string) (*kadm.ACLBuilder, error) {
	if len(principals) == 0 {
		return nil, usagef("--principal is required (e.g. --principal User:alice)")
	}
	if err := checkPrincipals(principals); err != nil {
		return nil, err
	}
	if len(opNames) == 0 {
		return nil, usagef("--operation is required (e.g. --operation read,describe)")
	}
	ops, err := parseACLOperations(opNames, false)
	if err != nil {
		return nil, err
	}
	if host == "" {
		return nil, usagef("--host is empty (* is every host)")
	}
	b := kadm.NewACLs().Operations(ops...)
	ok, err := res.apply(fs, b)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, usagef("name a resource: --topic T, --group G, --transactional-id X or --cluster")
	}
	if prefixed {
		if fs.Changed("cluster") {
			return nil, usagef("--prefixed does not apply to --cluster")
		}
		b.ResourcePatternType(kadm.ACLPatternPrefixed)
	} else {
		b.ResourcePatternType(kadm.ACLPatternLiteral)
	}
	if deny {
		b.Deny(principals...).DenyHosts(host)
	} else {
		b.Allow(principals...).AllowHosts(host)
	}
	return b, nil
}

// aclFilterFlags are the flags of `acls list` and `acls delete`.
type aclFilterFlags struct {
	principals []string
	ops        []string
	res        *aclResource
	host       string
	pattern    string
	prefixed   bool
	allow      bool
	deny       bool
}

var aclFilterFlagNames = append([]string{"principal", "operation", "host", "pattern", "prefixed", "allow", "deny"}, aclResourceFlags...)

func addACLFilterFlags(fs *pflag.FlagSet) *aclFilterFlags {
	f := &aclFilterFlags{}
	fs.StringArrayVar(&f.principals, "principal", nil, "only entries of the principal `TYPE:NAME` (repeatable; default any)")
	fs.StringSliceVar(&f.ops, "operation", nil, "only these `OPERATIONS`, comma-separated (default any)")
	f.res = addACLResourceFlags(fs)
	fs.StringVar(&f.host, "host", "", "only entries for the host `IP` (default any)")
	fs.StringVar(&f.pattern, "pattern", "any", "resource `PATTERN` filter: any (literal and prefixed entries with exactly the name given), match (every entry that applies to the resource, wildcards and prefixes included), literal or prefixed")
	fs.BoolVar(&f.prefixed, "prefixed", false, "same as --pattern prefixed")
	fs.BoolVar(&f.allow, "allow", false, "only ALLOW entries")
	fs.BoolVar(&f.deny, "deny", false, "only DENY entries")
	return f
}

// narrowed reports whether any filter flag was given.
func (f *aclFilterFlags) narrowed(fs *pflag.FlagSet) bool {
	return slices.ContainsFunc(aclFilterFlagNames, fs.Changed)
}

var aclPatterns = []kadm.ACLPattern{kadm.ACLPatternAny, kadm.ACLPatternMatch, kadm.ACLPatternLiteral, kadm.ACLPatternPrefixed}

func (f *aclFilterFlags) builder(fs *pflag.FlagSet) (*kadm.ACLBuilder, error) {
	if err := checkPrincipals(f.principals); err != nil {
		return nil, err
	}
	ops, err := parseACLOperations(f.ops, true)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(aclPatterns, func(p kadm.ACLPattern) bool { return p.String() == aclName(f.pattern) })
	if i < 0 {
		return nil, usagef("--pattern %q: want any, match, literal or prefixed", f.pattern)
	}
	pattern := aclPatterns[i]
	if f.prefixed {
		if fs.Changed("pattern") && pattern != kadm.ACLPatternPrefixed {
			return nil, usagef("--prefixed contradicts --pattern %s", f.pattern)
		}
		pattern = kadm.ACLPatternPrefixed
	}
	if fs.Changed("host") && f.host == "" {
		return nil, usagef("--host is empty")
	}
	b := kadm.NewACLs().Operations(ops...).ResourcePatternType(pattern)
	ok, err := f.res.apply(fs, b)
	if err != nil {
		return nil, err
	}
	if !ok {
		b.AnyResource()
	}
	var hosts []string // none: any host
	if f.host != "" {
		hosts = []string{f.host}
	}
	// Neither --allow nor --deny: both, which kadm turns into one filter
	// of permission ANY when principals and hosts are also any.
	if f.allow || !f.deny {
		b.Allow(f.principals...).AllowHosts(hosts...)
	}
	if f.deny || !f.allow {
		b.Deny(f.principals...).DenyHosts(hosts...)
	}
	return b, nil
}

// aclBinding is one ACL entry as printed.
type aclBinding struct {
	ResourceType string `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	PatternType  string `json:"pattern_type"`
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Operation    string `json:"operation"`
	Permission   string `json:"permission"`
}

// newACLBinding takes kadm's enum fields as Stringers: their types live
// in kmsg, which cmd may not import.
func newACLBinding(typ fmt.Stringer, name string, pattern fmt.Stringer, principal, host string, op, perm fmt.Stringer) aclBinding {
	return aclBinding{ResourceType: typ.String(), ResourceName: name, PatternType: pattern.String(),
		Principal: principal, Host: host, Operation: op.String(), Permission: perm.String()}
}

func (b aclBinding) String() string {
	return fmt.Sprintf("%s %s %s on %s %s (%s) from host %s", b.Permission, b.Principal, b.Operation,
		b.ResourceType, b.ResourceName, b.PatternType, b.Host)
}

func compareACLs(x, y aclBinding) int {
	return cmp.Or(
		cmp.Compare(x.ResourceType, y.ResourceType), cmp.Compare(x.ResourceName, y.ResourceName),
		cmp.Compare(x.PatternType, y.PatternType), cmp.Compare(x.Principal, y.Principal),
		cmp.Compare(x.Host, y.Host), cmp.Compare(x.Operation, y.Operation), cmp.Compare(x.Permission, y.Permission))
}

// sortACLs sorts and drops duplicates (one entry can match two filters).
func sortACLs(acls []aclBinding) []aclBinding {
	slices.SortFunc(acls, compareACLs)
	return slices.Compact(acls)
}

func aclRows(acls []aclBinding) [][]string {
	rows := make([][]string, 0, len(acls))
	for _, b := range acls {
		rows = append(rows, []string{b.ResourceType, b.ResourceName, b.PatternType, b.Principal, b.Host, b.Operation, b.Permission})
	}
	return rows
}

var aclHeader = []string{"RESOURCE-TYPE", "NAME", "PATTERN", "PRINCIPAL", "HOST", "OPERATION", "PERMISSION"}

type aclListResult struct {
	ACLs []aclBinding `json:"acls"`
}

func (r aclListResult) writeTable(w io.Writer) { table(w, aclHeader, aclRows(r.ACLs)) }

// aclChange is the result of `acls create` and `acls delete`.
type aclChange struct {
	Action string       `json:"action"` // created, deleted
	ACLs   []aclBinding `json:"acls"`
}

func (r aclChange) writeTable(w io.Writer) {
	if len(r.ACLs) == 0 {
		fmt.Fprintf(w, "no ACL matched: nothing %s\n", r.Action)
		return
	}
	fmt.Fprintf(w, "%s %d ACL(s):\n", r.Action, len(r.ACLs))
	table(w, aclHeader, aclRows(r.ACLs))
}

func aclsList(ctx context.Context, a *kadm.Client, b *kadm.ACLBuilder) (aclListResult, error) {
	results, err := a.DescribeACLs(ctx, b)
	if err != nil {
		return aclListResult{}, brokerErr("describe ACLs", err)
	}
	res := aclListResult{ACLs: []aclBinding{}}
	for _, r := range results {
		if r.Err != nil {
			return aclListResult{}, kafkaErr("describe ACLs", r.Err, r.ErrMessage)
		}
		for _, d := range r.Described {
			res.ACLs = append(res.ACLs, newACLBinding(d.Type, d.Name, d.Pattern, d.Principal, d.Host, d.Operation, d.Permission))
		}
	}
	res.ACLs = sortACLs(res.ACLs)
	return res, nil
}

func aclsCreate(ctx context.Context, a *kadm.Client, b *kadm.ACLBuilder) (aclChange, error) {
	results, err := a.CreateACLs(ctx, b)
	if err != nil {
		return aclChange{}, brokerErr("create ACLs", err)
	}
	res := aclChange{Action: "created", ACLs: []aclBinding{}}
	var failed []error
	for _, r := range results {
		acl := newACLBinding(r.Type, r.Name, r.Pattern, r.Principal, r.Host, r.Operation, r.Permission)
		if r.Err != nil {
			failed = append(failed, kafkaErr("create ACL "+acl.String(), r.Err, r.ErrMessage))
			continue
		}
		res.ACLs = append(res.ACLs, acl)
	}
	if len(failed) > 0 {
		return aclChange{}, fmt.Errorf("%w (%d of %d ACLs created)", failed[0], len(res.ACLs), len(results))
	}
	res.ACLs = sortACLs(res.ACLs)
	return res, nil
}

func aclsDelete(ctx context.Context, a *kadm.Client, b *kadm.ACLBuilder) (aclChange, error) {
	results, err := a.DeleteACLs(ctx, b)
	if err != nil {
		return aclChange{}, brokerErr("delete ACLs", err)
	}
	res := aclChange{Action: "deleted", ACLs: []aclBinding{}}
	for _, r := range results {
		if r.Err != nil {
			return aclChange{}, kafkaErr("delete ACLs", r.Err, r.ErrMessage)
		}
		for _, d := range r.Deleted {
			acl := newACLBinding(d.Type, d.Name, d.Pattern, d.Principal, d.Host, d.Operation, d.Permission)
			if d.Err != nil {
				return aclChange{}, kafkaErr("delete ACL "+acl.String(), d.Err, d.ErrMessage)
			}
			res.ACLs = append(res.ACLs, acl)
		}
	}
	res.ACLs = sortACLs(res.ACLs)
	return res, nil
}

// ---------------------------------------------------------------------
// quotas

var quotaCommands = map[string]adminCommand{
	"list": {
		help: "client quotas of all entities, or of those matching --user, --client-id, --ip",
		setup: func(fs *pflag.FlagSet) adminRun {
			q := addQuotaEntityFlags(fs, true)
			strict := fs.Bool("strict", false, "only entities made of exactly the components given (no user+client-id entity for --user alone)")
			return func(ctx context.Context, a *kadm.Client, _ []string) (adminResult, error) {
				comps, err := q.entity(fs, false)
				if err != nil {
					return nil, err
				}
				return quotasList(ctx, a, comps, *strict)
			}
		},
	},
	"set": {
		more:    "KEY=VALUE",
		moreMin: 1,
		help:    "set quotas (producer_byte_rate, consumer_byte_rate, request_percentage, controller_mutation_rate; connection_creation_rate for --ip) of one entity",
		setup: func(fs *pflag.FlagSet) adminRun {
			q := addQuotaEntityFlags(fs, false)
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				comps, err := q.entity(fs, true)
				if err != nil {
					return nil, err
				}
				set, err := parseQuotaValues(args)
				if err != nil {
					return nil, err
				}
				return quotasAlter(ctx, a, comps, set, nil)
			}
		},
	},
	"remove": {
		more:    "KEY",
		moreMin: 1,
		help:    "remove quotas of one entity, back to the defaults",
		setup: func(fs *pflag.FlagSet) adminRun {
			q := addQuotaEntityFlags(fs, false)
			return func(ctx context.Context, a *kadm.Client, args []string) (adminResult, error) {
				comps, err := q.entity(fs, true)
				if err != nil {
					return nil, err
				}
				keys, err := parseQuotaKeys(args)
				if err != nil {
					return nil, err
				}
				return quotasAlter(ctx, a, comps, nil, keys)
			}
		},
	},
}

// quotaTypes are Kafka's quota entity types, in the order entities are
// named ("user=alice,client-id=app").
var quotaTypes = []string{"user", "client-id", "ip"}

// quotaComponent is one part of a quota entity: a name or the default.
type quotaComponent struct {
	Type    string `json:"type"`
	Name    string `json:"name,omitempty"`
	Default bool   `json:"default,omitempty"`
}

func (c quotaComponent) String() string {
	if c.Default {
		return c.Type + "=<default>"
	}
	return c.Type + "=" + c.Name
}

func entityString(comps []quotaComponent) string {
	s := make([]string, len(comps))
	for i, c := range comps {
		s[i] = c.String()
	}
	return strings.Join(s, ",")
}

// quotaEntityFlags: per entity type, a name flag and a -default flag.
type quotaEntityFlags struct {
	names    map[string]*string
	defaults map[string]*bool
}

// quotaDefaultFlag is the flag naming the default entity of a type.
var quotaDefaultFlag = map[string]string{"user": "user-default", "client-id": "client-default", "ip": "ip-default"}

func addQuotaEntityFlags(fs *pflag.FlagSet, filter bool) *quotaEntityFlags {
	q := &quotaEntityFlags{names: map[string]*string{}, defaults: map[string]*bool{}}
	for _, typ := range quotaTypes {
		placeholder := "`" + strings.ToUpper(typ) + "`"
		nameHelp := "the entity's " + placeholder
		defHelp := "the entity's " + typ + " is the default one, which applies to every " + typ + " without a quota of its own"
		if filter {
			nameHelp = "only entities of this " + placeholder
			defHelp = "only entities of the default " + typ
		}
		q.names[typ] = fs.String(typ, "", nameHelp)
		q.defaults[typ] = fs.Bool(quotaDefaultFlag[typ], false, defHelp)
	}
	return q
}

// entity returns the components given, in Kafka's order; required: at
// least one.
func (q *quotaEntityFlags) entity(fs *pflag.FlagSet, required bool) ([]quotaComponent, error) {
	var comps []quotaComponent
	for _, typ := range quotaTypes {
		named, def := fs.Changed(typ), *q.defaults[typ]
		switch {
		case named && def:
			return nil, usagef("give --%s or --%s, not both", typ, quotaDefaultFlag[typ])
		case named && *q.names[typ] == "":
			return nil, usagef("--%s needs a name (--%s is the default entity)", typ, quotaDefaultFlag[typ])
		case named:
			comps = append(comps, quotaComponent{Type: typ, Name: *q.names[typ]})
		case def:
			comps = append(comps, quotaComponent{Type: typ, Default: true})
		}
	}
	if required && len(comps) == 0 {
		return nil, usagef("name the entity: --user U|--user-default, --client-id C|--client-default (alone or with a user), or --ip IP|--ip-default")
	}
	if len(comps) > 1 && comps[len(comps)-1].Type == "ip" {
		return nil, usagef("an ip entity stands alone: --ip cannot be combined with --user or --client-id")
	}
	return comps, nil
}

// parseQuotaValues parses KEY=VALUE arguments.
func parseQuotaValues(args []string) (map[string]float64, error) {
	out := make(map[string]float64, len(args))
	for _, kv := range args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("%q: want KEY=VALUE, e.g. producer_byte_rate=1048576", kv)
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, usagef("%q: the value must be a number", kv)
		}
		if _, dup := out[k]; dup {
			return nil, usagef("%s is given twice", k)
		}
		out[k] = f
	}
	return out, nil
}

func parseQuotaKeys(args []string) ([]string, error) {
	var keys []string
	for _, k := range args {
		if k == "" || strings.Contains(k, "=") {
			return nil, usagef("%q: quotas remove takes keys only, e.g. producer_byte_rate", k)
		}
		if slices.Contains(keys, k) {
			return nil, usagef("%s is given twice", k)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func quotaValue(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

type quotaEntry struct {
	Entity []quotaComponent   `json:"entity"`
	Values map[string]float64 `json:"values"`
}

type quotaListResult struct {
	Quotas []quotaEntry `json:"quotas"`
}

func (r quotaListResult) writeTable(w io.Writer) {
	var rows [][]string
	for _, q := range r.Quotas {
		for _, k := range sortedKeys(q.Values) {
			rows = append(rows, []string{entityString(q.Entity), k, quotaValue(q.Values[k])})
		}
	}
	table(w, []string{"ENTITY", "KEY", "VALUE"}, rows)
}

func quotasList(ctx context.Context, a *kadm.Client, comps []quotaComponent, strict bool) (quotaListResult, error) {
	filter := make([]kadm.DescribeClientQuotaComponent, 0, len(comps))
	for _, c := range comps {
		if c.Default {
			filter = append(filter, kadm.DescribeClientQuotaComponent{Type: c.Type, MatchType: quotaMatchDefault})
		} else {
			filter = append(filter, kadm.DescribeClientQuotaComponent{Type: c.Type, MatchName: &c.Name, MatchType: quotaMatchExact})
		}
	}
	described, err := a.DescribeClientQuotas(ctx, strict, filter)
	if err != nil {
		return quotaListResult{}, brokerErr("describe quotas", err)
	}
	res := quotaListResult{Quotas: []quotaEntry{}}
	for _, d := range described {
		e := quotaEntry{Entity: fromKadmEntity(d.Entity), Values: map[string]float64{}}
		for _, v := range d.Values {
			e.Values[v.Key] = v.Value
		}
		res.Quotas = append(res.Quotas, e)
	}
	slices.SortFunc(res.Quotas, func(x, y quotaEntry) int { return cmp.Compare(entityString(x.Entity), entityString(y.Entity)) })
	return res, nil
}

func fromKadmEntity(e kadm.ClientQuotaEntity) []quotaComponent {
	comps := make([]quotaComponent, 0, len(e))
	for _, c := range e {
		if c.Name == nil {
			comps = append(comps, quotaComponent{Type: c.Type, Default: true})
		} else {
			comps = append(comps, quotaComponent{Type: c.Type, Name: *c.Name})
		}
	}
	order := func(typ string) int {
		if i := slices.Index(quotaTypes, typ); i >= 0 {
			return i
		}
		return len(quotaTypes)
	}
	slices.SortStableFunc(comps, func(x, y quotaComponent) int { return cmp.Compare(order(x.Type), order(y.Type)) })
	return comps
}

func toKadmEntity(comps []quotaComponent) kadm.ClientQuotaEntity {
	e := make(kadm.ClientQuotaEntity, len(comps))
	for i, c := range comps {
		e[i].Type = c.Type
		if !c.Default {
			e[i].Name = &c.Name
		}
	}
	return e
}

// quotaChange is the result of `quotas set` and `quotas remove`.
type quotaChange struct {
	Action  string             `json:"action"` // set, removed
	Entity  []quotaComponent   `json:"entity"`
	Set     map[string]float64 `json:"set,omitempty"`
	Removed []string           `json:"removed,omitempty"`
}

func (r quotaChange) writeTable(w io.Writer) {
	if r.Action == "set" {
		fmt.Fprintf(w, "set quotas of %s\n", entityString(r.Entity))
		for _, k := range sortedKeys(r.Set) {
			fmt.Fprintf(w, "  %s=%s\n", k, quotaValue(r.Set[k]))
		}
		return
	}
	fmt.Fprintf(w, "removed quotas of %s\n", entityString(r.Entity))
	for _, k := range r.Removed {
		fmt.Fprintf(w, "  %s\n", k)
	}
}

func quotasAlter(ctx context.Context, a *kadm.Client, comps []quotaComponent, set map[string]float64, remove []string) (quotaChange, error) {
	var ops []kadm.AlterClientQuotaOp
	for _, k := range sortedKeys(set) {
		ops = append(ops, kadm.AlterClientQuotaOp{Key: k, Value: set[k]})
	}
	for _, k := range remove {
		ops = append(ops, kadm.AlterClientQuotaOp{Key: k, Remove: true})
	}
	entity := entityString(comps)
	results, err := a.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{{Entity: toKadmEntity(comps), Ops: ops}})
	if err != nil {
		return quotaChange{}, brokerErr("alter quotas", err)
	}
	if len(results) != 1 {
		return quotaChange{}, fmt.Errorf("alter quotas of %s: %d results for one entity", entity, len(results))
	}
	if r := results[0]; r.Err != nil {
		return quotaChange{}, kafkaErr("alter quotas of "+entity, r.Err, r.ErrMessage)
	}
	if set != nil {
		return quotaChange{Action: "set", Entity: comps, Set: set}, nil
	}
	return quotaChange{Action: "removed", Entity: comps, Removed: remove}, nil
}

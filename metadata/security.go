package metadata

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/netip"
	"slices"
	"strings"
)

// Security state: ACL bindings, SCRAM credentials and client quotas, the
// replicated equivalent of Kafka's AccessControlEntryRecord,
// UserScramCredentialRecord and ClientQuotaRecord. The broker turns Kafka
// requests (filters, salted passwords, entity components) into the concrete
// changes below; this package only stores them, checks that each one is
// well formed, and tells caches when anything changed (SecurityVersion).
//
// The FSM checks every value it stores, so a bug or an old binary upstream
// cannot put a binding or a quota into the log that some later reader
// misinterprets. The checks are pure functions of the command (only no-op
// detection looks at the existing state), and the Store runs
// them before proposing too: a command rejected up front never reaches the
// log, and a NaN quota (which JSON cannot carry) gets ErrInvalidArgument
// instead of an encoding error.

// ACL is one Kafka ACL binding. Every field holds a concrete Kafka wire code
// or value: ResourceType TOPIC(2) to USER(7), PatternType LITERAL(3) or
// PREFIXED(4), Operation ALL(2) to DESCRIBE_TOKENS(14), Permission DENY(2)
// or ALLOW(3); Principal ("User:alice"), Host ("*" or an address) and
// ResourceName ("*" for a literal wildcard) are non-empty. ACL is comparable.
type ACL struct {
	ResourceType int8
	ResourceName string
	PatternType  int8
	Principal    string
	Host         string
	Operation    int8
	Permission   int8
}

// ScramCredential is one user's SCRAM credential for one mechanism
// (1 SCRAM-SHA-256, 2 SCRAM-SHA-512), as RFC 5802 stores it: the password
// itself is never kept. Iterations is within Kafka's bounds, 4096 to 16384;
// Salt, StoredKey and ServerKey are non-empty.
type ScramCredential struct {
	User       string
	Mechanism  int8
	Iterations int32
	Salt       []byte
	StoredKey  []byte
	ServerKey  []byte
}

// ScramKey names a SCRAM credential.
type ScramKey struct {
	User      string
	Mechanism int8
}

// QuotaName is one component of a client-quota entity. Set=false: the type
// is not part of the entity (then Default and Name are zero). Default=true:
// Kafka's <default> (a null name on the wire; Name is then ""). Otherwise
// Name is the non-empty user name (without "User:"), client id, or IP
// address literal.
type QuotaName struct {
	Set, Default bool
	Name         string
}

// QuotaEntity is a client-quota entity: user, client id, user and client
// id, or IP (alone). It is comparable and serves as a map key.
type QuotaEntity struct{ User, ClientID, IP QuotaName }

// QuotaAlteration is one entity's change: keys to set and keys to remove
// (a key may not be in both, nor twice in Remove). Keys set must be
// producer_byte_rate, consumer_byte_rate, request_percentage or
// controller_mutation_rate for user/client-id entities, and
// connection_creation_rate for IP entities. Values are finite and
// non-negative; the byte rates and connection_creation_rate are whole
// numbers (as Kafka's LONG and INT types require, within Kafka's 1e-6).
// Removing a key the entity does not have is a no-op, whatever the key.
type QuotaAlteration struct {
	Entity QuotaEntity
	Set    map[string]float64
	Remove []string
}

// Kafka wire codes this package checks. They mirror the protocol's enums;
// the broker has kmsg's, this package imports no Kafka library.
const (
	resourceTopic      int8 = 2
	resourceUser       int8 = 7
	patternLiteral     int8 = 3
	patternPrefixed    int8 = 4
	opAll              int8 = 2
	opDescribeTokens   int8 = 14
	permissionDeny     int8 = 2
	permissionAllow    int8 = 3
	scramSHA256        int8 = 1
	scramSHA512        int8 = 2
	scramMinIterations      = 4096
	scramMaxIterations      = 16384
)

// Quota keys (Kafka's names) and how their values must look.
const (
	quotaProducerByteRate       = "producer_byte_rate"
	quotaConsumerByteRate       = "consumer_byte_rate"
	quotaRequestPercentage      = "request_percentage"
	quotaControllerMutation     = "controller_mutation_rate"
	quotaConnectionCreationRate = "connection_creation_rate"
	wholeNumberQuota            = true
	fractionalQuota             = false
	// wholeTolerance is how far from an integer a whole-number quota may
	// be: Kafka's own tolerance, so a value that went through a decimal
	// representation and back is still accepted.
	wholeTolerance = 1e-6
)

const notConcrete = "ANY, MATCH and UNKNOWN are filter values, not binding values"

// userClientQuotaKeys and ipQuotaKeys say which keys each kind of entity
// takes and whether the value must be a whole number.
var (
	userClientQuotaKeys = map[string]bool{
		quotaProducerByteRate:   wholeNumberQuota,
		quotaConsumerByteRate:   wholeNumberQuota,
		quotaRequestPercentage:  fractionalQuota,
		quotaControllerMutation: fractionalQuota,
	}
	ipQuotaKeys = map[string]bool{
		quotaConnectionCreationRate: wholeNumberQuota,
	}
)

// Records: the on-disk form of the security state (commands and snapshots).

type aclRec struct {
	ResourceType int8   `json:"resource_type"`
	ResourceName string `json:"resource_name"`
	PatternType  int8   `json:"pattern_type"`
	Principal    string `json:"principal"`
	Host         string `json:"host"`
	Operation    int8   `json:"operation"`
	Permission   int8   `json:"permission"`
}

type scramKeyRec struct {
	User      string `json:"user"`
	Mechanism int8   `json:"mechanism"`
}

// scramRec is immutable once in a state. []byte fields are base64 in JSON.
type scramRec struct {
	User       string `json:"user"`
	Mechanism  int8   `json:"mechanism"`
	Iterations int32  `json:"iterations"`
	Salt       []byte `json:"salt"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
}

type quotaNameRec struct {
	Set     bool   `json:"set"`
	Default bool   `json:"default"`
	Name    string `json:"name"`
}

type quotaEntityRec struct {
	User     quotaNameRec `json:"user"`
	ClientID quotaNameRec `json:"client_id"`
	IP       quotaNameRec `json:"ip"`
}

type quotaAlterationRec struct {
	Entity quotaEntityRec     `json:"entity"`
	Set    map[string]float64 `json:"set"`
	Remove []string           `json:"remove"`
}

// quotaRec is one entity's quotas in a snapshot.
type quotaRec struct {
	Entity quotaEntityRec     `json:"entity"`
	Values map[string]float64 `json:"values"`
}

func (r scramRec) key() scramKeyRec { return scramKeyRec{r.User, r.Mechanism} }

// Validation. Errors wrap ErrInvalidArgument and say what is wrong, since the
// broker may pass them on as INVALID_REQUEST messages.

func validACL(a aclRec) error {
	switch {
	case a.ResourceType < resourceTopic || a.ResourceType > resourceUser:
		return fmt.Errorf("resource type %d is not a concrete resource type (%s): %w", a.ResourceType, notConcrete, ErrInvalidArgument)
	case a.PatternType != patternLiteral && a.PatternType != patternPrefixed:
		return fmt.Errorf("pattern type %d is neither LITERAL nor PREFIXED: %w", a.PatternType, ErrInvalidArgument)
	case a.Operation < opAll || a.Operation > opDescribeTokens:
		return fmt.Errorf("operation %d is not a concrete operation (%s): %w", a.Operation, notConcrete, ErrInvalidArgument)
	case a.Permission != permissionDeny && a.Permission != permissionAllow:
		return fmt.Errorf("permission type %d is neither DENY nor ALLOW: %w", a.Permission, ErrInvalidArgument)
	case a.ResourceName == "":
		return fmt.Errorf("empty resource name: %w", ErrInvalidArgument)
	case a.Principal == "":
		return fmt.Errorf("empty principal: %w", ErrInvalidArgument)
	case a.Host == "":
		return fmt.Errorf("empty host: %w", ErrInvalidArgument)
	}
	return nil
}

func validACLs(op string, acls []aclRec) error {
	for _, a := range acls {
		if err := validACL(a); err != nil {
			return fmt.Errorf("%s: binding %s: %w", op, a, err)
		}
	}
	return nil
}

func (a aclRec) String() string {
	return fmt.Sprintf("(resource type %d, name %q, pattern %d, principal %q, host %q, operation %d, permission %d)",
		a.ResourceType, a.ResourceName, a.PatternType, a.Principal, a.Host, a.Operation, a.Permission)
}

func validScramKey(k scramKeyRec) error {
	if k.User == "" {
		return fmt.Errorf("empty user: %w", ErrInvalidArgument)
	}
	if k.Mechanism != scramSHA256 && k.Mechanism != scramSHA512 {
		return fmt.Errorf("user %q: unknown SCRAM mechanism %d (1 is SCRAM-SHA-256, 2 SCRAM-SHA-512): %w", k.User, k.Mechanism, ErrInvalidArgument)
	}
	return nil
}

func validScram(c *scramRec) error {
	if err := validScramKey(c.key()); err != nil {
		return err
	}
	switch {
	case c.Iterations < scramMinIterations || c.Iterations > scramMaxIterations:
		return fmt.Errorf("user %q: %d iterations, outside %d..%d: %w", c.User, c.Iterations, scramMinIterations, scramMaxIterations, ErrInvalidArgument)
	case len(c.Salt) == 0:
		return fmt.Errorf("user %q: empty salt: %w", c.User, ErrInvalidArgument)
	case len(c.StoredKey) == 0 || len(c.ServerKey) == 0:
		return fmt.Errorf("user %q: empty stored or server key: %w", c.User, ErrInvalidArgument)
	}
	return nil
}

func validScramChanges(upserts []scramRec, deletes []scramKeyRec) error {
	seen := make(map[scramKeyRec]bool, len(upserts)+len(deletes))
	for i := range upserts {
		if err := validScram(&upserts[i]); err != nil {
			return fmt.Errorf("alter SCRAM credentials: %w", err)
		}
		k := upserts[i].key()
		if seen[k] {
			return fmt.Errorf("alter SCRAM credentials: user %q mechanism %d altered twice: %w", k.User, k.Mechanism, ErrInvalidArgument)
		}
		seen[k] = true
	}
	for _, k := range deletes {
		if err := validScramKey(k); err != nil {
			return fmt.Errorf("alter SCRAM credentials: %w", err)
		}
		if seen[k] {
			return fmt.Errorf("alter SCRAM credentials: user %q mechanism %d altered twice: %w", k.User, k.Mechanism, ErrInvalidArgument)
		}
		seen[k] = true
	}
	return nil
}

func validQuotaName(kind string, n quotaNameRec) error {
	switch {
	case !n.Set && (n.Default || n.Name != ""):
		return fmt.Errorf("%s is not part of the entity but has a name or default flag: %w", kind, ErrInvalidArgument)
	case n.Set && n.Default && n.Name != "":
		return fmt.Errorf("default %s has name %q: %w", kind, n.Name, ErrInvalidArgument)
	case n.Set && !n.Default && n.Name == "":
		return fmt.Errorf("empty %s (use the default instead): %w", kind, ErrInvalidArgument)
	}
	return nil
}

// validQuotaEntity checks an entity and returns the keys it takes.
func validQuotaEntity(e quotaEntityRec) (map[string]bool, error) {
	if err := validQuotaName("user", e.User); err != nil {
		return nil, err
	}
	if err := validQuotaName("client-id", e.ClientID); err != nil {
		return nil, err
	}
	if err := validQuotaName("ip", e.IP); err != nil {
		return nil, err
	}
	switch {
	case e.IP.Set && (e.User.Set || e.ClientID.Set):
		return nil, fmt.Errorf("ip cannot be combined with user or client-id: %w", ErrInvalidArgument)
	case e.IP.Set:
		// A literal only: the FSM must not resolve names (that is neither
		// deterministic nor what a connection's remote address matches).
		if !e.IP.Default {
			if _, err := netip.ParseAddr(e.IP.Name); err != nil {
				return nil, fmt.Errorf("ip %q is not an IP address: %w", e.IP.Name, ErrInvalidArgument)
			}
		}
		return ipQuotaKeys, nil
	case e.User.Set || e.ClientID.Set:
		return userClientQuotaKeys, nil
	}
	return nil, fmt.Errorf("empty client quota entity: %w", ErrInvalidArgument)
}

func validQuotaValue(key string, v float64, whole bool) error {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Errorf("quota %s = %v is not a finite number: %w", key, v, ErrInvalidArgument)
	case v < 0:
		return fmt.Errorf("quota %s = %v is negative: %w", key, v, ErrInvalidArgument)
	case whole && math.Abs(v-math.Round(v)) > wholeTolerance:
		return fmt.Errorf("quota %s = %v must be a whole number: %w", key, v, ErrInvalidArgument)
	case key == quotaConnectionCreationRate && v > math.MaxInt32:
		return fmt.Errorf("quota %s = %v does not fit an int: %w", key, v, ErrInvalidArgument)
	case whole && v > math.MaxInt64:
		return fmt.Errorf("quota %s = %v does not fit a long: %w", key, v, ErrInvalidArgument)
	}
	return nil
}

// validQuotaValues checks the keys and values to set on e.
func validQuotaValues(e quotaEntityRec, set map[string]float64) error {
	keys, err := validQuotaEntity(e)
	if err != nil {
		return err
	}
	for k, v := range set {
		whole, ok := keys[k]
		if !ok {
			return fmt.Errorf("%s: %w", unknownQuotaKey(k), ErrInvalidArgument)
		}
		if err := validQuotaValue(k, v, whole); err != nil {
			return err
		}
	}
	return nil
}

func unknownQuotaKey(k string) string {
	if _, ok := userClientQuotaKeys[k]; ok {
		return fmt.Sprintf("quota %s does not apply to an ip entity", k)
	}
	if _, ok := ipQuotaKeys[k]; ok {
		return fmt.Sprintf("quota %s applies to ip entities only", k)
	}
	return fmt.Sprintf("unknown quota key %q", k)
}

func validQuotaAlterations(alts []quotaAlterationRec) error {
	seen := make(map[quotaEntityRec]bool, len(alts))
	for _, a := range alts {
		if err := validQuotaValues(a.Entity, a.Set); err != nil {
			return fmt.Errorf("alter client quotas of %s: %w", a.Entity, err)
		}
		removed := make(map[string]bool, len(a.Remove))
		for _, k := range a.Remove {
			// Removal keys are not checked against the entity: a key that
			// cannot be there is simply not there, and Kafka, too, accepts
			// removing it.
			if removed[k] {
				return fmt.Errorf("alter client quotas of %s: quota %s removed twice: %w", a.Entity, k, ErrInvalidArgument)
			}
			if _, ok := a.Set[k]; ok {
				return fmt.Errorf("alter client quotas of %s: quota %s is both set and removed: %w", a.Entity, k, ErrInvalidArgument)
			}
			removed[k] = true
		}
		if seen[a.Entity] {
			return fmt.Errorf("alter client quotas: entity %s altered twice: %w", a.Entity, ErrInvalidArgument)
		}
		seen[a.Entity] = true
	}
	return nil
}

func (n quotaNameRec) String() string {
	if n.Default {
		return "<default>"
	}
	return n.Name
}

func (e quotaEntityRec) String() string {
	var parts []string
	if e.User.Set {
		parts = append(parts, "user="+e.User.String())
	}
	if e.ClientID.Set {
		parts = append(parts, "client-id="+e.ClientID.String())
	}
	if e.IP.Set {
		parts = append(parts, "ip="+e.IP.String())
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// FSM handlers. Each validates the whole command before touching the state,
// so a rejected command changes nothing.

func (f *fsm) createACLs(c *createACLsV1) (bool, error) {
	if err := validACLs("create ACLs", c.ACLs); err != nil {
		return false, err
	}
	changed := false
	for _, a := range c.ACLs {
		if _, ok := f.st.acls[a]; !ok {
			f.st.acls[a] = struct{}{}
			changed = true
		}
	}
	return changed, nil
}

// deleteACLs removes the bindings that exist and reports them in command
// order, each once.
func (f *fsm) deleteACLs(c *deleteACLsV1) (bool, []aclRec, error) {
	if err := validACLs("delete ACLs", c.ACLs); err != nil {
		return false, nil, err
	}
	var removed []aclRec
	for _, a := range c.ACLs {
		if _, ok := f.st.acls[a]; ok {
			delete(f.st.acls, a)
			removed = append(removed, a)
		}
	}
	return len(removed) > 0, removed, nil
}

// alterScramCredentials replaces or adds the upserts and drops the deletes.
// Deleting a credential that does not exist is a no-op, so a retry is safe;
// the broker reports RESOURCE_NOT_FOUND from its own read before proposing.
func (f *fsm) alterScramCredentials(c *alterScramCredentialsV1) (bool, error) {
	if err := validScramChanges(c.Upserts, c.Deletes); err != nil {
		return false, err
	}
	changed := false
	for _, u := range c.Upserts {
		k := u.key()
		if old, ok := f.st.scram[k]; ok && old.equal(&u) {
			continue
		}
		rec := canonicalScram(u)
		f.st.scram[k] = &rec
		changed = true
	}
	for _, k := range c.Deletes {
		if _, ok := f.st.scram[k]; ok {
			delete(f.st.scram, k)
			changed = true
		}
	}
	return changed, nil
}

func (r *scramRec) equal(o *scramRec) bool {
	return r.User == o.User && r.Mechanism == o.Mechanism && r.Iterations == o.Iterations &&
		slices.Equal(r.Salt, o.Salt) && slices.Equal(r.StoredKey, o.StoredKey) && slices.Equal(r.ServerKey, o.ServerKey)
}

// canonicalScram copies the byte slices so the state shares nothing with
// the command (or the caller).
func canonicalScram(r scramRec) scramRec {
	r.Salt = slices.Clone(r.Salt)
	r.StoredKey = slices.Clone(r.StoredKey)
	r.ServerKey = slices.Clone(r.ServerKey)
	return r
}

// alterClientQuotas applies the alterations in order; an entity left
// without keys is removed. Values equal (==) to the current ones change
// nothing.
func (f *fsm) alterClientQuotas(c *alterClientQuotasV1) (bool, error) {
	if err := validQuotaAlterations(c.Alterations); err != nil {
		return false, err
	}
	changed := false
	for _, a := range c.Alterations {
		cur := f.st.quotas[a.Entity]
		next := maps.Clone(cur)
		if next == nil {
			next = make(map[string]float64, len(a.Set))
		}
		maps.Copy(next, a.Set)
		for _, k := range a.Remove {
			delete(next, k)
		}
		switch {
		case len(next) == 0:
			if cur != nil {
				delete(f.st.quotas, a.Entity)
				changed = true
			}
		case !maps.Equal(next, cur):
			// A fresh map: the old one may be shared with a snapshot.
			f.st.quotas[a.Entity] = next
			changed = true
		}
	}
	return changed, nil
}

// Snapshot parts (format 3).

func (st *state) hasSecurity() bool {
	return len(st.acls) > 0 || len(st.scram) > 0 || len(st.quotas) > 0
}

func sortedACLs(m map[aclRec]struct{}) []aclRec {
	out := slices.Collect(maps.Keys(m))
	slices.SortFunc(out, compareACLs)
	return out
}

func compareACLs(a, b aclRec) int {
	return cmp.Or(
		cmp.Compare(a.ResourceType, b.ResourceType),
		cmp.Compare(a.ResourceName, b.ResourceName),
		cmp.Compare(a.PatternType, b.PatternType),
		cmp.Compare(a.Principal, b.Principal),
		cmp.Compare(a.Host, b.Host),
		cmp.Compare(a.Operation, b.Operation),
		cmp.Compare(a.Permission, b.Permission),
	)
}

func compareScramKeys(a, b scramKeyRec) int {
	return cmp.Or(cmp.Compare(a.User, b.User), cmp.Compare(a.Mechanism, b.Mechanism))
}

func compareQuotaNames(a, b quotaNameRec) int {
	// Absent, then default, then names in order.
	rank := func(n quotaNameRec) int {
		switch {
		case !n.Set:
			return 0
		case n.Default:
			return 1
		}
		return 2
	}
	return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.Name, b.Name))
}

func compareQuotaEntities(a, b quotaEntityRec) int {
	return cmp.Or(compareQuotaNames(a.User, b.User), compareQuotaNames(a.ClientID, b.ClientID), compareQuotaNames(a.IP, b.IP))
}

// encodeSecurity fills the format 3 fields.
func encodeSecurity(st *state, snap *snapshotV3) {
	snap.ACLs = sortedACLs(st.acls)
	snap.ScramCredentials = slices.Collect(maps.Values(st.scram))
	slices.SortFunc(snap.ScramCredentials, func(a, b *scramRec) int { return compareScramKeys(a.key(), b.key()) })
	for e, v := range st.quotas {
		snap.ClientQuotas = append(snap.ClientQuotas, &quotaRec{Entity: e, Values: v})
	}
	slices.SortFunc(snap.ClientQuotas, func(a, b *quotaRec) int { return compareQuotaEntities(a.Entity, b.Entity) })
}

// restoreSecurity checks the security part of a snapshot and puts it into st.
func restoreSecurity(st *state, acls []aclRec, scram []*scramRec, quotas []*quotaRec) error {
	for _, a := range acls {
		if err := validACL(a); err != nil {
			return fmt.Errorf("ACL %s: %v", a, err)
		}
		if _, dup := st.acls[a]; dup {
			return fmt.Errorf("ACL %s listed twice", a)
		}
		st.acls[a] = struct{}{}
	}
	for _, c := range scram {
		if c == nil {
			return errors.New("null SCRAM credential")
		}
		if err := validScram(c); err != nil {
			return fmt.Errorf("SCRAM credential: %v", err)
		}
		if _, dup := st.scram[c.key()]; dup {
			return fmt.Errorf("SCRAM credential of user %q mechanism %d listed twice", c.User, c.Mechanism)
		}
		st.scram[c.key()] = c
	}
	for _, q := range quotas {
		if q == nil {
			return errors.New("null client quota")
		}
		if len(q.Values) == 0 {
			// Never written: an entity without keys is removed.
			return fmt.Errorf("client quota of %s has no values", q.Entity)
		}
		if err := validQuotaValues(q.Entity, q.Values); err != nil {
			return fmt.Errorf("client quota of %s: %v", q.Entity, err)
		}
		if _, dup := st.quotas[q.Entity]; dup {
			return fmt.Errorf("client quota of %s listed twice", q.Entity)
		}
		st.quotas[q.Entity] = q.Values
	}
	return nil
}

// Reads.

func (f *fsm) acls() []ACL {
	f.mu.RLock()
	recs := sortedACLs(f.st.acls)
	f.mu.RUnlock()
	out := make([]ACL, len(recs))
	for i, a := range recs {
		out[i] = ACL(a)
	}
	return out
}

func (f *fsm) scramCredential(user string, mechanism int8) (ScramCredential, bool) {
	f.mu.RLock()
	c, ok := f.st.scram[scramKeyRec{user, mechanism}]
	f.mu.RUnlock()
	if !ok {
		return ScramCredential{}, false
	}
	// The record is immutable: copying after the unlock is safe.
	return c.public(), true
}

func (f *fsm) scramCredentials() []ScramCredential {
	f.mu.RLock()
	recs := slices.Collect(maps.Values(f.st.scram))
	f.mu.RUnlock()
	slices.SortFunc(recs, func(a, b *scramRec) int { return compareScramKeys(a.key(), b.key()) })
	out := make([]ScramCredential, len(recs))
	for i, c := range recs {
		out[i] = c.public()
	}
	return out
}

func (f *fsm) clientQuotas() map[QuotaEntity]map[string]float64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[QuotaEntity]map[string]float64, len(f.st.quotas))
	for e, v := range f.st.quotas {
		out[e.public()] = maps.Clone(v)
	}
	return out
}

func (r *scramRec) public() ScramCredential {
	return ScramCredential{
		User:       r.User,
		Mechanism:  r.Mechanism,
		Iterations: r.Iterations,
		Salt:       slices.Clone(r.Salt),
		StoredKey:  slices.Clone(r.StoredKey),
		ServerKey:  slices.Clone(r.ServerKey),
	}
}

func (e quotaEntityRec) public() QuotaEntity {
	return QuotaEntity{User: QuotaName(e.User), ClientID: QuotaName(e.ClientID), IP: QuotaName(e.IP)}
}

func quotaEntityRecord(e QuotaEntity) quotaEntityRec {
	return quotaEntityRec{User: quotaNameRec(e.User), ClientID: quotaNameRec(e.ClientID), IP: quotaNameRec(e.IP)}
}

func aclRecs(acls []ACL) []aclRec {
	if len(acls) == 0 {
		return nil
	}
	out := make([]aclRec, len(acls))
	for i, a := range acls {
		out[i] = aclRec(a)
	}
	return out
}

// Store methods. Writes are one Raft command each, all or nothing: one
// invalid element rejects the whole command with ErrInvalidArgument and
// nothing changes. Kafka answers per element; the broker validates elements
// (and checks existence where Kafka reports it) before proposing, and sends
// only the valid ones.

// CreateACLs adds bindings; an identical existing binding is a no-op.
// Concrete values only (ErrInvalidArgument otherwise: ANY/MATCH/UNKNOWN
// codes, empty principal/host/name).
func (s *Store) CreateACLs(ctx context.Context, acls []ACL) error {
	c := &createACLsV1{ACLs: aclRecs(acls)}
	if err := validACLs("create ACLs", c.ACLs); err != nil {
		return err
	}
	_, err := s.propose(ctx, fmt.Sprintf("create %d ACLs", len(acls)), c)
	return err
}

// DeleteACLs removes exactly these bindings (the broker computes them from
// filters) and returns those that existed and were removed, in input order,
// each once. Bindings that do not exist are skipped; invalid ones reject the
// command (ErrInvalidArgument).
func (s *Store) DeleteACLs(ctx context.Context, acls []ACL) ([]ACL, error) {
	c := &deleteACLsV1{ACLs: aclRecs(acls)}
	if err := validACLs("delete ACLs", c.ACLs); err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, fmt.Sprintf("delete %d ACLs", len(acls)), c)
	if err != nil {
		return nil, err
	}
	out := make([]ACL, len(res.removedACLs))
	for i, a := range res.removedACLs {
		out[i] = ACL(a)
	}
	return out, nil
}

// ACLs returns every binding, sorted by resource type, resource name,
// pattern type, principal, host, operation and permission.
func (s *Store) ACLs() []ACL { return s.fsm.acls() }

// AlterScramCredentials applies upserts (replacing any credential of the
// same user and mechanism) and deletions in one command. A (user, mechanism)
// may appear only once across both lists; deleting a credential that does
// not exist is a no-op. ErrInvalidArgument for a bad mechanism, iteration
// count, empty user, salt or key.
func (s *Store) AlterScramCredentials(ctx context.Context, upserts []ScramCredential, deletes []ScramKey) error {
	c := &alterScramCredentialsV1{}
	for _, u := range upserts {
		c.Upserts = append(c.Upserts, canonicalScram(scramRec(u)))
	}
	for _, d := range deletes {
		c.Deletes = append(c.Deletes, scramKeyRec(d))
	}
	if err := validScramChanges(c.Upserts, c.Deletes); err != nil {
		return err
	}
	_, err := s.propose(ctx, fmt.Sprintf("alter SCRAM credentials (%d upserts, %d deletions)", len(upserts), len(deletes)), c)
	return err
}

// ScramCredential returns the credential of user for mechanism (1 or 2).
func (s *Store) ScramCredential(user string, mechanism int8) (ScramCredential, bool) {
	return s.fsm.scramCredential(user, mechanism)
}

// ScramCredentials returns every credential, sorted by user, then mechanism.
func (s *Store) ScramCredentials() []ScramCredential { return s.fsm.scramCredentials() }

// AlterClientQuotas applies every alteration in one command; an entity left
// with no keys is removed. ErrInvalidArgument for a malformed entity (no
// component, a default with a name, an empty name, ip with anything else,
// an ip that is not an address literal), a key set that the entity does
// not take, a value that is not finite, negative or (for the whole-number
// keys) fractional or too large, a key both set and removed or removed
// twice, or the same entity twice.
func (s *Store) AlterClientQuotas(ctx context.Context, alts []QuotaAlteration) error {
	c := &alterClientQuotasV1{}
	for _, a := range alts {
		rec := quotaAlterationRec{Entity: quotaEntityRecord(a.Entity), Remove: slices.Clone(a.Remove)}
		if len(a.Set) > 0 {
			rec.Set = maps.Clone(a.Set)
		}
		c.Alterations = append(c.Alterations, rec)
	}
	// Before encoding: JSON cannot carry NaN or infinities.
	if err := validQuotaAlterations(c.Alterations); err != nil {
		return err
	}
	_, err := s.propose(ctx, fmt.Sprintf("alter client quotas of %d entities", len(alts)), c)
	return err
}

// ClientQuotas returns every entity's quotas: a copy the caller owns.
func (s *Store) ClientQuotas() map[QuotaEntity]map[string]float64 { return s.fsm.clientQuotas() }

// SecurityVersion increases whenever ACLs, SCRAM credentials or quotas
// change (or a snapshot is restored), so caches can rebuild cheaply: load
// the version, then read the state; if the version differs next time, read
// again. The counter is local to this process (0 at Open, before the log is
// replayed) and is bumped after the change is visible to reads.
func (s *Store) SecurityVersion() uint64 { return s.fsm.secVersion.Load() }

package metadata

// Forwarding: a node that is not the Raft leader hands its request to the
// leader over the Raft port (muxStream tells the connections apart by their
// first byte) and gets the outcome back. One request per connection:
// forwarded writes are rare (topic administration, registrations,
// membership), so a dial per request costs little and leaves no stale
// pooled connection whose failure would make an outcome ambiguous.
//
// Wire format, after the marker byte (forwardMarker) on a new connection:
//
//	request:  size uint32 BE | version uint8 (1) | kind uint8 | JSON body
//	response: size uint32 BE | version uint8 (1) | kind uint8 | JSON body
//
// size counts the bytes after it. Bodies are decoded strictly (unknown
// fields are an error), as commands are: a node must not silently drop a
// field a newer one relies on. A response echoes the request's kind (0 when
// the request could not be decoded). A new field or kind is a new version,
// except a new kind whose new fields only it carries (broker-heartbeat's
// incarnation and fenced): an older node refuses the unknown kind cleanly
// and still reads every other request.
// The command bytes of a proposal are the log entry itself (command.go's
// envelope); the leader decodes them before appending, so a command it
// does not understand is refused instead of reaching (and stopping) every
// replica's FSM.
//
// The forwarding server trusts its peers as much as Raft does: with mutual
// TLS only holders of a cluster certificate get through; on plain TCP
// anyone who can reach the Raft port can also append to the Raft log
// directly.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
)

type fwdKind uint8

// Kinds are persistent numbers, like command types.
const (
	fwdPropose         fwdKind = 1 // apply a command; answers applyResult
	fwdAddNonvoter     fwdKind = 2 // add or update a non-voter (idempotent)
	fwdAddVoter        fwdKind = 3 // add a voter or promote a non-voter (idempotent)
	fwdRemoveServer    fwdKind = 4 // remove a server (idempotent)
	fwdDescribeQuorum  fwdKind = 5 // the leader's view of the quorum
	fwdReplicaState    fwdKind = 6 // this node's own log position (any node answers)
	fwdBrokerHeartbeat fwdKind = 7 // a broker's heartbeat (heartbeat.go); never writes the log
)

func (k fwdKind) String() string {
	switch k {
	case fwdPropose:
		return "propose"
	case fwdAddNonvoter:
		return "add-nonvoter"
	case fwdAddVoter:
		return "add-voter"
	case fwdRemoveServer:
		return "remove-server"
	case fwdDescribeQuorum:
		return "describe-quorum"
	case fwdReplicaState:
		return "replica-state"
	case fwdBrokerHeartbeat:
		return "broker-heartbeat"
	}
	return fmt.Sprintf("fwdKind(%d)", uint8(k))
}

// idempotent kinds may be sent again after an outcome that is unknown
// (a lost connection); a proposal may not: it might apply twice.
func (k fwdKind) idempotent() bool { return k != fwdPropose }

const (
	fwdVersion = 1
	// maxForwardFrame bounds what a peer can make us allocate. Commands
	// are small JSON documents; a topic with tens of thousands of
	// partitions stays far below.
	maxForwardFrame = 64 << 20
	// fwdIOTimeout bounds reading a request and writing its answer, and a
	// dial when the caller has no earlier deadline.
	fwdIOTimeout = 10 * time.Second
)

var errBadForward = errors.New("malformed forwarding message")

// fwdRequest is one forwarded request.
type fwdRequest struct {
	Kind    fwdKind `json:"-"`
	Op      string  `json:"op,omitempty"`      // for messages and logs
	Command []byte  `json:"command,omitempty"` // fwdPropose: the log entry
	ID      int32   `json:"id,omitempty"`      // membership changes; fwdBrokerHeartbeat: the broker
	Addr    string  `json:"addr,omitempty"`    // fwdAddNonvoter, fwdAddVoter
	// Incarnation: fwdBrokerHeartbeat. omitzero keeps it out of every
	// other kind's body, which older nodes decode strictly.
	Incarnation uuid.UUID `json:"incarnation,omitzero"`
}

type fwdStatus uint8

const (
	fwdOK        fwdStatus = 0
	fwdNotLeader fwdStatus = 1 // refused before anything changed: retry on the leader
	fwdFailed    fwdStatus = 2 // err says why
)

// fwdResponse is an outcome, in memory. The local path uses it as is; the
// wire carries it as wireResponse.
type fwdResponse struct {
	status     fwdStatus
	leaderID   int32  // fwdNotLeader: the leader this node knows of, or -1
	leaderAddr string // fwdNotLeader: its address, or ""
	// index is the Raft index of the entry a proposal or membership change
	// wrote (0 if none); the forwarding node waits until it has applied it.
	index   uint64
	err     error
	result  applyResult
	quorum  *QuorumInfo
	replica *replicaReport
	fenced  bool // fwdBrokerHeartbeat: the broker is fenced
}

// replicaReport is a node's own view of its log, for DescribeQuorum.
type replicaReport struct {
	NodeID    int32  `json:"node_id"`
	LastIndex uint64 `json:"last_index"`
	// LastContactMs is when this node last heard from the leader (Unix
	// ms), -1 if never; a leader reports the time of the answer.
	LastContactMs int64 `json:"last_contact_ms"`
}

type wireError struct {
	Code    uint16 `json:"code"`
	Message string `json:"message"`
}

// wireResult carries applyResult's values. Every field of applyResult but
// err must be here: TestWireResultCoversApplyResult fails otherwise.
type wireResult struct {
	ProducerID  int64          `json:"producer_id,omitempty"`
	ClusterID   string         `json:"cluster_id,omitempty"`
	RemovedACLs []aclRec       `json:"removed_acls,omitempty"`
	Partition   *partitionRec  `json:"partition,omitempty"`
	Elections   []wireElection `json:"elections,omitempty"`
}

type wireElection struct {
	TopicID   uuid.UUID  `json:"topic_id"`
	Partition int32      `json:"partition"`
	Error     *wireError `json:"error,omitempty"`
}

func toWireResult(r applyResult) *wireResult {
	w := &wireResult{ProducerID: r.producerID, ClusterID: r.clusterID, RemovedACLs: r.removedACLs}
	if !reflect.ValueOf(r.partition).IsZero() {
		p := r.partition
		w.Partition = &p
	}
	for _, e := range r.elections {
		w.Elections = append(w.Elections, wireElection{TopicID: e.TopicID, Partition: e.Partition, Error: toWireError(e.Err)})
	}
	return w
}

func fromWireResult(w *wireResult, err error) applyResult {
	r := applyResult{err: err, producerID: w.ProducerID, clusterID: w.ClusterID, removedACLs: w.RemovedACLs}
	if w.Partition != nil {
		r.partition = *w.Partition
	}
	for _, e := range w.Elections {
		r.elections = append(r.elections, ElectionResult{TopicPartition: TopicPartition{TopicID: e.TopicID, Partition: e.Partition}, Err: errorFromWire(e.Error)})
	}
	return r
}

type wireResponse struct {
	Status     fwdStatus      `json:"status"`
	LeaderID   int32          `json:"leader_id"`
	LeaderAddr string         `json:"leader_addr,omitempty"`
	Index      uint64         `json:"index,omitempty"`
	Error      *wireError     `json:"error,omitempty"`
	Result     *wireResult    `json:"result,omitempty"`
	Quorum     *QuorumInfo    `json:"quorum,omitempty"`
	Replica    *replicaReport `json:"replica,omitempty"`
	Fenced     bool           `json:"fenced,omitempty"`
}

// wireErrorCodes are the sentinels an answer can carry; codes are
// persistent. Any other error arrives as its message only. A new sentinel
// that callers match with errors.Is belongs here (TestWireErrorCodes lists
// them), before any sentinel it wraps: the first match is sent.
var wireErrorCodes = []struct {
	code uint16
	err  error
}{
	{1, ErrNotLeader},
	{2, ErrTopicExists},
	{3, ErrUnknownTopic},
	{4, ErrClosed},
	{5, ErrInvalidTopic},
	{6, ErrInvalidPartitions},
	{8, ErrUnknownBroker},
	{9, ErrStaleBrokerIncarnation},
	{10, ErrFencedLeaderEpoch},
	{11, ErrStalePartitionEpoch},
	{12, ErrIneligibleReplica}, // wraps ErrInvalidArgument
	{13, ErrInvalidReplicationFactor},
	{14, ErrInvalidReplicaAssignment},
	{15, ErrNoReassignmentInProgress},
	{16, ErrElectionNotNeeded},
	{17, ErrPreferredLeaderNotAvailable},
	{18, ErrEligibleLeadersNotAvailable},
	{19, ErrStaleBrokerEpoch},
	{7, ErrInvalidArgument},
}

func errorCode(err error) uint16 {
	for _, e := range wireErrorCodes {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return 0
}

// remoteError is an error that happened on another node: its message,
// and the sentinel it wrapped there, so errors.Is keeps working.
type remoteError struct {
	msg      string
	sentinel error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }

func toWireError(err error) *wireError {
	if err == nil {
		return nil
	}
	return &wireError{Code: errorCode(err), Message: err.Error()}
}

func errorFromWire(w *wireError) error {
	if w == nil {
		return nil
	}
	re := &remoteError{msg: w.Message}
	for _, e := range wireErrorCodes {
		if e.code == w.Code {
			re.sentinel = e.err
		}
	}
	if re.msg == "" {
		re.msg = "metadata: error without message from the leader"
	}
	return re
}

// encodeRequest builds a request frame (size prefix included).
func encodeRequest(req *fwdRequest) ([]byte, error) {
	return encodeFrame(req.Kind, req)
}

// decodeRequest parses a request frame body (after the size prefix). It
// never panics, whatever the bytes.
func decodeRequest(body []byte) (*fwdRequest, error) {
	k, payload, err := frameHeader(body)
	if err != nil {
		return nil, err
	}
	req := &fwdRequest{}
	if err := decodeStrict(payload, req); err != nil {
		return nil, fmt.Errorf("%w: %s body: %v", errBadForward, k, err)
	}
	req.Kind = k
	if len(req.Command) == 0 {
		req.Command = nil // "" and absent mean the same
	}
	switch k {
	case fwdPropose:
		if len(req.Command) == 0 {
			return nil, fmt.Errorf("%w: propose without a command", errBadForward)
		}
	case fwdAddNonvoter, fwdAddVoter:
		if req.ID < 0 {
			return nil, fmt.Errorf("%w: %s: node id %d", errBadForward, k, req.ID)
		}
		if _, _, err := net.SplitHostPort(req.Addr); err != nil {
			return nil, fmt.Errorf("%w: %s: address %q: %v", errBadForward, k, req.Addr, err)
		}
	case fwdRemoveServer:
		if req.ID < 0 {
			return nil, fmt.Errorf("%w: %s: node id %d", errBadForward, k, req.ID)
		}
	case fwdBrokerHeartbeat:
		if req.ID < 0 || req.Incarnation == uuid.Nil {
			return nil, fmt.Errorf("%w: %s: broker %d, incarnation %s", errBadForward, k, req.ID, req.Incarnation)
		}
	case fwdDescribeQuorum, fwdReplicaState:
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", errBadForward, uint8(k))
	}
	return req, nil
}

func encodeResponse(k fwdKind, r fwdResponse) ([]byte, error) {
	w := wireResponse{Status: r.status, LeaderID: r.leaderID, LeaderAddr: r.leaderAddr, Index: r.index, Quorum: r.quorum, Replica: r.replica, Fenced: r.fenced}
	if r.err != nil {
		w.Error = toWireError(r.err)
		if w.Status == fwdOK {
			w.Status = fwdFailed
		}
	}
	if k == fwdPropose && r.status != fwdNotLeader {
		w.Result = toWireResult(r.result)
	}
	return encodeFrame(k, &w)
}

// decodeResponse parses a response frame body for a request of kind want.
// It never panics, whatever the bytes.
func decodeResponse(body []byte, want fwdKind) (fwdResponse, error) {
	k, payload, err := frameHeader(body)
	if err != nil {
		return fwdResponse{}, err
	}
	var w wireResponse
	if err := decodeStrict(payload, &w); err != nil {
		return fwdResponse{}, fmt.Errorf("%w: response body: %v", errBadForward, err)
	}
	if k != want && !(k == 0 && w.Status == fwdFailed) {
		return fwdResponse{}, fmt.Errorf("%w: answer of kind %s to a %s request", errBadForward, k, want)
	}
	r := fwdResponse{status: w.Status, leaderID: w.LeaderID, leaderAddr: w.LeaderAddr, index: w.Index, quorum: w.Quorum, replica: w.Replica, fenced: w.Fenced}
	switch w.Status {
	case fwdOK:
		if w.Error != nil {
			// An FSM rejection: the command is in the log, changed nothing.
			r.err = errorFromWire(w.Error)
		}
	case fwdNotLeader:
	case fwdFailed:
		if w.Error == nil {
			return fwdResponse{}, fmt.Errorf("%w: failure without an error", errBadForward)
		}
		r.err = errorFromWire(w.Error)
	default:
		return fwdResponse{}, fmt.Errorf("%w: status %d", errBadForward, w.Status)
	}
	if w.Result != nil {
		r.result = fromWireResult(w.Result, r.err)
	}
	switch {
	case want == fwdDescribeQuorum && w.Status == fwdOK && w.Error == nil && w.Quorum == nil:
		return fwdResponse{}, fmt.Errorf("%w: describe-quorum answer without a quorum", errBadForward)
	case want == fwdReplicaState && w.Status == fwdOK && w.Replica == nil:
		return fwdResponse{}, fmt.Errorf("%w: replica-state answer without a report", errBadForward)
	}
	return r, nil
}

func encodeFrame(k fwdKind, body any) ([]byte, error) {
	js, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode forwarding %s: %w", k, err)
	}
	n := 2 + len(js)
	if n > maxForwardFrame {
		return nil, fmt.Errorf("forwarding %s: %d-byte message exceeds %d bytes: %w", k, n, maxForwardFrame, ErrInvalidArgument)
	}
	buf := make([]byte, 4, 4+n)
	binary.BigEndian.PutUint32(buf, uint32(n))
	buf = append(buf, fwdVersion, byte(k))
	return append(buf, js...), nil
}

func frameHeader(body []byte) (fwdKind, []byte, error) {
	if len(body) < 2 {
		return 0, nil, fmt.Errorf("%w: %d-byte frame", errBadForward, len(body))
	}
	if body[0] != fwdVersion {
		return 0, nil, fmt.Errorf("%w: version %d, this node speaks %d", errBadForward, body[0], fwdVersion)
	}
	return fwdKind(body[1]), body[2:], nil
}

// readFrame reads one size-prefixed frame body.
func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxForwardFrame {
		return nil, fmt.Errorf("%w: %d-byte frame exceeds %d", errBadForward, n, maxForwardFrame)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return body, nil
}

// serveForward answers one forwarded request on c (the marker already
// read). It runs on the mux's goroutine for c; everything it waits on ends
// when the store closes (Store.do, the stop context).
func (s *Store) serveForward(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(s.q.now().Add(fwdIOTimeout))
	body, err := readFrame(c)
	if err != nil {
		s.log.Debug("metadata: unreadable forwarded request", "remote", c.RemoteAddr(), "err", err)
		return
	}
	var kind fwdKind
	var resp fwdResponse
	req, err := decodeRequest(body)
	if err != nil {
		resp = fwdResponse{status: fwdFailed, err: fmt.Errorf("forwarded request from %s: %w: %v", c.RemoteAddr(), ErrInvalidArgument, err)}
	} else {
		kind = req.Kind
		// Applying may take longer than an I/O timeout; the dialer bounds
		// its own wait.
		_ = c.SetDeadline(time.Time{})
		resp = s.handleLocal(s.q.stopCtx, req)
	}
	out, err := encodeResponse(kind, resp)
	if err != nil {
		resp = fwdResponse{status: fwdFailed, err: err}
		if out, err = encodeResponse(kind, resp); err != nil {
			return
		}
	}
	_ = c.SetWriteDeadline(s.q.now().Add(fwdIOTimeout))
	if _, err := c.Write(out); err != nil {
		s.log.Debug("metadata: forwarded answer not delivered", "remote", c.RemoteAddr(), "kind", kind, "err", err)
	}
}

// roundTrip sends req to the node at addr and returns its answer. sent
// reports whether the request may have reached that node: a failure after
// that leaves the outcome unknown. ctx bounds the whole exchange.
func (s *Store) roundTrip(ctx context.Context, addr string, req *fwdRequest) (resp fwdResponse, sent bool, err error) {
	frame, err := encodeRequest(req)
	if err != nil {
		return fwdResponse{}, false, err
	}
	timeout := fwdIOTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	if timeout <= 0 {
		return fwdResponse{}, false, context.DeadlineExceeded
	}
	c, err := s.q.mux.Dial(raft.ServerAddress(addr), timeout)
	if err != nil {
		return fwdResponse{}, false, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	// Cancelling ctx interrupts blocked reads and writes.
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	// One write for marker and frame: a failed write means the server
	// never got a whole request, so nothing was done.
	msg := make([]byte, 0, 1+len(frame))
	msg = append(append(msg, forwardMarker), frame...)
	if _, err := c.Write(msg); err != nil {
		return fwdResponse{}, false, ctxErr(ctx, err)
	}
	body, err := readFrame(c)
	if err != nil {
		return fwdResponse{}, true, ctxErr(ctx, err)
	}
	resp, err = decodeResponse(body, req.Kind)
	return resp, true, err
}

// ctxErr prefers ctx's error when ctx ended, since that is why I/O failed.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

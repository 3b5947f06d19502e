package broker

// This broker's membership in the cluster: roles and voters from the
// config, registration with every advertised listener, the heartbeat loop
// that keeps it unfenced, controlled shutdown, and the broker addresses
// clients are told (each broker's endpoint on the listener the client
// came in through, as Kafka answers).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/strata-broker/strata/metadata"
)

// validateCluster checks the cluster keys (Config.Validate calls it).
func (c *Config) validateCluster(bad func(key, format string, args ...any)) {
	roles, err := metadata.ParseRoles(c.ProcessRoles)
	if err != nil {
		bad("process-roles", "%v", err)
		return
	}
	if c.ControllerVoters != "" {
		voters, err := metadata.ParseVoters(c.ControllerVoters)
		if err != nil {
			bad("controller-voters", "%v", err)
			return
		}
		if c.ControllerAddr == "" {
			bad("controller-listen", "required with controller-voters: the Raft transport needs an address")
		}
		in := slices.ContainsFunc(voters, func(v metadata.Voter) bool { return v.ID == c.NodeID })
		switch {
		case roles.IsController() && !in:
			bad("controller-voters", "node-id %d has the controller role but is not among the voters %q", c.NodeID, c.ControllerVoters)
		case !roles.IsController() && in:
			bad("controller-voters", "node-id %d is a voter but process-roles %q lacks controller", c.NodeID, c.ProcessRoles)
		}
	} else if !roles.IsController() {
		bad("controller-voters", "required for a broker-only node (process-roles=broker): it must know the quorum")
	}
	if c.ControllerAdvertisedAddr != "" {
		if err := validHostPort(c.ControllerAdvertisedAddr); err != nil {
			bad("controller-advertised-addr", "%v", err)
		}
	}
	if c.BrokerSessionTimeoutMs < 100 {
		bad("broker.session.timeout.ms", "must be >= 100, got %d", c.BrokerSessionTimeoutMs)
	}
	if c.BrokerHeartbeatIntervalMs < 10 || c.BrokerHeartbeatIntervalMs >= c.BrokerSessionTimeoutMs {
		bad("broker.heartbeat.interval.ms", "must be >= 10 and below broker.session.timeout.ms (%d), got %d", c.BrokerSessionTimeoutMs, c.BrokerHeartbeatIntervalMs)
	}
	if c.ReplicaLagTimeMaxMs < 100 {
		bad("replica.lag.time.max.ms", "must be >= 100, got %d", c.ReplicaLagTimeMaxMs)
	}
	if c.ReplicaFetchMaxBytes < 1 {
		bad("replica.fetch.max.bytes", "must be >= 1, got %d", c.ReplicaFetchMaxBytes)
	}
	if c.ReplicaFetchResponseMaxBytes < 1 {
		bad("replica.fetch.response.max.bytes", "must be >= 1, got %d", c.ReplicaFetchResponseMaxBytes)
	}
	if c.ReplicaFetchWaitMaxMs < 0 || int64(c.ReplicaFetchWaitMaxMs) >= c.ReplicaLagTimeMaxMs {
		bad("replica.fetch.wait.max.ms", "must be >= 0 and below replica.lag.time.max.ms (%d), got %d", c.ReplicaLagTimeMaxMs, c.ReplicaFetchWaitMaxMs)
	}
	if c.ReplicaFetchBackoffMs < 0 {
		bad("replica.fetch.backoff.ms", "must be >= 0, got %d", c.ReplicaFetchBackoffMs)
	}
	if c.OffsetsTopicReplicationFactor < 1 {
		bad("offsets.topic.replication.factor", "must be >= 1, got %d", c.OffsetsTopicReplicationFactor)
	}
	if c.TransactionStateLogReplicationFactor < 1 {
		bad("transaction.state.log.replication.factor", "must be >= 1, got %d", c.TransactionStateLogReplicationFactor)
	}
}

// metadataConfig is the quorum part of the config.
func (s *Server) metadataConfig() (metadata.Config, error) {
	cfg := s.cfg
	roles, err := metadata.ParseRoles(cfg.ProcessRoles)
	if err != nil {
		return metadata.Config{}, &ConfigError{Key: "process-roles", Msg: err.Error()}
	}
	mc := metadata.Config{
		NodeID:                cfg.NodeID,
		RaftAddr:              cfg.ControllerAddr,
		Roles:                 roles,
		RaftAdvertiseAddr:     cfg.ControllerAdvertisedAddr,
		BrokerSessionTimeout:  time.Duration(cfg.BrokerSessionTimeoutMs) * time.Millisecond,
		UncleanLeaderElection: cfg.UncleanLeaderElectionEnable,
	}
	if cfg.ControllerVoters != "" {
		if mc.Voters, err = metadata.ParseVoters(cfg.ControllerVoters); err != nil {
			return metadata.Config{}, &ConfigError{Key: "controller-voters", Msg: err.Error()}
		}
	}
	return mc, nil
}

// register announces this process (a new incarnation) with every
// advertised listener. The controller keeps it fenced until its first
// heartbeat.
func (s *Server) register(ctx context.Context) error {
	if s.incarnation == uuid.Nil {
		// Once per process: registering again (the controller lost track
		// of this broker) keeps the incarnation, so it is a retry, not a
		// restart that would cost this broker its ISR memberships.
		s.incarnation = uuid.New()
	}
	reg := metadata.BrokerRegistration{ID: s.cfg.NodeID, IncarnationID: s.incarnation, Rack: s.cfg.BrokerRack}
	for _, l := range s.listeners {
		reg.Endpoints = append(reg.Endpoints, metadata.Endpoint{Listener: l.name, Host: l.advHost, Port: l.advPort, SecurityProtocol: l.protocol})
	}
	if err := s.meta.RegisterBrokerV2(ctx, reg); err != nil {
		return fmt.Errorf("register broker %d: %w", s.cfg.NodeID, err)
	}
	s.log.Info("registered with the controller", "node_id", s.cfg.NodeID, "incarnation", s.incarnation.String(), "rack", s.cfg.BrokerRack)
	return nil
}

// heartbeat sends one heartbeat; a controller that no longer knows this
// incarnation (ErrStaleBrokerEpoch) gets a new registration.
func (s *Server) heartbeat(ctx context.Context) error {
	timeout := time.Duration(s.cfg.BrokerHeartbeatIntervalMs) * time.Millisecond * 2
	hctx, cancel := context.WithTimeout(ctx, max(timeout, time.Second))
	defer cancel()
	_, err := s.meta.BrokerHeartbeat(hctx, s.cfg.NodeID, s.incarnation)
	if errors.Is(err, metadata.ErrStaleBrokerEpoch) {
		s.log.Warn("controller does not know this broker's incarnation; registering again", "err", err)
		return s.register(hctx)
	}
	return err
}

// awaitUnfenced heartbeats until the controller has unfenced this broker:
// before that it leads nothing and clients are not told about it.
func (s *Server) awaitUnfenced(ctx context.Context) error {
	tick := time.NewTicker(min(time.Duration(s.cfg.BrokerHeartbeatIntervalMs)*time.Millisecond, 200*time.Millisecond))
	defer tick.Stop()
	for {
		watch := s.meta.Watch()
		if b, ok := s.meta.Broker(s.cfg.NodeID); ok && b.IncarnationID == s.incarnation && !b.Fenced {
			return nil
		}
		if err := s.heartbeat(ctx); err != nil && ctx.Err() == nil {
			s.log.Debug("heartbeat", "err", err)
		}
		select {
		case <-watch:
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("broker %d not unfenced by the controller: %w", s.cfg.NodeID, ctx.Err())
		}
	}
}

// heartbeatLoop keeps this broker's session with the active controller.
func (s *Server) heartbeatLoop() {
	defer s.wg.Done()
	interval := time.Duration(s.cfg.BrokerHeartbeatIntervalMs) * time.Millisecond
	tick := time.NewTicker(interval)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		err := s.heartbeat(s.ctx)
		switch {
		case err != nil && s.ctx.Err() == nil && !failing:
			failing = true
			s.log.Warn("heartbeat to the controller failed; retrying", "err", err)
		case err == nil && failing:
			failing = false
			s.log.Info("heartbeats to the controller succeed again")
		}
	}
}

// controlledShutdown asks the controller to move every leadership and ISR
// membership of this broker elsewhere before it stops, so clients move on
// at once instead of after a session timeout. A single broker has nowhere
// to move anything and skips it.
func (s *Server) controlledShutdown() {
	if !s.cfg.ControlledShutdownEnable || s.meta == nil || s.incarnation == uuid.Nil {
		return
	}
	others := false
	for _, b := range s.meta.Brokers() {
		if b.ID != s.cfg.NodeID && !b.Fenced {
			others = true
		}
	}
	if !others {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), max(s.cfg.ShutdownTimeout/2, time.Second))
	defer cancel()
	if err := s.meta.ControlledShutdown(ctx, s.cfg.NodeID, s.incarnation); err != nil {
		s.log.Warn("controlled shutdown failed; partitions move after the session timeout", "err", err)
		return
	}
	s.log.Info("controlled shutdown: leadership moved to other brokers")
	if s.parts != nil {
		// Apply the change here too, so requests still in flight are
		// answered NOT_LEADER_OR_FOLLOWER instead of being acknowledged by
		// a broker that is leaving.
		if err := s.parts.reconcile(); err != nil {
			s.log.Warn("reconcile after controlled shutdown", "err", err)
		}
	}
}

// brokerEndpoint is where a client of listener name reaches broker b: its
// endpoint of the same listener, as Kafka answers. ok is false when b has
// no such listener.
func brokerEndpoint(b metadata.Broker, name string) (host string, port int32, ok bool) {
	for _, ep := range b.AllEndpoints() {
		if ep.Listener == name {
			return ep.Host, ep.Port, true
		}
	}
	return "", 0, false
}

// liveBrokers lists the brokers clients are told about: registered and
// not fenced, each at its endpoint on the listener r came in on (this
// broker at the listener's own advertised address).
type liveBroker struct {
	id   int32
	host string
	port int32
	rack string
}

func (s *Server) liveBrokers(r *request) []liveBroker {
	name := s.listeners[0].name
	if r != nil && r.cc != nil && r.cc.listener != nil {
		name = r.cc.listener.name
	}
	var out []liveBroker
	for _, b := range s.meta.Brokers() {
		lb := liveBroker{id: b.ID, rack: b.Rack}
		switch {
		case b.ID == s.cfg.NodeID:
			lb.host, lb.port = s.selfAddr(r)
		case b.Fenced:
			continue
		default:
			var ok bool
			if lb.host, lb.port, ok = brokerEndpoint(b, name); !ok {
				continue
			}
		}
		out = append(out, lb)
	}
	return out
}

// nodeAddr is broker id's address for r's listener; ok false when it is
// not live or has no such listener.
func (s *Server) nodeAddr(r *request, id int32) (string, int32, bool) {
	if id == s.cfg.NodeID {
		h, p := s.selfAddr(r)
		return h, p, true
	}
	b, ok := s.meta.Broker(id)
	if !ok || b.Fenced {
		return "", 0, false
	}
	name := s.listeners[0].name
	if r != nil && r.cc != nil && r.cc.listener != nil {
		name = r.cc.listener.name
	}
	return brokerEndpoint(b, name)
}

// controllerID is the node id Metadata and DescribeCluster give as the
// controller: the active controller (the Raft leader) when it is a live
// broker, else this broker (admin requests sent here are forwarded to the
// quorum anyway).
func (s *Server) controllerID() int32 {
	if id, ok := s.meta.LeaderID(); ok {
		if b, ok := s.meta.Broker(id); ok && !b.Fenced {
			return id
		}
	}
	return s.cfg.NodeID
}

// interBrokerListener names the listener followers fetch through.
func (s *Server) interBrokerListener() string {
	if s.cfg.InterBrokerListenerName != "" {
		return s.cfg.InterBrokerListenerName
	}
	return s.listeners[0].name
}

// localDialAddr is the source address of this broker's connections to
// other brokers: the host of its inter-broker listener when that is an IP
// address (so a multi-homed machine uses the right interface, and a test's
// fault proxy can tell brokers apart); nil lets the kernel choose.
func (s *Server) localDialAddr() net.Addr {
	for _, l := range s.listeners {
		if l.name != s.interBrokerListener() {
			continue
		}
		host, _, err := net.SplitHostPort(l.ln.Addr().String())
		if err != nil {
			return nil
		}
		ip := net.ParseIP(host)
		if ip == nil || ip.IsUnspecified() {
			return nil
		}
		return &net.TCPAddr{IP: ip}
	}
	return nil
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// openInterBroker checks inter.broker.listener.name and prepares the TLS
// client side of an SSL inter-broker listener (the keystore is the client
// certificate, the truststore verifies the other brokers).
func (s *Server) openInterBroker() error {
	name := s.interBrokerListener()
	for _, l := range s.listeners {
		if l.name != name {
			continue
		}
		if l.sasl() {
			return &ConfigError{Key: "inter.broker.listener.name", Msg: fmt.Sprintf("listener %s uses SASL, which brokers cannot use among themselves yet; use a PLAINTEXT or SSL listener", name)}
		}
		if l.usesTLS() {
			cfg, err := s.controllerTLS()
			if err != nil {
				return &ConfigError{Key: "inter.broker.listener.name", Msg: fmt.Sprintf("SSL listener %s: %v", name, err)}
			}
			s.interBrokerTLS = cfg
		}
		return nil
	}
	return &ConfigError{Key: "inter.broker.listener.name", Msg: fmt.Sprintf("no listener named %q", name)}
}

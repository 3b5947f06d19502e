package broker

import (
	"context"
	"errors"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/broker/internal/groups"
	"github.com/strata-broker/strata/metadata"
	"github.com/strata-broker/strata/proto"
	"github.com/strata-broker/strata/storage"
)

// Errors owned by the broker's own logic (not by a lower package).
var (
	errUnknownTopic        = errors.New("unknown topic or partition")
	errNotLeader           = errors.New("not leader or follower")
	errInvalidTopic        = errors.New("invalid topic")
	errPolicyViolation     = errors.New("policy violation")
	errInvalidConfig       = errors.New("invalid config")
	errInvalidPartitions   = errors.New("invalid partitions")
	errInvalidReplication  = errors.New("invalid replication factor")
	errTopicDeletionOff    = errors.New("topic deletion disabled")
	errInvalidRequest      = errors.New("invalid request")
	errCoordinatorNotReady = errors.New("coordinator not available")
	errInvalidTimestamp    = errors.New("invalid timestamp")
)

// errorCode is the one place internal errors become Kafka error codes.
// Anything it does not know is UNKNOWN_SERVER_ERROR and gets logged, so a
// missing mapping shows up in the logs instead of silently confusing clients.
func errorCode(log *slog.Logger, err error) int16 {
	if err == nil {
		return 0
	}
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Code
	}
	if code, ok := proto.ErrorCode(err); ok {
		return code
	}
	switch {
	case errors.Is(err, errUnknownTopic), errors.Is(err, metadata.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, errNotLeader):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, errInvalidTopic):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, errPolicyViolation):
		return kerr.PolicyViolation.Code
	case errors.Is(err, errInvalidConfig):
		return kerr.InvalidConfig.Code
	case errors.Is(err, errInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, errInvalidReplication):
		return kerr.InvalidReplicationFactor.Code
	case errors.Is(err, errTopicDeletionOff):
		return kerr.TopicDeletionDisabled.Code
	case errors.Is(err, errInvalidRequest):
		return kerr.InvalidRequest.Code
	case errors.Is(err, errCoordinatorNotReady), errors.Is(err, groups.ErrCoordinatorNotAvailable):
		return kerr.CoordinatorNotAvailable.Code
	case errors.Is(err, groups.ErrNotCoordinator):
		return kerr.NotCoordinator.Code
	case errors.Is(err, errInvalidTimestamp):
		return kerr.InvalidTimestamp.Code
	case errors.Is(err, metadata.ErrInvalidTopic):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, metadata.ErrInvalidPartitions):
		return kerr.InvalidPartitions.Code
	// Cluster commands. ErrIneligibleReplica wraps ErrInvalidArgument, so
	// it must be matched before it.
	case errors.Is(err, metadata.ErrIneligibleReplica):
		return kerr.IneligibleReplica.Code
	case errors.Is(err, metadata.ErrUnknownBroker):
		return kerr.BrokerIDNotRegistered.Code
	case errors.Is(err, metadata.ErrStaleBrokerIncarnation):
		return kerr.StaleBrokerEpoch.Code
	case errors.Is(err, metadata.ErrFencedLeaderEpoch):
		return kerr.FencedLeaderEpoch.Code
	case errors.Is(err, metadata.ErrStalePartitionEpoch):
		return kerr.InvalidUpdateVersion.Code
	case errors.Is(err, metadata.ErrInvalidReplicationFactor):
		return kerr.InvalidReplicationFactor.Code
	case errors.Is(err, metadata.ErrInvalidReplicaAssignment):
		return kerr.InvalidReplicaAssignment.Code
	case errors.Is(err, metadata.ErrNoReassignmentInProgress):
		return kerr.NoReassignmentInProgress.Code
	case errors.Is(err, metadata.ErrElectionNotNeeded):
		return kerr.ElectionNotNeeded.Code
	case errors.Is(err, metadata.ErrPreferredLeaderNotAvailable):
		return kerr.PreferredLeaderNotAvailable.Code
	case errors.Is(err, metadata.ErrEligibleLeadersNotAvailable):
		return kerr.EligibleLeadersNotAvailable.Code
	case errors.Is(err, metadata.ErrInvalidArgument):
		return kerr.InvalidRequest.Code
	case errors.Is(err, metadata.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, metadata.ErrNotLeader):
		return kerr.NotController.Code
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, storage.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, storage.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, storage.ErrInvalidTxnState):
		return kerr.InvalidTxnState.Code
	case errors.Is(err, storage.ErrTransactionCoordinatorFenced):
		return kerr.TransactionCoordinatorFenced.Code
	case errors.Is(err, storage.ErrClosed), errors.Is(err, metadata.ErrClosed):
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	case errors.Is(err, context.Canceled):
		return kerr.RequestTimedOut.Code
	}
	if log != nil {
		log.Error("unmapped internal error", "err", err)
	}
	return kerr.UnknownServerError.Code
}

package broker

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/strata-broker/strata/metadata"
)

// TestErrorCodeClusterSentinels: the metadata package's cluster errors
// reach clients as the Kafka codes its comments name, also when wrapped
// with ids as the store returns them.
func TestErrorCodeClusterSentinels(t *testing.T) {
	tests := []struct {
		err  error
		want *kerr.Error
	}{
		{metadata.ErrUnknownBroker, kerr.BrokerIDNotRegistered},
		{metadata.ErrStaleBrokerIncarnation, kerr.StaleBrokerEpoch},
		{metadata.ErrFencedLeaderEpoch, kerr.FencedLeaderEpoch},
		{metadata.ErrStalePartitionEpoch, kerr.InvalidUpdateVersion},
		{metadata.ErrIneligibleReplica, kerr.IneligibleReplica},
		{metadata.ErrInvalidReplicationFactor, kerr.InvalidReplicationFactor},
		{metadata.ErrInvalidReplicaAssignment, kerr.InvalidReplicaAssignment},
		{metadata.ErrNoReassignmentInProgress, kerr.NoReassignmentInProgress},
		{metadata.ErrElectionNotNeeded, kerr.ElectionNotNeeded},
		{metadata.ErrPreferredLeaderNotAvailable, kerr.PreferredLeaderNotAvailable},
		{metadata.ErrEligibleLeadersNotAvailable, kerr.EligibleLeadersNotAvailable},
		{metadata.ErrInvalidArgument, kerr.InvalidRequest},
		{metadata.ErrUnknownTopic, kerr.UnknownTopicOrPartition},
		{metadata.ErrNotLeader, kerr.NotController},
	}
	for _, tc := range tests {
		t.Run(tc.want.Message, func(t *testing.T) {
			wrapped := fmt.Errorf("reassign 3f1c-0: %w", tc.err)
			if got := errorCode(nil, wrapped); got != tc.want.Code {
				t.Errorf("errorCode(%v) = %d, want %d (%s)", wrapped, got, tc.want.Code, tc.want.Message)
			}
		})
	}
}

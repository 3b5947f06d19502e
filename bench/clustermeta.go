package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The cluster run polls Metadata with raw requests rather than kadm: kadm
// answers a topic's metadata from the client's cache for up to
// MetadataMinAge (5 s by default) and the broker list from the client's
// own refresh (every MetadataMaxAge), while a poll for a change needs a
// request each time; and only a raw request can be sent to one chosen
// broker, which checking that every broker has applied a change needs.

// metadataView is a Metadata answer reduced to what the bench polls for.
type metadataView struct {
	Controller int32
	Brokers    []int32 // sorted; Kafka lists only unfenced brokers
	Topics     map[string]topicView
}

// topicView is one topic of a Metadata answer.
type topicView struct {
	Err        error // the topic's error; nil when it is described
	Partitions map[int32]partitionView
}

// partitionView is one partition of a Metadata answer.
type partitionView struct {
	Leader   int32 // -1 when it has none
	Epoch    int32
	Replicas []int32
	ISR      []int32
	Err      error
}

// parseMetadata reduces a Metadata response to a metadataView.
func parseMetadata(resp *kmsg.MetadataResponse) metadataView {
	m := metadataView{Controller: resp.ControllerID, Topics: map[string]topicView{}}
	for _, b := range resp.Brokers {
		m.Brokers = append(m.Brokers, b.NodeID)
	}
	slices.Sort(m.Brokers)
	for _, t := range resp.Topics {
		if t.Topic == nil {
			continue
		}
		tv := topicView{Err: kerr.ErrorForCode(t.ErrorCode), Partitions: map[int32]partitionView{}}
		for _, p := range t.Partitions {
			tv.Partitions[p.Partition] = partitionView{
				Leader: p.Leader, Epoch: p.LeaderEpoch, Replicas: p.Replicas, ISR: p.ISR,
				Err: kerr.ErrorForCode(p.ErrorCode),
			}
		}
		m.Topics[*t.Topic] = tv
	}
	return m
}

// partition is one partition of topic; ok is false when the answer does
// not describe it (or describes it with an error).
func (m metadataView) partition(topic string, partition int32) (p partitionView, ok bool) {
	t, found := m.Topics[topic]
	if !found || t.Err != nil {
		return p, false
	}
	p, found = t.Partitions[partition]
	return p, found && p.Err == nil
}

// inSync says every partition of topic has a leader and all rf replicas
// in its ISR.
func (m metadataView) inSync(topic string, partitions int32, rf int) bool {
	for i := range partitions {
		p, ok := m.partition(topic, i)
		if !ok || p.Leader < 0 || len(p.ISR) != rf {
			return false
		}
	}
	return true
}

// describe renders topic's partitions for an error message.
func (m metadataView) describe(topic string) string {
	t, ok := m.Topics[topic]
	switch {
	case !ok:
		return "topic not listed"
	case t.Err != nil:
		return t.Err.Error()
	}
	ids := make([]int32, 0, len(t.Partitions))
	for id := range t.Partitions {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		p := t.Partitions[id]
		parts[i] = fmt.Sprintf("p%d leader %d epoch %d replicas %v isr %v", id, p.Leader, p.Epoch, p.Replicas, p.ISR)
		if p.Err != nil {
			parts[i] += " error " + p.Err.Error()
		}
	}
	return strings.Join(parts, "; ")
}

// requestMetadata sends a Metadata request for topics (none: brokers
// only) to broker, or to any broker when broker is negative. A broker is
// addressed by the id the client has learnt from an earlier answer.
func requestMetadata(ctx context.Context, cl *kgo.Client, broker int32, topics ...string) (metadataView, error) {
	req := kmsg.NewPtrMetadataRequest()
	req.Topics = []kmsg.MetadataRequestTopic{} // empty, not null: null asks for every topic
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	var r kmsg.Requestor = cl
	if broker >= 0 {
		r = cl.Broker(int(broker))
	}
	resp, err := req.RequestWith(ctx, r)
	if err != nil {
		return metadataView{}, err
	}
	return parseMetadata(resp), nil
}

// newPollClient is a client for the bench's own Metadata polls: it gives
// up on a dead broker quickly, so one poll never outlasts the poll period
// by much.
func newPollClient(seeds []string) (*kgo.Client, error) {
	return kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RetryBackoffFn(func(int) time.Duration { return failoverRetryBackoff }),
		kgo.RequestRetries(3), kgo.DialTimeout(time.Second), kgo.RetryTimeout(2*time.Second))
}

// pollUntil calls check every period until it reports done or an error,
// or until timeout passes. Each call is bounded by a second.
func pollUntil(ctx context.Context, timeout, period time.Duration, check func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, time.Second)
		done, err := check(attempt)
		cancelAttempt()
		if done || err != nil {
			return err
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitInSync polls until every one of brokers answers that every
// partition of topic has a leader and rf replicas in sync. Each broker
// applies the metadata log on its own, and a client whose first Metadata
// answer lacks the topic waits MetadataMinAge (5 s in kgo) before asking
// again, so one broker's word is not enough before a run.
func waitInSync(ctx context.Context, cl *kgo.Client, brokers []int32, topic string, partitions int32, rf int, timeout time.Duration) error {
	var last metadataView
	lastFrom := int32(-1)
	err := pollUntil(ctx, timeout, 50*time.Millisecond, func(ctx context.Context) (bool, error) {
		// Any broker first: that is how the client learns the brokers
		// it can then address by id.
		m, err := requestMetadata(ctx, cl, -1, topic)
		if err != nil {
			return false, nil
		}
		last, lastFrom = m, -1
		if !m.inSync(topic, partitions, rf) {
			return false, nil
		}
		for _, b := range brokers {
			m, err := requestMetadata(ctx, cl, b, topic)
			if err != nil {
				return false, nil
			}
			last, lastFrom = m, b
			if !m.inSync(topic, partitions, rf) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for every broker to see %s with %d replicas in sync: %w (last answer, from broker %d: %s)",
			topic, rf, err, lastFrom, last.describe(topic))
	}
	return nil
}

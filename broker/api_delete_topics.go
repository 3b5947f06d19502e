package broker

// DeleteTopics v0-v6 (v6 names topics by name or id).
//
// The deletion is committed through the metadata quorum; the topic's logs
// are deleted before the answer. Internal topics cannot be deleted.
//
// Authorization as Kafka: DELETE on the cluster covers every topic;
// otherwise a topic named without DESCRIBE is TOPIC_AUTHORIZATION_FAILED
// before its existence is looked at, one that exists without DELETE is
// TOPIC_AUTHORIZATION_FAILED too. Topic ids are resolved first (unknown:
// UNKNOWN_TOPIC_ID) and a refused id's name is echoed only with DESCRIBE.

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/strata-broker/strata/metadata"
)

func init() { register(20, 0, 6, handleDeleteTopics) }

func handleDeleteTopics(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	type target struct {
		name *string
		id   uuid.UUID
	}
	var targets []target
	if req.Version >= 6 {
		for _, t := range req.Topics {
			targets = append(targets, target{t.Topic, uuid.UUID(t.TopicID)})
		}
	} else {
		for _, n := range req.TopicNames {
			targets = append(targets, target{name: kmsg.StringPtr(n)})
		}
	}
	clusterDelete := s.allowClusterQuiet(r, kmsg.ACLOperationDelete)
	canDescribe := s.batchAuthz(r, kmsg.ACLOperationDescribe, kmsg.ACLResourceTypeTopic)
	canDelete := s.batchAuthz(r, kmsg.ACLOperationDelete, kmsg.ACLResourceTypeTopic)
	for _, tg := range targets {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic = tg.name
		st.TopicID = tg.id
		var (
			t   metadata.Topic
			ok  bool
			err error
		)
		if tg.name != nil {
			t, ok = s.meta.Topic(*tg.name)
		} else {
			t, ok = s.meta.TopicByID(tg.id)
		}
		switch {
		case !s.cfg.DeleteTopicEnable:
			err = errTopicDeletionOff
		case !ok && tg.name == nil:
			err = kerr.UnknownTopicID
		case tg.name == nil && !clusterDelete && !canDelete.allow(t.Name):
			if canDescribe.allow(t.Name) {
				st.Topic = kmsg.StringPtr(t.Name)
			}
			err = errTopicAuthz
		case tg.name != nil && !clusterDelete && !canDescribe.allow(*tg.name):
			err = errTopicAuthz
		case !ok:
			err = kerr.UnknownTopicOrPartition
		case !clusterDelete && !canDelete.allow(t.Name):
			err = errTopicAuthz
		case t.Internal:
			err = fmt.Errorf("internal topic %s cannot be deleted: %w", t.Name, kerr.InvalidTopicException)
		default:
			st.Topic = kmsg.StringPtr(t.Name)
			st.TopicID = t.ID
			if err = s.meta.DeleteTopic(ctx, t.ID); err == nil {
				err = s.parts.reconcile()
				s.log.Info("deleted topic", "topic", t.Name, "topic_id", t.ID.String())
			}
		}
		if err != nil {
			st.ErrorCode = errorCode(s.log, err)
			if req.Version >= 5 {
				st.ErrorMessage = kmsg.StringPtr(err.Error())
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return respond(resp)
}

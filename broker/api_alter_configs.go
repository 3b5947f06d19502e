package broker

// AlterConfigs v0-v2 (replace a topic's whole config set).
//
// ALTER_CONFIGS on the topic (TOPIC_AUTHORIZATION_FAILED) or, for a broker
// resource, on the cluster (CLUSTER_AUTHORIZATION_FAILED) comes first, as
// in Kafka. Differences from Apache Kafka: broker configs are static
// (file, env, flags); altering a BROKER resource answers INVALID_CONFIG.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(33, 0, 2, handleAlterConfigs) }

func handleAlterConfigs(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	for _, rr := range req.Resources {
		res := kmsg.NewAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		// Legacy AlterConfigs never served broker loggers: Kafka answers
		// INVALID_REQUEST for them without authorizing.
		if rr.ResourceType != kmsg.ConfigResourceTypeBrokerLogger {
			if code := s.configResourceAuthz(r, kmsg.ACLOperationAlterConfigs, rr.ResourceType, rr.ResourceName); code != 0 {
				res.ErrorCode = code
				res.ErrorMessage = kmsg.StringPtr(authzMessage(code))
				resp.Resources = append(resp.Resources, res)
				continue
			}
		}
		set := map[string]string{}
		for _, c := range rr.Configs {
			if c.Value != nil {
				set[c.Name] = *c.Value
			}
		}
		err := s.alterTopicConfigs(ctx, rr.ResourceType, rr.ResourceName, req.ValidateOnly, func(old map[string]string) (map[string]string, error) {
			return set, nil
		})
		if err != nil {
			res.ErrorCode = errorCode(s.log, err)
			res.ErrorMessage = kmsg.StringPtr(err.Error())
		}
		resp.Resources = append(resp.Resources, res)
	}
	return respond(resp)
}

// alterTopicConfigs computes a topic's new config set with change,
// validates it and commits it (unless validateOnly).
func (s *Server) alterTopicConfigs(ctx context.Context, typ kmsg.ConfigResourceType, name string, validateOnly bool, change func(old map[string]string) (map[string]string, error)) error {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
	case kmsg.ConfigResourceTypeBroker:
		return errInvalidConfigf("broker configs are static in Strata: set them in the config file, env or flags and restart")
	default:
		return kerr.InvalidRequest
	}
	t, ok := s.meta.Topic(name)
	if !ok {
		return kerr.UnknownTopicOrPartition
	}
	next, err := change(t.Configs)
	if err != nil {
		return err
	}
	if err := s.validateTopicConfigs(next, t.Configs); err != nil {
		return err
	}
	if validateOnly {
		return nil
	}
	var del []string
	for k := range t.Configs {
		if _, ok := next[k]; !ok {
			del = append(del, k)
		}
	}
	if err := s.meta.AlterTopicConfigs(ctx, t.ID, next, del); err != nil {
		return err
	}
	s.log.Info("altered topic configs", "topic", name, "configs", next)
	return s.parts.reconcile()
}

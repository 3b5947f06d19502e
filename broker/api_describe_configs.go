package broker

// DescribeConfigs v0-v4.
//
// Topics: every topic config with its effective value and source
// (DYNAMIC_TOPIC_CONFIG when set on the topic, else the broker default:
// STATIC_BROKER_CONFIG when the operator set it, DEFAULT_CONFIG otherwise),
// synonyms on request (v1+), types (v3+). Brokers: the broker's settings,
// all read-only. Documentation strings are not provided.
//
// Authorization as Kafka: DESCRIBE_CONFIGS on the topic
// (TOPIC_AUTHORIZATION_FAILED, before the topic's existence is looked at)
// or, for broker and broker-logger resources, on the cluster
// (CLUSTER_AUTHORIZATION_FAILED).

import (
	"context"
	"slices"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(32, 0, 4, handleDescribeConfigs) }

func handleDescribeConfigs(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		res := kmsg.NewDescribeConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		if code := s.configResourceAuthz(r, kmsg.ACLOperationDescribeConfigs, rr.ResourceType, rr.ResourceName); code != 0 {
			res.ErrorCode = code
			res.ErrorMessage = kmsg.StringPtr(authzMessage(code))
			resp.Resources = append(resp.Resources, res)
			continue
		}
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t, ok := s.meta.Topic(rr.ResourceName)
			if !ok {
				res.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			res.Configs = s.describeTopicConfigs(t.Configs, rr.ConfigNames, req.IncludeSynonyms)
			res.Configs = append(res.Configs, s.topicSizeConfigs(t.Name, rr.ConfigNames)...)
		case kmsg.ConfigResourceTypeBroker:
			if rr.ResourceName != "" && rr.ResourceName != strconv.Itoa(int(s.cfg.NodeID)) {
				res.ErrorCode = kerr.InvalidRequest.Code
				res.ErrorMessage = kmsg.StringPtr("unknown broker " + rr.ResourceName)
				break
			}
			res.Configs = s.describeBrokerConfigs(rr.ConfigNames)
		default:
			res.ErrorCode = kerr.InvalidRequest.Code
			res.ErrorMessage = kmsg.StringPtr("unsupported resource type " + rr.ResourceType.String())
		}
		resp.Resources = append(resp.Resources, res)
	}
	return respond(resp)
}

// Read-only size entries shown with a topic's configs: how much of it is on
// local disk and how much in the object store. They are not settable
// (AlterConfigs refuses unknown names).
const (
	configLocalSize  = "strata.local.size.bytes"
	configRemoteSize = "strata.remote.size.bytes"
)

func (s *Server) topicSizeConfigs(topic string, names []string) []kmsg.DescribeConfigsResponseResourceConfig {
	want := len(names) == 0
	for _, n := range names {
		if n == configLocalSize || n == configRemoteSize {
			want = true
		}
	}
	ts, ok := s.parts.topic(topic)
	if !want || !ok {
		return nil
	}
	var local, remote int64
	for _, p := range ts.parts {
		if p == nil {
			continue
		}
		local += p.log.Size()
		rb, _, _, _ := s.tier.Stats(ts.id, p.index)
		remote += rb
	}
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, kv := range []struct {
		name string
		v    int64
	}{{configLocalSize, local}, {configRemoteSize, remote}} {
		if len(names) > 0 && !slices.Contains(names, kv.name) {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name = kv.name
		c.Value = kmsg.StringPtr(strconv.FormatInt(kv.v, 10))
		c.ReadOnly = true
		c.Source = kmsg.ConfigSourceDefaultConfig
		c.ConfigType = kmsg.ConfigTypeLong
		out = append(out, c)
	}
	return out
}

func (s *Server) describeBrokerConfigs(names []string) []kmsg.DescribeConfigsResponseResourceConfig {
	all := s.brokerConfigs()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []kmsg.DescribeConfigsResponseResourceConfig
	for _, k := range sortedKeys(all) {
		if len(want) > 0 && !want[k] {
			continue
		}
		c := kmsg.NewDescribeConfigsResponseResourceConfig()
		c.Name = k
		c.Value = kmsg.StringPtr(all[k])
		c.ReadOnly = true
		c.Source = kmsg.ConfigSourceDefaultConfig
		if s.cfg.ExplicitKeys[k] {
			c.Source = kmsg.ConfigSourceStaticBrokerConfig
		}
		c.IsDefault = c.Source == kmsg.ConfigSourceDefaultConfig
		out = append(out, c)
	}
	return out
}

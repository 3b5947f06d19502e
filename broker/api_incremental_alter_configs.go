package broker

// IncrementalAlterConfigs v0-v1 (KIP-339): SET, DELETE, APPEND, SUBTRACT.
//
// APPEND and SUBTRACT apply to list configs only (cleanup.policy), as in
// Kafka. Broker resources are refused (static configs). ALTER_CONFIGS on
// the topic (TOPIC_AUTHORIZATION_FAILED) or, for broker and broker-logger
// resources, on the cluster (CLUSTER_AUTHORIZATION_FAILED) comes first, as
// in Kafka.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(44, 0, 1, handleIncrementalAlterConfigs) }

func errInvalidConfigf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errInvalidConfig, fmt.Sprintf(format, args...))
}

func handleIncrementalAlterConfigs(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		res := kmsg.NewIncrementalAlterConfigsResponseResource()
		res.ResourceType, res.ResourceName = rr.ResourceType, rr.ResourceName
		if code := s.configResourceAuthz(r, kmsg.ACLOperationAlterConfigs, rr.ResourceType, rr.ResourceName); code != 0 {
			res.ErrorCode = code
			res.ErrorMessage = kmsg.StringPtr(authzMessage(code))
			resp.Resources = append(resp.Resources, res)
			continue
		}
		err := s.alterTopicConfigs(ctx, rr.ResourceType, rr.ResourceName, req.ValidateOnly, func(old map[string]string) (map[string]string, error) {
			next := maps.Clone(old)
			if next == nil {
				next = map[string]string{}
			}
			seen := map[string]bool{}
			for _, c := range rr.Configs {
				if seen[c.Name] {
					return nil, fmt.Errorf("config %s named more than once: %w", c.Name, kerr.InvalidRequest)
				}
				seen[c.Name] = true
				d, ok := topicConfigByName[c.Name]
				if !ok {
					return nil, errInvalidConfigf("unknown topic config %q", c.Name)
				}
				val := ""
				if c.Value != nil {
					val = *c.Value
				}
				switch c.Op {
				case kmsg.IncrementalAlterConfigOpSet:
					if c.Value == nil {
						return nil, errInvalidConfigf("null value for %s", c.Name)
					}
					next[c.Name] = val
				case kmsg.IncrementalAlterConfigOpDelete:
					delete(next, c.Name)
				case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
					if d.typ != typeList {
						return nil, errInvalidConfigf("%s is not a list: APPEND and SUBTRACT apply to lists", c.Name)
					}
					cur, _ := s.effectiveConfig(next, d)
					items := splitList(cur)
					for _, v := range splitList(val) {
						has := slices.Contains(items, v)
						if c.Op == kmsg.IncrementalAlterConfigOpAppend && !has {
							items = append(items, v)
						} else if c.Op == kmsg.IncrementalAlterConfigOpSubtract && has {
							items = slices.DeleteFunc(items, func(x string) bool { return x == v })
						}
					}
					next[c.Name] = strings.Join(items, ",")
				default:
					return nil, errInvalidConfigf("unknown operation %d for %s", c.Op, c.Name)
				}
			}
			return next, nil
		})
		if err != nil {
			res.ErrorCode = errorCode(s.log, err)
			res.ErrorMessage = kmsg.StringPtr(err.Error())
		}
		resp.Resources = append(resp.Resources, res)
	}
	return respond(resp)
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

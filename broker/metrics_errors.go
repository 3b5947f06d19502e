package broker

import (
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Error counting for strata_broker_request_errors_total{api, error}: every
// error code other than NONE in a response, top level and per partition,
// topic, group, resource or member, as Kafka's ErrorsPerSec counts them.
// The codes are collected by a type switch over the responses of the
// registered APIs (TestErrorWalkerCoversRegistry keeps it complete), then
// added once per distinct code, so a Produce failing on 500 partitions
// costs one counter update, not 500.

// errorTally gathers a response's non-zero error codes. It lives on the
// writer goroutine's stack: a response rarely carries more than a few
// distinct codes, and the rare one with more spills into a map.
type errorTally struct {
	first  int16 // the first code seen: the request span's error
	n      int
	codes  [4]int16
	counts [4]int64
	more   map[int16]int64
}

func (t *errorTally) add(code int16) {
	if code == 0 {
		return
	}
	if t.first == 0 {
		t.first = code
	}
	for i := range t.n {
		if t.codes[i] == code {
			t.counts[i]++
			return
		}
	}
	if t.n < len(t.codes) {
		t.codes[t.n], t.counts[t.n] = code, 1
		t.n++
		return
	}
	if t.more == nil {
		t.more = map[int16]int64{}
	}
	t.more[code]++
}

// tallyErrors adds resp's error codes to t and reports whether it knows
// resp's type. A response type without a case here is not counted; the
// registry test fails first.
func tallyErrors(resp kmsg.Response, t *errorTally) bool {
	switch r := resp.(type) {
	case *kmsg.ProduceResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.FetchResponse:
		t.add(r.ErrorCode)
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.ListOffsetsResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.MetadataResponse:
		t.add(r.ErrorCode)
		for i := range r.Topics {
			t.add(r.Topics[i].ErrorCode)
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.OffsetCommitResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.TxnOffsetCommitResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.AddPartitionsToTxnResponse:
		t.add(r.ErrorCode)
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
		for i := range r.Transactions {
			for j := range r.Transactions[i].Topics {
				for k := range r.Transactions[i].Topics[j].Partitions {
					t.add(r.Transactions[i].Topics[j].Partitions[k].ErrorCode)
				}
			}
		}
	case *kmsg.AddOffsetsToTxnResponse:
		t.add(r.ErrorCode)
	case *kmsg.EndTxnResponse:
		t.add(r.ErrorCode)
	case *kmsg.WriteTxnMarkersResponse:
		for i := range r.Markers {
			for j := range r.Markers[i].Topics {
				for k := range r.Markers[i].Topics[j].Partitions {
					t.add(r.Markers[i].Topics[j].Partitions[k].ErrorCode)
				}
			}
		}
	case *kmsg.DescribeTransactionsResponse:
		for i := range r.TransactionStates {
			t.add(r.TransactionStates[i].ErrorCode)
		}
	case *kmsg.ListTransactionsResponse:
		t.add(r.ErrorCode)
	case *kmsg.DescribeProducersResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.OffsetFetchResponse:
		// v0-v7 answer one group at the top level, v8+ in Groups.
		t.add(r.ErrorCode)
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
		for i := range r.Groups {
			g := &r.Groups[i]
			t.add(g.ErrorCode)
			for j := range g.Topics {
				for k := range g.Topics[j].Partitions {
					t.add(g.Topics[j].Partitions[k].ErrorCode)
				}
			}
		}
	case *kmsg.FindCoordinatorResponse:
		// v0-v3 answer one key at the top level, v4+ in Coordinators.
		t.add(r.ErrorCode)
		for i := range r.Coordinators {
			t.add(r.Coordinators[i].ErrorCode)
		}
	case *kmsg.JoinGroupResponse:
		t.add(r.ErrorCode)
	case *kmsg.HeartbeatResponse:
		t.add(r.ErrorCode)
	case *kmsg.LeaveGroupResponse:
		t.add(r.ErrorCode)
		for i := range r.Members {
			t.add(r.Members[i].ErrorCode)
		}
	case *kmsg.SyncGroupResponse:
		t.add(r.ErrorCode)
	case *kmsg.DescribeGroupsResponse:
		for i := range r.Groups {
			t.add(r.Groups[i].ErrorCode)
		}
	case *kmsg.ListGroupsResponse:
		t.add(r.ErrorCode)
	case *kmsg.SASLHandshakeResponse:
		t.add(r.ErrorCode)
	case *kmsg.ApiVersionsResponse:
		t.add(r.ErrorCode)
	case *kmsg.CreateTopicsResponse:
		for i := range r.Topics {
			t.add(r.Topics[i].ErrorCode)
		}
	case *kmsg.DeleteTopicsResponse:
		for i := range r.Topics {
			t.add(r.Topics[i].ErrorCode)
		}
	case *kmsg.DeleteRecordsResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.InitProducerIDResponse:
		t.add(r.ErrorCode)
	case *kmsg.OffsetForLeaderEpochResponse:
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.DescribeACLsResponse:
		t.add(r.ErrorCode)
	case *kmsg.CreateACLsResponse:
		for i := range r.Results {
			t.add(r.Results[i].ErrorCode)
		}
	case *kmsg.DeleteACLsResponse:
		for i := range r.Results {
			t.add(r.Results[i].ErrorCode)
			for j := range r.Results[i].MatchingACLs {
				t.add(r.Results[i].MatchingACLs[j].ErrorCode)
			}
		}
	case *kmsg.DescribeConfigsResponse:
		for i := range r.Resources {
			t.add(r.Resources[i].ErrorCode)
		}
	case *kmsg.AlterConfigsResponse:
		for i := range r.Resources {
			t.add(r.Resources[i].ErrorCode)
		}
	case *kmsg.DescribeLogDirsResponse:
		t.add(r.ErrorCode)
		for i := range r.Dirs {
			t.add(r.Dirs[i].ErrorCode)
		}
	case *kmsg.SASLAuthenticateResponse:
		t.add(r.ErrorCode)
	case *kmsg.CreatePartitionsResponse:
		for i := range r.Topics {
			t.add(r.Topics[i].ErrorCode)
		}
	case *kmsg.DeleteGroupsResponse:
		for i := range r.Groups {
			t.add(r.Groups[i].ErrorCode)
		}
	case *kmsg.IncrementalAlterConfigsResponse:
		for i := range r.Resources {
			t.add(r.Resources[i].ErrorCode)
		}
	case *kmsg.OffsetDeleteResponse:
		t.add(r.ErrorCode)
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.DescribeClientQuotasResponse:
		t.add(r.ErrorCode)
	case *kmsg.AlterClientQuotasResponse:
		for i := range r.Entries {
			t.add(r.Entries[i].ErrorCode)
		}
	case *kmsg.DescribeUserSCRAMCredentialsResponse:
		t.add(r.ErrorCode)
		for i := range r.Results {
			t.add(r.Results[i].ErrorCode)
		}
	case *kmsg.AlterUserSCRAMCredentialsResponse:
		for i := range r.Results {
			t.add(r.Results[i].ErrorCode)
		}
	case *kmsg.DescribeClusterResponse:
		t.add(r.ErrorCode)
	case *kmsg.ElectLeadersResponse:
		t.add(r.ErrorCode)
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.AlterPartitionAssignmentsResponse:
		t.add(r.ErrorCode)
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.ListPartitionReassignmentsResponse:
		t.add(r.ErrorCode)
	case *kmsg.DescribeQuorumResponse:
		t.add(r.ErrorCode)
		for i := range r.Topics {
			for j := range r.Topics[i].Partitions {
				t.add(r.Topics[i].Partitions[j].ErrorCode)
			}
		}
	case *kmsg.AddRaftVoterResponse:
		t.add(r.ErrorCode)
	case *kmsg.RemoveRaftVoterResponse:
		t.add(r.ErrorCode)
	default:
		return false
	}
	return true
}

// errorAttrs caches the {api, error} attribute set of each pair seen. It
// is consulted only for responses that carry an error, and the sets are
// made once, so counting does not allocate after a pair's first error.
type errorAttrs struct {
	mu   sync.RWMutex
	sets map[uint32][]metric.AddOption // uint16(api)<<16 | uint16(code); a slice: see apiOpts
}

func (e *errorAttrs) get(api, code int16) []metric.AddOption {
	k := uint32(uint16(api))<<16 | uint32(uint16(code))
	e.mu.RLock()
	o, ok := e.sets[k]
	e.mu.RUnlock()
	if ok {
		return o
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if o, ok := e.sets[k]; ok {
		return o
	}
	if e.sets == nil {
		e.sets = map[uint32][]metric.AddOption{}
	}
	o = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("api", apiName(api)), attribute.String("error", errorName(code))))}
	e.sets[k] = o
	return o
}

// apiName is Kafka's name of an API key, or the number for one kmsg does
// not know.
func apiName(key int16) string {
	if name := kmsg.NameForKey(key); name != "" {
		return name
	}
	return strconv.Itoa(int(key))
}

// errorName is Kafka's name of an error code (NOT_LEADER_OR_FOLLOWER), or
// the number for one kerr does not know.
func errorName(code int16) string {
	if code == kerr.NotLeaderForPartition.Code {
		// kerr keeps the name Kafka retired in 2.6 (KIP-392); operators
		// compare with today's Kafka.
		return "NOT_LEADER_OR_FOLLOWER"
	}
	if e := kerr.TypedErrorForCode(code); e != nil && e.Code == code {
		return e.Message
	}
	return strconv.Itoa(int(code))
}

package broker

// DescribeCluster v0-v1 (KIP-700).
//
// Lists the live brokers; v1 asking for controller endpoints gets
// UNSUPPORTED_ENDPOINT_TYPE until controllers are separate processes.
// Needs no permission; the cluster's authorized operations, when asked
// for, need DESCRIBE on the cluster (else 0), as in Kafka.

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(60, 0, 1, handleDescribeCluster) }

func handleDescribeCluster(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.ClusterAuthorizedOperations = math.MinInt32
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		return respond(resp)
	}
	resp.EndpointType = 1
	if req.IncludeClusterAuthorizedOperations {
		resp.ClusterAuthorizedOperations = 0
		if s.allowCluster(r, kmsg.ACLOperationDescribe) {
			resp.ClusterAuthorizedOperations = s.authorizedOps(r, kmsg.ACLResourceTypeCluster, clusterResourceName)
		}
	}
	resp.ClusterID = s.meta.ClusterID()
	resp.ControllerID = s.controllerID()
	for _, b := range s.liveBrokers(r) {
		rb := kmsg.NewDescribeClusterResponseBroker()
		rb.NodeID, rb.Host, rb.Port = b.id, b.host, b.port
		if b.rack != "" {
			rb.Rack = kmsg.StringPtr(b.rack)
		}
		resp.Brokers = append(resp.Brokers, rb)
	}
	return respond(resp)
}

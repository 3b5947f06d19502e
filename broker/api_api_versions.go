package broker

// ApiVersions v0-v5.
//
// v5 (KIP-1242) lets a client name the cluster and broker it believes it
// reached: when both are given and either differs, the answer is
// REBOOTSTRAP_REQUIRED (the connection went to the wrong broker, say
// after an address was reused), and INVALID_REQUEST when only one is.
// Serving v5 also spares current clients (franz-go asks v5 first) the
// fallback below, whose v0 body carries no features.
//
// From v3 the response carries the broker's features (KIP-584): Strata
// supports and finalizes transaction.version 2, transactions v2 (KIP-890
// part 2: Produce v12 adds partitions implicitly, EndTxn v5 bumps the
// epoch), which is what makes clients such as franz-go use it. Clients
// that ignore the feature (Sarama, librdkafka, Java without TxnOffsetCommit
// v5) keep transactions v1, which the coordinator serves alongside, per
// transactional id.
//
// Differences from Apache Kafka: the features are fixed by the binary,
// not finalized through the metadata quorum (UpdateFeatures is not
// served); every broker of a cluster runs the same binary, so the
// cluster agrees, and FinalizedFeaturesEpoch is a constant. Only
// transaction.version is listed (no metadata.version, kraft.version or
// group.version). A request with a version we do not know gets a v0 body
// with UNSUPPORTED_VERSION and the supported ranges (handled in conn.go
// before dispatch), as KIP-511 clients expect.

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(18, 0, 5, handleApiVersions) }

func apiVersionKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(apis))
	for k, e := range apis {
		keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: e.min, MaxVersion: e.max})
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ApiKey < keys[j].ApiKey })
	return keys
}

func apiVersionsFallback() *kmsg.ApiVersionsResponse {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = apiVersionKeys()
	return resp
}

// transactionVersion is the transaction.version feature level served:
// 2 is transactions v2 (KIP-890 part 2). It needs Produce v12, EndTxn v5
// and AddPartitionsToTxn v5 registered.
const (
	transactionVersionFeature = "transaction.version"
	transactionVersion        = 2
	// finalizedFeaturesEpoch: features never change while a binary runs;
	// any value >= 0 tells clients the finalized list is valid.
	finalizedFeaturesEpoch = 1
)

func handleApiVersions(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if req.Version >= 5 && (req.ClusterID != nil || req.NodeID >= 0) {
		switch {
		case req.ClusterID == nil || req.NodeID < 0:
			resp.ErrorCode = kerr.InvalidRequest.Code
			return respond(resp)
		case *req.ClusterID != s.meta.ClusterID() || req.NodeID != s.cfg.NodeID:
			resp.ErrorCode = kerr.RebootstrapRequired.Code
			return respond(resp)
		}
	}
	resp.ApiKeys = apiVersionKeys()
	tv := s.cfg.TransactionVersion
	if tv < transactionVersion {
		// Below transactions v2 the versions that need it are not offered,
		// as Kafka caps them by the finalized transaction.version.
		for i := range resp.ApiKeys {
			switch k := &resp.ApiKeys[i]; k.ApiKey {
			case 0: // Produce
				k.MaxVersion = min(k.MaxVersion, 11)
			case 24, 26, 28: // AddPartitionsToTxn, EndTxn, TxnOffsetCommit
				k.MaxVersion = min(k.MaxVersion, 4)
			}
		}
	}
	// Tagged fields: versions before 3 do not carry them.
	sf := kmsg.NewApiVersionsResponseSupportedFeature()
	sf.Name, sf.MinVersion, sf.MaxVersion = transactionVersionFeature, 0, transactionVersion
	resp.SupportedFeatures = append(resp.SupportedFeatures, sf)
	ff := kmsg.NewApiVersionsResponseFinalizedFeature()
	ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = transactionVersionFeature, tv, tv
	resp.FinalizedFeatures = append(resp.FinalizedFeatures, ff)
	resp.FinalizedFeaturesEpoch = finalizedFeaturesEpoch
	return respond(resp)
}

package broker

// DescribeLogDirs v0-v4.
//
// Two log dirs: the data dir with each partition's local size (v4 adds the
// file system's total and usable bytes), and the remote tier, named
// "remote:<object-store URL>", with each partition's remote size.
// DESCRIBE on the cluster is required, as in Kafka: without it the answer
// is empty, with CLUSTER_AUTHORIZATION_FAILED from v3 (older versions have
// no error field).

import (
	"context"
	"path/filepath"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"
)

func init() { register(35, 0, 4, handleDescribeLogDirs) }

func handleDescribeLogDirs(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.DescribeLogDirsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	if !s.allowCluster(r, kmsg.ACLOperationDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return respond(resp)
	}
	local := kmsg.NewDescribeLogDirsResponseDir()
	abs, _ := filepath.Abs(filepath.Join(s.cfg.DataDir, "logs"))
	local.Dir = abs
	var st unix.Statfs_t
	if err := unix.Statfs(abs, &st); err == nil {
		local.TotalBytes = int64(st.Blocks) * int64(st.Bsize)
		local.UsableBytes = int64(st.Bavail) * int64(st.Bsize)
	} else {
		local.TotalBytes, local.UsableBytes = -1, -1
	}
	// The remote tier's capacity is unknown (-1).
	remote := kmsg.NewDescribeLogDirsResponseDir()
	remote.Dir = "remote:" + s.objectStoreURL
	remote.TotalBytes, remote.UsableBytes = -1, -1

	want := map[string]map[int32]bool{}
	for _, t := range req.Topics {
		m := map[int32]bool{}
		for _, p := range t.Partitions {
			m[p] = true
		}
		want[t.Topic] = m
	}
	topics := s.parts.all()
	sort.Slice(topics, func(i, j int) bool { return topics[i].name < topics[j].name })
	for _, t := range topics {
		ps, ok := want[t.name]
		if req.Topics != nil && !ok {
			continue
		}
		lt, rt := kmsg.NewDescribeLogDirsResponseDirTopic(), kmsg.NewDescribeLogDirsResponseDirTopic()
		lt.Topic, rt.Topic = t.name, t.name
		for _, p := range t.parts {
			if p == nil || (req.Topics != nil && !ps[p.index]) {
				continue
			}
			lp, rp := kmsg.NewDescribeLogDirsResponseDirTopicPartition(), kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			lp.Partition, rp.Partition = p.index, p.index
			lp.Size = p.log.Size()
			rp.Size, _, _, _ = s.tier.Stats(t.id, p.index)
			lt.Partitions = append(lt.Partitions, lp)
			rt.Partitions = append(rt.Partitions, rp)
		}
		if len(lt.Partitions) > 0 {
			local.Topics = append(local.Topics, lt)
			remote.Topics = append(remote.Topics, rt)
		}
	}
	resp.Dirs = append(resp.Dirs, local, remote)
	return respond(resp)
}

package broker

// DescribeLogDirs v0-v4.
//
// Two log dirs: the data dir with each partition's local size (v4 adds the
// file system's total and usable bytes), and the remote tier, named
// "remote:<object-store URL>", with each partition's remote size.

import (
	"context"
	"path/filepath"
	"sort"

	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"
)

func init() { register(35, 0, 4, handleDescribeLogDirs) }

func handleDescribeLogDirs(s *Server, ctx context.Context, r *request) *reply {
	req := r.msg.(*kmsg.DescribeLogDirsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeLogDirsResponse)
	dir := kmsg.NewDescribeLogDirsResponseDir()
	abs, _ := filepath.Abs(filepath.Join(s.cfg.DataDir, "logs"))
	dir.Dir = abs
	var st unix.Statfs_t
	if err := unix.Statfs(abs, &st); err == nil {
		dir.TotalBytes = int64(st.Blocks) * int64(st.Bsize)
		dir.UsableBytes = int64(st.Bavail) * int64(st.Bsize)
	} else {
		dir.TotalBytes, dir.UsableBytes = -1, -1
	}
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
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = t.name
		for _, p := range t.parts {
			if req.Topics != nil && !ps[p.index] {
				continue
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition = p.index
			dp.Size = p.log.Size()
			dt.Partitions = append(dt.Partitions, dp)
		}
		if len(dt.Partitions) > 0 {
			dir.Topics = append(dir.Topics, dt)
		}
	}
	resp.Dirs = append(resp.Dirs, dir)
	resp.Dirs = append(resp.Dirs, s.remoteLogDir(req, topics, want))
	return respond(resp)
}

// remoteLogDir reports the remote tier as a second log dir named after the
// object store, with each partition's remote size, so tools that list log
// dirs show both tiers (its total and usable bytes are unknown: -1).
func (s *Server) remoteLogDir(req *kmsg.DescribeLogDirsRequest, topics []*topicState, want map[string]map[int32]bool) kmsg.DescribeLogDirsResponseDir {
	dir := kmsg.NewDescribeLogDirsResponseDir()
	dir.Dir = "remote:" + s.objectStoreURL
	dir.TotalBytes, dir.UsableBytes = -1, -1
	for _, t := range topics {
		ps, ok := want[t.name]
		if req.Topics != nil && !ok {
			continue
		}
		dt := kmsg.NewDescribeLogDirsResponseDirTopic()
		dt.Topic = t.name
		for _, p := range t.parts {
			if req.Topics != nil && !ps[p.index] {
				continue
			}
			dp := kmsg.NewDescribeLogDirsResponseDirTopicPartition()
			dp.Partition = p.index
			dp.Size, _, _, _ = s.tier.Stats(t.id, p.index)
			dt.Partitions = append(dt.Partitions, dp)
		}
		if len(dt.Partitions) > 0 {
			dir.Topics = append(dir.Topics, dt)
		}
	}
	return dir
}

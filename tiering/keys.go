package tiering

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// ObjectKind names one of a remote segment's objects; it is the key's
// extension.
type ObjectKind string

// The objects of a remote segment. Every segment has the first three; the
// transaction index only when something was aborted in the segment, the
// producer snapshot only when the log had producers (the manifest's sizes
// say which: RemoteSegment.Kinds).
const (
	KindLog              ObjectKind = "log"
	KindIndex            ObjectKind = "index"
	KindTimeIndex        ObjectKind = "timeindex"
	KindTxnIndex         ObjectKind = "txnindex"
	KindProducerSnapshot ObjectKind = "snapshot"
)

// segmentKinds are the objects every segment has; allKinds adds the
// optional ones.
var (
	segmentKinds = [...]ObjectKind{KindLog, KindIndex, KindTimeIndex}
	allKinds     = [...]ObjectKind{KindLog, KindIndex, KindTimeIndex, KindTxnIndex, KindProducerSnapshot}
)

// Kinds lists the objects the segment has.
func (s RemoteSegment) Kinds() []ObjectKind {
	out := append(make([]ObjectKind, 0, len(allKinds)), segmentKinds[:]...)
	if s.TxnIndexSize > 0 {
		out = append(out, KindTxnIndex)
	}
	if s.ProducerSnapshotSize > 0 {
		out = append(out, KindProducerSnapshot)
	}
	return out
}

// Index entry sizes, the same as the local log's files (the objects are
// copies of them): offset index (relative offset uint32, position uint32),
// time index (timestamp int64, relative offset uint32), big endian.
const (
	offsetEntrySize = 8
	timeEntrySize   = 12
)

// PartitionPrefix is the key prefix of all of a partition's segment
// objects, ending in '/'. It starts with two hex digits of a hash of the
// topic id and partition: S3 scales request rates per key prefix, so
// spreading partitions over 256 leading prefixes keeps thousands of them
// from throttling each other.
func PartitionPrefix(clusterID string, topicID uuid.UUID, partition int32) string {
	h := fnv.New32a()
	h.Write(topicID[:])
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], uint32(partition))
	h.Write(p[:])
	s := h.Sum32()
	return fmt.Sprintf("%02x/%s/%s/%d/", byte(s^s>>8^s>>16^s>>24), clusterID, topicID, partition)
}

// KeyFor is the key of one object of a remote segment:
// "<hh>/<cluster>/<topicID>/<partition>/<20-digit base offset>-<id>.<kind>".
// The base offset first makes a listing come out in offset order; the
// upload id makes every upload's keys unique.
func KeyFor(clusterID string, topicID uuid.UUID, partition int32, seg RemoteSegment, kind ObjectKind) string {
	return PartitionPrefix(clusterID, topicID, partition) + objectName(seg.BaseOffset, seg.ID, kind)
}

func objectName(base int64, id string, kind ObjectKind) string {
	return fmt.Sprintf("%020d-%s.%s", base, id, kind)
}

// ManifestKey is the key of the bucket copy of a partition's manifest.
func ManifestKey(clusterID string, topicID uuid.UUID, partition int32) string {
	return fmt.Sprintf("%s/manifests/%s/%d.json", clusterID, topicID, partition)
}

// parseObjectName splits the last path element of a segment key. ok is false
// for names this package did not make.
func parseObjectName(name string) (base int64, id string, kind ObjectKind, ok bool) {
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return 0, "", "", false
	}
	kind = ObjectKind(name[dot+1:])
	if !slices.Contains(allKinds[:], kind) {
		return 0, "", "", false
	}
	stem := name[:dot]
	if len(stem) < 22 || stem[20] != '-' {
		return 0, "", "", false
	}
	for i := 0; i < 20; i++ {
		if stem[i] < '0' || stem[i] > '9' {
			return 0, "", "", false
		}
	}
	base, err := strconv.ParseInt(stem[:20], 10, 64)
	if err != nil || base < 0 {
		return 0, "", "", false
	}
	id = stem[21:]
	if len(id) > 64 || !isKeySafe(id) {
		return 0, "", "", false
	}
	return base, id, kind, true
}

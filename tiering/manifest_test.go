package tiering

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/strata-broker/strata/proto"
	"github.com/strata-broker/strata/storage"
)

func rseg(id string, base, last int64) RemoteSegment {
	return RemoteSegment{ID: id, BaseOffset: base, LastOffset: last, Size: 100 * (last - base + 1), MaxTimestamp: last, IndexSize: 8, TimeIndexSize: 12,
		Epochs: []EpochEntry{{Epoch: 1, StartOffset: base}}}
}

func TestManifestWithSegment(t *testing.T) {
	three := Manifest{LogStartOffset: 0, Segments: []RemoteSegment{rseg("a", 0, 9), rseg("b", 10, 19), rseg("c", 20, 29)}}
	tests := []struct {
		name      string
		m         Manifest
		seg       RemoteSegment
		wantErr   error
		wantEnd   int64
		wantStart int64
	}{
		{"first segment into unknown manifest", Manifest{LogStartOffset: -1}, rseg("a", 100, 109), nil, 110, -1},
		{"first segment above the log start", Manifest{}, rseg("a", 100, 109), nil, 110, 0},
		{"first segment straddling the log start", Manifest{LogStartOffset: 105}, rseg("a", 100, 109), nil, 110, 105},
		{"first segment wholly below the log start", Manifest{LogStartOffset: 110}, rseg("a", 100, 109), ErrNotContiguous, 110, 110},
		{"append at the end", three, rseg("d", 30, 39), nil, 40, 0},
		{"gap", three, rseg("d", 31, 39), ErrNotContiguous, 30, 0},
		{"overlap", three, rseg("d", 25, 39), ErrNotContiguous, 30, 0},
		{"same id again is a no-op", three, rseg("b", 10, 19), nil, 30, 0},
		{"empty id", three, rseg("", 30, 39), ErrBadManifest, 30, 0},
		{"id unsafe for keys", three, rseg("a/b", 30, 39), ErrBadManifest, 30, 0},
		{"last before base", three, RemoteSegment{ID: "d", BaseOffset: 30, LastOffset: 29}, ErrBadManifest, 30, 0},
		{"partial index entry", three, func() RemoteSegment { s := rseg("d", 30, 39); s.IndexSize = 7; return s }(), ErrBadManifest, 30, 0},
		{"epoch outside", three, func() RemoteSegment { s := rseg("d", 30, 39); s.Epochs[0].StartOffset = 40; return s }(), ErrBadManifest, 30, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.m.Clone()
			got, err := tt.m.WithSegment(tt.seg)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(tt.m, before) {
				t.Fatal("WithSegment modified its receiver")
			}
			if got.End() != tt.wantEnd || got.LogStartOffset != tt.wantStart {
				t.Fatalf("end %d log start %d, want %d %d", got.End(), got.LogStartOffset, tt.wantEnd, tt.wantStart)
			}
			if err := got.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestManifestWithoutSegments(t *testing.T) {
	three := Manifest{LogStartOffset: 0, Segments: []RemoteSegment{rseg("a", 0, 9), rseg("b", 10, 19), rseg("c", 20, 29)}}
	tests := []struct {
		name      string
		ids       []string
		logStart  int64
		wantErr   error
		wantIDs   []string
		wantStart int64
	}{
		{"oldest", []string{"a"}, 10, nil, []string{"b", "c"}, 10},
		{"log start follows removed segments", []string{"a", "b"}, 0, nil, []string{"c"}, 20},
		{"log start inside a kept segment", []string{"a"}, 15, nil, []string{"b", "c"}, 15},
		{"log start only", nil, 5, nil, []string{"a", "b", "c"}, 5},
		{"log start never lowered", nil, -1, nil, []string{"a", "b", "c"}, 0},
		{"all", []string{"c", "a", "b"}, 30, nil, nil, 30},
		{"unknown ids ignored", []string{"zz", "a"}, 10, nil, []string{"b", "c"}, 10},
		{"hole", []string{"b"}, 10, ErrNotContiguous, []string{"a", "b", "c"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := three.WithoutSegments(tt.ids, tt.logStart)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			var ids []string
			for _, s := range got.Segments {
				ids = append(ids, s.ID)
			}
			if !reflect.DeepEqual(ids, tt.wantIDs) || got.LogStartOffset != tt.wantStart {
				t.Fatalf("got %v log start %d, want %v %d", ids, got.LogStartOffset, tt.wantIDs, tt.wantStart)
			}
			if err := got.Validate(); err != nil {
				t.Fatal(err)
			}
			if len(three.Segments) != 3 {
				t.Fatal("receiver modified")
			}
		})
	}
}

func TestManifestFind(t *testing.T) {
	m := Manifest{LogStartOffset: 5, Segments: []RemoteSegment{rseg("a", 10, 19), rseg("b", 20, 29)}}
	for _, tt := range []struct {
		off  int64
		i    int
		isOK bool
	}{
		{4, 0, false}, {5, 0, true}, {10, 0, true}, {19, 0, true}, {20, 1, true}, {29, 1, true}, {30, 0, false},
	} {
		i, ok := m.Find(tt.off)
		if ok != tt.isOK || (ok && i != tt.i) {
			t.Errorf("Find(%d) = %d %v, want %d %v", tt.off, i, ok, tt.i, tt.isOK)
		}
	}
	if _, ok := (Manifest{}).Find(0); ok {
		t.Error("Find in an empty manifest")
	}
	if got := (Manifest{LogStartOffset: -1}).End(); got != -1 {
		t.Errorf("End of an unknown manifest = %d", got)
	}
}

func TestManifestJSONRoundTrip(t *testing.T) {
	m := Manifest{LogStartOffset: 3, Segments: []RemoteSegment{rseg(uuid.NewString(), 0, 9), rseg(uuid.NewString(), 10, 19)}}
	b, err := EncodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip: %+v != %+v", got, m)
	}
	empty, _ := EncodeManifest(Manifest{LogStartOffset: 7})
	if !strings.Contains(string(empty), `"segments":[]`) {
		t.Errorf("empty manifest JSON %s", empty)
	}
	for _, bad := range []string{`{`, `{"logStartOffset":50,"segments":[{"id":"a","baseOffset":0,"lastOffset":9,"size":1}]}`,
		`{"segments":[{"id":"a","baseOffset":0,"lastOffset":9,"size":1},{"id":"b","baseOffset":11,"lastOffset":19,"size":1}]}`} {
		if _, err := DecodeManifest([]byte(bad)); !errors.Is(err, ErrBadManifest) {
			t.Errorf("DecodeManifest(%s) = %v", bad, err)
		}
	}
}

func FuzzDecodeManifest(f *testing.F) {
	b, _ := EncodeManifest(Manifest{LogStartOffset: 3, Segments: []RemoteSegment{rseg("a", 0, 9), rseg("b", 10, 19)}})
	f.Add(b)
	f.Add([]byte(`{"segments":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeManifest(b)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("decoded manifest invalid: %v", err)
		}
		again, err := EncodeManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := DecodeManifest(again)
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

func TestKeys(t *testing.T) {
	id := uuid.MustParse("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	seg := RemoteSegment{ID: "0f8fad5b-d9cb-469f-a165-70867728950e", BaseOffset: 1234}
	key := KeyFor("c1", id, 7, seg, KindTimeIndex)
	prefix := PartitionPrefix("c1", id, 7)
	want := prefix + "00000000000000001234-0f8fad5b-d9cb-469f-a165-70867728950e.timeindex"
	if key != want {
		t.Fatalf("key %s, want %s", key, want)
	}
	if !strings.HasSuffix(prefix, "/c1/6ba7b810-9dad-11d1-80b4-00c04fd430c8/7/") || len(prefix) < 3 || prefix[2] != '/' {
		t.Fatalf("prefix %s", prefix)
	}
	if got := ManifestKey("c1", id, 7); got != "c1/manifests/6ba7b810-9dad-11d1-80b4-00c04fd430c8/7.json" {
		t.Fatalf("manifest key %s", got)
	}
	base, gotID, kind, ok := parseObjectName(key[len(prefix):])
	if !ok || base != 1234 || gotID != seg.ID || kind != KindTimeIndex {
		t.Fatalf("parse: %d %s %s %v", base, gotID, kind, ok)
	}
	// The leading hash spreads partitions over many prefixes.
	seen := map[string]bool{}
	for p := int32(0); p < 512; p++ {
		seen[PartitionPrefix("c1", id, p)[:2]] = true
	}
	if len(seen) < 200 {
		t.Errorf("512 partitions over only %d prefixes", len(seen))
	}
	for _, bad := range []string{"", "x.log", "0000000000000000123-a.log", "00000000000000001234-a.json", "00000000000000001234_a.log", "0000000000000000123x-a.log", "00000000000000001234-.log", "00000000000000001234-a/b.log"} {
		if _, _, _, ok := parseObjectName(bad); ok {
			t.Errorf("parseObjectName(%q) accepted", bad)
		}
	}
}

func FuzzParseObjectName(f *testing.F) {
	f.Add("00000000000000001234-0f8fad5b-d9cb-469f-a165-70867728950e.log")
	f.Add("00000000000000000000-x.timeindex")
	f.Fuzz(func(t *testing.T, name string) {
		base, id, kind, ok := parseObjectName(name)
		if !ok {
			return
		}
		if got := objectName(base, id, kind); got != name {
			t.Fatalf("parse(%q) then format = %q", name, got)
		}
	})
}

func FuzzBuildChunks(f *testing.F) {
	f.Add([]byte{0, 0, 0, 5, 0, 0, 1, 0, 0, 0, 0, 9, 0, 0, 2, 0}, int64(4096))
	f.Fuzz(func(t *testing.T, idx []byte, size int64) {
		if size < 0 || size > 1<<32 {
			return
		}
		seg := RemoteSegment{ID: "x", BaseOffset: 100, LastOffset: 100 + 1<<20, Size: size, IndexSize: int64(len(idx))}
		x, err := buildChunks(seg, idx, 512)
		if err != nil {
			if !errors.Is(err, ErrCorruptRemote) {
				t.Fatalf("error not ErrCorruptRemote: %v", err)
			}
			return
		}
		var pos int64
		for i, c := range x.chunks {
			if c.pos != pos || c.end <= c.pos || (i > 0 && c.first <= x.chunks[i-1].first) {
				t.Fatalf("chunk %d %+v after pos %d", i, c, pos)
			}
			pos = c.end
		}
		if size > 0 && pos != size {
			t.Fatalf("chunks end at %d, segment %d", pos, size)
		}
	})
}

func FuzzVerifyChunk(f *testing.F) {
	var seed []byte
	for i := range 3 {
		seed = proto.AppendBatch(seed, proto.BatchSpec{BaseOffset: int64(100 + 2*i), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
			[]proto.Record{{Value: []byte("a")}, {OffsetDelta: 1, Value: []byte("b")}})
	}
	f.Add(seed, int64(0))
	f.Add(seed[:70], int64(0))
	f.Fuzz(func(t *testing.T, data []byte, pos int64) {
		seg := RemoteSegment{ID: "x", BaseOffset: 100, LastOffset: 105, Size: 1 << 20}
		span := chunkSpan{pos: pos & 0xffff, end: pos&0xffff + int64(len(data)), first: 100}
		first, last, marks, err := verifyChunk(data, seg, span, 106)
		if err != nil {
			if !errors.Is(err, ErrCorruptRemote) {
				t.Fatalf("error not ErrCorruptRemote: %v", err)
			}
			return
		}
		if first < seg.BaseOffset || last > seg.LastOffset || first > last || len(marks) == 0 || marks[0].pos != 0 {
			t.Fatalf("first %d last %d marks %v", first, last, marks)
		}
		for i := 1; i < len(marks); i++ {
			if marks[i].pos <= marks[i-1].pos || marks[i].rel <= marks[i-1].rel || int(marks[i].pos) >= len(data) {
				t.Fatalf("marks %v", marks)
			}
		}
	})
}

func TestManifestTxnFieldsJSON(t *testing.T) {
	seg := rseg(uuid.NewString(), 0, 9)
	plain, _ := EncodeManifest(Manifest{Segments: []RemoteSegment{seg}})
	if strings.Contains(string(plain), "txnIndexSize") || strings.Contains(string(plain), "producerSnapshotSize") {
		t.Errorf("zero sizes are written: %s", plain)
	}
	seg.TxnIndexSize, seg.ProducerSnapshotSize = 2*storage.TxnIndexEntrySize, 52
	m := Manifest{Segments: []RemoteSegment{seg}}
	b, _ := EncodeManifest(m)
	got, err := DecodeManifest(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip %s: %+v, %v", b, got, err)
	}
	if kinds := got.Segments[0].Kinds(); len(kinds) != 5 {
		t.Errorf("kinds %v", kinds)
	}
	// A copy written before the fields existed still decodes.
	old := `{"logStartOffset":0,"segments":[{"id":"a","baseOffset":0,"lastOffset":9,"size":1,"maxTimestamp":5,"indexSize":0,"timeIndexSize":0}]}`
	if got, err := DecodeManifest([]byte(old)); err != nil || got.Segments[0].TxnIndexSize != 0 || len(got.Segments[0].Kinds()) != 3 {
		t.Fatalf("old manifest: %+v, %v", got, err)
	}
	seg.TxnIndexSize = 35
	if _, err := (Manifest{}).WithSegment(seg); !errors.Is(err, ErrBadManifest) {
		t.Errorf("txn index of 35 bytes accepted: %v", err)
	}
}

package metadata

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

func readCloser(b []byte) io.ReadCloser { return io.NopCloser(strings.NewReader(string(b))) }

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range sampleCommands() {
		data, err := encodeCommand(c)
		if err != nil {
			t.Fatalf("encode %T: %v", c, err)
		}
		got, err := decodeCommand(data)
		if err != nil {
			t.Fatalf("decode %T: %v", c, err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("round trip of %T\n got: %+v\nwant: %+v", c, got, c)
		}
	}
}

func TestCommandEncoding(t *testing.T) {
	// Pins the log format: entries written today are decoded by every
	// future binary. Changing an expectation here needs a new version.
	tests := []struct {
		cmd  command
		want string // hex header + JSON payload
	}{
		{&initClusterV1{ClusterID: "abc"}, `00010001{"cluster_id":"abc"}`},
		{&registerBrokerV1{Broker: brokerRec{ID: 1, Host: "h", Port: 9092, Rack: "r"}}, `00020001{"broker":{"id":1,"host":"h","port":9092,"rack":"r"}}`},
		{topicCmd("t", idA), `00030001{"topic":{"name":"t","id":"0a1b2c3d-0000-4000-8000-00000000000a","internal":false,"configs":null,` +
			`"partitions":[{"index":0,"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0}]}}`},
		{&deleteTopicV1{ID: idA}, `00040001{"id":"0a1b2c3d-0000-4000-8000-00000000000a"}`},
		{&createPartitionsV1{TopicID: idA, Partitions: []partitionRec{{Index: 1, Replicas: []int32{2}, Leader: -1}}}, `00050001{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a",` +
			`"partitions":[{"index":1,"replicas":[2],"isr":null,"leader":-1,"leader_epoch":0,"partition_epoch":0}]}`},
		{&alterTopicConfigsV1{TopicID: idA, Set: map[string]string{"b": "2", "a": "1"}, Delete: []string{"c"}}, `00060001{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","set":{"a":"1","b":"2"},"delete":["c"]}`},
		{&allocateProducerIDsV1{Count: 1000}, `00070001{"count":1000}`},
		{&addRemoteSegmentV1{TopicID: idA, Partition: 2, Segment: remoteSegmentRec{ID: "u1", BaseOffset: 100, LastOffset: 199, Size: 4096,
			MaxTimestamp: 1700000000000, Epochs: []remoteEpochRec{{Epoch: 3, StartOffset: 150}}, IndexSize: 80, TimeIndexSize: 120}},
			`00080001{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","partition":2,"segment":{"id":"u1","base_offset":100,"last_offset":199,` +
				`"size":4096,"max_timestamp":1700000000000,"epochs":[{"epoch":3,"start_offset":150}],"index_size":80,"time_index_size":120}}`},
		{&removeRemoteSegmentsV1{TopicID: idA, Partition: 2, IDs: []string{"u0", "u1"}, LogStartOffset: 200},
			`00090001{"topic_id":"0a1b2c3d-0000-4000-8000-00000000000a","partition":2,"ids":["u0","u1"],"log_start_offset":200}`},
	}
	for _, tc := range tests {
		t.Run(reflect.TypeOf(tc.cmd).Elem().Name(), func(t *testing.T) {
			data, err := encodeCommand(tc.cmd)
			if err != nil {
				t.Fatal(err)
			}
			got := hex.EncodeToString(data[:4]) + string(data[4:])
			if got != tc.want {
				t.Errorf("encoding\n got: %s\nwant: %s", got, tc.want)
			}
		})
	}
}

func envelope(typ, version uint16, payload string) []byte {
	b := binary.BigEndian.AppendUint16(nil, typ)
	b = binary.BigEndian.AppendUint16(b, version)
	return append(b, payload...)
}

func TestDecodeCommandRejects(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, errMalformedCommand},
		{"short header", []byte{0, 1, 0}, errMalformedCommand},
		{"unknown type", envelope(999, 1, `{}`), errUnknownCommand},
		{"type zero", envelope(0, 1, `{}`), errUnknownCommand},
		{"version zero", envelope(uint16(cmdCreateTopic), 0, `{}`), errUnsupportedVersion},
		{"newer version", envelope(uint16(cmdCreateTopic), 2, `{}`), errUnsupportedVersion},
		{"not json", envelope(uint16(cmdInitCluster), 1, `nope`), errMalformedCommand},
		{"unknown field", envelope(uint16(cmdInitCluster), 1, `{"cluster_id":"a","fenced":true}`), errMalformedCommand},
		{"trailing data", envelope(uint16(cmdInitCluster), 1, `{"cluster_id":"a"}{}`), errMalformedCommand},
		{"wrong field type", envelope(uint16(cmdAllocateProducerIDs), 1, `{"count":"many"}`), errMalformedCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := decodeCommand(tc.data)
			if !errors.Is(err, tc.want) {
				t.Fatalf("decodeCommand = %v, %v; want %v", c, err, tc.want)
			}
		})
	}
}

func TestApplyPanicsOnUndecodableEntry(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"unknown type", envelope(4242, 1, `{}`), "unknown command type 4242"},
		{"newer version", envelope(uint16(cmdCreateTopic), 9, `{}`), "CreateTopic version 9"},
		{"garbage", []byte{1}, "malformed command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFSM()
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, tc.want) || !strings.Contains(msg, "entry 17") || !strings.Contains(msg, "diverge") {
					t.Errorf("panic %q, want one naming entry 17 and %q", msg, tc.want)
				}
			}()
			f.Apply(&raft.Log{Index: 17, Term: 2, Type: raft.LogCommand, Data: tc.data})
		})
	}
}

func FuzzDecodeCommand(f *testing.F) {
	for _, c := range sampleCommands() {
		data, err := encodeCommand(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(envelope(uint16(cmdCreateTopic), 1, `{"topic":null}`))
	f.Add([]byte{0xff, 0xff, 0, 1})
	f.Add(envelope(uint16(cmdAlterClientQuotas), 1, `{"alterations":[{"entity":{"user":{"set":true,"default":true}},"set":{"request_percentage":1e308},"remove":null}]}`))
	f.Add(envelope(uint16(cmdAlterScramCreds), 1, `{"upserts":[{"user":"u","mechanism":1,"iterations":4096,"salt":"","stored_key":null}],"deletes":[{"user":"u","mechanism":1}]}`))
	f.Add(envelope(uint16(cmdDeleteACLs), 1, `{"acls":[{"resource_type":1,"pattern_type":2,"operation":1,"permission":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := decodeCommand(data)
		if err != nil {
			return
		}
		// A decodable command re-encodes to something that decodes the same,
		// and applying it never panics.
		again, err := encodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := decodeCommand(again)
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the command:\n%+v\n%+v", c, c2)
		}
		newFSM().apply(c)
	})
}

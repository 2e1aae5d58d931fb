package image

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
)

// go-criu's generated types are used by the tests only, as the reference
// the hand-written encoding and decoding are checked against.

// deterministic is how the reference marshals: protobuf-go's output for
// the same message is then a fixed byte string.
var deterministic = proto.MarshalOptions{Deterministic: true}

// protoInto decodes an image entry into a go-criu message.
func protoInto(m proto.Message) func(b []byte) error {
	return func(b []byte) error { return proto.Unmarshal(b, m) }
}

// encodeImage frames go-criu messages as one CRIU image.
func encodeImage(t testing.TB, magicName string, entries ...proto.Message) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := newImgEncoder(&buf, magicName)
	for _, m := range entries {
		b, err := deterministic.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := enc.put(b); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

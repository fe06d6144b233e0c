package store

import (
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	errnowatchv1 "github.com/errnowatch/errnowatch/api/errnowatch/v1"
	"github.com/errnowatch/errnowatch/pkg/alert"
	"github.com/errnowatch/errnowatch/pkg/alertpb"
)

// ErrUndecodable wraps why a stored body could not be decoded. Readers skip
// such a row and count it (Health.UndecodableRows) rather than fail: one bad
// row must not stall every list and SIEM stream at its sequence.
var ErrUndecodable = errors.New("undecodable stored alert")

// EncodeBody is the one stored encoding of an alert, whatever the database:
// errnowatch.v1.Alert in protobuf, the API's versioned schema, so rows written
// by an older errnowatch stay readable, and the encoding a stream sends on
// is the one it reads.
func EncodeBody(a *alert.Alert) ([]byte, error) {
	b, err := proto.Marshal(alertpb.ToProto(a))
	if err != nil {
		return nil, fmt.Errorf("encode alert %s: %w", a.ID, err)
	}
	return b, nil
}

// DecodeBody decodes what EncodeBody stored. It also reads the JSON of
// alert.Alert that PostgreSQL stores written before the encodings were
// unified hold: a protobuf Alert never starts with '{' (0x7b would be field
// 15 with wire type 3, a group, and field 15 is a string; EncodeBody writes
// field 1 first anyway).
func DecodeBody(b []byte) (alert.Alert, error) {
	if len(b) > 0 && b[0] == '{' {
		var a alert.Alert
		if err := json.Unmarshal(b, &a); err != nil {
			return alert.Alert{}, fmt.Errorf("%w: json: %w", ErrUndecodable, err)
		}
		return a, nil
	}
	var p errnowatchv1.Alert
	if err := proto.Unmarshal(b, &p); err != nil {
		return alert.Alert{}, fmt.Errorf("%w: protobuf: %w", ErrUndecodable, err)
	}
	a, err := alertpb.FromProto(&p)
	if err != nil {
		return alert.Alert{}, fmt.Errorf("%w: %w", ErrUndecodable, err)
	}
	return a, nil
}

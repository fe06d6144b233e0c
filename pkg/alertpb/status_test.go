package alertpb_test

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/errnowatch/errnowatch/pkg/alertpb"
)

func TestStatusVocabulary(t *testing.T) {
	if seq, ok := alertpb.RejectedBatch(alertpb.InvalidBatch(77, "bad")); !ok || seq != 77 {
		t.Errorf("alertpb.RejectedBatch(alertpb.InvalidBatch(77)) = %d, %v", seq, ok)
	}
	if _, ok := alertpb.RejectedBatch(errors.New("plain")); ok {
		t.Errorf("alertpb.RejectedBatch accepted a plain error")
	}
	if _, ok := alertpb.RejectedBatch(status.Error(codes.InvalidArgument, "no details")); ok {
		t.Errorf("alertpb.RejectedBatch accepted an INVALID_ARGUMENT without ErrorInfo")
	}
	if alertpb.Retryable(status.Error(codes.PermissionDenied, "x")) || !alertpb.Retryable(status.Error(codes.Unavailable, "x")) {
		t.Errorf("alertpb.Retryable misclassifies PERMISSION_DENIED or UNAVAILABLE")
	}
	err := alertpb.Exhausted("slow down", 3*time.Second)
	if d, ok := alertpb.RetryDelay(err); !ok || d != 3*time.Second || !alertpb.Retryable(err) {
		t.Errorf("alertpb.RetryDelay(alertpb.Exhausted(3s)) = %v, %v", d, ok)
	}
	if status.Code(alertpb.BadRequest("page_size", "negative")) != codes.InvalidArgument {
		t.Errorf("alertpb.BadRequest is not INVALID_ARGUMENT")
	}
}

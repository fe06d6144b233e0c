package alertpb

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStatusVocabulary(t *testing.T) {
	if seq, ok := RejectedBatch(InvalidBatch(77, "bad")); !ok || seq != 77 {
		t.Errorf("RejectedBatch(InvalidBatch(77)) = %d, %v", seq, ok)
	}
	if _, ok := RejectedBatch(errors.New("plain")); ok {
		t.Errorf("RejectedBatch accepted a plain error")
	}
	if _, ok := RejectedBatch(status.Error(codes.InvalidArgument, "no details")); ok {
		t.Errorf("RejectedBatch accepted an INVALID_ARGUMENT without ErrorInfo")
	}
	if Retryable(status.Error(codes.PermissionDenied, "x")) || !Retryable(status.Error(codes.Unavailable, "x")) {
		t.Errorf("Retryable misclassifies PERMISSION_DENIED or UNAVAILABLE")
	}
	err := Exhausted("slow down", 3*time.Second)
	if d, ok := RetryDelay(err); !ok || d != 3*time.Second || !Retryable(err) {
		t.Errorf("RetryDelay(Exhausted(3s)) = %v, %v", d, ok)
	}
	if status.Code(BadRequest("page_size", "negative")) != codes.InvalidArgument {
		t.Errorf("BadRequest is not INVALID_ARGUMENT")
	}
}

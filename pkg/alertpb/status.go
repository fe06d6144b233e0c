package alertpb

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The status vocabulary the collector answers with and delivery and the CLI
// read: which batches can never be stored, which calls may be retried and
// after how long. Both sides import it from here, so a reason or a metadata
// key cannot drift between them.
const (
	// ErrorDomain is the ErrorInfo domain of errnowatch errors.
	ErrorDomain = "errnowatch.io"
	// ErrorReasonInvalidBatch is the ErrorInfo reason of a PublishAlerts
	// batch the collector will never store; metadata key MetaBatchSequence
	// names it.
	ErrorReasonInvalidBatch = "INVALID_BATCH"
	// MetaBatchSequence is the ErrorInfo metadata key (and the log field)
	// that names a batch by its batch_sequence.
	MetaBatchSequence = "batch_sequence"
)

// InvalidBatch is the collector's answer to a batch that can never be
// stored: INVALID_ARGUMENT with an ErrorInfo naming the batch, so the agent
// drops it from its spool instead of resending it (RejectedBatch).
func InvalidBatch(seq uint64, msg string) error {
	st := status.New(codes.InvalidArgument, fmt.Sprintf("batch %d can never be stored, drop it: %s", seq, msg))
	st2, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   ErrorReasonInvalidBatch,
		Domain:   ErrorDomain,
		Metadata: map[string]string{MetaBatchSequence: strconv.FormatUint(seq, 10)},
	})
	if err != nil {
		return st.Err()
	}
	return st2.Err()
}

// RejectedBatch reports whether err (from a PublishAlerts stream) says a
// batch can never be stored, and which one: drop it from the spool instead
// of resending it.
func RejectedBatch(err error) (batchSequence uint64, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus || st.Code() != codes.InvalidArgument {
		return 0, false
	}
	for _, d := range st.Details() {
		if info, isInfo := d.(*errdetails.ErrorInfo); isInfo && info.GetReason() == ErrorReasonInvalidBatch {
			seq, err := strconv.ParseUint(info.GetMetadata()[MetaBatchSequence], 10, 64)
			return seq, err == nil
		}
	}
	return 0, false
}

// Exhausted is RESOURCE_EXHAUSTED with a RetryInfo asking the caller to wait
// retry before trying again (RetryDelay reads it).
func Exhausted(msg string, retry time.Duration) error {
	st, err := status.New(codes.ResourceExhausted, msg).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)})
	if err != nil {
		return status.Error(codes.ResourceExhausted, msg)
	}
	return st.Err()
}

// Retryable reports whether a call that failed with err may succeed later
// unchanged (collector down or busy), as opposed to needing a fix.
func Retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// RetryDelay returns the delay a RESOURCE_EXHAUSTED error asks for, if any.
func RetryDelay(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, isRetry := d.(*errdetails.RetryInfo); isRetry && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// BadRequest is INVALID_ARGUMENT naming the one request field at fault.
func BadRequest(field, msg string) error {
	return BadRequestViolations([]*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}})
}

// BadRequestViolations is INVALID_ARGUMENT listing every field at fault, in
// the message and as a BadRequest detail.
func BadRequestViolations(v []*errdetails.BadRequest_FieldViolation) error {
	var parts []string
	for _, fv := range v {
		parts = append(parts, fv.Field+": "+fv.Description)
	}
	st := status.New(codes.InvalidArgument, "invalid request: "+strings.Join(parts, "; "))
	if st2, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: v}); err == nil {
		return st2.Err()
	}
	return st.Err()
}

package sink

import (
	"testing"

	"go.uber.org/goleak"
)

// Every sink goroutine (runners, the store watch, gRPC and HTTP clients)
// must be gone when its Service's Run returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

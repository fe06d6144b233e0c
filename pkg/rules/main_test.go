package rules

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/errnowatch/errnowatch/test/attacks"
)

func TestMain(m *testing.M) {
	// The pack tests run their workloads in children of this binary.
	attacks.Main()
	goleak.VerifyTestMain(m)
}

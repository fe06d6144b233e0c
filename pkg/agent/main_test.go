package agent

import (
	"os"
	"testing"

	"github.com/errnowatch/errnowatch/internal/testenv"
)

// TestMain stops the kube-apiserver that the per-pod metric's test starts.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

package chart

import (
	"os"
	"testing"

	"github.com/errnowatch/errnowatch/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

package tiering

import (
	"testing"

	"go.uber.org/goleak"
)

// Every Manager's goroutines must be gone once its test stopped Run.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

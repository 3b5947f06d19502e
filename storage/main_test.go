package storage

import (
	"testing"

	"go.uber.org/goleak"
)

// Every Log's flusher must be gone once its test closed it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

package metadata

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// newID returns a random UUID usable as a topic or cluster id. Like Kafka it
// skips the zero id, the reserved metadata-topic id, and ids whose base64
// form starts with '-' (they read as flags on a command line).
func newID() (uuid.UUID, error) {
	for {
		id, err := uuid.NewRandom()
		if err != nil {
			return uuid.Nil, fmt.Errorf("generate id: %w", err)
		}
		if validTopicID(id) == nil && !strings.HasPrefix(encodeID(id), "-") {
			return id, nil
		}
	}
}

// encodeID renders an id the way Kafka prints cluster ids: unpadded
// base64url of the 16 bytes, 22 characters.
func encodeID(id uuid.UUID) string {
	return base64.RawURLEncoding.EncodeToString(id[:])
}

func newClusterID() (string, error) {
	id, err := newID()
	if err != nil {
		return "", err
	}
	return encodeID(id), nil
}

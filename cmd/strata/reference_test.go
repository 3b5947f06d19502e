package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated section of README.md")

// TestREADMEConfigReference keeps the README's config table equal to the
// key table. `make docs` (go test ./cmd/strata -run TestREADMEConfigReference -update)
// regenerates it.
func TestREADMEConfigReference(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	begin := strings.Index(readme, referenceBegin)
	end := strings.Index(readme, referenceEnd)
	if begin < 0 || end < begin {
		t.Fatalf("README.md lacks the markers %q ... %q", referenceBegin, referenceEnd)
	}
	start := begin + len(referenceBegin) + 1 // past the newline
	want := configReference()
	if readme[start:end] == want {
		return
	}
	if !*update {
		t.Fatalf("README.md config reference is stale: run `make docs`\n--- want ---\n%s", want)
	}
	readme = readme[:start] + want + readme[end:]
	if err := os.WriteFile(path, []byte(readme), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Log("README.md updated")
}

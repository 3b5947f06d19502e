package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestDockerCompose checks that docker-compose.yml builds the image from
// deploy/Dockerfile, publishes the Kafka port and runs a command this
// binary accepts, without needing Docker.
func TestDockerCompose(t *testing.T) {
	cleanEnv(t)
	data, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Build struct {
				Context    string `yaml:"context"`
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
			Command     []string          `yaml:"command"`
			Ports       []string          `yaml:"ports"`
			Volumes     []string          `yaml:"volumes"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	svc, ok := compose.Services["strata"]
	if !ok {
		t.Fatal("no strata service")
	}
	df := filepath.Join("..", "..", svc.Build.Context, svc.Build.Dockerfile)
	dockerfile, err := os.ReadFile(df)
	if err != nil {
		t.Fatalf("build.dockerfile: %v", err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/strata", "ENTRYPOINT"} {
		if !strings.Contains(string(dockerfile), want) {
			t.Errorf("%s lacks %q", df, want)
		}
	}
	if !slices.Contains(svc.Ports, "9092:9092") {
		t.Errorf("ports %v lack 9092:9092", svc.Ports)
	}
	if len(svc.Command) == 0 || svc.Command[0] != "serve" {
		t.Fatalf("command %v does not start with serve", svc.Command)
	}
	for k, v := range svc.Environment {
		t.Setenv(k, v)
	}
	// The command must load with this binary's loader, flags and keys.
	o, warnings, err := loadOptions(svc.Command[1:])
	if err != nil {
		t.Fatalf("command %v: %v", svc.Command, err)
	}
	if len(warnings) > 0 {
		t.Errorf("command %v: %v", svc.Command, warnings)
	}
	if o.Broker.Listen != "0.0.0.0:9092" || o.Broker.AdvertisedAddr != "localhost:9092" {
		t.Errorf("listen %q advertised %q", o.Broker.Listen, o.Broker.AdvertisedAddr)
	}
	mounted := false
	for _, v := range svc.Volumes {
		name, target, _ := strings.Cut(v, ":")
		if target == o.Broker.DataDir {
			mounted = true
			if _, ok := compose.Volumes[name]; !ok {
				t.Errorf("volume %q is not declared", name)
			}
		}
	}
	if !mounted {
		t.Errorf("data dir %s is not on a volume (%v)", o.Broker.DataDir, svc.Volumes)
	}
}

package main

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// composeFile is the part of docker-compose.yml the test checks.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func readCompose(t *testing.T) composeFile {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose composeFile
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	return compose
}

// TestDockerCompose checks that docker-compose.yml builds the image from
// deploy/Dockerfile, publishes the Kafka port and runs a command this
// binary accepts, without needing Docker.
func TestDockerCompose(t *testing.T) {
	cleanEnv(t)
	compose := readCompose(t)
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
	if err := o.Broker.Validate(); err != nil {
		t.Errorf("command %v with its environment: %v", svc.Command, err)
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

// TestDockerComposeTiering checks the tiered-storage wiring of
// docker-compose.yml: a MinIO service with a healthcheck, a one-shot job
// that creates the bucket once MinIO is healthy, and strata starting after
// that job succeeded, pointed at that bucket on that endpoint with
// MinIO's credentials, which come from the environment.
func TestDockerComposeTiering(t *testing.T) {
	cleanEnv(t)
	compose := readCompose(t)
	minio, ok := compose.Services["minio"]
	if !ok {
		t.Fatal("no minio service")
	}
	if !strings.HasPrefix(minio.Image, "minio/minio") {
		t.Errorf("minio image %q, want minio/minio", minio.Image)
	}
	if len(minio.Healthcheck.Test) == 0 {
		t.Error("minio has no healthcheck: nothing can wait for it")
	}
	if !slices.Contains(minio.Command, "server") {
		t.Errorf("minio command %v does not run the server", minio.Command)
	}
	if !hasVolumeMount(minio.Volumes, compose.Volumes) {
		t.Errorf("minio data is not on a declared volume (%v)", minio.Volumes)
	}
	user, pass := minio.Environment["MINIO_ROOT_USER"], minio.Environment["MINIO_ROOT_PASSWORD"]
	if user == "" || len(pass) < 8 {
		t.Errorf("MinIO credentials %q/%q: MinIO wants a user and a password of 8+ characters", user, pass)
	}

	job, ok := compose.Services["createbucket"]
	if !ok {
		t.Fatal("no createbucket service")
	}
	if !strings.HasPrefix(job.Image, "minio/mc") {
		t.Errorf("createbucket image %q, want minio/mc", job.Image)
	}
	if c := job.DependsOn["minio"].Condition; c != "service_healthy" {
		t.Errorf("createbucket depends on minio with condition %q, want service_healthy", c)
	}

	strata := compose.Services["strata"]
	if c := strata.DependsOn["createbucket"].Condition; c != "service_completed_successfully" {
		t.Errorf("strata depends on createbucket with condition %q, want service_completed_successfully", c)
	}
	for k, v := range strata.Environment {
		t.Setenv(k, v)
	}
	o, _, err := loadOptions(strata.Command[1:])
	if err != nil {
		t.Fatalf("strata command %v: %v", strata.Command, err)
	}
	bc := o.Broker
	store, err := url.Parse(bc.ObjectStore)
	if err != nil || store.Scheme != "s3" || store.Host == "" {
		t.Fatalf("object-store %q, want s3://bucket/prefix", bc.ObjectStore)
	}
	bucket := store.Host
	endpoint, err := url.Parse(bc.S3Endpoint)
	if err != nil || endpoint.Scheme != "http" || endpoint.Hostname() != "minio" || endpoint.Port() != "9000" {
		t.Errorf("s3-endpoint %q, want http://minio:9000", bc.S3Endpoint)
	}
	if !bc.S3PathStyle {
		t.Error("s3-path-style is off: MinIO in compose has no virtual-host DNS for buckets")
	}
	if bc.S3AccessKey != user || bc.S3SecretKey != pass {
		t.Errorf("strata's S3 keys %q/%q are not MinIO's root credentials %q/%q", bc.S3AccessKey, bc.S3SecretKey, user, pass)
	}
	for _, arg := range strata.Command {
		if (pass != "" && strings.Contains(arg, pass)) || strings.Contains(arg, "s3-secret-key") || strings.Contains(arg, "s3-access-key") {
			t.Errorf("strata's command line carries S3 credentials (%q): use the environment", arg)
		}
	}

	// The job creates exactly the bucket strata uses, through an alias
	// that reaches MinIO with its credentials.
	cmd := append(slices.Clone(job.Entrypoint), job.Command...)
	target := ""
	if i := slices.Index(cmd, "mb"); i >= 0 && i+1 < len(cmd) {
		target = cmd[len(cmd)-1]
	}
	alias, b, _ := strings.Cut(target, "/")
	if alias == "" || b != bucket {
		t.Fatalf("createbucket runs %v; want `mc mb ... ALIAS/%s`", cmd, bucket)
	}
	host, err := url.Parse(job.Environment["MC_HOST_"+alias])
	if err != nil || host.Host != "minio:9000" || host.User.Username() != user {
		t.Errorf("MC_HOST_%s = %q: want http://%s:PASSWORD@minio:9000", alias, job.Environment["MC_HOST_"+alias], user)
	} else if p, _ := host.User.Password(); p != pass {
		t.Errorf("MC_HOST_%s has another password than MinIO's", alias)
	}
	if !slices.Contains(cmd, "--ignore-existing") && !slices.Contains(cmd, "-p") {
		t.Errorf("createbucket %v fails when the bucket exists (a second `docker compose up`)", cmd)
	}
}

func hasVolumeMount(mounts []string, declared map[string]any) bool {
	for _, v := range mounts {
		name, _, _ := strings.Cut(v, ":")
		if _, ok := declared[name]; ok {
			return true
		}
	}
	return false
}

// TestDockerComposeMonitoring checks the monitoring services: Prometheus
// loads deploy/prometheus (whose scrape target is the strata service's
// admin port) and Grafana is provisioned from deploy/grafana; every
// mounted path exists in the repository.
func TestDockerComposeMonitoring(t *testing.T) {
	compose := readCompose(t)
	for name, wantMounts := range map[string][]string{
		"prometheus": {"./deploy/prometheus:/etc/prometheus"},
		"grafana":    {"./deploy/grafana/provisioning:/etc/grafana/provisioning", "./deploy/grafana/dashboards:/var/lib/grafana/dashboards/strata"},
	} {
		svc, ok := compose.Services[name]
		if !ok {
			t.Fatalf("no %s service", name)
		}
		for _, want := range wantMounts {
			found := false
			for _, v := range svc.Volumes {
				if strings.HasPrefix(v, want) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no volume %s in %v", name, want, svc.Volumes)
			}
			src := strings.SplitN(want, ":", 2)[0]
			if _, err := os.Stat(filepath.Join("..", "..", src)); err != nil {
				t.Errorf("%s mounts %s: %v", name, src, err)
			}
		}
	}
	prom, err := os.ReadFile(filepath.Join("..", "..", "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(prom), "strata:9644") {
		t.Error("deploy/prometheus/prometheus.yml does not scrape strata:9644, the compose broker's admin listener")
	}
	if !slices.Contains(compose.Services["strata"].Command, "--admin-listen=0.0.0.0:9644") {
		t.Error("the strata service does not expose its admin listener on 9644 for Prometheus")
	}
}

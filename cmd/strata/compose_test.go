package main

import (
	"fmt"
	"net"
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

// composeNodes returns the broker services, strata-1, strata-2, ...,
// in node order; it fails unless there are exactly three.
func composeNodes(t *testing.T, compose composeFile) []string {
	t.Helper()
	var names []string
	for name := range compose.Services {
		if strings.HasPrefix(name, "strata") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if want := []string{"strata-1", "strata-2", "strata-3"}; !slices.Equal(names, want) {
		t.Fatalf("broker services %v, want %v", names, want)
	}
	return names
}

// loadService loads a compose service's command with its environment
// (and nothing of the developer's shell) through this binary's loader,
// as the container would.
func loadService(t *testing.T, name string, svc composeService) options {
	t.Helper()
	cleanEnv(t)
	if len(svc.Command) == 0 || svc.Command[0] != "serve" {
		t.Fatalf("%s: command %v does not start with serve", name, svc.Command)
	}
	for k, v := range svc.Environment {
		t.Setenv(k, v)
	}
	o, warnings, err := loadOptions(svc.Command[1:])
	if err != nil {
		t.Fatalf("%s: command %v with its environment: %v", name, svc.Command, err)
	}
	if len(warnings) > 0 {
		t.Errorf("%s: %v", name, warnings)
	}
	return o
}

// parseNamedAddrs reads Kafka's NAME://host:port,... into name -> host:port.
func parseNamedAddrs(t *testing.T, key, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range strings.Split(s, ",") {
		name, addr, ok := strings.Cut(strings.TrimSpace(e), "://")
		if !ok {
			t.Fatalf("%s %q: entry %q is not NAME://host:port", key, s, e)
		}
		out[name] = addr
	}
	return out
}

// TestDockerCompose checks that docker-compose.yml runs a three-node
// cluster of this binary without needing Docker: each broker builds from
// deploy/Dockerfile, loads with this binary's loader, has its own node id
// and volume, and all three name the same Raft voters, each at the
// address its own service binds. Host clients reach every broker through
// its published PLAINTEXT port; brokers reach each other on INTERNAL.
func TestDockerCompose(t *testing.T) {
	compose := readCompose(t)
	names := composeNodes(t, compose)
	var voters string
	volumes := map[string]string{}
	for i, name := range names {
		svc := compose.Services[name]
		id := int32(i + 1)
		df := filepath.Join("..", "..", svc.Build.Context, svc.Build.Dockerfile)
		dockerfile, err := os.ReadFile(df)
		if err != nil {
			t.Fatalf("%s: build.dockerfile: %v", name, err)
		}
		for _, want := range []string{"CGO_ENABLED=0", "./cmd/strata", "ENTRYPOINT"} {
			if !strings.Contains(string(dockerfile), want) {
				t.Errorf("%s lacks %q", df, want)
			}
		}
		bc := loadService(t, name, svc).Broker
		if bc.NodeID != id {
			t.Errorf("%s: node-id %d, want %d", name, bc.NodeID, id)
		}
		if r := bc.ProcessRoles; !strings.Contains(r, "controller") || !strings.Contains(r, "broker") {
			t.Errorf("%s: process-roles %q, want broker,controller", name, r)
		}

		// The quorum: one list for all, this node in it at its service
		// name and at the port it binds.
		if voters == "" {
			voters = bc.ControllerVoters
		} else if bc.ControllerVoters != voters {
			t.Errorf("%s: controller-voters %q differ from %s's %q", name, bc.ControllerVoters, names[0], voters)
		}
		_, raftPort, err := net.SplitHostPort(bc.ControllerAddr)
		if err != nil {
			t.Fatalf("%s: controller-listen %q: %v", name, bc.ControllerAddr, err)
		}
		if entry := fmt.Sprintf("%d@%s", id, net.JoinHostPort(name, raftPort)); !slices.Contains(strings.Split(bc.ControllerVoters, ","), entry) {
			t.Errorf("%s: controller-voters %q lack %s", name, bc.ControllerVoters, entry)
		}

		// Listeners: PLAINTEXT for the host, INTERNAL between brokers.
		listeners := parseNamedAddrs(t, "listeners", bc.Listeners)
		advertised := parseNamedAddrs(t, "advertised.listeners", bc.AdvertisedListeners)
		if bc.InterBrokerListenerName == "" || listeners[bc.InterBrokerListenerName] == "" {
			t.Errorf("%s: inter.broker.listener.name %q is not among listeners %q", name, bc.InterBrokerListenerName, bc.Listeners)
		}
		if !strings.Contains(","+bc.ListenerSecurityProtocolMap+",", ","+bc.InterBrokerListenerName+":PLAINTEXT,") {
			t.Errorf("%s: listener.security.protocol.map %q does not map %s", name, bc.ListenerSecurityProtocolMap, bc.InterBrokerListenerName)
		}
		host, port, _ := net.SplitHostPort(advertised[bc.InterBrokerListenerName])
		if _, bound, _ := net.SplitHostPort(listeners[bc.InterBrokerListenerName]); host != name || port != bound {
			t.Errorf("%s: %s advertises %q, want %s:%s (its name on the compose network)", name, bc.InterBrokerListenerName, advertised[bc.InterBrokerListenerName], name, bound)
		}
		host, published, _ := net.SplitHostPort(advertised["PLAINTEXT"])
		_, bound, _ := net.SplitHostPort(listeners["PLAINTEXT"])
		if host != "localhost" || !slices.Contains(svc.Ports, published+":"+bound) {
			t.Errorf("%s: PLAINTEXT advertises %q but ports %v do not publish %s:%s", name, advertised["PLAINTEXT"], svc.Ports, published, bound)
		}
		if a, _, _ := net.SplitHostPort(listeners["PLAINTEXT"]); a != "0.0.0.0" {
			t.Errorf("%s: PLAINTEXT listens on %q: unreachable through the published port", name, listeners["PLAINTEXT"])
		}

		// Replicated topics that survive one node down.
		if bc.DefaultReplicationFactor != 3 || bc.MinInsyncReplicas != 2 {
			t.Errorf("%s: default.replication.factor %d, min.insync.replicas %d; want 3 and 2", name, bc.DefaultReplicationFactor, bc.MinInsyncReplicas)
		}

		mounted := false
		for _, v := range svc.Volumes {
			vol, target, _ := strings.Cut(v, ":")
			if target != bc.DataDir {
				continue
			}
			mounted = true
			if _, ok := compose.Volumes[vol]; !ok {
				t.Errorf("%s: volume %q is not declared", name, vol)
			}
			if other, dup := volumes[vol]; dup {
				t.Errorf("%s and %s share the data volume %s", other, name, vol)
			}
			volumes[vol] = name
		}
		if !mounted {
			t.Errorf("%s: data dir %s is not on a volume (%v)", name, bc.DataDir, svc.Volumes)
		}
	}
	if n := len(strings.Split(voters, ",")); n != len(names) {
		t.Errorf("controller-voters %q: %d voters for %d nodes", voters, n, len(names))
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

	var bucket string
	for _, name := range composeNodes(t, compose) {
		strata := compose.Services[name]
		if c := strata.DependsOn["createbucket"].Condition; c != "service_completed_successfully" {
			t.Errorf("%s depends on createbucket with condition %q, want service_completed_successfully", name, c)
		}
		bc := loadService(t, name, strata).Broker
		store, err := url.Parse(bc.ObjectStore)
		if err != nil || store.Scheme != "s3" || store.Host == "" {
			t.Fatalf("%s: object-store %q, want s3://bucket/prefix", name, bc.ObjectStore)
		}
		if bucket == "" {
			bucket = store.Host
		} else if store.Host != bucket {
			t.Errorf("%s: bucket %q; the brokers of one cluster share one bucket (%q)", name, store.Host, bucket)
		}
		endpoint, err := url.Parse(bc.S3Endpoint)
		if err != nil || endpoint.Scheme != "http" || endpoint.Hostname() != "minio" || endpoint.Port() != "9000" {
			t.Errorf("%s: s3-endpoint %q, want http://minio:9000", name, bc.S3Endpoint)
		}
		if !bc.S3PathStyle {
			t.Errorf("%s: s3-path-style is off: MinIO in compose has no virtual-host DNS for buckets", name)
		}
		if bc.S3AccessKey != user || bc.S3SecretKey != pass {
			t.Errorf("%s: S3 keys %q/%q are not MinIO's root credentials %q/%q", name, bc.S3AccessKey, bc.S3SecretKey, user, pass)
		}
		for _, arg := range strata.Command {
			if (pass != "" && strings.Contains(arg, pass)) || strings.Contains(arg, "s3-secret-key") || strings.Contains(arg, "s3-access-key") {
				t.Errorf("%s: command line carries S3 credentials (%q): use the environment", name, arg)
			}
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
// loads deploy/prometheus (whose scrape targets are the brokers' admin
// ports) and Grafana is provisioned from deploy/grafana; every
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
	for _, name := range composeNodes(t, compose) {
		bc := loadService(t, name, compose.Services[name]).Broker
		if bc.AdminListen != "0.0.0.0:9644" {
			t.Errorf("%s: admin-listen %q; Prometheus needs 0.0.0.0:9644", name, bc.AdminListen)
		}
		if !strings.Contains(string(prom), name+":9644") {
			t.Errorf("deploy/prometheus/prometheus.yml does not scrape %s:9644", name)
		}
		if _, ok := compose.Services["prometheus"].DependsOn[name]; !ok {
			t.Errorf("prometheus does not depend on %s", name)
		}
	}
}

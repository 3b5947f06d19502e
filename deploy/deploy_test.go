package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// metric kinds: histograms exist in Prometheus only as their _bucket,
// _sum and _count series.
const (
	counter   = "counter"
	gauge     = "gauge"
	histogram = "histogram"
)

// exported lists the metrics the broker serves today (scraped from a
// running broker; tiering's names are in tiering/metrics.go and
// tiering/objstore/instrument.go). Keep it in sync when metrics change.
var exported = map[string]string{
	"strata_broker_requests_total":                         counter,
	"strata_broker_request_duration_seconds":               histogram,
	"strata_broker_request_queue_time_seconds":             histogram,
	"strata_broker_request_local_time_seconds":             histogram,
	"strata_broker_request_remote_time_seconds":            histogram,
	"strata_broker_request_throttle_time_seconds":          histogram,
	"strata_broker_request_response_send_time_seconds":     histogram,
	"strata_broker_request_errors_total":                   counter,
	"strata_broker_topic_bytes_in_total":                   counter,
	"strata_broker_topic_messages_in_total":                counter,
	"strata_broker_topic_bytes_out_total":                  counter,
	"strata_broker_connections":                            gauge,
	"strata_broker_fetch_purgatory_size":                   gauge,
	"strata_broker_produce_purgatory_size":                 gauge,
	"strata_log_size_bytes":                                gauge,
	"strata_log_segments":                                  gauge,
	"strata_log_start_offset":                              gauge,
	"strata_log_end_offset":                                gauge,
	"strata_cluster_under_replicated_partitions":           gauge,
	"strata_cluster_offline_partitions":                    gauge,
	"strata_cluster_active_controller":                     gauge,
	"strata_broker_isr_shrinks_total":                      counter,
	"strata_broker_isr_expands_total":                      counter,
	"strata_group_lag":                                     gauge,
	"strata_tiering_upload_bytes_total":                    counter,
	"strata_tiering_download_bytes_total":                  counter,
	"strata_tiering_upload_lag_segments":                   gauge,
	"strata_tiering_upload_lag_bytes":                      gauge,
	"strata_tiering_cache_bytes":                           gauge,
	"strata_tiering_cache_hits_total":                      counter,
	"strata_tiering_cache_misses_total":                    counter,
	"strata_tiering_object_store_requests_total":           counter,
	"strata_tiering_object_store_request_duration_seconds": histogram,
	"strata_tiering_object_store_bytes_total":              counter,
}

// future lists metrics the dashboard and alerts already use but that the
// cluster/observability work has yet to export; deploy/README.md must
// name each of them.
var future = map[string]string{}

var metricName = regexp.MustCompile(`\bstrata_[a-z0-9_]+`)

// unknownMetrics returns the strata_ series names in expr that are
// neither exported nor listed as future metrics.
func unknownMetrics(expr string) []string {
	var bad []string
	for _, name := range metricName.FindAllString(expr, -1) {
		if _, ok := exported[name]; ok && exported[name] != histogram {
			continue
		}
		if _, ok := future[name]; ok && future[name] != histogram {
			continue
		}
		base, ok := "", false
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if b, cut := strings.CutSuffix(name, suf); cut {
				base, ok = b, true
			}
		}
		if ok && (exported[base] == histogram || future[base] == histogram) {
			continue
		}
		bad = append(bad, name)
	}
	return bad
}

func TestMetricListsDisjoint(t *testing.T) {
	for name := range future {
		if _, ok := exported[name]; ok {
			t.Errorf("%s is listed as both exported and future", name)
		}
	}
}

// deployFiles returns the files under deploy/ (the test's working
// directory) whose names end with one of exts.
func deployFiles(t *testing.T, exts ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && slices.Contains(exts, filepath.Ext(path)) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// yamlDocs decodes every document of a YAML stream into fresh values of
// T.
func yamlDocs[T any](t *testing.T, path string) []T {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, path)))
	var docs []T
	for {
		var v T
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		docs = append(docs, v)
	}
}

func TestFilesParse(t *testing.T) {
	yamls := deployFiles(t, ".yml", ".yaml")
	jsons := deployFiles(t, ".json")
	if len(yamls) < 10 || len(jsons) < 1 {
		t.Fatalf("found %d YAML and %d JSON files under deploy/, want the whole set", len(yamls), len(jsons))
	}
	for _, p := range yamls {
		if docs := yamlDocs[any](t, p); len(docs) == 0 {
			t.Errorf("%s: no YAML document", p)
		}
	}
	for _, p := range jsons {
		var v any
		if err := json.Unmarshal(readFile(t, p), &v); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// Grafana dashboard.

type dashPanel struct {
	ID          int                      `json:"id"`
	Type        string                   `json:"type"`
	Title       string                   `json:"title"`
	Description string                   `json:"description"`
	Datasource  *struct{}                `json:"datasource"`
	Targets     []struct{ Expr string }  `json:"targets"`
	Panels      []dashPanel              `json:"panels"` // collapsed rows
	GridPos     struct{ H, W, X, Y int } `json:"gridPos"`
}

type dashboard struct {
	UID        string      `json:"uid"`
	Title      string      `json:"title"`
	Panels     []dashPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

func TestDashboard(t *testing.T) {
	const path = "grafana/dashboards/strata.json"
	var d dashboard
	if err := json.Unmarshal(readFile(t, path), &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard needs a uid and a title (provisioning keys on the uid)")
	}
	var rows []string
	ids := map[int]string{}
	var all []dashPanel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	for _, p := range all {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if p.GridPos.W <= 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside Grafana's 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			rows = append(rows, p.Title)
			continue
		}
		if p.Datasource == nil || len(p.Targets) == 0 || p.Description == "" {
			t.Errorf("panel %q needs a datasource, a description and at least one query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q has an empty query", p.Title)
			}
			if bad := unknownMetrics(tg.Expr); len(bad) > 0 {
				t.Errorf("panel %q uses unknown metrics %v (add them to exported or future)", p.Title, bad)
			}
		}
	}
	for _, want := range []string{"Cluster", "Topics", "Tiering", "Consumer groups"} {
		if !slices.Contains(rows, want) {
			t.Errorf("dashboard has no %q row (rows: %v)", want, rows)
		}
	}
	for _, v := range d.Templating.List {
		if bad := unknownMetrics(v.Definition); len(bad) > 0 {
			t.Errorf("variable %s uses unknown metrics %v", v.Name, bad)
		}
	}
}

// Prometheus.

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestAlertRules(t *testing.T) {
	docs := yamlDocs[ruleFile](t, "prometheus/alerts.yml")
	if len(docs) != 1 {
		t.Fatalf("alerts.yml: %d documents, want 1", len(docs))
	}
	seen := map[string]bool{}
	for _, g := range docs[0].Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if seen[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if r.For == "" {
				t.Errorf("alert %s has no for: (it would fire on one bad evaluation)", r.Alert)
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("alert %s needs summary and description annotations", r.Alert)
			}
			if bad := unknownMetrics(r.Expr); len(bad) > 0 {
				t.Errorf("alert %s uses unknown metrics %v", r.Alert, bad)
			}
		}
	}
	// What issue 7 asks the rules to cover.
	for _, want := range []string{
		"StrataUnderReplicatedPartitions", "StrataOfflinePartitions", "StrataNoActiveController",
		"StrataConsumerLagGrowing", "StrataUploadLagGrowing", "StrataDiskNearlyFull", "StrataRequestErrorRate",
	} {
		if !seen[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

func TestPrometheusConfig(t *testing.T) {
	type config struct {
		RuleFiles     []string `yaml:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	docs := yamlDocs[config](t, "prometheus/prometheus.yml")
	if len(docs) != 1 {
		t.Fatalf("prometheus.yml: %d documents, want 1", len(docs))
	}
	c := docs[0]
	if !slices.Contains(c.RuleFiles, "alerts.yml") {
		t.Errorf("rule_files %v does not load alerts.yml", c.RuleFiles)
	}
	found := false
	for _, sc := range c.ScrapeConfigs {
		if sc.JobName != "strata" {
			continue
		}
		found = true
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				if !strings.HasSuffix(tg, ":9644") {
					t.Errorf("strata target %s is not the admin listener (:9644)", tg)
				}
			}
		}
	}
	if !found {
		t.Errorf("no scrape job named strata (the alerts select job=\"strata\")")
	}
}

// TestReadmeListsFutureMetrics keeps the README's "still to come" list in
// step with the metrics the rules and dashboard already expect.
func TestReadmeListsFutureMetrics(t *testing.T) {
	readme := string(readFile(t, "README.md"))
	for name := range future {
		if !strings.Contains(readme, name) {
			t.Errorf("README.md does not list future metric %s", name)
		}
	}
}

// promtool validates with Prometheus' own parser and runs the rule unit
// tests; it is optional (Debian's prometheus package has it, and make
// deps-test installs it).
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not on PATH (apt-get install prometheus)")
	}
	for _, args := range [][]string{
		{"check", "config", "prometheus/prometheus.yml"},
		{"check", "rules", "prometheus/alerts.yml"},
		{"test", "rules", "prometheus/alerts_test.yml"},
	} {
		t.Run(strings.Join(args[:2], "-"), func(t *testing.T) {
			out, err := exec.CommandContext(t.Context(), promtool, args...).CombinedOutput()
			if err != nil {
				t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

// Kubernetes manifests.

type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		// Service
		ClusterIP string           `yaml:"clusterIP"`
		Selector  yaml.Node        `yaml:"selector"` // a map for Services, matchLabels for the others
		Ports     []k8sServicePort `yaml:"ports"`
		// StatefulSet
		ServiceName         string `yaml:"serviceName"`
		Replicas            *int   `yaml:"replicas"`
		PodManagementPolicy string `yaml:"podManagementPolicy"`
		Template            struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []k8sContainer `yaml:"containers"`
				Volumes    []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name string `yaml:"name"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata struct {
				Name string `yaml:"name"`
			} `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
		// PodDisruptionBudget
		MaxUnavailable *int `yaml:"maxUnavailable"`
	} `yaml:"spec"`
}

type k8sServicePort struct {
	Name       string `yaml:"name"`
	Port       int    `yaml:"port"`
	TargetPort string `yaml:"targetPort"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sContainer struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
	ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

// selectorLabels reads a Service's selector map or another kind's
// selector.matchLabels.
func selectorLabels(t *testing.T, o k8sObject) map[string]string {
	t.Helper()
	var sel struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	if o.Kind == "Service" {
		var m map[string]string
		if err := o.Spec.Selector.Decode(&m); err != nil {
			t.Fatalf("%s %s selector: %v", o.Kind, o.Metadata.Name, err)
		}
		return m
	}
	if err := o.Spec.Selector.Decode(&sel); err != nil {
		t.Fatalf("%s %s selector: %v", o.Kind, o.Metadata.Name, err)
	}
	return sel.MatchLabels
}

func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetesManifests(t *testing.T) {
	var objs []k8sObject
	for _, p := range deployFiles(t, ".yaml", ".yml") {
		if !strings.HasPrefix(p, "k8s"+string(filepath.Separator)) || filepath.Base(p) == "kustomization.yaml" {
			continue
		}
		objs = append(objs, yamlDocs[k8sObject](t, p)...)
	}
	byKind := map[string][]k8sObject{}
	for _, o := range objs {
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("object without apiVersion/kind/name: %+v", o.Metadata)
		}
		if o.Metadata.Namespace != "" {
			t.Errorf("%s %s sets a namespace; the manifests are namespace-free", o.Kind, o.Metadata.Name)
		}
		byKind[o.Kind] = append(byKind[o.Kind], o)
	}
	if len(byKind["StatefulSet"]) != 1 || len(byKind["PodDisruptionBudget"]) != 1 || len(byKind["ConfigMap"]) != 1 || len(byKind["Service"]) != 2 {
		t.Fatalf("want 1 StatefulSet, 1 PodDisruptionBudget, 1 ConfigMap, 2 Services; have %v", kinds(byKind))
	}
	sts := byKind["StatefulSet"][0]
	podLabels := sts.Spec.Template.Metadata.Labels
	if !matches(selectorLabels(t, sts), podLabels) {
		t.Errorf("StatefulSet selector does not match its pod template labels %v", podLabels)
	}
	if sts.Spec.Replicas == nil || *sts.Spec.Replicas < 1 {
		t.Errorf("StatefulSet replicas unset")
	}

	// Services: one headless (the StatefulSet's serviceName), one client.
	var headless bool
	for _, svc := range byKind["Service"] {
		if !matches(selectorLabels(t, svc), podLabels) {
			t.Errorf("Service %s selects no broker pod", svc.Metadata.Name)
		}
		if svc.Spec.ClusterIP == "None" && svc.Metadata.Name == sts.Spec.ServiceName {
			headless = true
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == "kafka" && p.Port != 9092 {
				t.Errorf("Service %s: kafka port %d", svc.Metadata.Name, p.Port)
			}
		}
	}
	if !headless {
		t.Errorf("StatefulSet serviceName %q is not a headless Service", sts.Spec.ServiceName)
	}

	pdb := byKind["PodDisruptionBudget"][0]
	if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != 1 {
		t.Errorf("PodDisruptionBudget maxUnavailable should be 1")
	}
	if !matches(selectorLabels(t, pdb), podLabels) {
		t.Errorf("PodDisruptionBudget selects no broker pod")
	}

	// The config file the container reads.
	cm := byKind["ConfigMap"][0]
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(cm.Data["strata.yaml"]), &cfg); err != nil || cfg == nil {
		t.Fatalf("ConfigMap %s: strata.yaml does not parse: %v", cm.Metadata.Name, err)
	}
	if a, _ := cfg["admin-listen"].(string); !strings.HasPrefix(a, "0.0.0.0:9644") {
		t.Errorf("admin-listen %q: probes and Prometheus need 0.0.0.0:9644", a)
	}
	if l, _ := cfg["listen"].(string); !strings.HasPrefix(l, "0.0.0.0:") {
		t.Errorf("listen %q is not reachable from other pods", l)
	}
	dataDir, _ := cfg["data-dir"].(string)

	if len(sts.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("want one container")
	}
	c := sts.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "serve" || !slices.Contains(c.Args, "--config=/etc/strata/strata.yaml") {
		t.Errorf("container args %v: want serve --config=/etc/strata/strata.yaml", c.Args)
	}
	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if ports["kafka"] != 9092 || ports["admin"] != 9644 {
		t.Errorf("container ports %v: want kafka 9092, admin 9644", ports)
	}
	for name, pr := range map[string]*k8sProbe{"/healthz": c.LivenessProbe, "/readyz": c.ReadinessProbe} {
		if pr == nil || pr.HTTPGet.Path != name || ports[pr.HTTPGet.Port] != 9644 {
			t.Errorf("probe for %s: %+v, want an httpGet on the admin port", name, pr)
		}
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	var claim string
	if len(sts.Spec.VolumeClaimTemplates) == 1 {
		claim = sts.Spec.VolumeClaimTemplates[0].Metadata.Name
	}
	if claim == "" || mounts[claim] != dataDir {
		t.Errorf("volumeClaimTemplate %q mounted at %q, but data-dir is %q", claim, mounts[claim], dataDir)
	}
	var cfgVol string
	for _, v := range sts.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Metadata.Name {
			cfgVol = v.Name
		}
	}
	if cfgVol == "" || mounts[cfgVol] != "/etc/strata" {
		t.Errorf("ConfigMap %s is not mounted at /etc/strata", cm.Metadata.Name)
	}

	checkQuorum(t, sts, c, cfg, byKind["Service"])
}

// checkQuorum checks that the StatefulSet's pods form one cluster: each
// pod's node id is its ordinal, every pod lists the same voters, one per
// replica, at the pod's stable name on the headless Service and the port
// controller-listen binds, which the headless Service publishes.
func checkQuorum(t *testing.T, sts k8sObject, c k8sContainer, cfg map[string]any, services []k8sObject) {
	t.Helper()
	replicas := 0
	if sts.Spec.Replicas != nil {
		replicas = *sts.Spec.Replicas
	}
	if replicas != 3 {
		t.Errorf("StatefulSet replicas %d, want 3 (a quorum that survives one pod down)", replicas)
	}
	if sts.Spec.PodManagementPolicy != "Parallel" {
		t.Errorf("podManagementPolicy %q: with OrderedReady strata-1 waits for strata-0 to be ready, which needs a quorum", sts.Spec.PodManagementPolicy)
	}
	nodeID := false
	for _, e := range c.Env {
		if e.Name == "STRATA_NODE_ID" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			e.ValueFrom.FieldRef.FieldPath == "metadata.labels['apps.kubernetes.io/pod-index']" {
			nodeID = true
		}
	}
	if !nodeID {
		t.Error("no STRATA_NODE_ID from the pod-index label: pods would share one node id")
	}
	if _, ok := cfg["node-id"]; ok {
		t.Error("strata.yaml sets node-id, which every pod would share (STRATA_NODE_ID overrides it, but it misleads)")
	}
	listen, _ := cfg["controller-listen"].(string)
	_, port, _ := strings.Cut(listen, ":")
	if !strings.HasPrefix(listen, "0.0.0.0:") || port == "" {
		t.Fatalf("controller-listen %q: want 0.0.0.0:PORT (peers dial the pod's name)", listen)
	}
	var voters string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--controller-voters="); ok {
			voters = v
		}
	}
	var want []string
	for i := range replicas {
		want = append(want, fmt.Sprintf("%d@%s-%d.%s.$(POD_NAMESPACE).svc:%s", i, sts.Metadata.Name, i, sts.Spec.ServiceName, port))
	}
	if voters != strings.Join(want, ",") {
		t.Errorf("--controller-voters=%q, want %q", voters, strings.Join(want, ","))
	}
	published := false
	for _, svc := range services {
		if svc.Metadata.Name != sts.Spec.ServiceName {
			continue
		}
		for _, p := range svc.Spec.Ports {
			if p.Name == "controller" && fmt.Sprint(p.Port) == port {
				published = true
			}
		}
	}
	if !published {
		t.Errorf("headless Service %s does not publish the controller port %s", sts.Spec.ServiceName, port)
	}
}

func kinds(m map[string][]k8sObject) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

// kubectl kustomize builds deploy/k8s offline, which also checks that
// kustomization.yaml names every manifest that exists.
func TestKustomize(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH")
	}
	out, err := exec.CommandContext(t.Context(), kubectl, "kustomize", "k8s").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize k8s: %v\n%s", err, out)
	}
	n := 0
	for _, doc := range strings.Split(string(out), "\n---\n") {
		if strings.TrimSpace(doc) != "" {
			n++
		}
	}
	files, _ := filepath.Glob("k8s/*.yaml")
	if want := len(files) - 1; n != want {
		t.Errorf("kustomize renders %d objects; k8s/ has %d manifests (one object each): is one missing from kustomization.yaml?", n, want)
	}
}

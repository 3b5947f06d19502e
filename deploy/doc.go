// Package deploy holds no Go code of the broker: it is the home of the
// operational files next to it (Dockerfile, Prometheus scrape config and
// alert rules, Grafana dashboard and provisioning, Kubernetes manifests),
// and its tests validate them.
//
// The tests parse every YAML and JSON file under deploy/, keep the
// dashboard and the alert rules to the metric names the broker exports
// (or that deploy/README.md lists as still to come), check the shape of
// the alerts and manifests, and run promtool (check config, check rules,
// test rules) and kubectl kustomize when they are on PATH, skipping those
// parts otherwise. Nothing here runs concurrently or keeps state.
package deploy

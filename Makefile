# Strata. Every target works on a fresh Debian machine that has Go; see
# README.md. `make test` is what CI runs (.ci/run).

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X main.version=$(VERSION)
BIN      := bin/strata
E2E_PKG  := ./cmd/strata/e2e
FUZZTIME ?= 8s
FUZZ_PKGS ?= ./...
# Where `go install` puts commands (GOBIN, else the first GOPATH entry's
# bin): deps-test installs versitygw there and the tests find it on PATH.
GOBIN_DIR := $(shell b=$$($(GO) env GOBIN); [ -n "$$b" ] || b=$$($(GO) env GOPATH | cut -d: -f1)/bin; echo "$$b")
VERSITYGW_VERSION := v1.8.0

.PHONY: build run test deps-test deps-versitygw fmt-check vet check-imports test-unit test-e2e fuzz bench docs clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/strata

# A single-node broker with the embedded defaults.
run: build
	$(BIN) serve --data-dir ./data --listen 127.0.0.1:9092

# Everything CI checks, cheapest first. Prerequisites run in this order.
test: deps-test fmt-check vet check-imports test-unit test-e2e fuzz

# Installs what the tests need, only when it is missing (idempotent).
# kcat: librdkafka's command-line client, for the e2e tests.
# promtool: validates deploy/prometheus (deploy_test.go). It is taken out
# of Debian's prometheus package into GOBIN_DIR rather than installing the
# package, whose postinst enables and starts a Prometheus service on
# systemd hosts. The tests skip the promtool checks when it is missing.
# versitygw: an S3-compatible server the tiering tests start on loopback
# (tiering/s3test); building it takes a couple of minutes, once.
deps-test:
	@if command -v kcat >/dev/null 2>&1; then echo "kcat: $$(command -v kcat)"; else \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing kcat with apt-get"; \
		$$sudo apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -q --no-install-recommends kcat; \
	fi
	@if p=$$(PATH="$(GOBIN_DIR):$$PATH" command -v promtool); then echo "promtool: $$p"; else \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "installing promtool into $(GOBIN_DIR) from Debian's prometheus package"; \
		tmp=$$(mktemp -d) && \
		{ (cd "$$tmp" && apt-get download -q prometheus) || \
		  { $$sudo apt-get update -q && (cd "$$tmp" && apt-get download -q prometheus); }; } && \
		mkdir -p "$(GOBIN_DIR)" && \
		dpkg-deb --fsys-tarfile "$$tmp"/prometheus_*.deb | tar -x -O ./usr/bin/promtool > "$$tmp/promtool" && \
		install -m 0755 "$$tmp/promtool" "$(GOBIN_DIR)/promtool"; \
		rc=$$?; rm -rf "$$tmp"; exit $$rc; \
	fi
	@$(MAKE) --no-print-directory deps-versitygw

# versitygw alone: the tiering tests and the bench's cold-read run need it.
deps-versitygw:
	@if [ -x "$(GOBIN_DIR)/versitygw" ]; then echo "versitygw: $(GOBIN_DIR)/versitygw"; else \
		echo "installing versitygw $(VERSITYGW_VERSION) with go install (a couple of minutes)"; \
		GOBIN="$(GOBIN_DIR)" $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION); \
	fi

# The tests look for versitygw on PATH (tiering/s3test).
test-unit test-e2e bench: export PATH := $(GOBIN_DIR):$(PATH)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "not gofmt-ed (run gofmt -w):"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Imports go one way; see .ci/check-imports.
check-imports:
	.ci/check-imports

# Unit tests of every package but the end-to-end one, with the race detector.
test-unit:
	$(GO) test -race -count=1 -timeout 15m $$($(GO) list ./... | grep -v '/cmd/strata/e2e$$')
	# Allocation budgets mean nothing under -race (sync.Pool drops items): check them without it.
	$(GO) test -count=1 -run 'Alloc' ./proto/

# bin/strata as a real process against real clients.
test-e2e: build
	E2E_STRATA_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 10m $(E2E_PKG)

# Each fuzz target in FUZZ_PKGS for FUZZTIME.
fuzz:
	FUZZTIME=$(FUZZTIME) .ci/fuzz $(FUZZ_PKGS)

# Load generator against a broker (start one with `make run`).
bench: build deps-versitygw
	@if [ -d bench/cmd/strata-bench ]; then \
		$(GO) run ./bench/cmd/strata-bench $(BENCH_ARGS); \
	else \
		echo "bench/cmd/strata-bench does not exist yet: no benchmark to run"; \
	fi

# Regenerates the config reference in README.md from cmd/strata/keys.go.
docs:
	$(GO) test ./cmd/strata -run '^TestREADMEConfigReference$$' -count=1 -update

# Build output only: ./data may hold someone's topics.
clean:
	rm -rf bin

# Switchboard. `make run` starts the standalone system on an embedded NATS;
# `make test` runs every check CI runs.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

MODULES := proto kit services/messaging services/presence services/ratelimit services/edge services/standalone tools/loadgen tools/faults
GO_TEST_FLAGS ?= -race -count=1 -timeout 15m

.PHONY: run test proto proto-check vet fmt-check standalone-builds unit bench bench-compare fuzz build loadgen clean \
	test-node test-socketio test-browser node-deps chromium switchboard-bin test-faults soak

run:
	go run ./services/standalone/cmd/switchboard

test: proto-check fmt-check vet standalone-builds unit test-node

proto:
	scripts/gen-proto.sh

proto-check:
	scripts/gen-proto.sh --check

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	@for m in $(MODULES); do echo "go vet $$m"; (cd $$m && go vet ./...) || exit 1; done

# Every module also builds on its own, without the workspace.
standalone-builds:
	@for m in $(MODULES); do echo "GOWORK=off go build $$m"; (cd $$m && GOWORK=off go build ./...) || exit 1; done

# Unit and end-to-end tests, with the race detector; fuzz targets run their
# seed corpus.
unit:
	@for m in $(MODULES); do echo "go test $$m"; (cd $$m && go test $(GO_TEST_FLAGS) ./...) || exit 1; done

# Tests with real clients (tests/node): socket.io-client 4.8.x against
# /socket.io/, and the browser app in Debian's chromium driven by
# playwright-core (which never downloads a browser). Both run the
# standalone binary on loopback ports of their own. Screenshots go to
# $(ARTIFACTS_DIR).
NODE_TESTS := tests/node
ARTIFACTS_DIR ?= $(CURDIR)/tests/node/artifacts
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

test-node: test-socketio test-browser

test-socketio: node-deps switchboard-bin
	cd $(NODE_TESTS) && SWITCHBOARD_BIN=$(CURDIR)/.bin/switchboard node --test --test-concurrency=1 socketio.test.mjs

test-browser: node-deps chromium switchboard-bin
	cd $(NODE_TESTS) && SWITCHBOARD_BIN=$(CURDIR)/.bin/switchboard ARTIFACTS_DIR=$(ARTIFACTS_DIR) \
		node --test --test-concurrency=1 browser.test.mjs browser-features.test.mjs

node-deps: $(NODE_TESTS)/node_modules/.package-lock.json

# npm ci installs exactly the committed package-lock.json, again when it
# changes.
$(NODE_TESTS)/node_modules/.package-lock.json: $(NODE_TESTS)/package.json $(NODE_TESTS)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "node and npm are needed for tests/node"; exit 1; }
	cd $(NODE_TESTS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Debian's chromium, installed when missing (as root, as CI runs).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "install chromium: apt-get install -y --no-install-recommends chromium"; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	fi

switchboard-bin:
	mkdir -p .bin
	go build -o .bin/switchboard ./services/standalone/cmd/switchboard

# Every fuzz target, FUZZTIME each (make test runs only their seeds).
FUZZTIME ?= 30s
FUZZ_TARGETS := services/edge:FuzzDecodeCommand services/edge:FuzzFrameReader services/edge:FuzzVerify services/edge:FuzzParseSocketIO \
	services/messaging:FuzzCommands services/presence:FuzzCommands services/ratelimit:FuzzCommands

fuzz:
	@for t in $(FUZZ_TARGETS); do m=$${t%%:*}; f=$${t##*:}; echo "fuzz $$m $$f ($(FUZZTIME))"; \
		(cd $$m && go test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) .) || exit 1; done

# The quick edge benchmark (one room of 1,000 sockets, in-process).
bench:
	cd services/edge && go test -run '^$$' -bench . -benchmem ./...

# The working tree against BASE (default: the merge base with main) and the
# load generator's ceilings, in one run: docs/performance.md.
# BENCH_FLAGS=-quick for a smoke test.
BASE ?=
bench-compare:
	scripts/bench-compare.sh $(BASE)

build:
	mkdir -p bin
	go build -o bin/switchboard ./services/standalone/cmd/switchboard
	go build -o bin/edge ./services/edge/cmd/edge
	go build -o bin/messaging ./services/messaging/cmd/messaging
	go build -o bin/presence ./services/presence/cmd/presence
	go build -o bin/ratelimit ./services/ratelimit/cmd/ratelimit

# The load generator (tools/loadgen): see its -h and docs in main.go.
loadgen:
	mkdir -p bin
	go build -o bin/loadgen ./tools/loadgen

# The fault harness (tools/faults, docs/reliability.md): deploy/'s layout
# as separate processes, every fault of the table under a careful client;
# fails if anything acknowledged is lost or duplicated, a stored send is
# answered with anything but success or unavailable, or a client waits past
# its bound. About 10 minutes; not part of `make test`. FAULTS_FLAGS passes
# flags, e.g. FAULTS_FLAGS='-only msg-kill,sa-kill -keep'.
test-faults: build .bin/nats-server
	go build -o bin/faults ./tools/faults
	bin/faults -mode faults $(FAULTS_FLAGS)

# A soak of the standalone binary under a steady load with churn, sampling
# its memory, goroutines and open files: make soak DURATION=30m.
DURATION ?= 30m
soak: build
	go build -o bin/faults ./tools/faults
	bin/faults -mode soak -duration $(DURATION) $(SOAK_FLAGS)

# nats-server for deploy/ and the fault harness, from the module proxy (or
# the module cache), as deploy/cluster.sh installs it.
.bin/nats-server:
	GOWORK=off GOBIN=$(CURDIR)/.bin go install github.com/nats-io/nats-server/v2@v2.15.2

clean:
	rm -rf bin data .bin tests/node/node_modules tests/node/artifacts

# Switchboard. `make run` starts the standalone system on an embedded NATS;
# `make test` runs every check CI runs.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)

MODULES := proto kit services/messaging services/presence services/ratelimit services/edge services/standalone tools/loadgen
GO_TEST_FLAGS ?= -race -count=1 -timeout 15m

.PHONY: run test proto proto-check vet fmt-check standalone-builds unit bench build loadgen clean

run:
	go run ./services/standalone/cmd/switchboard

test: proto-check fmt-check vet standalone-builds unit

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

bench:
	cd services/edge && go test -run '^$$' -bench . -benchmem ./...

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

clean:
	rm -rf bin data .bin

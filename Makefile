# Pluto — make help lists the targets.
GO        ?= go
BUF_VERSION            := v1.72.0
PROTOC_GEN_GO_VERSION  := v1.36.12
PROTOC_GEN_GRPC_VERSION := v1.6.0
GOBIN     := $(shell $(GO) env GOPATH)/bin
PKGS      := ./...
# make test leaves the fault-injection suite (e2e/faults) to make test-faults,
# so that it runs once, alone on the machine (its recovery times are timings).
TEST_PKGS  = $(shell $(GO) list $(PKGS) | grep -v '/e2e/faults$$')

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## run the whole system locally: server + worker + API on SQLite in ./pluto-data
	$(GO) run ./cmd/pluto dev

.PHONY: build
build: ## build ./pluto
	CGO_ENABLED=0 $(GO) build -o pluto ./cmd/pluto

.PHONY: test
test: ## run every test but the fault-injection suite, race detector on (unit, conformance, end-to-end with real processes)
	$(GO) test -race -count=1 -timeout 20m $(TEST_PKGS)

.PHONY: test-race
test-race: ## same as test (kept for muscle memory)
	$(GO) test -race -count=1 -timeout 20m $(TEST_PKGS)

.PHONY: screenshots
screenshots: ## regenerate the console screenshots in docs/console/ (headless Chromium: apt-get install chromium)
	PLUTO_SCREENSHOTS_DIR=$(CURDIR)/docs/console $(GO) test -count=1 -run '^TestConsoleScreenshots$$' ./e2e/console

.PHONY: test-faults
test-faults: ## fault-injection suite: real processes killed, frozen, partitioned, restarted; prints lost/duplicates/recovery per scenario (docs/faults.md)
	$(GO) test -race -count=1 -timeout 10m -v ./e2e/faults/

# make sim: the deterministic simulation (internal/sim, docs/simulation.md).
# SEEDS=n runs seeds 1..n (FROM=k starts at k); SEED=n replays one seed and
# prints its whole trace; ALL=1 goes on after a failing seed and prints a
# summary by invariant. The seeds' SQLite files go to /dev/shm when it exists.
SEEDS ?= 300
SIM_TMP := $(shell test -d /dev/shm && test -w /dev/shm && echo /dev/shm)

.PHONY: sim
sim: ## deterministic simulation: real engine, fake time, faulty store, misbehaving workers (SEEDS=300; SEED=n replays one)
	cd internal/sim && $(if $(SIM_TMP),TMPDIR=$(SIM_TMP)) $(GO) test -count=1 -timeout 30m -run '^TestSim$$' \
		$(if $(SEED),-seed=$(SEED),-seeds=$(SEEDS) $(if $(FROM),-from=$(FROM)) $(if $(ALL),-all))

.PHONY: test-short
test-short: ## fast tests without the race detector
	$(GO) test -short -count=1 $(PKGS)

.PHONY: mutate
mutate: ## mutation testing: each catalogued mutant applied to a copy of the module, its tests run, the kill rate printed (MUTATE_FLAGS='-run ^cron- -min 80')
	$(GO) run ./internal/tools/mutate $(MUTATE_FLAGS)

.PHONY: bench
bench: ## pluto bench (burndown 50k and steady 1000/s) + Go micro-benchmarks
	$(GO) run ./cmd/pluto bench --runs 50000
	$(GO) run ./cmd/pluto bench --mode steady --rate 1000 --runs 10000
	$(GO) test -run '^$$' -bench . -benchtime 2x ./internal/store/... ./internal/engine/...

.PHONY: tools
tools: ## install the code generators (buf, protoc-gen-go, protoc-gen-go-grpc)
	$(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GRPC_VERSION)

.PHONY: generate
generate: tools ## regenerate internal/gen from proto/
	PATH="$(GOBIN):$$PATH" buf generate

.PHONY: verify
verify: generate ## fail when generated code is stale or go.mod is untidy
	@git diff --exit-code -- internal/gen || (echo "internal/gen is stale: run make generate and commit" && exit 1)
	@test -z "$$(git status --porcelain -- internal/gen)" || (echo "untracked generated files: run make generate and commit" && exit 1)
	@$(GO) mod tidy -diff >/dev/null || (echo "go.mod/go.sum are not tidy: run go mod tidy and commit" && exit 1)

.PHONY: lint
lint: ## gofmt + go vet (+ buf lint on the protocol)
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^internal/gen/')); test -z "$$out" || (echo "gofmt needed:"; echo "$$out"; exit 1)
	$(GO) vet $(PKGS)

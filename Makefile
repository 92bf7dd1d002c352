# Eddy's build, demo and test entry points. Everything a fresh machine needs
# is installed from here (scripts/deps.sh), never by hand.
GO        ?= go
BIN       := bin/eddy
MQTT_PORT ?= 1883
HTTP_ADDR ?= 127.0.0.1:8080

.PHONY: all build build-beam beam-prism deps test-deps run test vet bench soak fuzz docs clean

all: build

# Beam v2.77.0's prism job server listens on every interface; this swaps in
# third_party/beam-prism's copy of its one file, bound to 127.0.0.1, for
# every target that builds or tests Beam code (a Go workspace reading Beam
# from bin/beam-prism plus a build overlay; a binary built without them
# refuses --runner prism: docs/design.md, Beam). It is the first
# prerequisite of those targets: the others build with it.
BEAM_PRISM := $(CURDIR)/bin/beam-prism
beam-prism:
	./scripts/beam-prism.sh $(BEAM_PRISM) >/dev/null
build-beam test bench: export GOWORK := $(BEAM_PRISM)/go.work
build-beam test bench: export GOFLAGS += -overlay=$(BEAM_PRISM)/overlay.json

# The edge binary is built without cgo (as deploy/'s images are): Go's own
# DNS resolver and user lookup, and no libc mapped into the process (about
# 1.3 MiB less RSS; docs/design.md, "The binary's pages").
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/eddy

# eddy-beam: the Beam runner binary (kept out of the edge binary; `eddy beam`
# runs it from bin/ or PATH).
build-beam: beam-prism
	$(GO) build -o bin/eddy-beam ./cmd/eddy-beam

deps:
	./scripts/deps.sh

# deps plus the k8s control-plane binaries the controller's tests start.
test-deps:
	./scripts/deps.sh --tests

# The main demo: broker + WAL + a simulated device fleet + the overheat
# pipeline + the dashboard. Watch alerts with: mosquitto_sub -t 'alerts/#' -v
run: deps build
	./scripts/demo.sh

vet:
	$(GO) vet ./...

# The test suite CI runs (.ci/run). Unit, integration (real broker, real
# MQTT clients, socat ptys, headless Chromium) and the kill -9 test.
test: beam-prism test-deps
	$(GO) vet ./...
	EDDY_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 15m ./...
	EDDY_REQUIRE_TOOLS=1 $(GO) test -count=1 -race -timeout 10m ./runner/... ./operators/... ./connectors/... $$($(GO) list ./pipeline/... | grep -v '/pipeline/beam$$')
	# Beam v2.77.0's SDK harness races with itself when a live job is
	# cancelled (harness.go closes respc while a bundle goroutine sends on
	# it), so its live tests run only in the plain `go test ./...` above;
	# everything else in pipeline/beam runs with -race.
	EDDY_REQUIRE_TOOLS=1 $(GO) test -count=1 -race -timeout 10m -skip 'TestLive|TestEddyBeamPrismListeners' ./pipeline/beam

bench: beam-prism deps build
	./scripts/bench.sh

soak: deps build
	$(GO) test -count=1 -tags soak -timeout 60m -run Soak -v ./cmd/eddy/

fuzz:
	./scripts/fuzz.sh 30s

docs:
	$(GO) test ./pipeline/ -run TestReferenceDocs -update

clean:
	rm -rf bin eddy-data

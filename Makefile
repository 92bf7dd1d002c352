# Eddy's build, demo and test entry points. Everything a fresh machine needs
# is installed from here (scripts/deps.sh), never by hand.
GO        ?= go
BIN       := bin/eddy
MQTT_PORT ?= 1883
HTTP_ADDR ?= 127.0.0.1:8080

.PHONY: all build build-beam deps test-deps run test vet bench soak fuzz docs clean

all: build

# The edge binary is built without cgo (as deploy/'s images are): Go's own
# DNS resolver and user lookup, and no libc mapped into the process (about
# 1.3 MiB less RSS; docs/design.md, "The binary's pages").
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/eddy

# eddy-beam: the Beam runner binary (kept out of the edge binary; `eddy beam`
# runs it from bin/ or PATH).
build-beam:
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
test: test-deps
	$(GO) vet ./...
	EDDY_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 15m ./...
	EDDY_REQUIRE_TOOLS=1 $(GO) test -count=1 -race -timeout 10m ./runner/... ./operators/... ./pipeline/... ./connectors/...

bench: deps build
	./scripts/bench.sh

soak: deps build
	$(GO) test -count=1 -tags soak -timeout 60m -run Soak -v ./cmd/eddy/

fuzz:
	./scripts/fuzz.sh 30s

docs:
	$(GO) test ./pipeline/ -run TestReferenceDocs -update

clean:
	rm -rf bin eddy-data

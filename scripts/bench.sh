#!/usr/bin/env bash
# make bench: the micro-benchmarks next to the hot code, then the
# whole-system MQTT benchmark, printed as Markdown tables (the format of
# docs/benchmarks.md). Everything runs on 127.0.0.1 and is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCHTIME=${BENCHTIME:-1s}
out=$(mktemp)
# Beam's prism job server bound to loopback (third_party/beam-prism): make
# bench sets it up; so does this script when it is run by itself.
if [ -z "${GOWORK:-}" ]; then
  prism=$(scripts/beam-prism.sh)
  export GOWORK=$prism/go.work GOFLAGS="${GOFLAGS:-} -overlay=$prism/overlay.json"
fi
trap 'rm -f "$out"' EXIT

echo "## Eddy benchmarks — $(date -u +%Y-%m-%d), $(nproc) cores, $(go version | awk '{print $3}')"
echo
echo "### Operators and engine (pre-decoded events, one core)"
echo
go test -run '^$' -bench . -benchtime "$BENCHTIME" -benchmem \
  ./runner/engine/ ./operators/window/ ./operators/alert/ ./operators/dedupe/ ./operators/throttle/ \
  ./runner/wal/ ./runner/twin/ ./connectors/modbus/ ./connectors/mqtt/ ./runner/actions/ >"$out" 2>&1 || { cat "$out"; exit 1; }
go test -run '^$' -bench PubSub -benchtime 20000x -benchmem ./runner/broker/ >>"$out" 2>&1 || { cat "$out"; exit 1; }
awk '
  /^pkg:/ { pkg=$2; sub(/.*eddy\//, "", pkg) }
  /^Benchmark/ {
    name=$1; sub(/-[0-9]+$/, "", name)
    ns=""; rate=""; unit=""; allocs=""; bytes=""
    for (i=3; i<=NF; i++) {
      if ($(i+1) == "ns/op") ns=$i
      if ($(i+1) == "allocs/op") allocs=$i
      if ($(i+1) == "B/op") bytes=$i
      if ($(i+1) ~ /\/s$/) { rate=$i; unit=$(i+1) }
    }
    if (!header) { print "| package | benchmark | ns/op | rate | B/op | allocs/op |"; print "|---|---|---:|---:|---:|---:|"; header=1 }
    if (rate != "") rate=sprintf("%.3gM %s", rate/1e6, unit)
    printf "| %s | %s | %s | %s | %s | %s |\n", pkg, name, ns, rate, bytes, allocs
  }' "$out"

CGO_ENABLED=0 go build -o bin/eddy ./cmd/eddy # as `make build` and deploy/ build it
go run ./bench/mqttbench -eddy bin/eddy "$@" 2> >(grep -v 'level=WARN' >&2)
# The cloud–edge link: uplink throughput (with a plain JetStream publisher
# as the peer), catch-up after a hub restart, plan fan-out, edge RSS.
go run ./bench/linkbench -eddy bin/eddy
# Container actions against a private containerd (root, containerd, runc,
# busybox-static: scripts/deps.sh): publish → alert → container started,
# with the same CRI calls made directly and `ctr run --rm` as peers, and the
# podlifecycle stream's delay and size. 20 actions.
echo
echo "### Container actions (real containerd; load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo
go test -run '^$' -bench ActionStart -benchtime 20x ./runner/ 2>&1 | grep -v 'level=' | awk '
  /^BenchmarkActionStart/ {
    print "| metric | value |"; print "|---|---:|"
    for (i=3; i<NF; i+=2) if ($(i+1) != "ns/op") printf "| %s | %s |\n", $(i+1), $i
  }'

# The same pipeline on the edge engine and on Beam (direct, prism) over
# recorded events: BEAM_EVENTS=0 skips it (prism needs minutes and GBs at 1M).
if [ "${BEAM_EVENTS:-1000000}" != 0 ]; then
  echo
  go run ./bench/beambench -n "${BEAM_EVENTS:-1000000}" 2> >(grep -v '^{\|^time=' >&2)
fi
# Live Beam jobs (?live=true) on prism against an embedded hub: throughput
# vs a replay of the same stream, and window close under continuous traffic
# vs Beam's natsio.Read. BEAM_LIVE_EVENTS=0 skips it.
if [ "${BEAM_LIVE_EVENTS:-100000}" != 0 ]; then
  echo
  go run ./bench/beamlivebench -n "${BEAM_LIVE_EVENTS:-100000}" 2> >(grep -v '^{\|^time=' >&2)
fi
echo
echo "### KubeEdge router (Rules) on real parts (load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo
# kube-apiserver, eddy hub, one eddy edge and eddy-controller --router-addr:
# 1,000 rest->eventbus POSTs (peer: paho QoS 1 straight to the edge broker)
# and 1,000 eventbus->rest messages.
KUBEBUILDER_ASSETS=$(scripts/k8s-bins.sh) go test -tags scale -count=1 -run TestRouterBench -v -timeout 10m ./cmd/eddy-controller \
  2>/dev/null | grep '^|'
echo
echo "### Cloud controller at fleet scale (load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo
# The cloud controller at fleet scale: a real kube-apiserver, a NATS hub
# and 1,000 / 10,000 simulated edge nodes (EDDY_SCALE_NODES to change).
KUBEBUILDER_ASSETS=$(scripts/k8s-bins.sh) go test -tags scale -count=1 -run TestScale -v -timeout 30m ./cmd/eddy-controller \
  2>/dev/null | grep '^|'

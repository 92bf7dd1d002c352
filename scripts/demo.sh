#!/usr/bin/env bash
# The quick-start demo: eddy run with the overheat pipeline and a simulated
# fleet of thermometers publishing to its embedded broker.
set -euo pipefail
cd "$(dirname "$0")/.."
MQTT_PORT=${MQTT_PORT:-1883}
HTTP_ADDR=${HTTP_ADDR:-127.0.0.1:8080}
DATA_DIR=${DATA_DIR:-./eddy-data}
./bin/eddy run --mqtt-addr "127.0.0.1:${MQTT_PORT}" --http-addr "${HTTP_ADDR}" --data-dir "${DATA_DIR}" \
  examples/overheat/overheat.yaml &
runner=$!
sim=
# stop ends the demo with eddy's exit status. Ctrl-C (INT) reaches the whole
# process group, so eddy and the simulator already have it, and a second
# interrupt would make eddy exit at once without finishing its shutdown.
# Otherwise (TERM to this script, eddy exiting by itself, or this script
# failing) they are told here.
stop() {
  local why=$1 status=$2
  trap - EXIT INT TERM
  if [ "$why" != INT ]; then
    if [ -n "$sim" ]; then kill -INT "$sim" 2>/dev/null || true; fi
    if [ -n "$runner" ]; then kill -INT "$runner" 2>/dev/null || true; fi
  fi
  if [ -n "$sim" ]; then wait "$sim" 2>/dev/null || true; fi
  if [ -n "$runner" ]; then
    status=0
    wait "$runner" || status=$?
  fi
  exit "$status"
}
trap 'stop INT 130' INT
trap 'stop TERM 143' TERM
trap 'stop EXIT $?' EXIT
for _ in $(seq 50); do curl -fsS "http://${HTTP_ADDR}/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
./bin/eddy sim mqtt --broker "tcp://127.0.0.1:${MQTT_PORT}" --devices 5 --hot 2 --rate 20 --log-level warn &
sim=$!
cat <<MSG

  Eddy is running.
    dashboard:  http://${HTTP_ADDR}/
    metrics:    http://${HTTP_ADDR}/metrics
    alerts:     mosquitto_sub -p ${MQTT_PORT} -t 'alerts/#' -v
  Two of the five simulated thermometers overheat; their alerts fire after ~40 s.
  Ctrl-C stops (pipelines checkpoint, the log closes).

MSG
status=0
wait "$runner" || status=$?
runner= # reaped: stop (the EXIT trap) stops the simulator
exit "$status"

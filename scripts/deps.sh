#!/usr/bin/env bash
# Installs the system packages Eddy's tests and demo use, only when missing:
# Debian's MQTT clients and broker (interop tests), socat (serial pty pairs),
# chromium (dashboard browser test), containerd + runc + busybox-static (the
# container action tests start a private containerd; scripts/busybox-image.sh
# builds their image) and gcc (cgo, for `go test -race`). Safe to run
# repeatedly.
#
# Usage: scripts/deps.sh [--tests]
#
# --tests (what `make test` passes) also builds kube-apiserver, etcd and
# kubectl (scripts/k8s-bins.sh) for the controller's envtest tests: minutes
# on a cold machine, so the demo (`make run`) does not wait for them.
set -euo pipefail
case "${1:-}" in
  "") ;;
  --tests)
    # Built from the Go module proxy and cached in ~/.cache/eddy (a few
    # seconds when cached).
    "$(dirname "$0")/k8s-bins.sh" >/dev/null
    ;;
  *)
    echo "usage: $0 [--tests]" >&2
    exit 2
    ;;
esac
need=()
command -v mosquitto_pub >/dev/null || need+=(mosquitto-clients)
command -v curl >/dev/null || need+=(curl)
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v socat >/dev/null || need+=(socat)
command -v gcc >/dev/null || need+=(gcc)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || [ -x /usr/sbin/runc ] || need+=(runc)
# busybox-static, not busybox: the image needs a statically linked binary.
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
if [ "${EDDY_SKIP_BROWSER:-}" = "" ]; then
  command -v chromium >/dev/null || need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "installing: ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

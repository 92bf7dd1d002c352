#!/usr/bin/env bash
# Builds a real kube-apiserver, etcd and kubectl from the Go module proxy (no
# other downloads) for the controller's envtest-based tests, and caches them
# outside the repository. Prints the directory to use as KUBEBUILDER_ASSETS.
#
#   KUBEBUILDER_ASSETS=$(scripts/k8s-bins.sh) go test ./controller/...
#
# Cold: about 4-6 minutes on 2 cores; warm: a few seconds (the binaries are
# reused when present).
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-v1.32.13}
STAGING_VERSION=v0.${K8S_VERSION#v1.}
ETCD_VERSION=${ETCD_VERSION:-v3.5.16} # what k8s.io/kubernetes@v1.32.13's go.mod pins
CACHE=${EDDY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/eddy}
OUT=$CACHE/k8s-$K8S_VERSION/bin
if [ -x "$OUT/kube-apiserver" ] && [ -x "$OUT/etcd" ] && [ -x "$OUT/kubectl" ]; then
  echo "$OUT"
  exit 0
fi
SRC=$CACHE/k8s-$K8S_VERSION/src
mkdir -p "$SRC" "$OUT"
cd "$SRC"
staging="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils
pod-security-admission sample-apiserver sample-cli-plugin sample-controller"
{
  echo "module eddy.local/k8s-bins"
  echo
  echo "go 1.24"
  echo
  echo "require ("
  echo "	k8s.io/kubernetes $K8S_VERSION"
  echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  echo ")"
  echo
  echo "replace ("
  for m in $staging; do echo "	k8s.io/$m => k8s.io/$m $STAGING_VERSION"; done
  echo ")"
} >go.mod
cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
echo "building kube-apiserver, kubectl $K8S_VERSION and etcd $ETCD_VERSION into $OUT (first time: several minutes)" >&2
# This is a module of its own: not part of a workspace the caller set up
# (make test and make bench set GOWORK for Beam's prism patch).
export GOWORK=off
GOFLAGS=-mod=mod go mod tidy >&2
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
go build -ldflags "$ldflags" -o "$OUT/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
go build -ldflags "$ldflags" -o "$OUT/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl >&2
go build -ldflags "-s -w" -o "$OUT/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
for b in kube-apiserver kubectl etcd; do mv "$OUT/$b.tmp" "$OUT/$b"; done
echo "$OUT"

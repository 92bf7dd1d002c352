#!/usr/bin/env bash
# Prepares the build of Beam's prism runner with its job server bound to
# loopback (third_party/beam-prism/README.md) and prints the directory that
# holds the two files every build and test of Beam code uses:
#
#   dir=$(scripts/beam-prism.sh)
#   GOWORK=$dir/go.work GOFLAGS=-overlay=$dir/overlay.json go build ./cmd/eddy-beam
#
# make build-beam, make test and make bench do this. What it writes, under
# DIR (default bin/beam-prism):
#
#   sdks-v2@VERSION/  the Beam module, hard-linked (else copied) from Go's
#                     module cache: `go build -overlay` may not replace
#                     files beneath GOMODCACHE, so the build reads Beam
#                     from here (nothing in it is modified)
#   go.work           this module, with Beam replaced by that directory
#   overlay.json      Beam's jobservices/server.go -> third_party's patched
#                     copy, and pipeline/beam/prism_loopback_overlay.go (not
#                     on disk) -> the file that makes beam.PrismLoopback true
#
# It fails, saying what to do, when Beam's file is not the one the patch was
# made from (a Beam upgrade), instead of building an unpatched prism.
#
# Usage: scripts/beam-prism.sh [DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/bin/beam-prism}
third=$root/third_party/beam-prism
field() { awk -v k="$1" '$1 == k { print $2 }' "$third/UPSTREAM"; }
module=$(field module)
want_version=$(field version)
file=$(field file)
want_sum=$(field sha256)

# Where Go keeps the module of the build (go.mod's version), downloading it
# if needed. GOWORK and GOFLAGS are cleared: this asks about the module as
# go.mod has it, not about a build this script set up before.
info=$(cd "$root" && GOWORK=off GOFLAGS= go mod download -json "$module") || {
  echo "beam-prism: cannot locate $module (go mod download $module failed: see above)" >&2
  exit 1
}
dir=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')
version=$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Version": "\(.*\)",*$/\1/p')
upstream=$dir/$file
if [ -z "$dir" ] || [ ! -f "$upstream" ]; then
  echo "beam-prism: $module $version has no $file (looked in '$dir'); prism's job server moved: see third_party/beam-prism/README.md" >&2
  exit 1
fi
sum=$(sha256sum "$upstream" | cut -d' ' -f1)
if [ "$sum" != "$want_sum" ]; then
  cat >&2 <<MSG
beam-prism: $upstream ($module $version)
  is not the file third_party/beam-prism/_overlay/server.go was patched from
  ($module $want_version, sha256 $want_sum; this one is $sum).
  Beam was upgraded: check whether it now binds prism's job server to
  loopback itself (then drop third_party/beam-prism and this script), else
  copy the new server.go over _overlay/server.go, re-apply the marked
  one-line change and update third_party/beam-prism/UPSTREAM (README.md).
MSG
  exit 1
fi
for p in "$out" "$third" "$root"; do
  case $p in *'"'* | *'\'* | *' '*) echo "beam-prism: cannot use a path with a space, \" or \\: $p" >&2; exit 1 ;; esac
done
mkdir -p "$out"

# The module tree, made once per version (built aside, then renamed, so a
# concurrent run never sees half of it). Only go.mod and go/ are Go's.
sdk=$out/sdks-v2@$version
if [ ! -f "$sdk/.complete" ]; then
  tmp=$(mktemp -d "$out/.sdk.XXXXXX")
  for e in go.mod go; do
    cp -rl "$dir/$e" "$tmp/$e" 2>/dev/null || cp -r "$dir/$e" "$tmp/$e"
  done
  # The cache's directories are read-only; these are new ones (the files
  # are the cache's, untouched), writable so that rm -rf can clean up.
  find "$tmp" -type d -exec chmod u+w {} +
  touch "$tmp/.complete"
  rm -rf "$sdk"
  mv -T "$tmp" "$sdk" 2>/dev/null || rm -rf "$tmp" # lost a race: the other run's tree is complete
fi

write() { # FILE: stdin to FILE, atomically
  local tmp
  tmp=$(mktemp "$1.XXXXXX")
  cat >"$tmp"
  mv "$tmp" "$1"
}
write "$out/go.work" <<WORK
// Written by scripts/beam-prism.sh: this module, with Beam read from a
// copy outside the module cache so that overlay.json can patch it.
go $(awk '$1 == "go" { print $2; exit }' "$root/go.mod")

use $root

replace $module $version => $sdk
WORK
write "$out/overlay.json" <<JSON
{
  "Replace": {
    "$sdk/$file": "$third/_overlay/server.go",
    "$root/pipeline/beam/prism_loopback_overlay.go": "$third/_overlay/prism_loopback.go"
  }
}
JSON
echo "$out"

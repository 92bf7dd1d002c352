#!/usr/bin/env bash
# Builds a tiny OCI image archive from Debian's busybox-static, with no
# registry and no Docker: two images sharing one layer,
#
#   localhost/eddy/busybox:1.35   Cmd ["sh"]   for actions and examples
#   localhost/eddy/pause:1.35     Cmd ["sleep", "2147483647"]  CRI sandbox image
#
# Usage: scripts/busybox-image.sh OUT.tar
# Then:  ctr -n k8s.io images import OUT.tar
#        (add -a /path/to/containerd.sock for a non-default containerd)
#
# The archive is reproducible: the same busybox binary gives the same digests.
set -euo pipefail
out=${1:?usage: $0 OUT.tar}
bb=${BUSYBOX:-/bin/busybox}
if ! "$bb" --list >/dev/null 2>&1; then
  echo "$bb is not a busybox binary; install Debian's busybox-static (apt-get install busybox-static)" >&2
  exit 1
fi
if ldd "$bb" >/dev/null 2>&1; then
  echo "$bb is dynamically linked; the image needs busybox-static (apt-get install busybox-static)" >&2
  exit 1
fi
version=1.35
case $(uname -m) in
  x86_64) arch=amd64 ;;
  aarch64) arch=arm64 ;;
  armv7l) arch=arm ;;
  *) arch=$(uname -m) ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The root filesystem: /bin/busybox, one symlink per applet, /tmp, /etc/passwd.
root=$tmp/root
mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/proc" "$root/sys" "$root/dev"
chmod 1777 "$root/tmp"
cp "$bb" "$root/bin/busybox"
for a in $("$bb" --list); do
  [ "$a" = busybox ] || ln -s busybox "$root/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"

blobs=$tmp/oci/blobs/sha256
mkdir -p "$blobs"
# An uncompressed layer: its digest is also its diff id.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$tmp/layer.tar" .
layer=$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)
layer_size=$(stat -c %s "$tmp/layer.tar")
mv "$tmp/layer.tar" "$blobs/$layer"

put() { # stores stdin as a blob, prints "digest size"
  cat >"$tmp/blob"
  local d
  d=$(sha256sum "$tmp/blob" | cut -d' ' -f1)
  mv "$tmp/blob" "$blobs/$d"
  echo "$d $(stat -c %s "$blobs/$d")"
}

manifests=()
image() { # name cmd-json
  local name=$1 cmd=$2 cfg man
  cfg=$(printf '{"architecture":"%s","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$arch" "$cmd" "$layer" | put)
  man=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    ${cfg% *} ${cfg#* } "$layer" "$layer_size" | put)
  manifests+=("$(printf '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}' \
    ${man% *} ${man#* } "$arch" "$name" "$version")")
}
image "localhost/eddy/busybox:$version" '["sh"]'
image "localhost/eddy/pause:$version" '["sleep","2147483647"]'

printf '{"imageLayoutVersion":"1.0.0"}' >"$tmp/oci/oci-layout"
(IFS=,; printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}' "${manifests[*]}") >"$tmp/oci/index.json"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$tmp/oci" -cf "$out" oci-layout index.json blobs
echo "$out: localhost/eddy/busybox:$version localhost/eddy/pause:$version" >&2

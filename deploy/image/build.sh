#!/usr/bin/env bash
# Builds Herald's container image from this repository, with no daemon and no base image:
#
#   deploy/image/build.sh [TAG]          (default TAG: herald:<workspace version>)
#
# 1. `cargo build --release --locked -p herald-cli` (the workspace's [profile.release]);
# 2. stages a build context: the binary with its debug info stripped, exactly the shared
#    libraries `ldd` names (at the paths the loader looks for them), CA roots, /etc/passwd for
#    UID 65532, the default /etc/herald/herald.toml, and an empty data directory;
# 3. `buildah bud` of deploy/image/Containerfile (FROM scratch) on that context.
#
# buildah's storage is the machine's own (/var/lib/containers/storage), with the vfs driver
# unless STORAGE_DRIVER says otherwise (vfs works everywhere, even inside a container;
# `STORAGE_DRIVER=overlay` is faster where it works); CONTAINERS_STORAGE_CONF may point
# elsewhere. Run it afterwards:
#
#   buildah --storage-driver vfs run --isolation chroot "$(buildah --storage-driver vfs from herald:0.1.0)" -- /herald --version
#
# or push it (`buildah push herald:0.1.0 docker://REGISTRY/herald:0.1.0`) and point
# deploy/kubernetes at it. Needs: cargo, binutils (objcopy), ldd, buildah.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n1)"
tag="${1:-herald:$version}"
revision="$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"

echo "== cargo build --release (herald $version, $revision)"
cargo build --release --locked -p herald-cli --manifest-path "$root/Cargo.toml"
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
bin="$target_dir/release/herald"
[ -x "$bin" ] || { echo "build.sh: no binary at $bin" >&2; exit 1; }

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
mkdir -p "$rootfs/etc/herald" "$rootfs/etc/ssl/certs" "$context/data"

# Line tables are kept in the release profile for profiling on a build machine; a pod needs none.
objcopy --strip-debug "$bin" "$rootfs/herald"
chmod 0755 "$rootfs/herald"

# Every library the loader will map, and the loader itself, copied (symlinks followed) to the
# path it is found at, so the dynamic binary runs with no distribution underneath.
libs=0
if ldd_out="$(ldd "$rootfs/herald")"; then
  while read -r first arrow path _; do
    case "$first" in linux-vdso.so.*|linux-gate.so.*) continue ;; esac
    if [ "$arrow" = "=>" ]; then
      [ "$path" != "not" ] || { echo "build.sh: ldd cannot find $first" >&2; exit 1; }
      lib="$path"
    else
      lib="$first"   # the loader: "/lib64/ld-linux-x86-64.so.2 (0x...)"
    fi
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
    echo "   $lib"
    libs=$((libs + 1))
  done <<< "$ldd_out"
else
  echo "   (a static binary: no libraries)"
fi

# rustls reads the system's roots for rediss:// and for API servers outside the cluster (the
# in-cluster service account brings its own CA).
if [ -r /etc/ssl/certs/ca-certificates.crt ]; then
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
else
  echo "build.sh: warning: no /etc/ssl/certs/ca-certificates.crt here; the image has no CA roots" >&2
fi
printf 'root:x:0:0:root:/:/sbin/nologin\nherald:x:65532:65532:herald:/var/lib/herald:/sbin/nologin\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nherald:x:65532:\n' > "$rootfs/etc/group"
# /etc/hosts before DNS, as on any distribution (glibc's default without this file is DNS first).
printf 'hosts: files dns\n' > "$rootfs/etc/nsswitch.conf"
cp "$here/herald.toml" "$rootfs/etc/herald/herald.toml"
chmod -R go-w,a+rX "$rootfs"
cp "$here/Containerfile" "$context/Containerfile"

echo "== buildah bud -t $tag ($libs libraries)"
buildah bud --isolation "${BUILDAH_ISOLATION:-chroot}" --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" -f "$context/Containerfile" -t "$tag" "$context"
echo "== $tag: $(buildah images --format '{{.Size}}' "$tag" | head -n1)"

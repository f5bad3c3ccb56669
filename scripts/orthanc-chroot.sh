#!/usr/bin/env bash
# Runs the Orthanc of a Debian root folder (Debian 13's Orthanc 1.12, that scripts/install-system-deps.sh
# debootstraps) on this machine's loopback, as if it were installed here:
#   orthanc-chroot.sh ROOT [--bind DIR]... [--bind-ro DIR]... -- ORTHANC_ARGUMENTS...
# Each DIR is bind-mounted at the same path inside ROOT, so the configuration, the Lua hook and the
# storage folders keep the paths the caller knows. The mounts live in a private mount namespace that
# dies with Orthanc: they disappear when it stops, also when it crashes or is killed, and they are
# never seen outside it. Needs root (mount namespaces and chroot); the network is the machine's own.
# The script execs its way to Orthanc, so its process id is Orthanc's (signals reach Orthanc itself).
set -euo pipefail

usage() {
  echo "usage: $0 ROOT [--bind DIR]... [--bind-ro DIR]... -- ORTHANC_ARGUMENTS..." >&2
  exit 2
}

if [ "${1:-}" != --in-namespace ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "orthanc-chroot: running Orthanc from ${1:-ROOT} needs root (chroot and a mount namespace)" >&2
    exit 1
  fi
  exec unshare --mount --propagation private -- "$0" --in-namespace "$@"
fi
shift

root="${1:-}"
[ -n "$root" ] || usage
shift
if [ ! -x "$root/usr/sbin/Orthanc" ]; then
  echo "orthanc-chroot: no Orthanc in $root (prepare it with: bash scripts/install-system-deps.sh)" >&2
  exit 1
fi
root="$(cd "$root" && pwd -P)"

bind() {
  local source="$1" mode="$2"
  [ -d "$source" ] || { echo "orthanc-chroot: cannot bind $source: not a folder" >&2; exit 1; }
  source="$(cd "$source" && pwd -P)"
  mkdir -p "$root$source"
  mount --bind "$source" "$root$source"
  if [ "$mode" = ro ]; then mount -o remount,bind,ro "$root$source"; fi
}

mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
while [ "$#" -gt 0 ]; do
  case "$1" in
    --bind) bind "${2:?}" rw; shift 2 ;;
    --bind-ro) bind "${2:?}" ro; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
exec chroot "$root" /usr/sbin/Orthanc "$@"

#!/usr/bin/env bash
# Installs the Debian packages the local stack, the tests and the benchmarks need, when missing, and
# prepares Debian 13's Orthanc 1.12 beside Debian 12's 1.10 for the second test leg (ORTHANC_FLAVOUR=1.12).
# As root it runs apt-get and debootstrap; otherwise it prints the exact command and fails.
set -euo pipefail
packages=(
  orthanc              # the PACS (Debian ships 1.10.1)
  orthanc-postgresql   # Orthanc's PostgreSQL index plugin
  orthanc-dicomweb     # DICOMweb plugin: the STOW-RS peer of the forward tests and bench
  postgresql           # a real PostgreSQL for the PostgreSQL-index test run
  dcmtk                # storescu, storescp, findscu, dcmdump: real DICOM peers
  docker-compose       # static validation of docker-compose.yml (no engine needed)
  tmux                 # a real terminal for the `autorthanc setup` wizard's prompt-driven test
  chromium             # headless browser tests of the dashboard
  nginx                # the compose front end (deploy/nginx), run in front of the test stack
  zip unzip            # Info-ZIP: zip benchmark reference and unzip -t checks
  procps               # ps, used to measure peak memory
  openssl              # a local HTTPS endpoint for the telemetry test; deploy/generate-keys.sh (htpasswd hash, self-signed certificate)
  python3-pydicom      # pydicom's test corpus (real-world DICOM files) and a second parser for the anonymiser's output
  python3-watchdog     # a Python folder watcher, the kind of downstream consumer published output must suit
  debootstrap          # a Debian 13 (trixie) root with Orthanc 1.12 for the second test leg (below)
)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-system-deps: all present (${packages[*]})"
else
  command="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: missing Debian packages: ${missing[*]}" >&2
    echo "Run as root:  $command" >&2
    exit 1
  fi
  echo "install-system-deps: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # Debian's packages start their services; the project runs its own instances on free ports.
  for service in orthanc postgresql nginx; do
    (service "$service" stop >/dev/null 2>&1 || true)
  done
fi

# Debian 13's Orthanc 1.12 and its plugins in a root folder of their own (outside the repository,
# reused while complete): test/support/orthanc.ts runs it with scripts/orthanc-chroot.sh when
# ORTHANC_FLAVOUR=1.12. Same paths and port-free setup as 1.10, without Docker.
trixie_root="${ORTHANC_TRIXIE_ROOT:-/var/cache/autorthanc/trixie-orthanc}"
trixie_packages="orthanc,orthanc-postgresql,orthanc-dicomweb"
stamp="$trixie_root/.autorthanc-complete"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$trixie_packages" ] && [ -x "$trixie_root/usr/sbin/Orthanc" ]; then
  echo "install-system-deps: Orthanc $(chroot "$trixie_root" dpkg-query -W -f='${Version}' orthanc 2>/dev/null || echo '?') ready in $trixie_root"
  exit 0
fi
# The host's own Debian mirror (a site may point apt at a local one), else Debian's CDN.
mirror="${ORTHANC_TRIXIE_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    grep -Eo 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n 1 | tr -d ' ' || true)"
  mirror="${mirror:-http://deb.debian.org/debian}"
fi
command="debootstrap --variant=minbase --include=$trixie_packages trixie $trixie_root $mirror"
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: Orthanc 1.12 (Debian 13) is not prepared in $trixie_root" >&2
  echo "Run as root:  bash scripts/install-system-deps.sh   (it runs: $command)" >&2
  exit 1
fi
partial="$trixie_root.partial"
# A folder with something mounted inside must never be deleted recursively.
if grep -qF " $partial/" /proc/self/mounts || grep -qF " $trixie_root/" /proc/self/mounts; then
  echo "install-system-deps: something is mounted under $trixie_root; unmount it first" >&2
  exit 1
fi
echo "install-system-deps: $command (about a minute, ~450 MB)"
rm -rf "$partial"
mkdir -p "$(dirname "$trixie_root")"
if ! debootstrap --variant=minbase --include="$trixie_packages" trixie "$partial" "$mirror" >"$partial.log" 2>&1; then
  tail -n 30 "$partial.log" >&2
  echo "install-system-deps: debootstrap of Debian 13 failed (log: $partial.log)" >&2
  exit 1
fi
# Debian's packages start nothing inside a chroot, but the index of apt lists is of no use here.
rm -rf "$partial/var/cache/apt/archives/"*.deb "$partial/var/lib/apt/lists/"*_dists_* 2>/dev/null || true
chroot "$partial" /usr/sbin/Orthanc --version | head -n 1
echo "$trixie_packages" >"$partial/.autorthanc-complete"
rm -rf "$trixie_root"
mv "$partial" "$trixie_root"
rm -f "$partial.log"
echo "install-system-deps: Orthanc 1.12 ready in $trixie_root"

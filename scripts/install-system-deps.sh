#!/usr/bin/env bash
# Installs the Debian packages the local stack, the tests and the benchmarks need, when missing.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -euo pipefail
packages=(
  orthanc              # the PACS (Debian ships 1.10.1)
  orthanc-postgresql   # Orthanc's PostgreSQL index plugin
  orthanc-dicomweb     # DICOMweb plugin: the STOW-RS peer of the forward tests and bench
  postgresql           # a real PostgreSQL for the PostgreSQL-index test run
  dcmtk                # storescu, storescp, findscu, dcmdump: real DICOM peers
  docker-compose       # static validation of docker-compose.yml (no engine needed)
  chromium             # headless browser tests of the dashboard
  nginx                # the compose front end (deploy/nginx), run in front of the test stack
  zip unzip            # Info-ZIP: zip benchmark reference and unzip -t checks
  procps               # ps, used to measure peak memory
  openssl              # a local HTTPS endpoint for the telemetry test; deploy/generate-keys.sh (htpasswd hash, self-signed certificate)
  python3-pydicom      # pydicom's test corpus (real-world DICOM files) and a second parser for the anonymiser's output
  python3-watchdog     # a Python folder watcher, the kind of downstream consumer published output must suit
)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-system-deps: all present (${packages[*]})"
  exit 0
fi
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

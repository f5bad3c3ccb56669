#!/usr/bin/env bash
# Fills the secrets of .env for docker compose, creating .env from .env.example when missing:
#   AUTOMATION_FUNCTION_KEY  function key (Lua hook -> function app, nginx -> function app)
#   DASHBOARD_PASSWORD       nginx login for the dashboard and the API (user: DASHBOARD_USER)
#   ORTHANC_PASSWORD         Orthanc login for people and the function app
#   POSTGRES_PASSWORD        PostgreSQL password (only read when its data volume is first created)
#   AUTOMATION_ANONYMISATION_SECRET  key of pseudonyms and replacement UIDs (32 random bytes, hex)
# and writes what nginx reads into deploy/generated/ (kept out of git):
#   htpasswd                 DASHBOARD_USER with DASHBOARD_PASSWORD hashed (sha512-crypt), rewritten
#                            whenever it no longer matches .env
#   self-signed.crt/.key     a self-signed TLS certificate, made only when TLS_CERTIFICATE_PATH and
#                            TLS_CERTIFICATE_KEY_PATH are empty (the site's own pair is checked instead)
# A value is generated only when it is missing, empty or still a "replace-me" placeholder, so the
# script is safe to re-run. --rotate replaces the function key and the dashboard password (not the
# Orthanc or PostgreSQL passwords: PostgreSQL keeps the one it was created with; and never the
# anonymisation secret, on which every pseudonym already made depends).
# Usage: deploy/generate-keys.sh [--rotate]     (AUTORTHANC_ROOT overrides the repository folder;
#        AUTORTHANC_TLS_NAMES="host.example.org 10.0.0.5" sets the self-signed certificate's names)
set -euo pipefail
root=${AUTORTHANC_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
env_file="$root/.env"
generated="$root/deploy/generated"
rotate=false
case "${1:-}" in
  --rotate) rotate=true ;;
  '') ;;
  *) echo "usage: $0 [--rotate]" >&2; exit 2 ;;
esac
fail() { echo "generate-keys: $*" >&2; exit 1; }
command -v openssl >/dev/null || fail "openssl is needed (Debian/Ubuntu: apt-get install openssl)"

if [ ! -f "$env_file" ]; then
  [ -f "$root/.env.example" ] || fail "neither $env_file nor $root/.env.example exists"
  cp "$root/.env.example" "$env_file"
  echo "generate-keys: created $env_file from .env.example (edit the paths, AE title and modalities)"
fi
chmod 600 "$env_file"

random_key() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40; }

current() { # the value of NAME in .env, empty when absent, without the quotes compose would strip
  awk -v name="$1" 'index($0, name "=") == 1 { value = substr($0, length(name) + 2) } END { print value }' "$env_file" |
    sed -E "s/^\"(.*)\"\$/\\1/; s/^'(.*)'\$/\\1/"
}

set_value() { # replace NAME=... in place, or append it
  local name=$1 value=$2 tmp
  tmp=$(mktemp "$env_file.XXXXXX")
  awk -v name="$name" -v value="$value" '
    index($0, name "=") == 1 { if (!done) print name "=" value; done = 1; next }
    { print }
    END { if (!done) print name "=" value }' "$env_file" > "$tmp"
  chmod 600 "$tmp"
  mv "$tmp" "$env_file"
}

missing() { [ -z "$1" ] || [[ "$1" == replace-me* ]]; }

changed=()
for name in AUTOMATION_FUNCTION_KEY DASHBOARD_PASSWORD ORTHANC_PASSWORD POSTGRES_PASSWORD; do
  value=$(current "$name")
  force=false
  if $rotate && { [ "$name" = AUTOMATION_FUNCTION_KEY ] || [ "$name" = DASHBOARD_PASSWORD ]; }; then force=true; fi
  if $force || missing "$value"; then
    set_value "$name" "$(random_key)"
    changed+=("$name")
  fi
done
new_anonymisation_secret=false
if missing "$(current AUTOMATION_ANONYMISATION_SECRET)"; then
  set_value AUTOMATION_ANONYMISATION_SECRET "$(openssl rand -hex 32)"
  changed+=(AUTOMATION_ANONYMISATION_SECRET)
  new_anonymisation_secret=true
fi

if [ "${#changed[@]}" -eq 0 ]; then
  echo "generate-keys: $env_file already has every secret; nothing changed (--rotate renews the function key and dashboard password)"
else
  echo "generate-keys: wrote ${changed[*]} to $env_file"
fi
if $new_anonymisation_secret; then
  echo "generate-keys: BACK UP AUTOMATION_ANONYMISATION_SECRET (e.g. with .env): every pseudonym and replacement UID is derived from it; with another secret the same patient gets another pseudonym. This script never replaces it."
fi

# Docker creates an empty folder where a bind-mounted file is missing; such a folder stands in the way.
clear_docker_folder() { if [ -d "$1" ]; then rmdir "$1" 2>/dev/null || fail "$1 is a folder, not a file: remove it"; fi; }
mkdir -p "$generated"
chmod 700 "$generated"

# --- the dashboard login for nginx ----------------------------------------------------------------
# sha512-crypt: understood by the crypt() of both Alpine (musl, the nginx image) and Debian (glibc),
# and cheap enough for nginx, which checks it on every request in its event loop (bcrypt would stall
# it); the password is 40 random characters, so its hash needs no slowness to resist guessing.
user=$(current DASHBOARD_USER)
user=${user:-operator}
password=$(current DASHBOARD_PASSWORD)
[[ "$user" != *:* ]] || fail "DASHBOARD_USER must not contain ':'"
htpasswd="$generated/htpasswd"
clear_docker_folder "$htpasswd"
stored=$( [ -f "$htpasswd" ] && awk -F: -v user="$user" '$1 == user { print substr($0, length(user) + 2) }' "$htpasswd" || true)
up_to_date=false
if [[ "$stored" == '$6$'* ]]; then
  salt=$(printf '%s' "$stored" | cut -d'$' -f3)
  [ "$(printf '%s\n' "$password" | openssl passwd -6 -salt "$salt" -stdin)" = "$stored" ] && up_to_date=true
fi
if ! $up_to_date; then
  tmp=$(mktemp "$generated/htpasswd.XXXXXX")
  printf '%s:%s\n' "$user" "$(printf '%s\n' "$password" | openssl passwd -6 -stdin)" > "$tmp"
  # nginx's worker (not root) reads it at every login; the folder (700) keeps other host users out.
  chmod 644 "$tmp"
  mv "$tmp" "$htpasswd"
  echo "generate-keys: wrote the hashed dashboard login to $htpasswd"
fi

# --- TLS --------------------------------------------------------------------------------------------
resolve() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s' "$root/${1#./}" ;; esac; }
certificate=$(current TLS_CERTIFICATE_PATH)
key=$(current TLS_CERTIFICATE_KEY_PATH)
if [ -z "$certificate" ] && [ -z "$key" ]; then
  certificate_file="$generated/self-signed.crt"
  key_file="$generated/self-signed.key"
  clear_docker_folder "$certificate_file"
  clear_docker_folder "$key_file"
  # Ours to renew: remade when missing or within 30 days of expiry.
  if [ ! -s "$certificate_file" ] || [ ! -s "$key_file" ] || ! openssl x509 -in "$certificate_file" -noout -checkend 2592000 >/dev/null 2>&1; then
    names=${AUTORTHANC_TLS_NAMES:-"localhost $(hostname 2>/dev/null || true) $(hostname -f 2>/dev/null || true) 127.0.0.1 ::1 $(hostname -I 2>/dev/null || true)"}
    san=()
    for name in $names; do
      entry="DNS:$name"
      if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then entry="IP:$name"; fi
      [[ " ${san[*]} " == *" $entry "* ]] || san+=("$entry")
    done
    cn=$(hostname 2>/dev/null || echo localhost)
    (
      umask 077
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 825 \
        -subj "/CN=$cn" -addext "subjectAltName=$(IFS=,; echo "${san[*]}")" \
        -keyout "$key_file.tmp" -out "$certificate_file.tmp" 2>/dev/null
    ) || fail "openssl could not make a self-signed certificate"
    chmod 644 "$certificate_file.tmp"
    mv "$key_file.tmp" "$key_file"
    mv "$certificate_file.tmp" "$certificate_file"
    echo "generate-keys: made a SELF-SIGNED TLS certificate ($certificate_file) for ${san[*]}."
    echo "  Browsers warn until it is trusted; for production set TLS_CERTIFICATE_PATH and TLS_CERTIFICATE_KEY_PATH"
    echo "  in .env to the site's certificate and key. $(openssl x509 -in "$certificate_file" -noout -fingerprint -sha256)"
  fi
else
  [ -n "$certificate" ] && [ -n "$key" ] || fail "set both TLS_CERTIFICATE_PATH and TLS_CERTIFICATE_KEY_PATH, or neither (for a self-signed pair)"
  certificate_file=$(resolve "$certificate")
  key_file=$(resolve "$key")
  [ -f "$certificate_file" ] || fail "TLS_CERTIFICATE_PATH: $certificate_file does not exist"
  [ -f "$key_file" ] || fail "TLS_CERTIFICATE_KEY_PATH: $key_file does not exist"
  certificate_public=$(openssl x509 -in "$certificate_file" -noout -pubkey 2>/dev/null) || fail "$certificate_file is not a PEM certificate"
  key_public=$(openssl pkey -in "$key_file" -pubout -passin pass: 2>/dev/null) || fail "$key_file is not an unencrypted PEM private key (nginx reads it at start without a passphrase)"
  [ "$certificate_public" = "$key_public" ] || fail "the key in $key_file does not belong to the certificate in $certificate_file"
  openssl x509 -in "$certificate_file" -noout -checkend 0 >/dev/null || echo "generate-keys: WARNING: the certificate in $certificate_file has expired" >&2
fi

echo "Dashboard and API login (nginx): $user / $password"
echo "Orthanc login: $(current ORTHANC_USERNAME | sed "s/^$/orthanc/") / $(current ORTHANC_PASSWORD)"
echo "Apply with: docker compose up -d"

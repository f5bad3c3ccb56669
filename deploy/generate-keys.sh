#!/usr/bin/env bash
# Fills the secrets of .env for docker compose, creating .env from .env.example when missing:
#   AUTOMATION_FUNCTION_KEY  function key (Lua hook -> function app, nginx -> function app)
#   DASHBOARD_PASSWORD       nginx login for the dashboard and the API (user: DASHBOARD_USER)
#   ORTHANC_PASSWORD         Orthanc login for people and the function app
#   POSTGRES_PASSWORD        PostgreSQL password (only read when its data volume is first created)
# A value is generated only when it is missing, empty or still a "replace-me" placeholder, so the
# script is safe to re-run. --rotate replaces the function key and the dashboard password (not the
# Orthanc or PostgreSQL passwords: PostgreSQL keeps the one it was created with).
# Usage: deploy/generate-keys.sh [--rotate]     (AUTORTHANC_ROOT overrides the repository folder)
set -euo pipefail
root=${AUTORTHANC_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
env_file="$root/.env"
rotate=false
case "${1:-}" in
  --rotate) rotate=true ;;
  '') ;;
  *) echo "usage: $0 [--rotate]" >&2; exit 2 ;;
esac

if [ ! -f "$env_file" ]; then
  if [ ! -f "$root/.env.example" ]; then
    echo "generate-keys: neither $env_file nor $root/.env.example exists" >&2
    exit 1
  fi
  cp "$root/.env.example" "$env_file"
  echo "generate-keys: created $env_file from .env.example (edit the paths, AE title and modalities)"
fi
chmod 600 "$env_file"

random_key() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 40; }

current() { # the value of NAME in .env, empty when absent
  awk -v name="$1" 'index($0, name "=") == 1 { value = substr($0, length(name) + 2) } END { print value }' "$env_file"
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

changed=()
for name in AUTOMATION_FUNCTION_KEY DASHBOARD_PASSWORD ORTHANC_PASSWORD POSTGRES_PASSWORD; do
  value=$(current "$name")
  force=false
  if $rotate && { [ "$name" = AUTOMATION_FUNCTION_KEY ] || [ "$name" = DASHBOARD_PASSWORD ]; }; then force=true; fi
  if $force || [ -z "$value" ] || [[ "$value" == replace-me* ]]; then
    set_value "$name" "$(random_key)"
    changed+=("$name")
  fi
done

if [ "${#changed[@]}" -eq 0 ]; then
  echo "generate-keys: $env_file already has every secret; nothing changed (--rotate renews the function key and dashboard password)"
else
  echo "generate-keys: wrote ${changed[*]} to $env_file"
fi
user=$(current DASHBOARD_USER)
echo "Dashboard and API login (nginx): ${user:-operator} / $(current DASHBOARD_PASSWORD)"
echo "Orthanc login: $(current ORTHANC_USERNAME | sed "s/^$/orthanc/") / $(current ORTHANC_PASSWORD)"
echo "Apply with: docker compose up -d"

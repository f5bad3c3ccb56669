#!/bin/sh
# Runs in the nginx container before nginx starts (/docker-entrypoint.d): refuse the placeholders
# of .env.example, which would otherwise be working credentials known to everybody.
set -eu
for name in AUTOMATION_FUNCTION_KEY DASHBOARD_PASSWORD; do
  eval "value=\${$name:-}"
  case "$value" in
    ''|replace-me*)
      echo "autorthanc-functions: $name is not set (still the .env.example placeholder). Run deploy/generate-keys.sh, then docker compose up -d." >&2
      exit 1
      ;;
  esac
done
case "${DASHBOARD_USER:-}" in
  *:*|'') echo "autorthanc-functions: DASHBOARD_USER must be non-empty and contain no ':'" >&2; exit 1 ;;
esac

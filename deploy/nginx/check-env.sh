#!/bin/sh
# Runs in the nginx container before nginx starts (/docker-entrypoint.d, before the image fills the
# templates): refuses the placeholders of .env.example, which would be credentials known to everybody,
# values that would break or change the meaning of the nginx configuration they are written into, a
# password file that is missing or not hashed, and missing TLS files. Paths can be overridden for tests.
set -eu
htpasswd=${AUTORTHANC_HTPASSWD:-/etc/nginx/autorthanc/htpasswd}
tls_dir=${AUTORTHANC_TLS_DIR:-/etc/nginx/tls}
fix="Run deploy/generate-keys.sh, then docker compose up -d."

fail() {
  echo "autorthanc-functions: $*" >&2
  exit 1
}

case "${AUTOMATION_FUNCTION_KEY:-}" in
  ''|replace-me*) fail "AUTOMATION_FUNCTION_KEY is not set (still the .env.example placeholder). $fix" ;;
esac
# The same rule as deploy/functions/sync-keys.js; it also keeps the key a plain word in nginx's config.
printf '%s' "$AUTOMATION_FUNCTION_KEY" | grep -Eqx '[A-Za-z0-9_-]{16,}' ||
  fail 'AUTOMATION_FUNCTION_KEY must be at least 16 characters of A-Z, a-z, 0-9, "_" or "-".'
if [ -n "${AUTOMATION_MASTER_KEY:-}" ]; then
  case "$AUTOMATION_MASTER_KEY" in replace-me*) fail "AUTOMATION_MASTER_KEY is still a placeholder: set a real one or leave it empty." ;; esac
  printf '%s' "$AUTOMATION_MASTER_KEY" | grep -Eqx '[A-Za-z0-9_+/=.~-]{16,}' ||
    fail 'AUTOMATION_MASTER_KEY must be at least 16 characters of A-Z, a-z, 0-9 or "_+/=.~-" (or empty).'
fi
case "${DASHBOARD_USER:-}" in
  *:*|'') fail "DASHBOARD_USER must be non-empty and contain no ':'" ;;
esac
for name in ORTHANC_HTTPS_PORT OHIF_PORT; do
  eval "value=\${$name:-}"
  printf '%s' "$value" | grep -Eqx '[0-9]{1,5}' || fail "$name must be a port number (it is '$value')."
done

# The dashboard login: deploy/generate-keys.sh writes it hashed (nginx never needs the password itself).
[ -f "$htpasswd" ] && [ -s "$htpasswd" ] ||
  fail "the dashboard password file deploy/generated/htpasswd is missing or empty (Docker creates an empty folder in place of a missing file: remove it). $fix"
if grep -v '^#' "$htpasswd" | grep -v '^$' | grep -Eqv '^[^:]+:\$(6|5|2[aby])\$'; then
  fail "deploy/generated/htpasswd holds a password that is not hashed with sha512-crypt, sha256-crypt or bcrypt. $fix"
fi
awk -F: -v user="$DASHBOARD_USER" '$1 == user { found = 1 } END { exit !found }' "$htpasswd" ||
  fail "deploy/generated/htpasswd has no line for DASHBOARD_USER '$DASHBOARD_USER' (it changed since it was written). $fix"

for file in certificate.pem key.pem; do
  [ -f "$tls_dir/$file" ] && [ -s "$tls_dir/$file" ] ||
    fail "the TLS $file is missing or empty: TLS_CERTIFICATE_PATH / TLS_CERTIFICATE_KEY_PATH in .env must name the site's certificate and key, or stay at their defaults for the self-signed pair that deploy/generate-keys.sh makes (Docker creates an empty folder in place of a missing file: remove it)."
done

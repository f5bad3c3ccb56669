#!/usr/bin/env bash
# Creates the function app's keys for docker compose: deploy/secrets/host.json (read by the Functions
# host, AzureWebJobsSecretStorageType=files), deploy/secrets/htpasswd (nginx login for the API and
# dashboard), and prints the lines to put in .env. Existing files are kept unless --force is given.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=deploy/secrets
mkdir -p "$dir"
if [ -f "$dir/host.json" ] && [ "${1:-}" != "--force" ]; then
  echo "generate-keys: $dir/host.json exists (use --force to replace it)" >&2
  exit 1
fi
key() { head -c 32 /dev/urandom | base64 | tr -d '/+=' | head -c 40; }
function_key=$(key)
master_key=$(key)
cat > "$dir/host.json" <<JSON
{
  "masterKey": { "name": "master", "value": "$master_key", "encrypted": false },
  "functionKeys": [ { "name": "default", "value": "$function_key", "encrypted": false } ],
  "systemKeys": []
}
JSON
user=${DASHBOARD_USER:-operator}
password=${DASHBOARD_PASSWORD:-$(key)}
printf '%s:%s\n' "$user" "$(openssl passwd -apr1 "$password")" > "$dir/htpasswd"
chmod 600 "$dir/host.json"
echo "Add to .env:"
echo "AUTOMATION_FUNCTION_KEY=$function_key"
echo "AUTOMATION_MASTER_KEY=$master_key"
echo "Dashboard and API login (nginx): $user / $password"

// Runs in the function app container before the Functions host starts (deploy/functions/start.sh).
// Makes FUNCTIONS_SECRETS_PATH/host.json (AzureWebJobsSecretStorageType=files) hold the function key
// from .env, so .env is the one place where keys live: the Lua hook, nginx and the host all read
// AUTOMATION_FUNCTION_KEY and can never disagree. Other keys in the file are kept; the master key is
// kept too unless AUTOMATION_MASTER_KEY is set (a random one is made for a new file).
// Plain CommonJS with no dependencies: it runs before the app, with the image's node.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

function fail(message) {
  console.error(`autorthanc-functions: ${message}`);
  process.exit(1);
}

const functionKey = (process.env.AUTOMATION_FUNCTION_KEY || '').trim();
const masterKey = (process.env.AUTOMATION_MASTER_KEY || '').trim();
const dir = process.env.FUNCTIONS_SECRETS_PATH || '/azure-functions-host/Secrets';
const file = path.join(dir, 'host.json');

if (functionKey === '' || functionKey.startsWith('replace-me')) {
  fail(
    'AUTOMATION_FUNCTION_KEY is not set (still the .env.example placeholder). Run deploy/generate-keys.sh, then docker compose up -d.',
  );
}
if (!/^[A-Za-z0-9_\-]{16,}$/.test(functionKey)) {
  fail(
    'AUTOMATION_FUNCTION_KEY must be at least 16 characters of A-Z, a-z, 0-9, "_" or "-" (deploy/generate-keys.sh makes one).',
  );
}

let secrets;
try {
  secrets = JSON.parse(fs.readFileSync(file, 'utf8'));
} catch (error) {
  if (error.code !== 'ENOENT')
    console.error(`autorthanc-functions: ${file} is unreadable (${error.message}); writing a new one`);
  secrets = {};
}
if (typeof secrets !== 'object' || secrets === null || Array.isArray(secrets)) secrets = {};

const key = (name, value) => ({ name, value, encrypted: false });
if (masterKey !== '') secrets.masterKey = key('master', masterKey);
else if (!secrets.masterKey || typeof secrets.masterKey.value !== 'string')
  secrets.masterKey = key('master', crypto.randomBytes(32).toString('base64url'));
const others = Array.isArray(secrets.functionKeys) ? secrets.functionKeys.filter((k) => k && k.name !== 'default') : [];
secrets.functionKeys = [key('default', functionKey), ...others];
if (!Array.isArray(secrets.systemKeys)) secrets.systemKeys = [];

fs.mkdirSync(dir, { recursive: true });
// Replicas (docker compose up --scale functions=N) share this folder and all run as the same pid in
// their containers: a random part keeps their temporary files apart.
const temporary = `${file}.${process.pid}.${crypto.randomBytes(6).toString('hex')}.tmp`;
fs.writeFileSync(temporary, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
fs.renameSync(temporary, file);
console.log(`autorthanc-functions: function key written to ${file}`);

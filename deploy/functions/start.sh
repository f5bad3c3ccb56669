#!/bin/sh
# Entry point of the function app image: put the function key from the environment into the host's
# secrets folder, then start the Functions host exactly as the base image does.
set -e
node /opt/autorthanc/sync-keys.js
exec /opt/startup/start_nonappservice.sh "$@"

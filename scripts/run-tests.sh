#!/usr/bin/env bash
# Runs the node:test suites named as arguments (unit, integration, e2e, devhost, reliability)
# in ONE node --test invocation, so the run ends with a single summary that CI reads.
set -euo pipefail
cd "$(dirname "$0")/.."
files=()
for suite in "$@"; do
  if [ ! -d "test/$suite" ]; then
    echo "run-tests: no folder test/$suite" >&2
    exit 2
  fi
  while IFS= read -r f; do files+=("$f"); done < <(find "test/$suite" -name '*.test.ts' -type f | sort)
done
if [ "${#files[@]}" -eq 0 ]; then
  echo "run-tests: no test files found in: $*" >&2
  exit 2
fi
echo "run-tests: ${#files[@]} files from: $*"
# Suites that talk to Orthanc say first which Orthanc (ORTHANC_FLAVOUR) this run starts, and fail at
# once when it cannot start.
for suite in "$@"; do
  case "$suite" in
    integration | e2e)
      node --import tsx test/support/print-orthanc-version.ts
      break
      ;;
  esac
done
exec node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-reporter=spec "${files[@]}"

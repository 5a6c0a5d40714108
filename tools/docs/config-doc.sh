#!/usr/bin/env bash
# Prints docs/configuration.md from the services' own configuration tables (fg-<svc>
# --config-markdown), so the documentation cannot drift from the code.
#   tools/docs/config-doc.sh BUILD_DIR            print the document
#   tools/docs/config-doc.sh BUILD_DIR --check    compare with docs/configuration.md (exit 1 on drift)
set -euo pipefail
build=${1:?usage: config-doc.sh BUILD_DIR [--check]}
root=$(cd "$(dirname "$0")/../.." && pwd)

render() {
  cat <<'HEAD'
# Configuration

Every service is configured by `FG_*` environment variables, validated at start: a missing or
malformed value stops the service with one line naming the variable, and exit status 2. Secrets
are never printed. `deploy/local/stack.sh env` prints the local stack's values. This file is
generated from the services' tables (`tools/docs/config-doc.sh build`); `fg-<service> --help`
prints the same.
HEAD
  for svc in webhook token-repository event-log commit-sync triples-generator; do
    printf '\n## fg-%s\n\n| variable | type | default | meaning |\n|---|---|---|---|\n' "$svc"
    "$build/services/$svc/fg-$svc" --config-markdown
  done
}

if [ "${2:-}" = "--check" ]; then
  if ! diff -u "$root/docs/configuration.md" <(render); then
    echo "docs/configuration.md is out of date: run tools/docs/config-doc.sh $build > docs/configuration.md" >&2
    exit 1
  fi
  echo "docs/configuration.md matches the services' configuration tables"
else
  render
fi

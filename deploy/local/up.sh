#!/usr/bin/env bash
# forgegraph in one command: installs the Debian packages that are missing, builds the release
# binaries, starts the local stack (servers + the five services) and runs the main job.
# Stop everything with: deploy/local/stack.sh down      (runbook: docs/operations.md)
#
# Settings are stack.sh's (FG_STACK_DIR, FG_PORT_OFFSET, FG_BUILD_DIR, ...).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STACK="$REPO/deploy/local/stack.sh"

step() { printf '\n==> %s\n' "$*"; }

build() {
	local dir=${FG_BUILD_DIR:-build}
	case "$dir" in /*) ;; *) dir=$REPO/$dir ;; esac
	cmake -S "$REPO" -B "$dir" -DCMAKE_BUILD_TYPE=Release
	cmake --build "$dir" -j"$(nproc)"
}

# The main job: what the user came for once the stack runs. For now: a readiness table of the
# services (GET /ready and /version of each).
main_job() {
	local env_out name var url ready version
	env_out=$("$STACK" env)
	eval "$env_out"
	printf '\n%-18s %-24s %-10s %s\n' SERVICE URL READY VERSION
	for name in webhook triples-generator token-repository event-log commit-sync; do
		var=FG_$(tr 'a-z-' 'A-Z_' <<<"$name")_URL
		url=${!var}
		ready=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/ready" || true)
		case "$ready" in
		200) ready=yes ;;
		000 | '') ready="no answer" ;;
		*) ready="no ($ready)" ;;
		esac
		version=$(curl -s --max-time 2 "$url/version" | tr -d '\n' || true)
		# {"service":..,"version":"0.1.0","revision":"abc123"} -> 0.1.0 (abc123)
		version=$(sed -n 's/.*"version":"\([^"]*\)".*"revision":"\([^"]*\)".*/\1 (\2)/p' <<<"$version")
		printf '%-18s %-24s %-10s %s\n' "$name" "$url" "$ready" "${version:--}"
	done
	cat <<EOF

The stack is up (state in $FG_STACK_DIR).
  configure a shell (fgctl, psql, curl):  eval "\$($STACK env)"
  status / logs:                          $STACK status ; $STACK logs [name] [-f]
  logs on disk:                           $FG_STACK_DIR/logs/
  stop everything:                        $STACK down
EOF
}

main() {
	step "installing missing packages"
	"$REPO/deploy/local/install-deps.sh"
	step "building (release)"
	build
	step "starting the local stack"
	"$STACK" up
	step "main job"
	main_job
}

main "$@"

#!/usr/bin/env bash
# forgegraph's test command (and CI's, through .ci/run):
#   tests/run.sh [--no-stack] [ctest arguments...]      e.g. tests/run.sh -L unit
# Installs missing packages, builds with ASan+UBSan into build-test/, starts an isolated stack
# (servers and services; state in var/test-stack, ports +100, fsync off) beside any stack the user
# runs, runs ctest against it, then always stops and deletes that stack, even on failure or Ctrl-C.
# Exits non-zero when anything failed, including a sanitizer report in a service's log.
# --no-stack skips the stack (tests that need it then SKIP).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STACK="$REPO/deploy/local/stack.sh"
BUILD="$REPO/build-test"

export FG_STACK_DIR="$REPO/var/test-stack"
export FG_PORT_OFFSET=100
export FG_PG_FAST=1
export FG_BUILD_DIR="$BUILD"
export FG_STACK_TIMEOUT=${FG_STACK_TIMEOUT:-180}
# Leaks and the first error fail the process; stacks help whoever reads the log.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:abort_on_error=0:print_stacktrace=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ -z "${LSAN_OPTIONS:-}" ] && [ -f "$REPO/tests/lsan.supp" ]; then
	export LSAN_OPTIONS="suppressions=$REPO/tests/lsan.supp:print_suppressions=0"
fi

PHASES=()
STACK_STARTED=0
CURRENT_PHASE=""
CURRENT_T0=0

# Runs "$@" as a named phase and records its duration. (Inside "$@" errexit is off, because it
# runs as the left side of ||: the phase functions below chain their steps with && or return.)
phase() {
	local name=$1 t0=$SECONDS rc=0
	shift
	printf '\n==> %s\n' "$name"
	CURRENT_PHASE=$name CURRENT_T0=$t0
	"$@" || rc=$?
	CURRENT_PHASE=""
	PHASES+=("$(printf '%-14s %4d s%s' "$name" $((SECONDS - t0)) "$([ "$rc" = 0 ] || echo "  FAILED (exit $rc)")")")
	return "$rc"
}

build() {
	cmake -S "$REPO" -B "$BUILD" -DFG_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug &&
		cmake --build "$BUILD" -j"$(nproc)"
}

start_stack() {
	# A run killed with SIGKILL may have left its stack behind.
	"$STACK" down --purge >/dev/null 2>&1 || true
	STACK_STARTED=1
	"$STACK" up
}

run_ctest() {
	ctest --test-dir "$BUILD" --output-on-failure --no-tests=error "$@"
}

# A sanitizer report in a service's log fails the run: the service's own exit is not a test's.
scan_service_logs() {
	local dir=$1 f found=0
	[ -d "$dir" ] || return 0
	for f in "$dir"/*.log; do
		[ -f "$f" ] || continue
		case "$(basename "$f")" in postgresql* | rabbitmq* | virtuoso* | epmd* | *@*) continue ;; esac
		if grep -q -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: [A-Za-z]+Sanitizer' "$f"; then
			echo "tests/run.sh: sanitizer report in $f:" >&2
			grep -n -E -A30 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$f" | head -n 80 >&2
			found=1
		fi
	done
	return "$found"
}

stop_stack() {
	local keep="$BUILD/test-stack-logs" rc=0
	# The logs are kept for a post-mortem (and CI artifacts); the stack itself is purged.
	rm -rf "$keep"
	"$STACK" down --purge --keep-logs "$keep" || rc=$?
	scan_service_logs "$keep" || rc=1
	return "$rc"
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [ -n "$CURRENT_PHASE" ]; then
		PHASES+=("$(printf '%-14s %4d s  INTERRUPTED' "$CURRENT_PHASE" $((SECONDS - CURRENT_T0)))")
	fi
	if [ "$STACK_STARTED" = 1 ]; then
		phase "stack down" stop_stack || rc=1
	fi
	printf '\n==> summary\n'
	printf '  %s\n' "${PHASES[@]}"
	printf '  %-14s %4d s\n' total "$SECONDS"
	if [ "$rc" = 0 ]; then
		echo "tests/run.sh: PASSED"
	else
		echo "tests/run.sh: FAILED (exit $rc)" >&2
		if [ "$STACK_STARTED" = 1 ]; then
			echo "tests/run.sh: the test stack's logs are kept in $BUILD/test-stack-logs" >&2
		fi
	fi
	exit "$rc"
}

main() {
	local with_stack=1
	if [ "${1:-}" = --no-stack ]; then
		with_stack=0
		shift
	fi
	mkdir -p "$REPO/var"
	# One run per clone at a time: both would use the same test stack.
	exec 8>"$REPO/var/.tests-run.lock"
	flock -n 8 || { echo "tests/run.sh: another tests/run.sh is running in this clone" >&2; exit 1; }

	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	phase deps "$REPO/deploy/local/install-deps.sh"
	phase build build
	if [ "$with_stack" = 1 ]; then
		# The lock is ours alone: the stack's daemons must not inherit it.
		phase "stack up" start_stack 8>&-
		eval "$("$STACK" env)"
	fi
	phase tests run_ctest "$@" 8>&-
}

main "$@"

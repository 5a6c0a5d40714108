#!/usr/bin/env bash
# bench/eventlog.sh: event-log's status transitions and dispatch pick on 1,000,000 events, with
# PostgreSQL's fsync and synchronous_commit on. Last line:
#
#   bench eventlog transitions_per_s=<in changes of 500 events> single_transitions_per_s=<one
#   event per change> pick_ms_p99=<dispatcher's project pick> events=<events in the table>
#   group=<messages per transaction in the single figure>
#
# Each event goes NEW -> GENERATING_TRIPLES -> TRIPLES_GENERATED -> TRANSFORMING_TRIPLES ->
# TRIPLES_STORE (4 transitions), every change one el_change_apply. In batches of 500 each change
# commits on its own, as the dispatcher and the consumer make them. One event at a time, the
# changes commit the way the service commits them: the replies are one-event
# EVENTS_STATUS_CHANGE messages handled by el_consume_group in groups of `group` (what the bus
# thread takes when that many have arrived, FG_EL_GROUP_MAX), the dispatches 16 to a transaction
# (a dispatch round of FG_EL_PROJECTS_PER_ROUND one-event projects). The detail lines before the
# last one say where the time went, and give the old figure too: one transaction (one WAL flush)
# per one-event change, and the same without waiting for the flush. The driver is
# bench/eventlog_bench.c; it works in a database of its own (fg_bench_eventlog), dropped at the end.
#
# It builds a release tree (FG_BENCH_BUILD_DIR, default build-bench). PostgreSQL: FG_BENCH_PG_URL
# (an admin URL of a running server) or else a dedicated one started here and stopped again
# (FG_BENCH_STACK_DIR=var/bench-eventlog, FG_BENCH_PORT_OFFSET=700; FG_BENCH_KEEP_STACK=1 keeps
# it). FG_BENCH_EVENTS changes the table size (default 1000000).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${FG_BENCH_BUILD_DIR:-$root/build-bench}
stack=$root/deploy/local/stack.sh
started=0

say() { echo "bench eventlog: $*" >&2; }
die() {
	say "$*"
	exit 1
}

cleanup() {
	if [ "$started" = 1 ] && [ "${FG_BENCH_KEEP_STACK:-0}" != 1 ]; then
		"$stack" down --purge >/dev/null 2>&1 || true
	fi
}
trap cleanup EXIT

command -v cmake >/dev/null || die "cmake is not installed"
say "building a release tree in $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFG_SANITIZE=OFF -DFG_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target fg-bench-eventlog >/dev/null

if [ -n "${FG_BENCH_PG_URL:-}" ]; then
	export FG_PG_URL=$FG_BENCH_PG_URL
else
	export FG_STACK_DIR=${FG_BENCH_STACK_DIR:-$root/var/bench-eventlog}
	export FG_PORT_OFFSET=${FG_BENCH_PORT_OFFSET:-700}
	export FG_BUILD_DIR=$build
	unset FG_PG_FAST # the point is to measure with fsync on
	say "starting PostgreSQL in $FG_STACK_DIR (offset $FG_PORT_OFFSET)"
	started=1
	"$stack" start postgresql >&2
	eval "$("$stack" env)"
fi
command -v psql >/dev/null || die "psql is not installed"
fsync=$(psql "$FG_PG_URL" -Atc "SELECT current_setting('fsync') || '/' || current_setting('synchronous_commit')")
[ "$fsync" = "on/on" ] || die "PostgreSQL runs with fsync/synchronous_commit $fsync: not a valid run"
say "fsync/synchronous_commit $fsync, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bench/fg-bench-eventlog"

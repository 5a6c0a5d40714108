#!/usr/bin/env bash
# bench/webhook.sh: signed 8 KiB GitHub push deliveries into fg-webhook, archived in PostgreSQL
# with fsync and synchronous_commit on and published with confirms. Last line:
#
#   bench webhook rps=<accepted/s under wrk> p99_ms=<at a fixed 1,000/s> bare_rps=<bare libevent
#   200-OK server, same wrk load, same run> lost=<accepted - published> fsync=on
#
# It builds a release tree (FG_BENCH_BUILD_DIR, default build-bench), starts a dedicated stack
# (PostgreSQL and RabbitMQ only; FG_STACK_DIR=var/bench-stack, FG_PORT_OFFSET=300, never
# FG_PG_FAST) and the webhook from that tree, binds a queue of its own to COMMIT_SYNC_REQUEST to
# count what is published, and takes the stack down again (FG_BENCH_KEEP_STACK=1 keeps it).
# wrk posts the same body (so one pre-computed X-Hub-Signature-256) with a unique
# X-GitHub-Delivery per request (bench/webhook_push.lua); the fixed rate comes from
# fg-bench-webhook-load, which gives each request its own delivery id too (hey and h2load repeat
# their headers). Knobs: FG_BENCH_SECONDS (wrk run, 20), FG_BENCH_CONNECTIONS (64),
# FG_BENCH_RATE (1000), FG_BENCH_RATE_SECONDS (20). docs/internals/webhook.md discusses results.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${FG_BENCH_BUILD_DIR:-$root/build-bench}
seconds=${FG_BENCH_SECONDS:-20}
connections=${FG_BENCH_CONNECTIONS:-64}
rate=${FG_BENCH_RATE:-1000}
rate_seconds=${FG_BENCH_RATE_SECONDS:-20}
export FG_STACK_DIR=${FG_BENCH_STACK_DIR:-$root/var/bench-stack}
export FG_PORT_OFFSET=${FG_BENCH_PORT_OFFSET:-300}
export FG_BUILD_DIR=$build
unset FG_PG_FAST # the point is to measure with fsync on
stack=$root/deploy/local/stack.sh
work=$(mktemp -d)
bare_pid=
repo_id=424242424242
queue=fg.bench.webhook

say() { echo "bench webhook: $*" >&2; }
die() {
	say "$*"
	exit 1
}

cleanup() {
	[ -n "$bare_pid" ] && kill "$bare_pid" 2>/dev/null || true
	if [ "${FG_BENCH_KEEP_STACK:-0}" != 1 ]; then
		"$stack" down --purge >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

for tool in wrk curl openssl cmake; do
	command -v "$tool" >/dev/null || die "$tool is not installed (apt-get install $tool)"
done

# ---- build and stack -------------------------------------------------------------------------

say "building a release tree in $build"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DFG_SANITIZE=OFF -DFG_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target fg-webhook fg-bench-webhook-bare fg-bench-webhook-load >/dev/null

say "starting PostgreSQL and RabbitMQ in $FG_STACK_DIR (offset $FG_PORT_OFFSET)"
"$stack" start postgresql >&2
"$stack" start rabbitmq >&2
eval "$("$stack" env)"
fsync=$("$stack" psql postgres -Atc "SELECT current_setting('fsync') || '/' || current_setting('synchronous_commit')")
[ "$fsync" = "on/on" ] || die "PostgreSQL runs with fsync/synchronous_commit $fsync: not a valid run"
"$stack" start webhook >&2

mgmt() { # method path [json]
	curl -sf -u "fg:$FG_RABBITMQ_PASSWORD" -H 'content-type: application/json' -X "$1" \
		"$FG_RABBITMQ_MGMT_URL/api/$2" ${3:+-d "$3"}
}
for _ in $(seq 100); do mgmt GET exchanges/%2f/fg.events >/dev/null && break || sleep 0.1; done
mgmt PUT "queues/%2f/$queue" '{"durable":true,"arguments":{"x-queue-type":"classic"}}' >/dev/null
mgmt POST "bindings/%2f/e/fg.events/q/$queue" '{"routing_key":"COMMIT_SYNC_REQUEST"}' >/dev/null
mgmt DELETE "queues/%2f/$queue/contents" >/dev/null

curl -sf -X PUT -H "Authorization: Bearer $FG_SERVICE_KEY" \
	"$FG_WEBHOOK_URL/hooks/github/$repo_id" -d '{"projectId":1,"path":"bench/repo"}' >/dev/null

# ---- the delivery: an 8 KiB push, signed with the repository's derived secret -----------------

{
	printf '{"ref":"refs/heads/main","before":"%040d","after":"%040d","created":false,' 0 1
	printf '"deleted":false,"forced":false,"base_ref":null,'
	printf '"compare":"https://github.com/bench/repo/compare/0000...1111","commits":['
	for i in $(seq 1 14); do
		[ "$i" -gt 1 ] && printf ','
		printf '{"id":"%040d","tree_id":"%040d","distinct":true,"message":"bench commit %d",' "$i" "$i" "$i"
		printf '"timestamp":"2024-05-01T12:00:00+02:00","url":"https://github.com/bench/repo/commit/%040d",' "$i"
		printf '"author":{"name":"Bench Author","email":"bench@example.com","username":"bench"},'
		printf '"committer":{"name":"Bench Author","email":"bench@example.com","username":"bench"},'
		printf '"added":["src/file%d.c"],"removed":[],"modified":["README.md"]}' "$i"
	done
	printf '],"repository":{"id":%s,"name":"repo","full_name":"bench/repo",' "$repo_id"
	printf '"clone_url":"https://github.com/bench/repo.git","default_branch":"main"},'
	printf '"pusher":{"name":"bench","email":"bench@example.com"},"sender":{"login":"bench","id":1},"pad":"'
} >"$work/head.json"
pad=$((8192 - $(stat -c %s "$work/head.json") - 2))
[ "$pad" -ge 0 ] || die "the fixed part of the body is over 8 KiB"
{
	cat "$work/head.json"
	head -c "$pad" /dev/zero | tr '\0' x
	printf '"}'
} >"$work/body.json"
key_hex=$(printf '%s' "$FG_HOOK_SECRET_KEY" | base64 -d | od -An -v -tx1 | tr -d ' \n')
secret=$(printf 'github:%s' "$repo_id" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key_hex" -r | cut -d' ' -f1)
signature="sha256=$(openssl dgst -sha256 -hmac "$secret" -r <"$work/body.json" | cut -d' ' -f1)"
export FG_BENCH_BODY=$work/body.json FG_BENCH_SIGNATURE=$signature FG_BENCH_RUN=b$$-$RANDOM

accepted() {
	curl -sf "$FG_WEBHOOK_URL/metrics" |
		awk '/^fg_webhook_deliveries_total\{forge="github",outcome="accepted"\}/ {print $2}'
}
wrk_rps() { # wrk output on stdin: Requests/sec
	awk '/^Requests\/sec:/ {printf "%d", $2}'
}

# ---- 1. the bare reference, same load ----------------------------------------------------------

bare_port=$((9091 + FG_PORT_OFFSET))
"$build/bench/fg-bench-webhook-bare" "$bare_port" &
bare_pid=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$bare_port/" && break || sleep 0.1; done
wrk -t2 -c"$connections" -d"${seconds}s" -s "$root/bench/webhook_push.lua" \
	"http://127.0.0.1:$bare_port/webhooks/github" >"$work/bare.txt"
bare_rps=$(wrk_rps <"$work/bare.txt")
kill "$bare_pid"
wait "$bare_pid" 2>/dev/null || true
bare_pid=

# ---- 2. throughput: as fast as wrk can go -----------------------------------------------------

before=$(accepted)
wrk -t2 -c"$connections" -d"${seconds}s" -s "$root/bench/webhook_push.lua" --latency \
	"$FG_WEBHOOK_URL/webhooks/github" >"$work/wrk.txt"
after=$(accepted)
elapsed=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' "$work/wrk.txt")
rps=$(awk -v n=$((after - before)) -v s="$elapsed" 'BEGIN {printf "%d", n / s}')
non2xx=$(awk '/Non-2xx/ {print $5}' "$work/wrk.txt")
say "wrk: $(grep -E 'requests in|Requests/sec' "$work/wrk.txt" | tr -s ' ' | tr '\n' ' ')"
say "wrk latency: $(grep -A4 'Latency Distribution' "$work/wrk.txt" | tail -4 | tr -s ' ' | tr '\n' ' ')"
[ -z "$non2xx" ] || say "wrk: $non2xx answers were not 2xx"

# ---- 3. latency at a fixed rate ----------------------------------------------------------------

fixed=$("$build/bench/fg-bench-webhook-load" 127.0.0.1 "$((9001 + FG_PORT_OFFSET))" /webhooks/github \
	"$rate" "$rate_seconds" "$work/body.json" "$signature" "$FG_BENCH_RUN")
say "fixed rate $rate/s: $fixed"
p99=$(sed -n 's/.* p99_ms=\([0-9.]*\).*/\1/p' <<<"$fixed")

# ---- 4. nothing lost: every accepted delivery archived and published once ---------------------

total=$(accepted)
published=0
for _ in $(seq 600); do
	published=$(mgmt GET "queues/%2f/$queue" | sed -n 's/.*"messages":\([0-9]*\).*/\1/p' | head -1)
	[ "${published:-0}" -ge "$total" ] && break
	sleep 0.5
done
archived=$("$stack" psql fg_webhook -Atc "SELECT count(*) FROM delivery")
say "accepted $total, archived $archived, published $published"
lost=$((total - published))
[ "$archived" -eq "$total" ] || lost=$((lost > total - archived ? lost : total - archived))
commits=$(curl -sf "$FG_WEBHOOK_URL/metrics" | awk '/^fg_webhook_commit_deliveries_(sum|count) / {v[$1]=$2} END {if (v["fg_webhook_commit_deliveries_count"] > 0) printf "%.1f", v["fg_webhook_commit_deliveries_sum"] / v["fg_webhook_commit_deliveries_count"]}')
say "deliveries per group commit on average: $commits"

echo "bench webhook rps=$rps p99_ms=$p99 bare_rps=$bare_rps lost=$lost fsync=on"

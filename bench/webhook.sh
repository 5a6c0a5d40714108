#!/usr/bin/env bash
# bench/webhook.sh: signed 8 KiB GitHub push deliveries into fg-webhook, archived in PostgreSQL
# with fsync and synchronous_commit on and published with confirms. Last line:
#
#   bench webhook rps=<accepted/s under wrk> p99_ms=<at a fixed 1,000/s> bare_rps=<bare libevent
#   200-OK server, same wrk load, same run> lost=<accepted - published> fsync=on
#
# It builds a release tree (FG_BENCH_BUILD_DIR, default build-bench), starts a dedicated stack
# (PostgreSQL and RabbitMQ only; FG_BENCH_STACK_DIR, default var/bench-stack, and
# FG_BENCH_PORT_OFFSET, default 300, become its FG_STACK_DIR and FG_PORT_OFFSET; never
# FG_PG_FAST) and the webhook from that tree, binds a durable quorum queue of its own to
# COMMIT_SYNC_REQUEST to count what is published, and takes the stack down again
# (FG_BENCH_KEEP_STACK=1 keeps it). wrk posts the same body (so one pre-computed
# X-Hub-Signature-256) with a unique X-GitHub-Delivery per request (bench/webhook_push.lua); the
# fixed rate comes from fg-bench-webhook-load, which gives each request its own delivery id too
# (hey and h2load repeat their headers). Between the wrk part and the fixed-rate part it waits
# until the relay has published everything wrk got accepted (the relay may lag behind a burst),
# counts the queue and empties it (a consumed queue stays short), and runs a CHECKPOINT (the
# burst's dirty data written out, WAL segments recycled: see below). On stderr: the CPU each process
# spent per accepted delivery during the wrk part (/proc, the webhook's PostgreSQL backends by
# role) and the load of the rest of the machine, since that is what the figures depend on here.
# Knobs: FG_BENCH_SECONDS (wrk run, 20), FG_BENCH_CONNECTIONS (64), FG_BENCH_RATE (1000),
# FG_BENCH_RATE_SECONDS (20). docs/internals/webhook.md discusses results.
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
# A durable quorum queue, as every consumer declares (DESIGN.md "RabbitMQ"). Nothing consumes it
# during the run; a classic queue holding the whole run in memory cost RabbitMQ ~40% more CPU per
# message (its major garbage collections) than the quorum queue a real consumer would have.
mgmt PUT "queues/%2f/$queue" '{"durable":true,"arguments":{"x-queue-type":"quorum"}}' >/dev/null
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
published_metric() { # what the relay says RabbitMQ confirmed
	curl -sf "$FG_WEBHOOK_URL/metrics" |
		awk '/^fg_webhook_published_total\{category="COMMIT_SYNC_REQUEST"\}/ {print $2}'
}
wait_relay() { # n: until the relay has published n messages (at most 300 s)
	for _ in $(seq 1500); do
		[ "$(published_metric)" -ge "$1" ] && return 0
		sleep 0.2
	done
	say "the relay published $(published_metric) of $1 messages in 300 s"
}
queue_count() { # messages in the bench queue, counted by the queue itself (exact, unlike the
	# management API's periodic statistics)
	"$stack" rabbitmqctl list_queues -q name messages | awk -v q="$queue" '$1 == q {print $2}'
}
count_and_purge() { # expected -> prints how many messages the queue held, then empties it
	local n=0
	for _ in $(seq 60); do
		n=$(queue_count)
		[ "${n:-0}" -ge "$1" ] && break
		sleep 1
	done
	# a consumed queue stays short; an ever-growing one would make RabbitMQ slower for the next
	# part than it would be in service
	"$stack" rabbitmqctl purge_queue -q "$queue" >/dev/null
	# a quorum queue's count follows a purge a moment later: the next count must not see the old
	for _ in $(seq 100); do
		[ "$(queue_count)" = 0 ] && break
		sleep 0.2
	done
	# and RabbitMQ drops the purged log segments in the background: let it finish (under 5% of a
	# core for a second, at most 30 s) so the next part does not measure that
	for _ in $(seq 30); do
		local t0
		t0=$(proc_ticks "$beam_pid")
		sleep 1
		[ $(($(proc_ticks "$beam_pid") - t0)) -lt $(($(getconf CLK_TCK) / 20)) ] && break
	done
	echo "${n:-0}"
}
wrk_rps() { # wrk output on stdin: Requests/sec
	awk '/^Requests\/sec:/ {printf "%d", $2}'
}

# CPU accounting (clock ticks, user + system) for the "where the time goes" line: the webhook,
# PostgreSQL (postmaster and its children), RabbitMQ (beam), and the whole machine.
webhook_pid=$(cat "$FG_STACK_DIR/run/webhook.pid")
pg_pid=$(head -1 "$({ "$stack" status || true; } | sed -n 's/^postgresql data dir: //p')/postmaster.pid")
beam_pid=$(cat "$FG_STACK_DIR/rabbitmq/beam.pid")
proc_ticks() { # pids... -> sum of utime + stime (processes gone meanwhile count 0)
	local t=0 p f
	for p in "$@"; do
		f=$(cut -d')' -f2- "/proc/$p/stat" 2>/dev/null) || continue
		t=$((t + $(awk '{print $12 + $13}' <<<"$f")))
	done
	echo "$t"
}
cpu_snapshot() { # -> "webhook postgres rabbitmq machine_busy webhook's_backends"
	local pg_all backends
	# the postmaster's children, and those gone meanwhile (autovacuum workers: cutime + cstime)
	pg_all="$(ps -o pid= --ppid "$pg_pid" | tr '\n' ' ')"
	backends="$(ps -o pid=,args= --ppid "$pg_pid" | awk '/ fg_webhook fg_webhook / {print $1}' | tr '\n' ' ')"
	# shellcheck disable=SC2086 # word lists of pids
	echo "$(proc_ticks "$webhook_pid")" \
		"$(($(proc_ticks $pg_all) + $(cut -d')' -f2- "/proc/$pg_pid/stat" | awk '{print $12 + $13 + $14 + $15}')))" \
		"$(proc_ticks "$beam_pid")" \
		"$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat)" \
		"$(proc_ticks $backends)"
}
backend_ticks() { # "pid ticks" of each of the webhook's PostgreSQL backends
	local p
	for p in $(ps -o pid=,args= --ppid "$pg_pid" | awk '/ fg_webhook fg_webhook / {print $1}'); do
		echo "$p $(proc_ticks "$p")"
	done
}
backend_report() { # before after deliveries -> µs per delivery of each backend, named by its last
	# statement (the writer's INSERT, the relay's statements, the loop's project lookups)
	"$stack" psql fg_webhook -Atc "SELECT pid, CASE WHEN query LIKE 'WITH ins%' THEN 'writer'
		WHEN query ~ '(outbox|advisory|ROLLBACK|COMMIT|BEGIN|received_at|enable_seqscan)' THEN 'relay'
		ELSE 'other' END FROM pg_stat_activity WHERE usename = 'fg_webhook'" |
		awk -F'|' -v b="$1" -v a="$2" -v n="$3" -v hz="$(getconf CLK_TCK)" '
		BEGIN { split(b, x, "\n"); for (i in x) { split(x[i], f, " "); t0[f[1]] = f[2] }
			split(a, y, "\n"); for (i in y) { split(y[i], f, " "); t1[f[1]] = f[2] } }
		($1 in t1) { v[$2] += (t1[$1] - t0[$1]) * 1e6 / hz / n }
		END { for (k in v) printf " %s=%.0f", k, v[k] }'
}
cpu_report() { # before after deliveries elapsed_s wrk_ticks -> µs of CPU per delivery, by process
	awk -v b="$1" -v a="$2" -v n="$3" -v s="$4" -v w="$5" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		split(b, x, " "); split(a, y, " ")
		for (i = 1; i <= 5; i++) d[i] = (y[i] - x[i]) * 1e6 / hz
		other = d[4] - d[1] - d[2] - d[3] - w * 1e6 / hz
		printf "cpu_us_per_delivery webhook=%.0f postgres=%.0f (its backends %.0f, the rest:" \
			" autovacuum, WAL writer, checkpointer %.0f) rabbitmq=%.0f wrk=%.0f other=%.0f", \
			d[1] / n, d[2] / n, d[5] / n, (d[2] - d[5]) / n, d[3] / n, w * 1e6 / hz / n, other / n
		printf " (machine busy %.0f%% of 2 cores; processes outside the bench %.0f%%)", \
			d[4] / s / 2e4, other / s / 2e4
	}'
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
cpu_before=$(cpu_snapshot)
backends_before=$(backend_ticks)
wrk -t2 -c"$connections" -d"${seconds}s" -s "$root/bench/webhook_push.lua" --latency \
	"$FG_WEBHOOK_URL/webhooks/github" >"$work/wrk.txt" &
wrk_pid=$!
sleep "$seconds"
wrk_ticks=$(proc_ticks "$wrk_pid")
wait "$wrk_pid"
cpu_after=$(cpu_snapshot)
backends_after=$(backend_ticks)
after=$(accepted)
elapsed=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' "$work/wrk.txt")
rps=$(awk -v n=$((after - before)) -v s="$elapsed" 'BEGIN {printf "%d", n / s}')
say "cpu, wrk window: $(cpu_report "$cpu_before" "$cpu_after" $((after - before)) "$elapsed" "$wrk_ticks")"
say "cpu, wrk window, PostgreSQL backends per delivery:$(backend_report "$backends_before" "$backends_after" $((after - before)))"
# The relay may lag behind a burst: wait until it has published everything before the
# fixed-rate part (so its latencies are not those of a backlog being published), and count that
# CPU too.
drain_start=$EPOCHREALTIME
wait_relay "$after"
cpu_drained=$(cpu_snapshot)
drain_s=$(awk -v a="$drain_start" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f", b - a}')
say "relay done ${drain_s}s after wrk: accepted and published $((after - before)) in" \
	"$(awk -v e="$elapsed" -v d="$drain_s" -v n=$((after - before)) 'BEGIN {printf "%.1f s, %d/s", e + d, n / (e + d)}')"
say "cpu, wrk window + drain: $(cpu_report "$cpu_before" \
	"$cpu_drained" $((after - before)) "$(awk -v e="$elapsed" -v d="$drain_s" 'BEGIN {print e + d}')" "$wrk_ticks")"
queued_before_fixed=$(count_and_purge "$after")
# The fixed rate measures a steady 1,000/s, not the aftermath of the burst: a CHECKPOINT, as a
# running server makes every few minutes, writes out what the burst left dirty (else the kernel's
# writeback of it slows every fsync for the next half minute) and lets the next WAL segments be
# recycled ones (a new cluster creates and zero-fills each: a stall of tens of ms every 16 MB).
"$stack" psql postgres -qc CHECKPOINT
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
wait_relay "$total"
published=$((queued_before_fixed + $(count_and_purge $((total - queued_before_fixed)))))
archived=$("$stack" psql fg_webhook -Atc "SELECT count(*) FROM delivery")
say "accepted $total, archived $archived, published $published (counted in the queue)"
lost=$((total - published))
[ "$archived" -eq "$total" ] || lost=$((lost > total - archived ? lost : total - archived))
commits=$(curl -sf "$FG_WEBHOOK_URL/metrics" | awk '/^fg_webhook_commit_deliveries_(sum|count) / {v[$1]=$2} END {if (v["fg_webhook_commit_deliveries_count"] > 0) printf "%.1f", v["fg_webhook_commit_deliveries_sum"] / v["fg_webhook_commit_deliveries_count"]}')
say "deliveries per group commit on average: $commits"

echo "bench webhook rps=$rps p99_ms=$p99 bare_rps=$bare_rps lost=$lost fsync=on"

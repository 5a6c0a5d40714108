#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# forgegraph local stack: PostgreSQL 15, RabbitMQ 3.10 and Virtuoso 7 from Debian's packages, then
# the five services, all on 127.0.0.1, no containers, no system services. docs/operations.md is the
# runbook.
#
#   stack.sh up                 start servers and services; returns when every /ready answers 200
#   stack.sh down [--purge] [--keep-logs DIR]   stop everything this stack started (--purge: delete
#                               its state too; --keep-logs: copy the logs to DIR first)
#   stack.sh status             what runs, pids, ports, where the data and logs are
#   stack.sh env                `export FG_...=...` lines: eval "$(deploy/local/stack.sh env)"
#   stack.sh logs [name] [-f]   tail the logs (name: postgresql, rabbitmq, virtuoso, a service)
#   stack.sh start|stop|restart [name]   one server or service, or (no name) the whole stack
#   stack.sh psql [db] [args]   psql as postgres over the unix socket
#   stack.sh rabbitmqctl args   rabbitmqctl against this stack's node
#   stack.sh isql [args]        isql-vt as dba against this stack's Virtuoso
#
# Settings: FG_STACK_DIR (state, default <repo>/var/stack), FG_PORT_OFFSET (added to every port),
# FG_BUILD_DIR (services' build tree, default <repo>/build), FG_STACK_SERVERS_ONLY=1 (no services),
# FG_STACK_SERVICES (subset of services), FG_STACK_TIMEOUT (up's deadline, default 90 s),
# FG_STACK_STOP_TIMEOUT (a service's SIGTERM grace, 15 s), FG_STACK_PURGE=1 (down purges),
# FG_PG_DATA_DIR, FG_PG_FAST=1 (fsync off; tests only). All of them: docs/operations.md.
set -euo pipefail

LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib
# shellcheck source=lib/common.sh
. "$LIB/common.sh"
# shellcheck source=lib/postgresql.sh
. "$LIB/postgresql.sh"
# shellcheck source=lib/rabbitmq.sh
. "$LIB/rabbitmq.sh"
# shellcheck source=lib/virtuoso.sh
. "$LIB/virtuoso.sh"
# shellcheck source=lib/services.sh
. "$LIB/services.sh"

usage() {
	sed -n '3,/^set -euo/p' "${BASH_SOURCE[0]}" | grep -v '^set -euo' | sed 's/^# \{0,1\}//'
}

# ---- environment ------------------------------------------------------------------------------

# The FG_* names of docs/operations.md (and CONVENTIONS.md), in order.
ENV_NAMES=(FG_STACK_DIR FG_PORT_OFFSET FG_PG_URL FG_WEBHOOK_DB_URL FG_TOKEN_REPOSITORY_DB_URL
	FG_EVENT_LOG_DB_URL FG_TRIPLES_GENERATOR_DB_URL FG_AMQP_URL FG_RABBITMQ_MGMT_URL
	FG_RABBITMQ_USER FG_RABBITMQ_PASSWORD FG_TRIPLESTORE_URL FG_TRIPLESTORE_USER
	FG_TRIPLESTORE_PASSWORD FG_SERVICE_KEY FG_HOOK_SECRET_KEY FG_TOKEN_KEYS FG_MIRROR_DIR
	FG_GRAPH_BASE FG_WEBHOOK_URL FG_TRIPLES_GENERATOR_URL FG_TOKEN_REPOSITORY_URL FG_EVENT_LOG_URL
	FG_COMMIT_SYNC_URL)

# Exports the stack's FG_* variables into this shell (used for the services and for `env`).
stack_export_env() {
	secrets_load
	local h=127.0.0.1 pg="127.0.0.1:$PG_PORT"
	export FG_STACK_DIR=$STACK_DIR FG_PORT_OFFSET=$OFFSET
	export FG_PG_URL="postgresql://postgres:$FG_PG_ADMIN_PASSWORD@$pg/postgres"
	export FG_WEBHOOK_DB_URL="postgresql://fg_webhook:$FG_WEBHOOK_DB_PASSWORD@$pg/fg_webhook"
	export FG_TOKEN_REPOSITORY_DB_URL="postgresql://fg_token_repository:$FG_TOKEN_REPOSITORY_DB_PASSWORD@$pg/fg_tokens"
	export FG_EVENT_LOG_DB_URL="postgresql://fg_event_log:$FG_EVENT_LOG_DB_PASSWORD@$pg/fg_event_log"
	export FG_TRIPLES_GENERATOR_DB_URL="postgresql://fg_triples_generator:$FG_TRIPLES_GENERATOR_DB_PASSWORD@$pg/fg_triples"
	export FG_AMQP_URL="amqp://fg:$FG_RABBITMQ_PASSWORD@$h:$RMQ_PORT/%2f"
	export FG_RABBITMQ_MGMT_URL="http://$h:$RMQ_MGMT_PORT"
	export FG_RABBITMQ_USER=fg FG_RABBITMQ_PASSWORD
	export FG_TRIPLESTORE_URL="http://$h:$VT_HTTP_PORT"
	export FG_TRIPLESTORE_USER=forgegraph FG_TRIPLESTORE_PASSWORD
	export FG_SERVICE_KEY FG_HOOK_SECRET_KEY FG_TOKEN_KEYS
	export FG_MIRROR_DIR="$STACK_DIR/mirrors"
	export FG_GRAPH_BASE=${FG_GRAPH_BASE:-http://forgegraph.local}
	FG_WEBHOOK_URL="http://$h:$(service_port webhook)"
	FG_TRIPLES_GENERATOR_URL="http://$h:$(service_port triples-generator)"
	FG_TOKEN_REPOSITORY_URL="http://$h:$(service_port token-repository)"
	FG_EVENT_LOG_URL="http://$h:$(service_port event-log)"
	FG_COMMIT_SYNC_URL="http://$h:$(service_port commit-sync)"
	export FG_WEBHOOK_URL FG_TRIPLES_GENERATOR_URL FG_TOKEN_REPOSITORY_URL FG_EVENT_LOG_URL FG_COMMIT_SYNC_URL
}

cmd_env() {
	local name
	stack_export_env
	for name in "${ENV_NAMES[@]}"; do
		printf 'export %s=%q\n' "$name" "${!name}"
	done
}

# ---- whole stack ------------------------------------------------------------------------------

# True when any process of this stack is alive.
stack_running() {
	local s
	pg_pid >/dev/null || rmq_pid >/dev/null || rmq_epmd_pid >/dev/null || vt_pid >/dev/null && return 0
	for s in "${ALL_SERVICES[@]}"; do
		svc_pid "$s" >/dev/null && return 0
	done
	return 1
}

# A stack started with one offset must be driven with the same one.
check_offset() {
	if [ -n "$RECORDED_OFFSET" ] && [ "$RECORDED_OFFSET" != "$OFFSET" ] && stack_running; then
		die "the stack in $STACK_DIR runs with FG_PORT_OFFSET=$RECORDED_OFFSET, not $OFFSET; stop it first"
	fi
}

cmd_up() {
	local t0=$EPOCHREALTIME services=()
	UP_DEADLINE=$((SECONDS + ${FG_STACK_TIMEOUT:-90}))
	stack_lock
	check_offset
	reserve_ports
	if [ "${FG_STACK_SERVERS_ONLY:-0}" != 1 ]; then
		stack_services >/dev/null # dies here on a bad FG_STACK_SERVICES
		svc_require_binaries
		mapfile -t services < <(stack_services)
	fi
	stack_init_dirs
	echo "$OFFSET" >"$STACK_DIR/port-offset"
	echo "$PG_DATA" >"$STACK_DIR/pg-data-dir"
	echo "$BUILD_DIR" >"$STACK_DIR/build-dir"
	secrets_load
	mkdir -p "$STACK_DIR/mirrors"

	# RabbitMQ boots slowest (~6 s alone) and slows down most when it shares the 2 cores, so it
	# starts first; PostgreSQL (<1 s) and Virtuoso (~2 s) start while it boots.
	rmq_launch
	pg_start
	pg_provision
	vt_launch
	vt_wait_ready
	rmq_wait_ready

	if [ "${#services[@]}" -gt 0 ]; then
		local s
		for s in "${services[@]}"; do
			svc_launch "$s"
		done
		svc_wait_ready "${services[@]}"
	fi
	say "stack up in $(elapsed_since "$t0") s ($STACK_DIR, port offset $OFFSET)"
	say "configure a shell with: eval \"\$($0 env)\"; stop with: $0 down"
}

cmd_down() {
	local purge=${FG_STACK_PURGE:-0} mode="" keep_logs=""
	while [ $# -gt 0 ]; do
		case "$1" in
		--purge) purge=1 ;;
		--keep-logs)
			[ $# -ge 2 ] || die "--keep-logs needs a directory"
			keep_logs=$2
			shift
			;;
		*) die "down: unknown option '$1' (--purge, --keep-logs DIR)" ;;
		esac
		shift
	done
	if [ ! -d "$STACK_DIR" ]; then
		say "nothing to stop ($STACK_DIR does not exist)"
		[ "$purge" = 1 ] && pg_purge
		return 0
	fi
	stack_lock
	# Virtuoso's shutdown needs the dba password.
	if [ -s "$SECRETS_FILE" ]; then
		secrets_load
	fi
	# A purged stack's data is thrown away, so its servers need no graceful shutdown.
	[ "$purge" = 1 ] && mode="kill"
	local was_running=0
	stack_running && was_running=1
	svc_stop_all || die "some services did not stop"
	local pids=() rc=0 p
	rmq_stop "$mode" &
	pids+=($!)
	pg_stop "$mode" &
	pids+=($!)
	vt_stop "$mode" &
	pids+=($!)
	for p in "${pids[@]}"; do
		wait "$p" || rc=1
	done
	[ "$rc" = 0 ] || die "some servers did not stop"
	if stack_running; then
		die "processes of this stack are still running: see $0 status"
	fi
	# (Only when we stopped something: otherwise the ports may well be another stack's.)
	[ "$was_running" = 1 ] && check_ports_closed
	# After the stop, so the logs hold what processes wrote while exiting (sanitizer reports).
	if [ -n "$keep_logs" ] && [ -d "$LOG_DIR" ]; then
		rm -rf "$keep_logs"
		mkdir -p "$keep_logs"
		cp -rL "$LOG_DIR/." "$keep_logs/" 2>/dev/null || warn "could not copy every log to $keep_logs"
	fi
	if [ "$purge" = 1 ]; then
		stack_purge
	fi
}

# After down, none of our ports may still listen (something else would then be in the way).
check_ports_closed() {
	local port s
	for port in "$PG_PORT" "$RMQ_PORT" "$RMQ_MGMT_PORT" "$RMQ_DIST_PORT" "$RMQ_EPMD_PORT" "$VT_HTTP_PORT" "$VT_SQL_PORT"; do
		if port_open "$port"; then
			warn "port $port still accepts connections after down: $(port_owner "$port")"
		fi
	done
	for s in "${ALL_SERVICES[@]}"; do
		port=$(service_port "$s")
		if port_open "$port"; then
			warn "port $port ($s) still accepts connections after down: $(port_owner "$port")"
		fi
	done
}

stack_purge() {
	pg_purge
	if [ -f "$MARKER_FILE" ]; then
		rm -rf "$STACK_DIR"
		say "purged $STACK_DIR and $PG_DATA"
	else
		warn "not removing $STACK_DIR: it has no $(basename "$MARKER_FILE") marker"
	fi
}

# ---- single servers and services --------------------------------------------------------------

canonical_name() {
	case "$1" in
	postgresql | postgres | pg) echo postgresql ;;
	rabbitmq | rmq | rabbit) echo rabbitmq ;;
	virtuoso | vt | triplestore) echo virtuoso ;;
	webhook | triples-generator | token-repository | event-log | commit-sync) echo "$1" ;;
	*) die "unknown server or service '$1' (postgresql, rabbitmq, virtuoso, ${ALL_SERVICES[*]})" ;;
	esac
}

cmd_start_one() {
	local name
	name=$(canonical_name "$1")
	UP_DEADLINE=$((SECONDS + ${FG_STACK_TIMEOUT:-90}))
	stack_lock
	check_offset
	stack_init_dirs
	secrets_load
	case "$name" in
	postgresql) pg_start && pg_provision ;;
	rabbitmq) rmq_start ;;
	virtuoso) vt_start ;;
	*)
		[ -x "$(svc_bin "$name")" ] || die "$(svc_bin "$name") does not exist: build first"
		svc_launch "$name"
		svc_wait_ready "$name"
		;;
	esac
}

cmd_stop_one() {
	local name
	name=$(canonical_name "$1")
	[ -d "$STACK_DIR" ] || return 0
	stack_lock
	if [ -s "$SECRETS_FILE" ]; then
		secrets_load
	fi
	case "$name" in
	postgresql) pg_stop ;;
	rabbitmq) rmq_stop ;;
	virtuoso) vt_stop ;;
	*) svc_stop "$name" ;;
	esac
}

# ---- status and logs --------------------------------------------------------------------------

status_line() {
	# name, pid (empty = not running), where, extra
	if [ -n "$2" ]; then
		printf '  %-18s %-8s pid %-8s %-20s %s\n' "$1" running "$2" "$3" "$4"
	else
		printf '  %-18s %-8s %-12s %-20s %s\n' "$1" stopped "" "$3" "$4"
	fi
}

cmd_status() {
	local pid s port ready all_up=0
	echo "forgegraph local stack: $STACK_DIR (port offset $OFFSET)"
	pid=$(pg_pid || true)
	[ -n "$pid" ] || all_up=3
	status_line postgresql "$pid" "127.0.0.1:$PG_PORT" "data dir $PG_DATA"
	pid=$(rmq_beam_pid || true)
	[ -n "$pid" ] || all_up=3
	status_line rabbitmq "$pid" "127.0.0.1:$RMQ_PORT" "management :$RMQ_MGMT_PORT, dist :$RMQ_DIST_PORT"
	status_line epmd "$(rmq_epmd_pid || true)" "127.0.0.1:$RMQ_EPMD_PORT" ""
	pid=$(vt_pid || true)
	[ -n "$pid" ] || all_up=3
	status_line virtuoso "$pid" "127.0.0.1:$VT_HTTP_PORT" "sql :$VT_SQL_PORT, data $(vt_dir)/db"
	for s in "${ALL_SERVICES[@]}"; do
		port=$(service_port "$s")
		pid=$(svc_pid "$s" || true)
		ready=""
		if [ -n "$pid" ]; then
			ready="/ready $(http_code "http://127.0.0.1:$port/ready" 1)"
		elif [ ! -x "$(svc_bin "$s")" ]; then
			ready="(not built: $(svc_bin "$s"))"
		fi
		status_line "$s" "$pid" "127.0.0.1:$port" "$ready"
	done
	echo "logs:    $LOG_DIR"
	echo "secrets: $SECRETS_FILE"
	echo "postgresql data dir: $PG_DATA"
	return "$all_up"
}

log_file_of() {
	local name
	name=$(canonical_name "$1") || exit 1
	case "$name" in
	postgresql) echo "$LOG_DIR/postgresql.log" ;;
	rabbitmq) echo "$LOG_DIR/rabbitmq.log" ;;
	virtuoso) echo "$LOG_DIR/virtuoso.log" ;;
	*) svc_log "$1" ;;
	esac
}

cmd_logs() {
	local follow=() name="" arg
	for arg in "$@"; do
		case "$arg" in
		-f | --follow) follow=(-F) ;;
		*) name=$arg ;;
		esac
	done
	[ -d "$LOG_DIR" ] || die "no logs yet ($LOG_DIR does not exist)"
	if [ -n "$name" ]; then
		local file
		file=$(log_file_of "$name")
		[ -e "$file" ] || die "no log for $name at $file"
		exec tail -n 100 "${follow[@]}" "$file"
	fi
	local files=()
	mapfile -t files < <(find -L "$LOG_DIR" -maxdepth 1 -name '*.log' -type f | sort)
	[ "${#files[@]}" -gt 0 ] || die "no logs in $LOG_DIR"
	exec tail -n 20 "${follow[@]}" "${files[@]}"
}

# ---- conveniences -----------------------------------------------------------------------------

cmd_psql() {
	local db=postgres
	if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
		db=$1
		shift
	fi
	pg_pid >/dev/null || die "postgresql is not running (stack.sh up)"
	exec psql -X -h "$PG_DATA" -p "$PG_PORT" -U postgres -d "$db" "$@"
}

cmd_isql() {
	vt_pid >/dev/null || die "virtuoso is not running (stack.sh up)"
	secrets_load
	exec isql-vt "127.0.0.1:$VT_SQL_PORT" dba "$FG_VIRTUOSO_DBA_PASSWORD" "$@"
}

main() {
	local cmd=${1:-}
	[ $# -gt 0 ] && shift
	stack_resolve
	case "$cmd" in
	up) cmd_up ;;
	down) cmd_down "$@" ;;
	start) if [ $# -gt 0 ]; then cmd_start_one "$1"; else cmd_up; fi ;;
	stop) if [ $# -gt 0 ]; then cmd_stop_one "$1"; else cmd_down; fi ;;
	restart)
		if [ $# -gt 0 ]; then
			cmd_stop_one "$1"
			cmd_start_one "$1"
		else
			cmd_down
			cmd_up
		fi
		;;
	status) cmd_status ;;
	env) cmd_env ;;
	logs) cmd_logs "$@" ;;
	psql) cmd_psql "$@" ;;
	rabbitmqctl) rmq_env && exec env "${RMQ_ENV[@]}" "$RMQ_BIN/rabbitmqctl" "$@" ;;
	isql) cmd_isql "$@" ;;
	-h | --help | help) usage ;;
	'') usage >&2 && exit 2 ;;
	*) echo "stack.sh: error: unknown command '$cmd' (stack.sh --help lists them)" >&2 && exit 2 ;;
	esac
}

main "$@"

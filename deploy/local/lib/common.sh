# shellcheck shell=bash disable=SC2034 # the variables set here are read by the other files
# Shared by stack.sh and its lib/*.sh: where the stack lives, its ports, secrets, pid files,
# waiting and messages. Sourced, never run. Every process the stack starts is recorded in a pid
# file under $RUN_DIR and stopped by that pid only: other servers on this machine (a system
# PostgreSQL, another clone's stack, a helper's private broker) are never touched.

FG_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)

# ---- messages ---------------------------------------------------------------------------------

die() {
	echo "stack.sh: error: $*" >&2
	exit 1
}

warn() { echo "stack.sh: warning: $*" >&2; }

# Progress goes to stderr so that `stack.sh env` (and anything else that prints data) keeps a
# clean stdout.
say() { echo "stack.sh: $*" >&2; }

# Seconds since $1 (an $EPOCHREALTIME value), one decimal.
elapsed_since() {
	local now=$EPOCHREALTIME
	awk -v a="$1" -v b="$now" 'BEGIN { printf "%.1f", b - a }'
}

# ---- where and which ports --------------------------------------------------------------------

# Resolves the stack directory, the port offset and every derived path and port. The offset an
# `up` used is recorded in the stack directory, so later commands without FG_PORT_OFFSET still
# talk to the right ports.
stack_resolve() {
	STACK_DIR=$(realpath -m "${FG_STACK_DIR:-$FG_REPO/var/stack}")
	RUN_DIR=$STACK_DIR/run
	LOG_DIR=$STACK_DIR/logs
	SECRETS_FILE=$STACK_DIR/secrets.env
	MARKER_FILE=$STACK_DIR/.forgegraph-stack
	# A relative FG_BUILD_DIR is taken from the repository root, as up.sh does (cmake -B).
	local recorded=""
	if [ -f "$STACK_DIR/build-dir" ]; then
		recorded=$(<"$STACK_DIR/build-dir")
	fi
	BUILD_DIR=${FG_BUILD_DIR:-${recorded:-$FG_REPO/build}}
	case "$BUILD_DIR" in /*) ;; *) BUILD_DIR=$FG_REPO/$BUILD_DIR ;; esac
	BUILD_DIR=$(realpath -m "$BUILD_DIR")

	recorded=""
	if [ -f "$STACK_DIR/port-offset" ]; then
		recorded=$(<"$STACK_DIR/port-offset")
	fi
	OFFSET=${FG_PORT_OFFSET:-${recorded:-0}}
	RECORDED_OFFSET=$recorded
	case "$OFFSET" in
	'' | *[!0-9]*) die "FG_PORT_OFFSET must be a non-negative integer (got '$OFFSET')" ;;
	esac
	OFFSET=$((10#$OFFSET)) # "0100" is not octal here
	# 58890 + offset must stay a valid port.
	if [ "$OFFSET" -gt 6600 ]; then
		die "FG_PORT_OFFSET must be at most 6600 (got $OFFSET)"
	fi

	PG_PORT=$((55432 + OFFSET))
	RMQ_PORT=$((45672 + OFFSET))
	RMQ_DIST_PORT=$((45682 + OFFSET))
	RMQ_MGMT_PORT=$((45673 + OFFSET))
	RMQ_EPMD_PORT=$((45369 + OFFSET))
	RMQ_CTL_MIN=$((45690 + OFFSET))
	RMQ_CTL_MAX=$((45700 + OFFSET))
	VT_HTTP_PORT=$((58890 + OFFSET))
	VT_SQL_PORT=$((51111 + OFFSET))

	# PostgreSQL runs as user postgres when we are root, and that user cannot enter a clone under
	# /root: its data directory goes under /var/tmp, named after a hash of the stack directory so
	# two stacks never share it. A non-root user runs PostgreSQL as itself, but the same place
	# keeps the layout identical.
	local hash
	hash=$(printf '%s' "$STACK_DIR" | sha256sum | cut -c1-12)
	PG_ROOT_DEFAULT=/var/tmp/forgegraph-$hash
	local recorded_pg=""
	if [ -f "$STACK_DIR/pg-data-dir" ]; then
		recorded_pg=$(<"$STACK_DIR/pg-data-dir")
	fi
	PG_DATA=$(realpath -m "${FG_PG_DATA_DIR:-${recorded_pg:-$PG_ROOT_DEFAULT/pg}}")
}

# service name -> HTTP port
service_port() {
	case "$1" in
	webhook) echo $((9001 + OFFSET)) ;;
	triples-generator) echo $((9002 + OFFSET)) ;;
	token-repository) echo $((9003 + OFFSET)) ;;
	event-log) echo $((9005 + OFFSET)) ;;
	commit-sync) echo $((9006 + OFFSET)) ;;
	*) die "unknown service '$1'" ;;
	esac
}

ALL_SERVICES=(token-repository event-log webhook commit-sync triples-generator)

# The services this stack runs: all five unless FG_STACK_SERVICES names a subset.
stack_services() {
	local s
	if [ -n "${FG_STACK_SERVICES:-}" ]; then
		for s in ${FG_STACK_SERVICES//,/ }; do
			service_port "$s" >/dev/null
			echo "$s"
		done
	else
		printf '%s\n' "${ALL_SERVICES[@]}"
	fi
}

# Creates the state directory and marks it as ours (down --purge only deletes marked directories).
stack_init_dirs() {
	mkdir -p "$STACK_DIR" "$RUN_DIR" "$LOG_DIR"
	if [ ! -f "$MARKER_FILE" ]; then
		echo "forgegraph local stack; created $(date -u +%FT%TZ)" >"$MARKER_FILE"
	fi
}

# Serialises commands on one stack (two `up`s at once, a test's `restart rabbitmq` during `down`).
stack_lock() {
	mkdir -p "$STACK_DIR"
	exec 9>"$STACK_DIR/.lock"
	if ! flock -w 300 9; then
		die "another stack.sh holds $STACK_DIR/.lock for over 300 s"
	fi
}

# ---- secrets ----------------------------------------------------------------------------------

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
random_b64() { head -c "$1" /dev/urandom | base64 -w0; }

# Generates the stack's secrets once and keeps them in secrets.env (mode 600); later runs reuse
# them, so passwords stored inside the servers stay valid. Passwords are hex so URLs need no
# escaping.
secrets_load() {
	if [ ! -s "$SECRETS_FILE" ]; then
		stack_init_dirs
		local tmp=$SECRETS_FILE.tmp
		(
			umask 077
			cat >"$tmp" <<EOF
# forgegraph local stack secrets: generated once for this stack; keep private (mode 600).
FG_PG_ADMIN_PASSWORD=$(random_hex 16)
FG_WEBHOOK_DB_PASSWORD=$(random_hex 16)
FG_TOKEN_REPOSITORY_DB_PASSWORD=$(random_hex 16)
FG_EVENT_LOG_DB_PASSWORD=$(random_hex 16)
FG_TRIPLES_GENERATOR_DB_PASSWORD=$(random_hex 16)
FG_RABBITMQ_PASSWORD=$(random_hex 16)
FG_TRIPLESTORE_PASSWORD=$(random_hex 16)
FG_VIRTUOSO_DBA_PASSWORD=$(random_hex 16)
FG_SERVICE_KEY=$(random_hex 32)
FG_HOOK_SECRET_KEY=$(random_b64 32)
FG_TOKEN_KEYS=k1:$(random_b64 32)
EOF
		)
		mv "$tmp" "$SECRETS_FILE"
	fi
	chmod 600 "$SECRETS_FILE"
	# The file is ours and holds only KEY=value lines without shell syntax.
	# shellcheck disable=SC1090
	. "$SECRETS_FILE"
}

# ---- processes --------------------------------------------------------------------------------

# Prints the pid recorded in $1 if that process is alive and its command line contains $2
# (guards against a recycled pid after a reboot); returns 1 otherwise.
pid_from_file() {
	local file=$1 pattern=$2 pid
	[ -r "$file" ] || return 1
	pid=$(head -n1 "$file" 2>/dev/null | tr -dc 0-9)
	[ -n "$pid" ] || return 1
	alive "$pid" || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
	echo "$pid"
}

# Shell code that closes every inherited descriptor above 2 before a daemon is exec'd: a daemon
# holding the stack's lock, or a pipe of whoever ran us (a CI runner, ctest), would hold it for
# its whole life (a lock never released, a CI job waiting for EOF).
# shellcheck disable=SC2016 # expanded by the inner shell
CLOSE_FDS='for fd in /proc/self/fd/*; do fd=${fd##*/}; case $fd in 0|1|2) ;; *) eval "exec $fd>&-" 2>/dev/null ;; esac; done'

# Starts "$@" detached in its own session (so a Ctrl-C or a closed terminal does not reach it),
# output appended to $2's log, and writes its pid to $1 before exec.
spawn() {
	local pidfile=$1 log=$2
	shift 2
	# shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
	setsid bash -c "$CLOSE_FDS"'; echo $$ >"$0"; exec "$@"' "$pidfile" "$@" </dev/null >>"$log" 2>&1 &
	# Wait for the pid file so the caller can rely on it.
	local _
	for _ in $(seq 1 50); do
		[ -s "$pidfile" ] && return 0
		sleep 0.02
	done
	die "could not start $1 (no pid file $pidfile)"
}

# True while process $1 exists and is not a zombie (a zombie passes kill -0 until it is reaped).
alive() {
	local state
	kill -0 "$1" 2>/dev/null || return 1
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "$state" != Z ]
}

# Sends TERM to $1 and waits up to $2 seconds, then KILLs it. Returns 0 once it is gone.
stop_pid() {
	local pid=$1 timeout=$2 name=$3 deadline
	kill -TERM "$pid" 2>/dev/null || return 0
	deadline=$((SECONDS + timeout))
	while alive "$pid"; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			warn "$name (pid $pid) ignored SIGTERM for ${timeout}s: sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			sleep 0.2
			break
		fi
		sleep 0.1
	done
	! alive "$pid"
}

# Waits until pid $1 has exited (up to $2 seconds).
wait_gone() {
	local pid=$1 deadline=$((SECONDS + $2))
	while alive "$pid"; do
		[ "$SECONDS" -ge "$deadline" ] && return 1
		sleep 0.1
	done
}

# ---- ports ------------------------------------------------------------------------------------

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Our ports lie in Linux's ephemeral range (32768-60999), so the kernel may give one to any
# client connection as its local port; a leftover TIME-WAIT socket on RabbitMQ's distribution
# port then stops the node from booting (Erlang does not set SO_REUSEADDR there). When we may
# (root), the stack's ports are added to ip_local_reserved_ports (appended, never replacing what
# is there), so no client connection is given them from now on. Best effort: skipped otherwise.
reserve_ports() {
	local file=/proc/sys/net/ipv4/ip_local_reserved_ports current wanted
	[ -w "$file" ] || return 0
	current=$(cat "$file" 2>/dev/null) || return 0
	wanted="$PG_PORT,$RMQ_PORT,$RMQ_DIST_PORT,$RMQ_MGMT_PORT,$RMQ_EPMD_PORT"
	wanted+=",$RMQ_CTL_MIN-$RMQ_CTL_MAX,$VT_HTTP_PORT,$VT_SQL_PORT"
	echo "${current:+$current,}$wanted" >"$file" 2>/dev/null || true
}

# Who listens on port $1 (for error messages); empty when unknown.
port_owner() {
	command -v ss >/dev/null 2>&1 || return 0
	ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*))' | head -n1
}

# Fails when port $1 (for $2) is taken by a process that is not ours.
require_port_free() {
	if port_open "$1"; then
		die "port $1 (for $2) is already in use by another process $(port_owner "$1"); stop it or choose another FG_PORT_OFFSET"
	fi
}

# HTTP status code of GET $1 (000 when nothing answers).
http_code() {
	curl -s -o /dev/null -w '%{http_code}' --max-time "${2:-2}" "$1" 2>/dev/null || true
}

# Prints the last lines of a log file for a failure report.
show_log_tail() {
	local file=$1 lines=${2:-30}
	if [ -r "$file" ]; then
		echo "---- last $lines lines of $file ----" >&2
		tail -n "$lines" "$file" >&2
		echo "----" >&2
	else
		echo "(no log at $file)" >&2
	fi
}

# Seconds left before the overall deadline of `up` (FG_STACK_TIMEOUT, default 90).
time_left() {
	echo $((UP_DEADLINE - SECONDS))
}

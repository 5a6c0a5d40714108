# shellcheck shell=bash
# The five forgegraph services of the local stack: <build>/services/<svc>/fg-<svc>, each with the
# stack's environment plus FG_HTTP_PORT, output to logs/<svc>.log, pid in run/<svc>.pid.

svc_bin() { echo "$BUILD_DIR/services/$1/fg-$1"; }
svc_pid() { pid_from_file "$RUN_DIR/$1.pid" "fg-$1"; }
svc_log() { echo "$LOG_DIR/$1.log"; }

# Fails (before anything starts) when a service binary is missing.
svc_require_binaries() {
	local s missing=()
	while read -r s; do
		[ -x "$(svc_bin "$s")" ] || missing+=("fg-$s")
	done < <(stack_services)
	if [ "${#missing[@]}" -ne 0 ]; then
		die "not built: ${missing[*]} (looked in $BUILD_DIR/services); build first: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j\$(nproc) (or deploy/local/up.sh; FG_BUILD_DIR picks another build tree, FG_STACK_SERVERS_ONLY=1 starts the servers alone)"
	fi
}

svc_launch() {
	local s=$1 port pid
	if pid=$(svc_pid "$s"); then
		say "$s already running (pid $pid)"
		return 0
	fi
	port=$(service_port "$s")
	require_port_free "$port" "$s"
	printf '\n==== %s start %s\n' "$s" "$(date -u +%FT%TZ)" >>"$(svc_log "$s")"
	# The services' environment: `stack.sh env` plus the HTTP port; migrations come from the
	# compiled-in source path unless the caller set FG_MIGRATIONS_DIR.
	(
		stack_export_env
		export FG_HTTP_PORT=$port
		spawn "$RUN_DIR/$s.pid" "$(svc_log "$s")" "$(svc_bin "$s")"
	)
}

# Waits until every service's /ready answers 200. A service that exits fails at once with its log.
svc_wait_ready() {
	local services=("$@") pending s t0=$EPOCHREALTIME
	while :; do
		pending=()
		for s in "${services[@]}"; do
			if [ "$(http_code "http://127.0.0.1:$(service_port "$s")/ready" 1)" != 200 ]; then
				pending+=("$s")
				if ! svc_pid "$s" >/dev/null; then
					show_log_tail "$(svc_log "$s")" 40
					die "service $s exited during start (log $(svc_log "$s"))"
				fi
			fi
		done
		[ "${#pending[@]}" -eq 0 ] && break
		if [ "$(time_left)" -le 0 ]; then
			for s in "${pending[@]}"; do
				show_log_tail "$(svc_log "$s")" 40
			done
			die "not ready within ${FG_STACK_TIMEOUT:-90} s: ${pending[*]} (GET /ready did not answer 200)"
		fi
		sleep 0.1
	done
	say "services ready (${services[*]}) in $(elapsed_since "$t0") s"
}

svc_stop() {
	local s=$1 pid
	if pid=$(svc_pid "$s"); then
		stop_pid "$pid" "${FG_STACK_STOP_TIMEOUT:-15}" "$s" || die "$s (pid $pid) did not stop"
		say "$s stopped"
	fi
	rm -f "$RUN_DIR/$s.pid"
}

# Services stop in parallel (each gets SIGTERM and a bounded wait), so down is not 5 x the slowest.
svc_stop_all() {
	local s pids=()
	for s in "${ALL_SERVICES[@]}"; do
		svc_stop "$s" &
		pids+=($!)
	done
	local rc=0 p
	for p in "${pids[@]}"; do
		wait "$p" || rc=1
	done
	return "$rc"
}

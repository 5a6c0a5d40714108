# shellcheck shell=bash
# RabbitMQ 3.10 of the local stack, without systemd and without Debian's wrapper (which su's to
# user rabbitmq and writes under /var/log): the server scripts in /usr/lib/rabbitmq/bin, our own
# epmd, every listener (AMQP, management, Erlang distribution, the CLI tools' distribution range)
# on 127.0.0.1 and on ports derived from the offset, so stacks do not collide. HOME points at the
# state directory: the Erlang cookie there is private and shared with the CLI tools.

RMQ_BIN=/usr/lib/rabbitmq/bin

rmq_dir() { echo "$STACK_DIR/rabbitmq"; }

# The node's environment as VAR=value words for env(1) (not exported: HOME must not leak into the
# services). The same environment is needed by every CLI call.
rmq_env() {
	local d
	d=$(rmq_dir)
	RMQ_ENV=(
		HOME="$d"
		RABBITMQ_NODENAME=forgegraph@localhost
		RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
		RABBITMQ_NODE_PORT="$RMQ_PORT"
		# The default distribution port is AMQP + 20000: invalid above 45535, so always set it.
		RABBITMQ_DIST_PORT="$RMQ_DIST_PORT"
		RABBITMQ_MNESIA_BASE="$d/mnesia"
		RABBITMQ_LOG_BASE="$LOG_DIR"
		RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
		RABBITMQ_ADVANCED_CONFIG_FILE="$d/advanced.config"
		RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"
		RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
		RABBITMQ_PID_FILE="$d/beam.pid"
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
		# The CLI tools would open distribution ports 35672-35682 on every interface.
		"RABBITMQ_CTL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
		RABBITMQ_CTL_DIST_PORT_MIN="$RMQ_CTL_MIN"
		RABBITMQ_CTL_DIST_PORT_MAX="$RMQ_CTL_MAX"
		ERL_EPMD_ADDRESS=127.0.0.1
		ERL_EPMD_PORT="$RMQ_EPMD_PORT"
	)
}

rmq_exec() {
	rmq_env
	env "${RMQ_ENV[@]}" "$@"
}

rmq_beam_pid() { pid_from_file "$(rmq_dir)/beam.pid" beam; }
rmq_wrapper_pid() { pid_from_file "$RUN_DIR/rabbitmq-server.pid" rabbitmq-server; }
rmq_epmd_pid() { pid_from_file "$RUN_DIR/epmd.pid" epmd; }

# Any process of our broker alive (the wrapper exists before beam writes its pid file).
rmq_pid() { rmq_beam_pid || rmq_wrapper_pid; }

rmq_write_config() {
	local d
	d=$(rmq_dir)
	mkdir -p "$d/mnesia"
	: >"$d/rabbitmq-env.conf"
	cat >"$d/rabbitmq.conf" <<EOF
# forgegraph local stack (written by deploy/local/stack.sh on every start)
listeners.tcp.default = 127.0.0.1:$RMQ_PORT
management.tcp.ip = 127.0.0.1
management.tcp.port = $RMQ_MGMT_PORT
loopback_users.guest = true
log.console = false
log.file = rabbitmq.log
log.file.level = info
EOF
	echo '[rabbitmq_management].' >"$d/enabled_plugins"
}

# Launches epmd and the node without waiting (`up` overlaps the boot with the other servers).
rmq_launch() {
	local pid
	if pid=$(rmq_pid); then
		say "rabbitmq already running (pid $pid)"
		return 0
	fi
	require_port_free "$RMQ_PORT" "rabbitmq amqp"
	require_port_free "$RMQ_MGMT_PORT" "rabbitmq management"
	require_port_free "$RMQ_DIST_PORT" "rabbitmq distribution"
	rmq_write_config
	rm -f "$(rmq_dir)/beam.pid"
	RMQ_T0=$EPOCHREALTIME
	# Our own epmd, so its pid is known and it listens on loopback only.
	if ! rmq_epmd_pid >/dev/null; then
		require_port_free "$RMQ_EPMD_PORT" "epmd"
		spawn "$RUN_DIR/epmd.pid" "$LOG_DIR/epmd.log" epmd -address 127.0.0.1 -port "$RMQ_EPMD_PORT"
	fi
	rmq_env
	spawn "$RUN_DIR/rabbitmq-server.pid" "$LOG_DIR/rabbitmq-stdout.log" env "${RMQ_ENV[@]}" "$RMQ_BIN/rabbitmq-server"
}

# Waits for the broker, then makes sure user fg exists. AMQP listeners open last in the boot
# (after the plugins), so an open AMQP port plus the management API answering is "ready"; polling
# that is far cheaper than `rabbitmqctl wait`, which boots an Erlang VM of its own on 2 cores.
rmq_wait_ready() {
	local t0=${RMQ_T0:-} pid
	while :; do
		if port_open "$RMQ_PORT" &&
			[ "$(http_code "http://guest:guest@127.0.0.1:$RMQ_MGMT_PORT/api/overview")" = 200 ]; then
			break
		fi
		if ! pid=$(rmq_pid); then
			show_log_tail "$LOG_DIR/rabbitmq-stdout.log"
			show_log_tail "$LOG_DIR/rabbitmq.log"
			die "rabbitmq exited during start"
		fi
		if [ "$(time_left)" -le 0 ]; then
			show_log_tail "$LOG_DIR/rabbitmq.log"
			die "rabbitmq not ready on 127.0.0.1:$RMQ_PORT within ${FG_STACK_TIMEOUT:-90} s"
		fi
		sleep 0.2
	done
	rmq_provision
	if [ -n "${RMQ_T0:-}" ]; then
		say "rabbitmq ready on 127.0.0.1:$RMQ_PORT (management $RMQ_MGMT_PORT) in $(elapsed_since "$t0") s"
	fi
}

rmq_start() {
	local pid
	if pid=$(rmq_beam_pid) && port_open "$RMQ_PORT"; then
		say "rabbitmq already running (pid $pid)"
		rmq_provision
		return 0
	fi
	rmq_launch
	rmq_wait_ready
}

# User fg: administrator, every permission on vhost /. guest stays (loopback-only by default) and
# is what we use to create fg, through the management API (milliseconds; rabbitmqctl: seconds).
rmq_provision() {
	local api="http://127.0.0.1:$RMQ_MGMT_PORT/api" code
	code=$(curl -s -o /dev/null -w '%{http_code}' -u guest:guest -X PUT -H 'content-type: application/json' \
		--data "{\"password\":\"$FG_RABBITMQ_PASSWORD\",\"tags\":\"administrator\"}" "$api/users/fg")
	case "$code" in 201 | 204) ;; *) die "rabbitmq: could not create user fg (HTTP $code)" ;; esac
	code=$(curl -s -o /dev/null -w '%{http_code}' -u guest:guest -X PUT -H 'content-type: application/json' \
		--data '{"configure":".*","write":".*","read":".*"}' "$api/permissions/%2F/fg")
	case "$code" in 201 | 204) ;; *) die "rabbitmq: could not grant permissions to fg (HTTP $code)" ;; esac
}

# Stops beam (SIGTERM = the same graceful stop as `rabbitmqctl stop`, without a CLI VM), then epmd.
# "kill" (throw-away stacks): SIGKILL at once, since a graceful halt takes 6-7 s.
rmq_stop() {
	local mode=${1:-} pid wrapper beam stopped=0
	wrapper=$(rmq_wrapper_pid || true)
	beam=$(rmq_beam_pid || true)
	# Early in the boot beam has not written its pid file yet: it is the wrapper's child.
	if [ -z "$beam" ] && [ -n "$wrapper" ]; then
		for pid in $(pgrep -P "$wrapper" || true); do
			grep -q beam "/proc/$pid/cmdline" 2>/dev/null && beam=$pid
		done
	fi
	if [ -n "$beam" ]; then
		if [ "$mode" = kill ]; then
			kill -KILL "$beam" 2>/dev/null || true
			wait_gone "$beam" 10 || true
		else
			stop_pid "$beam" 60 rabbitmq || die "rabbitmq (pid $beam) did not stop"
		fi
		stopped=1
	fi
	# The wrapper exits with beam; if beam never started it is the one to stop.
	if [ -n "$wrapper" ] && alive "$wrapper"; then
		if [ "$mode" = kill ]; then
			kill -KILL "$wrapper" 2>/dev/null || true
		fi
		wait_gone "$wrapper" 5 || stop_pid "$wrapper" 5 rabbitmq-server || true
		stopped=1
	fi
	if pid=$(rmq_epmd_pid); then
		stop_pid "$pid" 5 epmd || true
		stopped=1
	fi
	rm -f "$RUN_DIR/rabbitmq-server.pid" "$RUN_DIR/epmd.pid" "$(rmq_dir)/beam.pid"
	if [ "$stopped" = 1 ]; then
		say "rabbitmq stopped"
	fi
}

rmq_ctl() { rmq_exec "$RMQ_BIN/rabbitmqctl" "$@"; }

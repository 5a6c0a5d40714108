# shellcheck shell=bash
# PostgreSQL 15 of the local stack: one cluster in $PG_DATA on 127.0.0.1:$PG_PORT, its unix socket
# in the data directory. initdb and pg_ctl refuse root, so as root every server command runs as
# user postgres (runuser), from / (postgres cannot read a cwd under /root). The service roles log in
# over TCP with scram-sha-256; postgres may also use the unix socket without password (the
# directory is 0700, so only postgres and root can reach it).

PGBIN=/usr/lib/postgresql/15/bin

pg_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		(cd / && "$@")
	fi
}

# The postmaster's pid; in the few milliseconds before it writes postmaster.pid, found by its
# command line, which names our data directory.
pg_pid() {
	pid_from_file "$PG_DATA/postmaster.pid" postgres ||
		pgrep -o -f "^$PGBIN/postgres -D $PG_DATA -p "
}

pg_log() { echo "$PG_DATA/postgresql.log"; }

# Server options on the command line (not in postgresql.conf) so FG_PG_FAST and a changed offset
# apply on every start. fsync and synchronous_commit stay on unless FG_PG_FAST=1 (tests only: the
# webhook benchmark measures durable commits).
pg_options() {
	local opts="-p $PG_PORT -k $PG_DATA -c listen_addresses=127.0.0.1 -c unix_socket_permissions=0700"
	opts="$opts -c max_connections=${FG_PG_MAX_CONNECTIONS:-200} -c password_encryption=scram-sha-256"
	if [ "${FG_PG_FAST:-0}" = 1 ]; then
		opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	fi
	echo "$opts"
}

pg_initdb() {
	local parent
	parent=$(dirname "$PG_DATA")
	mkdir -p "$parent"
	if [ "$(id -u)" -eq 0 ]; then
		# Only the default /var/tmp/forgegraph-<hash> parent is ours to hand to postgres.
		if [ "$parent" = "$PG_ROOT_DEFAULT" ]; then
			chown postgres:postgres "$parent"
			chmod 0700 "$parent"
		fi
		if ! runuser -u postgres -- test -w "$parent"; then
			die "user postgres cannot write $parent (choose FG_PG_DATA_DIR somewhere it can)"
		fi
	fi
	# The unix socket path must fit in 107 bytes.
	if [ "${#PG_DATA}" -gt 90 ]; then
		die "FG_PG_DATA_DIR path is too long for a unix socket ($PG_DATA)"
	fi
	local sync=()
	[ "${FG_PG_FAST:-0}" = 1 ] && sync=(--no-sync)
	if ! pg_as_owner "$PGBIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
		--auth-local=trust --auth-host=scram-sha-256 "${sync[@]}" >"$LOG_DIR/postgresql-initdb.log" 2>&1; then
		show_log_tail "$LOG_DIR/postgresql-initdb.log"
		die "initdb failed for $PG_DATA"
	fi
	# Only postgres may use the socket without a password; every TCP login needs one.
	pg_as_owner tee "$PG_DATA/pg_hba.conf" >/dev/null <<'EOF'
# forgegraph local stack (written by deploy/local/stack.sh)
# TYPE  DATABASE  USER      ADDRESS        METHOD
local   all       postgres                 trust
host    all       all       127.0.0.1/32   scram-sha-256
EOF
	pg_as_owner tee "$PG_DATA/forgegraph-stack" >/dev/null <<<"$STACK_DIR"
}

pg_start() {
	local t0=$EPOCHREALTIME pid
	if pid=$(pg_pid); then
		say "postgresql already running (pid $pid)"
		return 0
	fi
	require_port_free "$PG_PORT" postgresql
	if [ ! -s "$PG_DATA/PG_VERSION" ]; then
		pg_initdb
	elif [ "$(cat "$PG_DATA/forgegraph-stack" 2>/dev/null)" != "$STACK_DIR" ]; then
		die "$PG_DATA belongs to another stack ($(cat "$PG_DATA/forgegraph-stack" 2>/dev/null || echo unknown)); set FG_PG_DATA_DIR"
	fi
	ln -sfn "$(pg_log)" "$LOG_DIR/postgresql.log"
	# setsid: the postmaster would otherwise share our process group and take a Ctrl-C as
	# "fast shutdown".
	if ! setsid bash -c "$CLOSE_FDS; $(declare -f pg_as_owner); pg_as_owner \"\$@\"" _ \
		"$PGBIN/pg_ctl" -D "$PG_DATA" -l "$(pg_log)" -w -t "$(time_left)" -o "$(pg_options)" start \
		</dev/null >"$LOG_DIR/postgresql-ctl.log" 2>&1; then
		show_log_tail "$(pg_log)"
		die "postgresql did not start on port $PG_PORT"
	fi
	say "postgresql ready on 127.0.0.1:$PG_PORT in $(elapsed_since "$t0") s (data $PG_DATA)"
}

# psql as postgres over the unix socket.
pg_psql() {
	psql -X -q -v ON_ERROR_STOP=1 -h "$PG_DATA" -p "$PG_PORT" -U postgres "$@"
}

# Roles and databases, idempotent: run on every `up` so the passwords always match secrets.env.
# CONNECT is revoked from PUBLIC: a service's role reaches its own database only.
pg_provision() {
	local spec role db pw_var
	{
		echo "ALTER ROLE postgres PASSWORD '$FG_PG_ADMIN_PASSWORD';"
		for spec in fg_webhook:fg_webhook:FG_WEBHOOK_DB_PASSWORD \
			fg_token_repository:fg_tokens:FG_TOKEN_REPOSITORY_DB_PASSWORD \
			fg_event_log:fg_event_log:FG_EVENT_LOG_DB_PASSWORD \
			fg_triples_generator:fg_triples:FG_TRIPLES_GENERATOR_DB_PASSWORD; do
			IFS=: read -r role db pw_var <<<"$spec"
			cat <<EOF
SELECT format('CREATE ROLE %I LOGIN', '$role') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$role') \gexec
ALTER ROLE $role LOGIN PASSWORD '${!pw_var}';
SELECT format('CREATE DATABASE %I OWNER %I', '$db', '$role') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$db') \gexec
REVOKE CONNECT, TEMPORARY ON DATABASE $db FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE $db TO $role;
EOF
		done
	} | pg_psql -d postgres -f - >/dev/null || die "could not create the PostgreSQL roles and databases"
}

pg_stop() {
	local pid
	if ! pid=$(pg_pid); then
		return 0
	fi
	if [ "${1:-}" = kill ]; then
		# Throw-away stack: no need to checkpoint.
		pg_as_owner "$PGBIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
	else
		pg_as_owner "$PGBIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null 2>&1 || true
	fi
	if alive "$pid"; then
		stop_pid "$pid" 10 postgresql || die "postgresql (pid $pid) did not stop"
	fi
	say "postgresql stopped"
}

pg_purge() {
	if [ -e "$PG_DATA" ]; then
		if [ "$(cat "$PG_DATA/forgegraph-stack" 2>/dev/null)" != "$STACK_DIR" ]; then
			warn "not removing $PG_DATA: it is not marked as this stack's"
			return 0
		fi
		rm -rf "$PG_DATA"
	fi
	# The /var/tmp/forgegraph-<hash> parent is ours; it may be left empty by an interrupted initdb.
	if [ "$(dirname "$PG_DATA")" = "$PG_ROOT_DEFAULT" ] && [ -d "$PG_ROOT_DEFAULT" ]; then
		rmdir "$PG_ROOT_DEFAULT" 2>/dev/null || true
	fi
}

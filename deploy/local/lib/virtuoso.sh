# shellcheck shell=bash
# Virtuoso 7 (Debian's virtuoso-opensource) of the local stack: our own ini and database under
# $STACK_DIR/virtuoso, SQL and HTTP listeners on 127.0.0.1 only. Debian's /etc ini and
# /var/lib/virtuoso-opensource-7 belong to the system service and are never touched. A new database
# always has dba/dba: the first start replaces that password with a generated one and creates user
# `forgegraph`, allowed to SPARQL-update through the digest-authenticated /sparql-auth endpoints.

vt_dir() { echo "$STACK_DIR/virtuoso"; }
vt_pid() { pid_from_file "$RUN_DIR/virtuoso.pid" virtuoso-t; }

vt_write_ini() {
	local d buffers
	d=$(vt_dir)
	# 8 KiB pages; 170000 is a ~1.3 GiB cache ceiling (grows on demand; idle RSS is the same).
	buffers=${FG_VIRTUOSO_BUFFERS:-170000}
	mkdir -p "$d/db" "$d/vsp" "$d/load"
	cat >"$d/virtuoso.ini" <<EOF
; forgegraph local stack (written by deploy/local/stack.sh on every start)
[Database]
DatabaseFile       = $d/db/virtuoso.db
ErrorLogFile       = $LOG_DIR/virtuoso.log
LockFile           = $d/db/virtuoso.lck
TransactionFile    = $d/db/virtuoso.trx
xa_persistent_file = $d/db/virtuoso.pxa
ErrorLogLevel      = 7
FileExtend         = 200
MaxCheckpointRemap = 2000
Striping           = 0
TempStorage        = TempDatabase
[TempDatabase]
DatabaseFile       = $d/db/virtuoso-temp.db
TransactionFile    = $d/db/virtuoso-temp.trx
MaxCheckpointRemap = 2000
Striping           = 0
[Parameters]
ServerPort               = 127.0.0.1:$VT_SQL_PORT
DisableUnixSocket        = 1
MaxClientConnections     = 20
CheckpointInterval       = 60
CaseMode                 = 2
AllowOSCalls             = 0
DirsAllowed              = ., $d/load, /usr/share/virtuoso-opensource-7/vad
VADInstallDir            = /usr/share/virtuoso-opensource-7/vad/
NumberOfBuffers          = $buffers
MaxDirtyBuffers          = $((buffers * 3 / 4))
MaxQueryMem              = 1G
ThreadsPerQuery          = 2
AsyncQueueMaxThreads     = 10
[HTTPServer]
ServerPort                  = 127.0.0.1:$VT_HTTP_PORT
ServerRoot                  = $d/vsp
MaxClientConnections        = 20
ServerThreads               = 20
DavRoot                     = DAV
EnabledDavVSP               = 0
HTTPProxyEnabled            = 0
MaxKeepAlives               = 10
KeepAliveTimeout            = 10
Charset                     = UTF-8
EnabledGzipContent          = 1
[Client]
SQL_PREFETCH_ROWS  = 100
SQL_PREFETCH_BYTES = 16000
[SPARQL]
ResultSetMaxRows           = 100000
MaxQueryCostEstimationTime = 400
MaxQueryExecutionTime      = 60
DefaultGraph               = urn:default
EOF
}

vt_launch() {
	local pid
	if pid=$(vt_pid); then
		say "virtuoso already running (pid $pid)"
		return 0
	fi
	require_port_free "$VT_SQL_PORT" "virtuoso sql"
	require_port_free "$VT_HTTP_PORT" "virtuoso http"
	vt_write_ini
	# A lock file left by a killed server makes Virtuoso refuse to start; no server of ours runs.
	rm -f "$(vt_dir)/db/virtuoso.lck"
	VT_T0=$EPOCHREALTIME
	(cd "$(vt_dir)/db" && spawn "$RUN_DIR/virtuoso.pid" "$LOG_DIR/virtuoso-stdout.log" \
		virtuoso-t +foreground +configfile "$(vt_dir)/virtuoso.ini")
}

# isql as dba with the given password; output on stdout. isql exits 0 even when a statement
# fails, so callers look for "*** Error" in its output.
vt_isql_as() {
	local pw=$1
	shift
	isql-vt "127.0.0.1:$VT_SQL_PORT" dba "$pw" "$@" </dev/null 2>&1
}

vt_isql() { vt_isql_as "${FG_VIRTUOSO_DBA_PASSWORD:-dba}" "$@"; }

# Ready when the SPARQL endpoint answers (HTTP opens after SQL).
vt_wait_ready() {
	local t0=${VT_T0:-}
	while [ "$(http_code "http://127.0.0.1:$VT_HTTP_PORT/sparql?query=ASK%7B%7D")" != 200 ]; do
		if ! vt_pid >/dev/null; then
			show_log_tail "$LOG_DIR/virtuoso.log"
			die "virtuoso exited during start"
		fi
		if [ "$(time_left)" -le 0 ]; then
			show_log_tail "$LOG_DIR/virtuoso.log"
			die "virtuoso not ready on 127.0.0.1:$VT_HTTP_PORT within ${FG_STACK_TIMEOUT:-90} s"
		fi
		sleep 0.1
	done
	vt_provision
	if [ -n "${VT_T0:-}" ]; then
		say "virtuoso ready on 127.0.0.1:$VT_HTTP_PORT (sql $VT_SQL_PORT) in $(elapsed_since "$t0") s"
	fi
}

vt_start() {
	local pid
	if pid=$(vt_pid); then
		say "virtuoso already running (pid $pid)"
		return 0
	fi
	vt_launch
	vt_wait_ready
}

# True when isql output $1 reports a failure (isql exits 0 after a failed statement).
# "already exists" (a user) and U0013 (a role already granted) are what idempotence looks like.
vt_failed() { grep '\*\*\* Error\|Bad login' <<<"$1" | grep -v -q 'already exists\|U0013'; }

# Idempotent, on every start (three isql calls, milliseconds): a new database's dba/dba gets the
# generated password; user forgegraph exists, has the password of secrets.env and may SPARQL-update.
vt_provision() {
	local out
	out=$(vt_isql exec="select 1;" || true)
	if vt_failed "$out"; then
		# USER_SET_PASSWORD is a built-in (no DB.DBA. prefix).
		out=$(vt_isql_as dba exec="USER_SET_PASSWORD('dba', '$FG_VIRTUOSO_DBA_PASSWORD');" || true)
		vt_failed "$out" &&
			die "virtuoso: dba accepts neither the password of $SECRETS_FILE nor the default; was secrets.env replaced? (stack.sh down --purge starts afresh)"
	fi
	out=$(vt_isql exec="USER_CREATE('forgegraph', '$FG_TRIPLESTORE_PASSWORD');" || true)
	if vt_failed "$out"; then
		echo "$out" >&2
		die "virtuoso: could not create user forgegraph"
	fi
	out=$(vt_isql exec="USER_SET_PASSWORD('forgegraph', '$FG_TRIPLESTORE_PASSWORD'); GRANT SPARQL_UPDATE TO \"forgegraph\"; GRANT SPARQL_SELECT TO \"forgegraph\";" || true)
	if vt_failed "$out"; then
		echo "$out" >&2
		die "virtuoso: could not grant SPARQL update to forgegraph"
	fi
}

# isql `shutdown` checkpoints and exits (1.8 s); "kill" (throw-away stacks) skips it.
vt_stop() {
	local mode=${1:-} pid
	pid=$(vt_pid) || return 0
	if [ "$mode" != kill ]; then
		vt_isql exec="shutdown;" >/dev/null 2>&1 || true
		wait_gone "$pid" 30 || true
	fi
	if alive "$pid"; then
		if [ "$mode" = kill ]; then
			kill -KILL "$pid" 2>/dev/null || true
			wait_gone "$pid" 10 || true
		else
			stop_pid "$pid" 10 virtuoso || die "virtuoso (pid $pid) did not stop"
		fi
	fi
	rm -f "$RUN_DIR/virtuoso.pid"
	say "virtuoso stopped"
}

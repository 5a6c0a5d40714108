/*
 * PostgreSQL on libpq (see fg/pg.h and docs/internals/pg.md).
 */
#include "fg/pg.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fg/config.h"
#include "fg/log.h"

#define FG_PG_MESSAGE_MAX 384  /* server text kept in an error (fg_error keeps 512 bytes) */
#define FG_PG_KEEP_MAX    512  /* an fg_error message saved across a cleanup step */
#define FG_PG_PATH_MAX    4096 /* directory + migration file name */
#define FG_PG_SECRETS_MAX 4    /* password spellings scrubbed from connection messages */
#define FG_PG_SCRUB_MIN   6    /* shortest stored password scrubbed from every message */

typedef struct {
    char *name;
    char *sql;
} prepared;

struct fg_pg_conn {
    PGconn *conn;
    char *url_shown;         /* the URL with its password redacted: the only form logged */
    const char *connect_url; /* during fg_pg_connect only: its password is scrubbed from errors */
    char *url_error;         /* during fg_pg_connect only: why libpq cannot parse the URL */
    int timeout_ms;          /* for every (re)connect */
    bool connecting;         /* inside a connect or reconnect: a failure there is 08001 */
    char sqlstate[6];        /* of the last failed call, "" otherwise */
    bool tx_open;            /* the server had a transaction open after the last command */
    bool goodbye;            /* the server sent a FATAL notice: it is closing this session */
    bool copy_active;        /* between fg_pg_copy_begin and the end or abort of that COPY */
    size_t copy_cols;
    fg_buf copy_line;
    prepared stmts[FG_PG_PREPARED_MAX]; /* those prepared on the current session */
    size_t nstmts;
};

struct fg_pg_result {
    PGresult *res;
};

typedef struct {
    const char *ptr;
    size_t len;
} span;

typedef struct {
    char *file;    /* 0001_init.sql */
    char *version; /* 0001_init */
    char *sql;     /* the content, NUL-terminated */
    char checksum[2 * 32 + 1];
    bool applied;
} migration;

typedef struct {
    migration *items;
    size_t n, cap;
} migration_list;

/* ---- error folding --------------------------------------------------------------------- */

static bool in_class(const char *sqlstate, const char *cls)
{
    return strncmp(sqlstate, cls, 2) == 0;
}

int fg_pg_error_code(const char *s)
{
    if (s == NULL || strlen(s) != 5)
        return FG_ERROR;
    if (in_class(s, "08") || in_class(s, "53") || strcmp(s, "57P01") == 0 ||
        strcmp(s, "57P02") == 0 || strcmp(s, "57P03") == 0)
        return FG_EUNAVAILABLE;
    if (strcmp(s, "23505") == 0 || strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0)
        return FG_ECONFLICT;
    if (in_class(s, "22"))
        return FG_EINVALID;
    if (in_class(s, "28") || strcmp(s, "42501") == 0)
        return FG_EAUTH;
    if (strcmp(s, "57014") == 0)
        return FG_ETIMEOUT;
    return FG_ERROR;
}

bool fg_pg_sqlstate_retryable(const char *s)
{
    if (s == NULL)
        return false;
    return strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 ||
           fg_pg_error_code(s) == FG_EUNAVAILABLE;
}

/* The userinfo password and any ?password= value of a URL, as written: libpq quotes URL
 * fragments verbatim when it cannot parse them. */
static size_t url_secrets(span *out, size_t max, const char *url)
{
    const char *auth, *at, *colon, *slash, *query, *p;
    size_t n = 0;

    if (url == NULL || (auth = strstr(url, "://")) == NULL)
        return 0;
    auth += 3;
    slash = auth + strcspn(auth, "/"); /* as libpq: the userinfo ends at the first '@' */
    at = memchr(auth, '@', (size_t)(slash - auth));
    colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon != NULL && at > colon + 1 && n < max)
        out[n++] = (span){colon + 1, (size_t)(at - colon - 1)};
    query = strchr(auth, '?');
    for (p = query; p != NULL && n < max; p = strchr(p + 1, '&')) {
        if (strncmp(p + 1, "password=", 9) == 0 && strcspn(p + 10, "&") > 0)
            out[n++] = (span){p + 10, strcspn(p + 10, "&")};
    }
    return n;
}

static size_t secret_at(const char *s, const span *secrets, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (secrets[i].len > 0 && strncmp(s, secrets[i].ptr, secrets[i].len) == 0)
            return secrets[i].len;
    return 0;
}

/* libpq messages span lines ("...failed\n\tIs the server running..."); an fg error is one line,
 * and it must not carry the password, which libpq may echo from a URL it cannot parse. */
static void clean_message(char *dst, size_t cap, const char *msg, const span *secrets,
                          size_t nsecrets)
{
    size_t len = 0;
    bool space = false;

    while (*msg != '\0' && len + 4 < cap) {
        size_t skip = secret_at(msg, secrets, nsecrets);

        if (skip > 0) {
            if (space)
                dst[len++] = ' ';
            memcpy(dst + len, "***", 3);
            len += 3;
            msg += skip;
            space = false;
        } else if (*msg == ' ' || *msg == '\n' || *msg == '\t' || *msg == '\r') {
            space = len > 0;
            msg++;
        } else {
            if (space)
                dst[len++] = ' ';
            dst[len++] = *msg++;
            space = false;
        }
    }
    dst[len] = '\0';
}

/* The one place where libpq's failure shapes become fg codes. A server error carries its
 * SQLSTATE; a connection that is gone gets the standard 08001 (never established) or 08006
 * (lost), and a refused password prompt 28000, so that fg_pg_error_code decides every case but
 * one: a URL libpq cannot parse (pg->url_error) is bad configuration, FG_EINVALID. */
static int fold(fg_pg_conn *pg, const PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *pass = PQpass(pg->conn);
    span secrets[FG_PG_SECRETS_MAX];
    size_t nsecrets = 0;
    char text[FG_PG_MESSAGE_MAX];
    int code;

    /* libpq echoes URL fragments only when it cannot parse the URL: then every spelling of the
     * password goes, however short. Otherwise no message should hold it; the stored password is
     * scrubbed anyway when it is long enough not to mangle ordinary words. */
    if (pg->url_error != NULL)
        nsecrets = url_secrets(secrets, FG_PG_SECRETS_MAX - 1, pg->connect_url);
    if (pass != NULL && strlen(pass) >= FG_PG_SCRUB_MIN)
        secrets[nsecrets++] = (span){pass, strlen(pass)};
    if (PQstatus(pg->conn) == CONNECTION_BAD && fg_pg_error_code(state) != FG_EUNAVAILABLE) {
        if (PQconnectionNeedsPassword(pg->conn))
            state = "28000";
        else
            state = pg->connecting ? "08001" : "08006";
    }
    if (msg == NULL || msg[0] == '\0')
        msg = res ? PQresultErrorMessage(res) : "";
    if (msg[0] == '\0')
        msg = PQerrorMessage(pg->conn);
    code = fg_pg_error_code(state);
    if (pg->url_error != NULL) {
        msg = pg->url_error;
        state = NULL;
        code = FG_EINVALID;
    }
    clean_message(text, sizeof(text), msg, secrets, nsecrets);
    snprintf(pg->sqlstate, sizeof(pg->sqlstate), "%s", state ? state : "");
    return fg_error_set(code, "pg: %s: %s (SQLSTATE %s%s)", what, text[0] ? text : "unknown error",
                        state ? state : "none",
                        fg_pg_sqlstate_retryable(state) ? ", retryable" : "");
}

/* ---- connection ------------------------------------------------------------------------ */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* By default libpq prints notices on stderr. A FATAL one arriving while idle is the server
 * announcing it closes this session (shutdown, pg_terminate_backend): the next call reconnects
 * instead of sending a statement into a dying session. */
static void on_notice(void *arg, const PGresult *res)
{
    fg_pg_conn *pg = arg;
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    fg_log_level level = FG_LOG_DEBUG;

    if (severity == NULL)
        severity = "NOTICE";
    if (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0)
        pg->goodbye = true;
    if (pg->goodbye || strcmp(severity, "WARNING") == 0)
        level = FG_LOG_WARN;
    if (!fg_log_enabled(level))
        return;
    fg_log_emit(level,
                FG_LOG_FIELDS(FG_LOG_STR("severity", severity),
                              FG_LOG_STR("sqlstate", state ? state : ""),
                              FG_LOG_STR("url", pg->url_shown ? pg->url_shown : "")),
                "pg: server says: %s", msg ? msg : "");
}

/* Drives PQconnectPoll or PQresetPoll to the end. libpq's connect_timeout only works in its
 * blocking calls and in whole seconds per host; this gives one deadline in milliseconds. */
static int drive(fg_pg_conn *pg, PostgresPollingStatusType (*step)(PGconn *), const char *what)
{
    PostgresPollingStatusType st = PGRES_POLLING_WRITING; /* libpq's rule for the first wait */
    long long deadline = now_ms() + pg->timeout_ms;
    int rc = 0;

    pg->connecting = true;
    while (st != PGRES_POLLING_OK && rc == 0) {
        struct pollfd p = {PQsocket(pg->conn), POLLOUT, 0};
        long long left = deadline - now_ms();
        int n;

        if (st == PGRES_POLLING_FAILED || PQstatus(pg->conn) == CONNECTION_BAD) {
            rc = fold(pg, NULL, what);
        } else if (left <= 0) {
            snprintf(pg->sqlstate, sizeof(pg->sqlstate), "08001");
            rc = fg_error_set(FG_EUNAVAILABLE,
                              "pg: %s: timed out after %d ms (SQLSTATE 08001, "
                              "retryable)",
                              what, pg->timeout_ms);
        } else {
            if (st == PGRES_POLLING_READING)
                p.events = POLLIN;
            n = poll(&p, 1, (int)left);
            if (n < 0 && errno != EINTR)
                rc = fg_error_set(FG_EUNAVAILABLE, "pg: %s: poll: %s", what, strerror(errno));
            else if (n > 0)
                st = step(pg->conn);
        }
    }
    pg->connecting = false;
    return rc;
}

static void forget_prepared(fg_pg_conn *pg)
{
    for (size_t i = 0; i < pg->nstmts; i++) {
        free(pg->stmts[i].name);
        free(pg->stmts[i].sql);
    }
    pg->nstmts = 0;
}

static int reconnect(fg_pg_conn *pg)
{
    int rc;

    /* Prepared statements and any transaction died with the old session. */
    forget_prepared(pg);
    pg->tx_open = false;
    pg->goodbye = false;
    if (PQresetStart(pg->conn) == 0)
        return fold(pg, NULL, "reconnect");
    if ((rc = drive(pg, PQresetPoll, "reconnect")) < 0)
        return rc;
    fg_log_emit(FG_LOG_INFO, FG_LOG_FIELDS(FG_LOG_STR("url", pg->url_shown)),
                "pg: reconnected after the connection was lost");
    return 0;
}

/* Runs before every operation. A dead connection is re-established only outside a transaction:
 * after a reset, the rest of a transaction would silently run in autocommit. */
static int ready(fg_pg_conn *pg, const char *what)
{
    pg->sqlstate[0] = '\0';
    if (pg->copy_active)
        return fg_error_set(FG_EINVALID, "pg: %s: a COPY is in progress on this connection", what);
    /* Reading while idle picks up the EOF or FATAL farewell of a server that went away, so the
     * statement goes to a fresh session rather than failing on the dead one. A failed read
     * leaves the status CONNECTION_BAD, which is all that matters here. */
    if (PQstatus(pg->conn) == CONNECTION_OK) {
        /* PQconsumeInput only buffers; PQisBusy parses, which hands a FATAL to on_notice. */
        if (PQconsumeInput(pg->conn) == 0)
            pg->goodbye = true;
        else
            (void)PQisBusy(pg->conn);
    }
    if (PQstatus(pg->conn) == CONNECTION_OK && !pg->goodbye)
        return 0;
    if (pg->tx_open) {
        snprintf(pg->sqlstate, sizeof(pg->sqlstate), "08006");
        return fg_error_set(FG_EUNAVAILABLE,
                            "pg: %s: the connection was lost inside a "
                            "transaction; roll back and retry (SQLSTATE 08006, retryable)",
                            what);
    }
    return reconnect(pg);
}

/* The URL as logs and errors show it: fg_config_redact_url hides the userinfo password, and a
 * ?password= parameter is hidden here as well. */
static int show_url(char **out, const char *url)
{
    span secrets[FG_PG_SECRETS_MAX];
    size_t nsecrets = url_secrets(secrets, FG_PG_SECRETS_MAX, url);
    char text[FG_PG_URL_MAX + 64];
    fg_buf redacted;
    int rc;

    fg_buf_init(&redacted, FG_PG_URL_MAX + 16);
    if ((rc = fg_config_redact_url(&redacted, url)) == 0) {
        clean_message(text, sizeof(text), redacted.ptr, secrets, nsecrets);
        if ((*out = strdup(text)) == NULL)
            rc = fg_error_set(FG_ENOMEM, "pg: connect: out of memory");
    }
    fg_buf_dispose(&redacted);
    return rc;
}

int fg_pg_connect(fg_pg_conn **out, const char *url, int timeout_ms)
{
    /* Keywords before dbname are defaults the URL may override; those after it are forced. */
    static const char *const keys[] = {"keepalives_idle",
                                       "keepalives_interval",
                                       "keepalives_count",
                                       "dbname",
                                       "client_encoding",
                                       "fallback_application_name",
                                       NULL};
    const char *values[] = {"30", "10", "3", url, "UTF8", "forgegraph", NULL};
    PQconninfoOption *options = NULL;
    fg_pg_conn *pg = NULL;
    int rc = FG_ERROR;

    *out = NULL;
    if (url == NULL ||
        (strncmp(url, "postgresql://", 13) != 0 && strncmp(url, "postgres://", 11) != 0))
        return fg_error_set(FG_EINVALID, "pg: connect: the URL must start with postgresql://");
    if (strlen(url) > FG_PG_URL_MAX || timeout_ms <= 0)
        return fg_error_set(FG_EINVALID,
                            "pg: connect: URL longer than %u bytes or timeout "
                            "%d ms is not positive",
                            FG_PG_URL_MAX, timeout_ms);
    if ((pg = calloc(1, sizeof(*pg))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "pg: connect: out of memory");
        goto done;
    }
    fg_buf_init(&pg->copy_line, FG_PG_COPY_ROW_MAX);
    pg->timeout_ms = timeout_ms;
    pg->connect_url = url;
    if ((rc = show_url(&pg->url_shown, url)) < 0)
        goto done;
    /* Parsed first, so that a malformed URL is told apart from an unreachable server. */
    if ((options = PQconninfoParse(url, &pg->url_error)) == NULL) {
        rc = pg->url_error ? fold(pg, NULL, pg->url_shown)
                           : fg_error_set(FG_ENOMEM, "pg: connect: out of memory");
        goto done;
    }
    if ((pg->conn = PQconnectStartParams(keys, values, 1)) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "pg: connect: out of memory");
        goto done;
    }
    PQsetNoticeReceiver(pg->conn, on_notice, pg);
    if ((rc = drive(pg, PQconnectPoll, pg->url_shown)) < 0)
        goto done;
    pg->connect_url = NULL;
    fg_log_emit(FG_LOG_DEBUG, FG_LOG_FIELDS(FG_LOG_STR("url", pg->url_shown)), "pg: connected");
    *out = pg;
    pg = NULL;
    rc = 0;
done:
    PQconninfoFree(options);
    if (pg != NULL)
        PQfreemem(pg->url_error);
    fg_pg_free(pg);
    return rc;
}

void fg_pg_free(fg_pg_conn *pg)
{
    if (pg == NULL)
        return;
    if (pg->conn != NULL)
        PQfinish(pg->conn);
    forget_prepared(pg);
    fg_buf_dispose(&pg->copy_line);
    free(pg->url_shown);
    free(pg);
}

const char *fg_pg_sqlstate(const fg_pg_conn *pg)
{
    return pg ? pg->sqlstate : "";
}

/* ---- statements ------------------------------------------------------------------------ */

static void note_tx(fg_pg_conn *pg)
{
    if (PQstatus(pg->conn) == CONNECTION_OK)
        pg->tx_open = PQtransactionStatus(pg->conn) != PQTRANS_IDLE;
}

/* A COPY started through the statement API is ended at once, so the connection stays usable. */
static void drop_copy(fg_pg_conn *pg, ExecStatusType st)
{
    PGresult *res;
    char *row = NULL;

    if (st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
        while (PQgetCopyData(pg->conn, &row, 0) > 0)
            PQfreemem(row);
    }
    if (st == PGRES_COPY_IN || st == PGRES_COPY_BOTH) {
        if (PQputCopyEnd(pg->conn, "COPY FROM STDIN runs only through fg_pg_copy_begin") != 1)
            return;
    }
    while ((res = PQgetResult(pg->conn)) != NULL) {
        st = PQresultStatus(res);
        PQclear(res);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
            break; /* libpq hands these back forever */
    }
}

/* Takes ownership of res (which may be NULL: libpq could not even send). */
static int finish(fg_pg_result **out, fg_pg_conn *pg, PGresult *res, const char *what)
{
    ExecStatusType st = PQresultStatus(res);
    int rc = FG_ERROR;

    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
        drop_copy(pg, st);
        rc = fg_error_set(FG_EINVALID,
                          "pg: %s: COPY runs only as COPY ... FROM STDIN through "
                          "fg_pg_copy_begin",
                          what);
        goto done;
    }
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        rc = fold(pg, res, what);
        goto done;
    }
    if (out != NULL) {
        if ((*out = malloc(sizeof(**out))) == NULL) {
            rc = fg_error_set(FG_ENOMEM, "pg: %s: out of memory", what);
            goto done;
        }
        (*out)->res = res;
        res = NULL;
    }
    rc = 0;
done:
    note_tx(pg);
    PQclear(res);
    return rc;
}

static int check_args(const fg_pg_conn *pg, const char *sql, size_t nparams,
                      const char *const *params)
{
    if (pg == NULL || sql == NULL)
        return fg_error_set(FG_EINVALID, "pg: no connection or no SQL given");
    if (nparams > FG_PG_PARAMS_MAX || (nparams > 0 && params == NULL))
        return fg_error_set(FG_EINVALID, "pg: %zu parameters given (at most %u, non-NULL array)",
                            nparams, FG_PG_PARAMS_MAX);
    return 0;
}

static int exec_as(fg_pg_result **out, fg_pg_conn *pg, const char *what, const char *sql,
                   size_t nparams, const char *const *params)
{
    int rc;

    if ((rc = ready(pg, what)) < 0)
        return rc;
    return finish(out, pg, PQexecParams(pg->conn, sql, (int)nparams, NULL, params, NULL, NULL, 0),
                  what);
}

int fg_pg_exec(fg_pg_result **out, fg_pg_conn *pg, const char *sql, size_t nparams,
               const char *const *params)
{
    int rc;

    if (out != NULL)
        *out = NULL;
    if ((rc = check_args(pg, sql, nparams, params)) < 0)
        return rc;
    return exec_as(out, pg, "exec", sql, nparams, params);
}

/* Prepares `name` on this session unless it already is. The copies are made before PQprepare:
 * a statement that exists on the server but not in the cache would fail as a duplicate later. */
static int prepare(fg_pg_conn *pg, const char *name, const char *sql)
{
    prepared p = {NULL, NULL};
    int rc = FG_ERROR;

    for (size_t i = 0; i < pg->nstmts; i++) {
        if (strcmp(pg->stmts[i].name, name) == 0)
            return strcmp(pg->stmts[i].sql, sql) == 0
                       ? 0
                       : fg_error_set(FG_EINVALID,
                                      "pg: prepared statement %s was first "
                                      "prepared with other SQL",
                                      name);
    }
    if (pg->nstmts == FG_PG_PREPARED_MAX)
        return fg_error_set(FG_ETOOBIG, "pg: more than %u prepared statements", FG_PG_PREPARED_MAX);
    if ((p.name = strdup(name)) == NULL || (p.sql = strdup(sql)) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "pg: prepare %s: out of memory", name);
        goto done;
    }
    /* No parameter types: the server infers them from the statement. */
    if ((rc = finish(NULL, pg, PQprepare(pg->conn, name, sql, 0, NULL), name)) < 0)
        goto done;
    pg->stmts[pg->nstmts++] = p;
    p = (prepared){NULL, NULL};
    rc = 0;
done:
    free(p.name);
    free(p.sql);
    return rc;
}

int fg_pg_exec_prepared(fg_pg_result **out, fg_pg_conn *pg, const char *name, const char *sql,
                        size_t nparams, const char *const *params)
{
    int rc;

    if (out != NULL)
        *out = NULL;
    if ((rc = check_args(pg, sql, nparams, params)) < 0)
        return rc;
    if (name == NULL || name[0] == '\0' || strlen(name) > FG_PG_NAME_MAX)
        return fg_error_set(FG_EINVALID, "pg: a prepared statement needs a name of 1-%u bytes",
                            FG_PG_NAME_MAX);
    if ((rc = ready(pg, name)) < 0 || (rc = prepare(pg, name, sql)) < 0)
        return rc;
    return finish(out, pg, PQexecPrepared(pg->conn, name, (int)nparams, params, NULL, NULL, 0),
                  name);
}

int fg_pg_ping(fg_pg_conn *pg)
{
    if (pg == NULL)
        return fg_error_set(FG_EINVALID, "pg: ping: no connection");
    return exec_as(NULL, pg, "ping", "SELECT 1", 0, NULL);
}

/* ---- results --------------------------------------------------------------------------- */

size_t fg_pg_result_rows(const fg_pg_result *r)
{
    return r ? (size_t)PQntuples(r->res) : 0;
}

size_t fg_pg_result_cols(const fg_pg_result *r)
{
    return r ? (size_t)PQnfields(r->res) : 0;
}

static uint64_t parse_count(const char *text)
{
    char *end = NULL;
    unsigned long long v;

    if (text == NULL || text[0] < '0' || text[0] > '9')
        return 0;
    errno = 0;
    v = strtoull(text, &end, 10);
    return errno == 0 && *end == '\0' ? (uint64_t)v : 0;
}

uint64_t fg_pg_result_affected(const fg_pg_result *r)
{
    return r ? parse_count(PQcmdTuples(r->res)) : 0;
}

static bool in_result(const fg_pg_result *r, size_t row, size_t col)
{
    return r != NULL && row < fg_pg_result_rows(r) && col < fg_pg_result_cols(r);
}

const char *fg_pg_result_text(const fg_pg_result *r, size_t row, size_t col)
{
    if (!in_result(r, row, col) || PQgetisnull(r->res, (int)row, (int)col))
        return NULL;
    return PQgetvalue(r->res, (int)row, (int)col);
}

bool fg_pg_result_is_null(const fg_pg_result *r, size_t row, size_t col)
{
    return fg_pg_result_text(r, row, col) == NULL;
}

int fg_pg_result_column(size_t *out, const fg_pg_result *r, const char *name)
{
    int i = r && name ? PQfnumber(r->res, name) : -1;

    if (i < 0)
        return fg_error_set(FG_ENOTFOUND, "pg: the result has no column %s", name ? name : "");
    *out = (size_t)i;
    return 0;
}

static int cell(const char **out, const fg_pg_result *r, size_t row, size_t col)
{
    if (!in_result(r, row, col))
        return fg_error_set(FG_EINVALID, "pg: no cell at row %zu, column %zu (result is %zu x %zu)",
                            row, col, fg_pg_result_rows(r), fg_pg_result_cols(r));
    if ((*out = fg_pg_result_text(r, row, col)) == NULL)
        return fg_error_set(FG_EINVALID, "pg: the value at row %zu, column %zu is NULL", row, col);
    return 0;
}

/* Values are never quoted in these messages: a column may hold something secret. */
int fg_pg_parse_int64(int64_t *out, const char *text)
{
    char *end = NULL;
    long long v;

    if (text == NULL || !(text[0] == '-' || (text[0] >= '0' && text[0] <= '9')))
        return fg_error_set(FG_EINVALID, "pg: the value is not a decimal integer");
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return fg_error_set(FG_EINVALID, "pg: the value is not a 64-bit decimal integer");
    *out = (int64_t)v;
    return 0;
}

int fg_pg_parse_bool(bool *out, const char *text)
{
    if (text == NULL || (strcmp(text, "t") != 0 && strcmp(text, "f") != 0))
        return fg_error_set(FG_EINVALID, "pg: the value is not a boolean (t or f)");
    *out = text[0] == 't';
    return 0;
}

int fg_pg_result_int64(int64_t *out, const fg_pg_result *r, size_t row, size_t col)
{
    const char *text = NULL;
    int rc;

    if ((rc = cell(&text, r, row, col)) < 0)
        return rc;
    return fg_pg_parse_int64(out, text);
}

int fg_pg_result_bool(bool *out, const fg_pg_result *r, size_t row, size_t col)
{
    const char *text = NULL;
    int rc;

    if ((rc = cell(&text, r, row, col)) < 0)
        return rc;
    return fg_pg_parse_bool(out, text);
}

void fg_pg_result_free(fg_pg_result *r)
{
    if (r == NULL)
        return;
    PQclear(r->res);
    free(r);
}

/* ---- transactions ---------------------------------------------------------------------- */

static int begin_as(fg_pg_conn *pg, const char *what, const char *sql)
{
    int rc;

    if ((rc = ready(pg, what)) < 0)
        return rc;
    if (pg->tx_open)
        return fg_error_set(FG_EINVALID, "pg: %s: a transaction is already open", what);
    return finish(NULL, pg, PQexec(pg->conn, sql), what);
}

int fg_pg_begin(fg_pg_conn *pg)
{
    if (pg == NULL)
        return fg_error_set(FG_EINVALID, "pg: begin: no connection");
    return begin_as(pg, "begin", "BEGIN");
}

static int commit_as(fg_pg_conn *pg, const char *what)
{
    PGresult *res = NULL;
    int rc;

    if ((rc = ready(pg, what)) < 0)
        goto done;
    if (!pg->tx_open) {
        rc = fg_error_set(FG_EINVALID, "pg: %s: no transaction is open", what);
        goto done;
    }
    res = PQexec(pg->conn, "COMMIT");
    /* COMMIT of a transaction that failed earlier "succeeds" with the tag ROLLBACK. */
    if (PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
        snprintf(pg->sqlstate, sizeof(pg->sqlstate), "25P02"); /* in_failed_sql_transaction */
        rc = fg_error_set(FG_ERROR,
                          "pg: %s: the transaction had failed earlier and was rolled "
                          "back",
                          what);
        goto done;
    }
    rc = finish(NULL, pg, res, what);
    res = NULL;
done:
    PQclear(res);
    pg->tx_open = false;
    return rc;
}

int fg_pg_commit(fg_pg_conn *pg)
{
    if (pg == NULL || pg->copy_active)
        return fg_error_set(FG_EINVALID, "pg: commit: no connection, or a COPY is in progress");
    return commit_as(pg, "commit");
}

int fg_pg_rollback(fg_pg_conn *pg)
{
    int rc = 0;

    if (pg == NULL)
        return fg_error_set(FG_EINVALID, "pg: rollback: no connection");
    fg_pg_copy_abort(pg);
    pg->sqlstate[0] = '\0';
    if (pg->tx_open && PQstatus(pg->conn) == CONNECTION_OK) {
        rc = finish(NULL, pg, PQexec(pg->conn, "ROLLBACK"), "rollback");
        /* A session that ended took its transaction with it: nothing is left open. */
        if (rc < 0 && PQstatus(pg->conn) == CONNECTION_BAD) {
            rc = 0;
            pg->sqlstate[0] = '\0';
        }
    }
    pg->tx_open = false;
    return rc;
}

/* Rolls back after a failure without losing that failure's message, code and SQLSTATE. */
static void abandon(fg_pg_conn *pg)
{
    char message[FG_PG_KEEP_MAX], state[sizeof(pg->sqlstate)];
    int code = fg_error_last_code();

    snprintf(message, sizeof(message), "%s", fg_error_last());
    memcpy(state, pg->sqlstate, sizeof(state));
    if (fg_pg_rollback(pg) < 0)
        fg_log_warn("pg: rollback after a failure failed too: %s", fg_error_last());
    memcpy(pg->sqlstate, state, sizeof(state));
    fg_error_set(code, "%s", message);
}

/* ---- COPY ------------------------------------------------------------------------------ */

static char escape_letter(char c)
{
    switch (c) {
    case '\t':
        return 't';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    case '\v':
        return 'v';
    default:
        return c;
    }
}

/* COPY text format: a backslash starts an escape, tab separates columns and newline or carriage
 * return ends the row, so those must be escaped; \b \f \v are escaped as COPY TO does. */
static int encode_value(fg_buf *out, const char *v)
{
    int rc = 0;

    while (*v != '\0' && rc == 0) {
        size_t run = strcspn(v, "\\\t\n\r\b\f\v");

        if ((rc = fg_buf_put(out, v, run)) < 0)
            break;
        v += run;
        if (*v != '\0') {
            char esc[2] = {'\\', escape_letter(*v)};

            rc = fg_buf_put(out, esc, 2);
            v++;
        }
    }
    return rc;
}

int fg_pg_copy_encode_row(fg_buf *out, const char *const *values, size_t n)
{
    size_t mark = out->len;
    int rc = 0;

    if (n == 0 || values == NULL)
        return fg_error_set(FG_EINVALID, "pg: a COPY row needs at least one value");
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0)
            rc = fg_buf_putc(out, '\t');
        if (rc == 0)
            rc = values[i] ? encode_value(out, values[i]) : fg_buf_put(out, "\\N", 2);
    }
    if (rc == 0)
        rc = fg_buf_putc(out, '\n');
    if (rc < 0) {
        out->len = mark;
        out->ptr[mark] = '\0';
    }
    return rc;
}

int fg_pg_copy_begin(fg_pg_conn *pg, const char *sql)
{
    PGresult *res = NULL;
    int rc;

    if ((rc = check_args(pg, sql, 0, NULL)) < 0 || (rc = ready(pg, "copy")) < 0)
        return rc;
    res = PQexecParams(pg->conn, sql, 0, NULL, NULL, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_COPY_IN) {
        pg->copy_active = true;
        pg->copy_cols = (size_t)PQnfields(res);
        PQclear(res);
        return 0;
    }
    if ((rc = finish(NULL, pg, res, "copy")) < 0)
        return rc;
    return fg_error_set(FG_EINVALID, "pg: copy: the statement is not a COPY ... FROM STDIN");
}

/* Ends the running COPY: why == NULL stores the rows, otherwise the server discards them. */
static int end_copy(uint64_t *out, fg_pg_conn *pg, const char *why)
{
    PGresult *res;
    uint64_t rows = 0;
    bool end_failed;
    int rc = 0;

    pg->copy_active = false;
    end_failed = PQputCopyEnd(pg->conn, why) != 1;
    while ((res = PQgetResult(pg->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(res);

        if (st == PGRES_COMMAND_OK)
            rows += parse_count(PQcmdTuples(res));
        else if (rc == 0 && st != PGRES_COPY_IN && st != PGRES_COPY_OUT && st != PGRES_COPY_BOTH)
            rc = fold(pg, res, "copy");
        PQclear(res);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH)
            break; /* libpq hands these back forever */
    }
    if (rc == 0 && end_failed)
        rc = fold(pg, NULL, "copy");
    note_tx(pg);
    if (rc == 0 && out != NULL)
        *out = rows;
    return rc;
}

/* Aborting answers a failure that is already recorded: the abort's own error (57014, "COPY
 * from stdin failed") must not replace it. */
static void stop_copy(fg_pg_conn *pg, const char *why)
{
    char message[FG_PG_KEEP_MAX], state[sizeof(pg->sqlstate)];
    int code = fg_error_last_code();

    snprintf(message, sizeof(message), "%s", fg_error_last());
    memcpy(state, pg->sqlstate, sizeof(state));
    /* 57014 (FG_ETIMEOUT: "COPY from stdin failed") is the expected answer to an abort. */
    if (end_copy(NULL, pg, why) < 0 && fg_error_last_code() != FG_ETIMEOUT)
        fg_log_debug("pg: aborting a COPY: %s", fg_error_last());
    memcpy(pg->sqlstate, state, sizeof(state));
    fg_error_set(code, "%s", message);
}

int fg_pg_copy_put_row(fg_pg_conn *pg, const char *const *values, size_t n)
{
    int rc;

    if (pg == NULL || !pg->copy_active)
        return fg_error_set(FG_EINVALID, "pg: copy: no COPY in progress");
    fg_buf_clear(&pg->copy_line);
    if (n != pg->copy_cols) {
        rc = fg_error_set(FG_EINVALID, "pg: copy: a row of %zu values, the COPY takes %zu", n,
                          pg->copy_cols);
        goto failed;
    }
    if ((rc = fg_pg_copy_encode_row(&pg->copy_line, values, n)) < 0)
        goto failed;
    if (PQputCopyData(pg->conn, pg->copy_line.ptr, (int)pg->copy_line.len) == 1)
        return 0;
    /* The server ended the COPY (its error is waiting) or the connection broke. */
    if ((rc = end_copy(NULL, pg, "the client could not send a row")) < 0)
        return rc;
    return fold(pg, NULL, "copy");
failed:
    stop_copy(pg, "the client refused a row");
    return rc;
}

int fg_pg_copy_end(uint64_t *out, fg_pg_conn *pg)
{
    if (out != NULL)
        *out = 0;
    if (pg == NULL || !pg->copy_active)
        return fg_error_set(FG_EINVALID, "pg: copy: no COPY in progress");
    return end_copy(out, pg, NULL);
}

void fg_pg_copy_abort(fg_pg_conn *pg)
{
    if (pg != NULL && pg->copy_active)
        stop_copy(pg, "aborted by the client");
}

/* ---- migrations ------------------------------------------------------------------------ */

static bool is_migration_name(const char *name)
{
    size_t len = strlen(name);

    return name[0] != '.' && len > 4 && len <= FG_PG_MIGRATION_NAME_MAX &&
           strcmp(name + len - 4, ".sql") == 0;
}

static int by_file(const void *a, const void *b)
{
    return strcmp(((const migration *)a)->file, ((const migration *)b)->file);
}

static void dispose_migrations(migration_list *list)
{
    for (size_t i = 0; i < list->n; i++) {
        free(list->items[i].file);
        free(list->items[i].version);
        free(list->items[i].sql);
    }
    free(list->items);
    *list = (migration_list){NULL, 0, 0};
}

static int add_migration(migration_list *list, const char *file)
{
    if (list->n == FG_PG_MIGRATIONS_MAX)
        return fg_error_set(FG_ETOOBIG, "pg: more than %u migrations", FG_PG_MIGRATIONS_MAX);
    if (list->n == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 16;
        migration *items = realloc(list->items, cap * sizeof(*items));

        if (items == NULL)
            return fg_error_set(FG_ENOMEM, "pg: migrations: out of memory");
        list->items = items;
        list->cap = cap;
    }
    list->items[list->n] = (migration){NULL, NULL, NULL, {0}, false};
    if ((list->items[list->n].file = strdup(file)) == NULL)
        return fg_error_set(FG_ENOMEM, "pg: migrations: out of memory");
    list->n++;
    return 0;
}

static int checksum(char *out, const char *data, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return fg_error_set(FG_ERROR, "pg: migrations: SHA-256 failed");
    for (unsigned int i = 0; i < mdlen; i++)
        snprintf(out + (size_t)2 * i, 3, "%02x", md[i]);
    return 0;
}

static int read_migration(migration *m, const char *dir)
{
    char path[FG_PG_PATH_MAX], chunk[65536];
    fg_buf content;
    struct stat st;
    size_t len = 0;
    ssize_t got = 0;
    int fd = -1, rc = FG_ERROR;

    fg_buf_init(&content, FG_PG_MIGRATION_BYTES_MAX);
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, m->file) >= sizeof(path)) {
        rc = fg_error_set(FG_ETOOBIG, "pg: migration path too long in %s", dir);
        goto done;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0 ||
        !S_ISREG(st.st_mode)) {
        rc = fg_error_set(FG_ERROR, "pg: migration %s: not a readable file", path);
        goto done;
    }
    while ((got = read(fd, chunk, sizeof(chunk))) > 0) {
        if ((rc = fg_buf_put(&content, chunk, (size_t)got)) < 0) {
            rc = fg_error_set(rc, "pg: migration %s: larger than %zu bytes or out of memory",
                              m->file, FG_PG_MIGRATION_BYTES_MAX);
            goto done;
        }
    }
    if (got < 0) {
        rc = fg_error_set(FG_ERROR, "pg: migration %s: %s", path, strerror(errno));
        goto done;
    }
    if ((m->sql = fg_buf_detach(&content, &len)) == NULL ||
        (m->version = strndup(m->file, strlen(m->file) - 4)) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "pg: migrations: out of memory");
        goto done;
    }
    if (strlen(m->sql) != len) {
        rc = fg_error_set(FG_EINVALID, "pg: migration %s contains a NUL byte", m->file);
        goto done;
    }
    rc = checksum(m->checksum, m->sql, len);
done:
    if (fd >= 0)
        close(fd);
    fg_buf_dispose(&content);
    return rc;
}

/* Fills the list in name order with every file's content and checksum. */
static int list_migrations(migration_list *list, const char *dir)
{
    DIR *d = NULL;
    struct dirent *e;
    int rc = FG_ERROR;

    if ((d = opendir(dir)) == NULL) {
        rc = fg_error_set(errno == ENOENT ? FG_ENOTFOUND : FG_ERROR,
                          "pg: migrations: cannot open %s: %s", dir, strerror(errno));
        goto done;
    }
    while ((e = readdir(d)) != NULL) {
        if (is_migration_name(e->d_name) && (rc = add_migration(list, e->d_name)) < 0)
            goto done;
    }
    if (list->n > 0)
        qsort(list->items, list->n, sizeof(*list->items), by_file);
    for (size_t i = 0; i < list->n; i++) {
        if ((rc = read_migration(&list->items[i], dir)) < 0)
            goto done;
    }
    rc = 0;
done:
    if (d != NULL)
        closedir(d);
    return rc;
}

/* Every step that decides what to apply runs in a READ COMMITTED transaction holding this lock:
 * its later statements then see whatever the instance that held the lock before committed,
 * which a REPEATABLE READ default (snapshot taken while waiting) would hide. */
static int begin_locked(fg_pg_conn *pg, const char *what)
{
    int rc;

    if ((rc = begin_as(pg, what, "BEGIN ISOLATION LEVEL READ COMMITTED")) < 0)
        return rc;
    return exec_as(
        NULL, pg, what,
        "SELECT pg_advisory_xact_lock(hashtextextended('" FG_PG_MIGRATIONS_TABLE "', 0))", 0, NULL);
}

/* Creating the table under the lock too: two concurrent CREATE TABLE IF NOT EXISTS can both
 * miss the table and one then fails on a catalog unique index. */
static int create_version_table(fg_pg_conn *pg)
{
    static const char *const what = "migrations";
    int rc;

    if ((rc = begin_locked(pg, what)) < 0 ||
        (rc = exec_as(NULL, pg, what,
                      "CREATE TABLE IF NOT EXISTS " FG_PG_MIGRATIONS_TABLE
                      " (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(),"
                      " checksum text NOT NULL)",
                      0, NULL)) < 0 ||
        (rc = commit_as(pg, what)) < 0)
        abandon(pg);
    return rc;
}

static migration *find_version(migration_list *list, const char *version)
{
    for (size_t i = 0; i < list->n; i++)
        if (strcmp(list->items[i].version, version) == 0)
            return &list->items[i];
    return NULL;
}

static int changed(const migration *m, const char *recorded)
{
    return fg_error_set(FG_ECONFLICT,
                        "pg: migration %s was changed after it was applied "
                        "(checksum %.12s... recorded, %.12s... now): add a new migration instead",
                        m->file, recorded, m->checksum);
}

/* Marks the applied files and refuses any whose content changed, before anything new runs. */
static int load_applied(fg_pg_conn *pg, migration_list *list)
{
    fg_pg_result *res = NULL;
    migration *m;
    int rc;

    if ((rc = exec_as(&res, pg, "migrations",
                      "SELECT version, checksum FROM " FG_PG_MIGRATIONS_TABLE " ORDER BY version",
                      0, NULL)) < 0)
        goto done;
    for (size_t i = 0; i < fg_pg_result_rows(res); i++) {
        const char *version = fg_pg_result_text(res, i, 0);
        const char *sum = fg_pg_result_text(res, i, 1);

        if ((m = find_version(list, version ? version : "")) == NULL) {
            /* An older binary beside a newer schema (rolling update) is normal. */
            fg_log_emit(FG_LOG_INFO, FG_LOG_FIELDS(FG_LOG_STR("version", version ? version : "")),
                        "pg: an applied migration has no file here");
            continue;
        }
        if (strcmp(sum ? sum : "", m->checksum) != 0) {
            rc = changed(m, sum ? sum : "");
            goto done;
        }
        m->applied = true;
    }
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

/* The 1-based line of a 1-based character position (the server counts characters, not bytes);
 * 0 when there is no position. */
static unsigned long line_of(const char *sql, const char *position)
{
    uint64_t pos = parse_count(position), chars = 0;
    unsigned long line = 1;

    for (; *sql != '\0' && pos > 0; sql++) {
        if (((unsigned char)*sql & 0xC0) != 0x80 && ++chars == pos)
            break;
        if (*sql == '\n')
            line++;
    }
    return pos > 0 ? line : 0;
}

/* The file runs through the simple protocol: it may hold many statements, and it has no
 * parameters. They all belong to the transaction already open. */
static int run_file(fg_pg_conn *pg, const migration *m, const char *what)
{
    PGresult *res = NULL;
    char where[FG_PG_MIGRATION_NAME_MAX + 64];
    unsigned long line;
    int rc;

    if ((rc = ready(pg, what)) < 0)
        return rc;
    res = PQexec(pg->conn, m->sql);
    line = line_of(m->sql, PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION));
    if (line > 0)
        snprintf(where, sizeof(where), "%s, line %lu", what, line);
    else
        snprintf(where, sizeof(where), "%s", what);
    if ((rc = finish(NULL, pg, res, where)) < 0)
        return rc;
    if (!pg->tx_open)
        return fg_error_set(FG_EINVALID,
                            "pg: %s: the file ends the transaction itself "
                            "(COMMIT, ROLLBACK): migrations must not",
                            what);
    return 0;
}

static int apply_one(fg_pg_conn *pg, const migration *m, size_t *applied)
{
    const char *params[2] = {m->version, m->checksum};
    fg_pg_result *row = NULL;
    char what[FG_PG_MIGRATION_NAME_MAX + 16];
    int rc;

    snprintf(what, sizeof(what), "migration %s", m->file);
    if ((rc = begin_locked(pg, what)) < 0)
        goto done;
    /* Another instance may have applied it while this one waited for the lock. */
    if ((rc = exec_as(&row, pg, what,
                      "SELECT checksum FROM " FG_PG_MIGRATIONS_TABLE " WHERE version = $1", 1,
                      params)) < 0)
        goto done;
    if (fg_pg_result_rows(row) > 0) {
        const char *sum = fg_pg_result_text(row, 0, 0);

        if (strcmp(sum ? sum : "", m->checksum) != 0)
            rc = changed(m, sum ? sum : "");
        else
            rc = commit_as(pg, what);
        goto done;
    }
    if ((rc = run_file(pg, m, what)) < 0 ||
        (rc = exec_as(NULL, pg, what,
                      "INSERT INTO " FG_PG_MIGRATIONS_TABLE " (version, checksum) VALUES ($1, $2)",
                      2, params)) < 0 ||
        (rc = commit_as(pg, what)) < 0)
        goto done;
    (*applied)++;
    fg_log_emit(FG_LOG_INFO, FG_LOG_FIELDS(FG_LOG_STR("migration", m->file)),
                "pg: applied migration");
    rc = 0;
done:
    if (rc < 0)
        abandon(pg);
    fg_pg_result_free(row);
    return rc;
}

int fg_pg_migrate(size_t *out, fg_pg_conn *pg, const char *dir)
{
    migration_list list = {NULL, 0, 0};
    size_t applied = 0;
    int rc = FG_ERROR;

    if (out != NULL)
        *out = 0;
    if (pg == NULL || dir == NULL)
        return fg_error_set(FG_EINVALID, "pg: migrate: no connection or no directory");
    if (pg->tx_open || pg->copy_active) {
        rc = fg_error_set(FG_EINVALID, "pg: migrate: must run outside a transaction or COPY");
        goto done;
    }
    if ((rc = list_migrations(&list, dir)) < 0 || (rc = create_version_table(pg)) < 0 ||
        (rc = load_applied(pg, &list)) < 0)
        goto done;
    for (size_t i = 0; i < list.n; i++) {
        if (!list.items[i].applied && (rc = apply_one(pg, &list.items[i], &applied)) < 0)
            goto done;
    }
    fg_log_emit(FG_LOG_INFO,
                FG_LOG_FIELDS(FG_LOG_INT("applied", applied), FG_LOG_INT("files", list.n),
                              FG_LOG_STR("dir", dir)),
                "pg: migrations up to date");
    rc = 0;
done:
    if (out != NULL)
        *out = applied;
    dispose_migrations(&list);
    return rc;
}

/*
 * PostgreSQL on libpq: parameterised statements (no call takes SQL with values spliced in),
 * transactions, COPY FROM STDIN, and a service's migrations. libpq failures become FG_E* codes in
 * one place, the SQLSTATE stays readable, and no message or log shows the password. One handle is
 * one connection and is NOT thread-safe: each thread owns its own (the /ready handler too).
 */
#ifndef FG_PG_H
#define FG_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg/buf.h"
#include "fg/error.h"

#define FG_PG_URL_MAX             4096u  /* connection URL */
#define FG_PG_PARAMS_MAX          65535u /* protocol limit (int16 count) */
#define FG_PG_NAME_MAX            63u    /* prepared statement name (NAMEDATALEN-1) */
#define FG_PG_PREPARED_MAX        256u   /* statements cached per connection */
#define FG_PG_COPY_ROW_MAX        ((size_t)64 * 1024 * 1024) /* one encoded COPY row */
#define FG_PG_MIGRATIONS_MAX      10000u                     /* files in one migrations directory */
#define FG_PG_MIGRATION_BYTES_MAX ((size_t)16 * 1024 * 1024) /* one migration file */
#define FG_PG_MIGRATION_NAME_MAX  200u                       /* one migration file name */
#define FG_PG_MIGRATIONS_TABLE    "fg_schema_migrations"

typedef struct fg_pg_conn fg_pg_conn;
typedef struct fg_pg_result fg_pg_result;

/* ---- connection ------------------------------------------------------------------------- */

/* Connects to `url` (postgresql://user:pass@host:port/db[?param=value]) within timeout_ms
 * (> 0), with client_encoding UTF8. On success *out is a new handle (fg_pg_free it).
 * Host names are resolved synchronously (libpq). FG_EINVALID: url is not a postgresql:// URL
 * libpq can parse, or timeout_ms <= 0. FG_EUNAVAILABLE: the server cannot be reached or refused
 * the session (includes the timeout). FG_EAUTH: a password is needed and the URL has none.
 * FG_ENOMEM. The message names the URL with its password redacted. */
int fg_pg_connect(fg_pg_conn **out, const char *url, int timeout_ms) FG_MUST_CHECK;

/* Closes the connection and frees the handle (and any COPY or transaction dies with it). NULL
 * is fine. */
void fg_pg_free(fg_pg_conn *pg);

/* Checks the database answers (SELECT 1), reconnecting first when the server went away: the
 * probe behind GET /ready. FG_EUNAVAILABLE when it does not answer. */
int fg_pg_ping(fg_pg_conn *pg) FG_MUST_CHECK;

/* The SQLSTATE of the last failed call on this handle ("23505"), or "" after a success or for
 * failures that have none (bad arguments). Connection trouble reports the standard 08001
 * (cannot connect) or 08006 (connection lost) when the server sent none. Never NULL. */
const char *fg_pg_sqlstate(const fg_pg_conn *pg);

/* The one mapping from a SQLSTATE to an fg code: class 08, 53, 57P01-57P03 -> FG_EUNAVAILABLE;
 * 23505 (unique_violation), 40001 (serialization_failure), 40P01 (deadlock) -> FG_ECONFLICT;
 * class 22 (bad data) -> FG_EINVALID; class 28 and 42501 -> FG_EAUTH; 57014 (statement
 * timeout, cancel) -> FG_ETIMEOUT; anything else, NULL or "" -> FG_ERROR. */
int fg_pg_error_code(const char *sqlstate);

/* True when repeating the whole transaction may succeed: 40001, 40P01 (both FG_ECONFLICT, unlike
 * 23505 which will fail again) and connection trouble (FG_EUNAVAILABLE). */
bool fg_pg_sqlstate_retryable(const char *sqlstate);

/* ---- statements ------------------------------------------------------------------------- */

/* Runs ONE statement with $1..$n bound to params (text; NULL element = SQL NULL). On success,
 * when out is not NULL, *out holds the result (fg_pg_result_free it); with out NULL the result
 * is dropped. A lost connection is re-established before the statement when no transaction is
 * open; a statement is never re-sent by this module. FG_EINVALID: bad arguments, a COPY is in
 * progress, or the server rejected the data (class 22). FG_ECONFLICT: unique violation,
 * serialization failure, deadlock (see fg_pg_sqlstate_retryable). FG_EUNAVAILABLE: no
 * connection, or it was lost inside a transaction (fg_pg_rollback, then retry). FG_ERROR:
 * other server errors (syntax, missing table...). */
int fg_pg_exec(fg_pg_result **out, fg_pg_conn *pg, const char *sql, size_t nparams,
               const char *const *params) FG_MUST_CHECK;

/* As fg_pg_exec, but through a server-side prepared statement `name` (at most FG_PG_NAME_MAX
 * bytes) created from `sql` on first use on this connection and reused afterwards (again after a
 * reconnect). The same name with different sql is FG_EINVALID; more than FG_PG_PREPARED_MAX
 * names is FG_ETOOBIG. */
int fg_pg_exec_prepared(fg_pg_result **out, fg_pg_conn *pg, const char *name, const char *sql,
                        size_t nparams, const char *const *params) FG_MUST_CHECK;

/* ---- results (all values in text form) --------------------------------------------------- */

size_t fg_pg_result_rows(const fg_pg_result *res);
size_t fg_pg_result_cols(const fg_pg_result *res);

/* The row count of the command tag: rows touched by INSERT/UPDATE/DELETE/MERGE/COPY, rows
 * returned by SELECT; 0 for other statements. */
uint64_t fg_pg_result_affected(const fg_pg_result *res);

/* The value at (row, col) as text, owned by the result; NULL for SQL NULL or outside the
 * result. */
const char *fg_pg_result_text(const fg_pg_result *res, size_t row, size_t col);

/* True for SQL NULL, and for a cell outside the result (there is no value there either). */
bool fg_pg_result_is_null(const fg_pg_result *res, size_t row, size_t col);

/* The column index named `name`. FG_ENOTFOUND when there is none. */
int fg_pg_result_column(size_t *out, const fg_pg_result *res, const char *name) FG_MUST_CHECK;

/* The value at (row, col) as an int64 / bool. FG_EINVALID, *out untouched, for SQL NULL, a cell
 * outside the result, text that is not a decimal integer in range / not "t" or "f". */
int fg_pg_result_int64(int64_t *out, const fg_pg_result *res, size_t row, size_t col) FG_MUST_CHECK;
int fg_pg_result_bool(bool *out, const fg_pg_result *res, size_t row, size_t col) FG_MUST_CHECK;

/* The parsers behind the two getters, on PostgreSQL's text output. FG_EINVALID as above. */
int fg_pg_parse_int64(int64_t *out, const char *text) FG_MUST_CHECK;
int fg_pg_parse_bool(bool *out, const char *text) FG_MUST_CHECK;

void fg_pg_result_free(fg_pg_result *res);

/* ---- transactions ----------------------------------------------------------------------- */

/* BEGIN. FG_EINVALID when a transaction is already open; otherwise as fg_pg_exec. */
int fg_pg_begin(fg_pg_conn *pg) FG_MUST_CHECK;

/* COMMIT. The transaction is over afterwards whatever the outcome. FG_ERROR when it had failed
 * earlier (the server rolled it back instead), FG_ECONFLICT for a serialization failure at commit
 * (retryable), FG_EUNAVAILABLE when the connection went away (outcome unknown if COMMIT had been
 * sent). */
int fg_pg_commit(fg_pg_conn *pg) FG_MUST_CHECK;

/* ROLLBACK. Returns 0 whenever no transaction is left open afterwards, including when there was
 * none and when the connection is gone (the server dropped the transaction with it). */
int fg_pg_rollback(fg_pg_conn *pg) FG_MUST_CHECK;

/* ---- COPY FROM STDIN (text format) ------------------------------------------------------ */

/* Starts `sql`, which must be a COPY ... FROM STDIN in text format (the default). While it runs,
 * every other call on the handle is FG_EINVALID. Errors as fg_pg_exec; FG_EINVALID when sql did
 * not start a COPY FROM STDIN. */
int fg_pg_copy_begin(fg_pg_conn *pg, const char *sql) FG_MUST_CHECK;

/* Sends one row of n values (NULL element = SQL NULL); n must match the COPY's columns. Any
 * failure aborts the whole COPY (nothing of it is stored) and ends it: FG_EINVALID (column
 * count, not in a COPY), FG_ETOOBIG (row beyond FG_PG_COPY_ROW_MAX), or the server's error. */
int fg_pg_copy_put_row(fg_pg_conn *pg, const char *const *values, size_t n) FG_MUST_CHECK;

/* Finishes the COPY; *out (may be NULL) receives the rows stored. The server checks the data
 * here: a bad value fails as fg_pg_exec would (e.g. FG_EINVALID for class 22) and stores
 * nothing. */
int fg_pg_copy_end(uint64_t *out, fg_pg_conn *pg) FG_MUST_CHECK;

/* Abandons a running COPY (nothing of it is stored). No-op when none runs. */
void fg_pg_copy_abort(fg_pg_conn *pg);

/* Appends one COPY text-format line: values separated by tab, ended by newline; backslash, tab,
 * newline, carriage return, backspace, form feed and vertical tab are backslash-escaped and NULL
 * is \N. FG_EINVALID when n is 0, FG_ETOOBIG past the buffer's cap; on error out is unchanged. */
int fg_pg_copy_encode_row(fg_buf *out, const char *const *values, size_t n) FG_MUST_CHECK;

/* ---- migrations ------------------------------------------------------------------------- */

/* Applies the .sql files of dir in byte order of their names (0001_init.sql, 0002_...), each file
 * and its row in fg_schema_migrations (version = file name without .sql, applied_at, SHA-256
 * checksum) in one transaction, under pg_advisory_xact_lock so concurrent instances serialise and
 * the later ones find the work done. *out (may be NULL) receives how many files this call applied,
 * also when it fails part-way.
 * Files are run with the simple protocol and must not contain BEGIN/COMMIT. Must be called
 * outside a transaction (FG_EINVALID otherwise). FG_ENOTFOUND: no such directory. FG_ECONFLICT:
 * an applied file's content changed (the message names it). A failing file is rolled back
 * completely; the error names the file, the line and the server's message, and keeps the code
 * its SQLSTATE maps to. FG_ETOOBIG past FG_PG_MIGRATIONS_MAX / FG_PG_MIGRATION_BYTES_MAX. */
int fg_pg_migrate(size_t *out, fg_pg_conn *pg, const char *dir) FG_MUST_CHECK;

#endif

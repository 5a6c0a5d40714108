/*
 * The real stack as the commit-sync tests see it (tests/integration/cs_sync_test.c,
 * tests/e2e/commit_sync_test.c): event-log's API with the service key (register a plain git
 * project, ask for a sync, remove it), a service's /ready and /metrics, and the stack's service
 * logs (deploy/local/stack.sh writes $FG_STACK_DIR/logs/<service>.log), read from a mark so that
 * earlier runs do not count. No stand-in: everything here talks to the running services.
 * Test code: every function asserts (cmocka) instead of returning an error. One thread.
 */
#ifndef FG_TEST_CS_STACK_H
#define FG_TEST_CS_STACK_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/buf.h"

#define CS_STACK_TS_LEN 24 /* "2026-11-23T00:42:17.933Z", the "ts" of a log line */

/* Opens the HTTP client; exits 77 (SKIP) when the stack's variables are absent. */
void cs_stack_open(void);
void cs_stack_close(void);

/* Called while a cs_* wait polls (a bus test drains its queue there); NULL: nothing. */
void cs_stack_set_idle(void (*idle)(void));

/* method base+path with the service key and an optional JSON body; the answer's body into out
 * (when given); returns the HTTP status (0: no answer). */
long cs_stack_call(fg_buf *out, const char *method, const char *base, const char *path,
                   const char *body);

/* POST /projects on event-log: a plain git project; returns its id (201 expected). */
long long cs_stack_register(const char *path, const char *url);

/* POST /projects/{id}/sync on event-log (202 expected): COMMIT_SYNC due now. */
void cs_stack_request_sync(long long project);

/* DELETE /projects/{id} on event-log (204, or 404 when already gone). */
void cs_stack_remove(long long project);

/* Waits until base's /ready answers 200 (a service reconnecting to a restarted broker takes a
 * moment); false on timeout. */
bool cs_stack_wait_ready(const char *base, int timeout_ms);

/* A series' value on base's /metrics (`name{labels}` exactly as printed); fails when absent. */
double cs_stack_metric(const char *base, const char *series);

/* A service log from a mark on. */
typedef struct {
    char path[1024];
    long offset;
} cs_log;

/* Marks the end of $FG_STACK_DIR/logs/<service>.log (or of path, for cs_log_mark_path). */
void cs_log_mark(cs_log *log, const char *service);
void cs_log_mark_path(cs_log *log, const char *path);

/* The text written since the mark (malloc'd, NUL-terminated). */
char *cs_log_text(const cs_log *log);

/* Lines since the mark that contain needle. */
size_t cs_log_count(const cs_log *log, const char *needle);

/* Waits until cs_log_count(log, needle) >= n; false on timeout. */
bool cs_log_wait(const cs_log *log, const char *needle, size_t n, int timeout_ms);

/* The nth (from 1) line since the mark that contains needle, into out (cap bytes); fails the
 * test when there is none. */
void cs_log_line(char *out, size_t cap, const cs_log *log, const char *needle, size_t nth);

/* The "ts" of that line. */
void cs_log_line_ts(char out[CS_STACK_TS_LEN + 1], const cs_log *log, const char *needle,
                    size_t nth);

#endif

/*
 * One error model for all of forgegraph.
 *
 * Every fallible function returns int: 0 on success, a negative FG_E* code on failure. The
 * function where the failure starts records a human-readable message with fg_error_set(); the
 * caller reads it with fg_error_last(). The message is thread-local, so worker threads do not
 * clobber each other. Library wrappers (pg, amqp, http, git) fold their library's error shapes
 * into this model in one place each. Library code never prints and never exits.
 *
 * Messages must never contain a secret (token, key, hook secret, password).
 */
#ifndef FG_ERROR_H
#define FG_ERROR_H

#define FG_MUST_CHECK     __attribute__((warn_unused_result))
#define FG_PRINTF(fi, va) __attribute__((format(printf, fi, va)))

typedef enum {
    FG_OK = 0,
    FG_ERROR = -1,        /* generic failure */
    FG_ENOTFOUND = -2,    /* the thing asked for does not exist */
    FG_EINVALID = -3,     /* bad input: malformed, out of range, wrong type */
    FG_ETOOBIG = -4,      /* a capped buffer or limit would be exceeded */
    FG_ETIMEOUT = -5,     /* a deadline passed */
    FG_EUNAVAILABLE = -6, /* a server or peer is unreachable now: retry later */
    FG_ECONFLICT = -7,    /* already exists / concurrent change */
    FG_EAUTH = -8,        /* authentication or authorisation failed */
    FG_ENOMEM = -9        /* allocation failed */
} fg_error_code;

/* Records a message for the current thread and returns code, so callers can write
 * `return fg_error_set(FG_EINVALID, "...")`. */
int fg_error_set(int code, const char *fmt, ...) FG_PRINTF(2, 3);

/* The last message recorded on this thread, or "" when none. Never NULL. */
const char *fg_error_last(void);

/* The code recorded with the last message on this thread (FG_OK when none). */
int fg_error_last_code(void);

void fg_error_clear(void);

/* A short stable name for a code ("not_found", "invalid", ...), used in JSON error bodies. */
const char *fg_error_name(int code);

#endif

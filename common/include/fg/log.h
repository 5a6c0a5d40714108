/*
 * Structured logging: one JSON object per line on stderr.
 *
 *   {"ts":"2026-11-22T22:40:01.123Z","level":"info","service":"webhook","msg":"accepted",
 *    "delivery":"72d3162e-...","project":42}
 *
 * The level is tested before anything is formatted. A line is written with one write(2), so lines
 * from several threads never interleave. Fields are typed; a FG_LOG_SECRET field prints as
 * "[redacted]" whatever its value, so a secret can be named in a log line without being shown.
 * Nothing here ever logs a value it was not given: the message format is the caller's, and it
 * must never contain a secret.
 */
#ifndef FG_LOG_H
#define FG_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/error.h"

typedef enum { FG_LOG_DEBUG = 0, FG_LOG_INFO, FG_LOG_WARN, FG_LOG_ERROR } fg_log_level;

typedef enum { FG_LOG_FIELD_STR, FG_LOG_FIELD_INT, FG_LOG_FIELD_SECRET } fg_log_field_type;

typedef struct {
    const char *key;
    fg_log_field_type type;
    const char *str;
    long long num;
} fg_log_field;

#define FG_LOG_STR(k, v) ((fg_log_field){(k), FG_LOG_FIELD_STR, (v), 0})
#define FG_LOG_INT(k, v) ((fg_log_field){(k), FG_LOG_FIELD_INT, NULL, (long long)(v)})
#define FG_LOG_SECRET(k) ((fg_log_field){(k), FG_LOG_FIELD_SECRET, NULL, 0})
#define FG_LOG_FIELDS(...)                                                                         \
    (const fg_log_field[]){__VA_ARGS__},                                                           \
        sizeof((const fg_log_field[]){__VA_ARGS__}) / sizeof(fg_log_field)

/* Process-wide setup, called once from main() before threads start. `service` is copied. */
void fg_log_setup(const char *service, fg_log_level min_level);

/* Sends lines to another descriptor (tests capture them); default 2. */
void fg_log_set_fd(int fd);

bool fg_log_enabled(fg_log_level level);

/* "debug", "info", "warn" or "error" (case-insensitive); FG_EINVALID otherwise. */
int fg_log_level_parse(fg_log_level *out, const char *text) FG_MUST_CHECK;

void fg_log_emit(fg_log_level level, const fg_log_field *fields, size_t nfields, const char *fmt,
                 ...) FG_PRINTF(4, 5);

#define fg_log_debug(...) fg_log_emit(FG_LOG_DEBUG, NULL, 0, __VA_ARGS__)
#define fg_log_info(...)  fg_log_emit(FG_LOG_INFO, NULL, 0, __VA_ARGS__)
#define fg_log_warn(...)  fg_log_emit(FG_LOG_WARN, NULL, 0, __VA_ARGS__)
#define fg_log_error(...) fg_log_emit(FG_LOG_ERROR, NULL, 0, __VA_ARGS__)

#endif

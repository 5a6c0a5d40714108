/*
 * JSON-lines logger (see fg/log.h). The service name and level are set once at start-up and only
 * read afterwards, so no lock is needed; each line is assembled in a capped buffer and written
 * with a single write(2).
 */
#include "fg/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fg/buf.h"

#define FG_LOG_LINE_MAX 16384

static char log_service[64] = "forgegraph";
static fg_log_level log_min = FG_LOG_INFO;
static int log_fd = 2;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void fg_log_setup(const char *service, fg_log_level min_level)
{
    snprintf(log_service, sizeof(log_service), "%s", service);
    log_min = min_level;
}

void fg_log_set_fd(int fd)
{
    log_fd = fd;
}

bool fg_log_enabled(fg_log_level level)
{
    return level >= log_min;
}

int fg_log_level_parse(fg_log_level *out, const char *text)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(text, level_names[i]) == 0) {
            *out = (fg_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(text, "warning") == 0) {
        *out = FG_LOG_WARN;
        return 0;
    }
    return fg_error_set(FG_EINVALID, "unknown log level '%s' (debug, info, warn, error)", text);
}

static int put_timestamp(fg_buf *line)
{
    struct timeval tv;
    struct tm tm;
    char stamp[32];

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    return fg_buf_printf(line, "{\"ts\":\"%s.%03ldZ\"", stamp, (long)(tv.tv_usec / 1000));
}

static int put_string_field(fg_buf *line, const char *key, const char *value)
{
    int rc;

    if ((rc = fg_buf_puts(line, ",\"")) < 0 ||
        (rc = fg_buf_put_json_string(line, key, strlen(key))) < 0 ||
        (rc = fg_buf_puts(line, "\":\"")) < 0)
        return rc;
    if ((rc = fg_buf_put_json_string(line, value, strlen(value))) < 0)
        return rc;
    return fg_buf_putc(line, '"');
}

static int put_field(fg_buf *line, const fg_log_field *field)
{
    switch (field->type) {
    case FG_LOG_FIELD_INT:
        return fg_buf_printf(line, ",\"%s\":%lld", field->key, field->num);
    case FG_LOG_FIELD_SECRET:
        return put_string_field(line, field->key, "[redacted]");
    case FG_LOG_FIELD_STR:
    default:
        return put_string_field(line, field->key, field->str ? field->str : "");
    }
}

static void write_line(const fg_buf *line)
{
    size_t off = 0;

    while (off < line->len) {
        ssize_t n = write(log_fd, line->ptr + off, line->len - off);
        if (n <= 0)
            return; /* nowhere left to report a failing stderr */
        off += (size_t)n;
    }
}

void fg_log_emit(fg_log_level level, const fg_log_field *fields, size_t nfields, const char *fmt,
                 ...)
{
    fg_buf line, msg;
    va_list ap;
    int rc;

    if (!fg_log_enabled(level))
        return;
    fg_buf_init(&line, FG_LOG_LINE_MAX);
    fg_buf_init(&msg, FG_LOG_LINE_MAX / 2);
    va_start(ap, fmt);
    rc = fg_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    if (rc < 0) /* an over-long message is replaced, the line is still written */
        rc = fg_buf_puts(&msg, "[message too long]");
    if (rc == 0)
        rc = put_timestamp(&line);
    if (rc == 0)
        rc = fg_buf_printf(&line, ",\"level\":\"%s\"", level_names[level]);
    if (rc == 0)
        rc = put_string_field(&line, "service", log_service);
    if (rc == 0)
        rc = put_string_field(&line, "msg", msg.ptr);
    for (size_t i = 0; rc == 0 && i < nfields; i++)
        rc = put_field(&line, &fields[i]);
    if (rc == 0)
        rc = fg_buf_puts(&line, "}\n");
    if (rc == 0)
        write_line(&line);
    fg_buf_dispose(&msg);
    fg_buf_dispose(&line);
}

/*
 * Typed FG_* configuration, declared as one table per service.
 *
 * Each service lists its variables once (name, type, where the value goes in the service's config
 * struct, default, flags, bounds, help). fg_config_load() parses them all at start-up into that
 * struct; the first missing or malformed value fails with one message naming the variable (and
 * its value, unless it is secret), and main() prints it and exits 2. The same table prints --help
 * and the README's configuration table. No configuration globals: the struct is passed down.
 */
#ifndef FG_CONFIG_H
#define FG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "fg/buf.h"
#include "fg/error.h"

typedef enum {
    FG_CONFIG_STRING,    /* char *, an owned copy */
    FG_CONFIG_INT,       /* long long within [min, max] */
    FG_CONFIG_BOOL,      /* bool: 1/0, true/false, yes/no, on/off */
    FG_CONFIG_PORT,      /* int in 1..65535 */
    FG_CONFIG_URL,       /* char *, must look like scheme://...; shown with its password redacted */
    FG_CONFIG_LOG_LEVEL, /* fg_log_level */
    FG_CONFIG_KEY        /* fg_config_key: base64 decoded to at least `min` bytes */
} fg_config_type;

#define FG_CONFIG_REQUIRED 0x1u /* no default: must be set */
#define FG_CONFIG_SECRET   0x2u /* never printed, not even in errors */

typedef struct {
    unsigned char *bytes;
    size_t len;
} fg_config_key;

/* An extra check for a value that parsed; returns 0 or an fg error with a message (no secret). */
typedef int (*fg_config_check_fn)(const char *value);

typedef struct {
    const char *name;         /* FG_... */
    fg_config_type type;      /* decides the C type at `offset` */
    size_t offset;            /* offsetof(service_config, field) */
    const char *def;          /* default as text; NULL for none */
    unsigned flags;           /* FG_CONFIG_REQUIRED | FG_CONFIG_SECRET */
    long long min, max;       /* bounds for INT; minimum length in bytes for KEY */
    const char *help;         /* one line, for --help and the README */
    fg_config_check_fn check; /* optional */
} fg_config_var;

/* Reads a variable; getenv() when NULL is passed to fg_config_load. */
typedef const char *(*fg_config_getenv_fn)(const char *name, void *payload);

/* Fills `out` (a zeroed service config struct) from the environment. FG_EINVALID with a message
 * such as "FG_HTTP_PORT: '99999' is not a port (1-65535)" on the first bad or missing value. On
 * error, whatever was already filled in is freed again. */
int fg_config_load(void *out, const fg_config_var *vars, size_t nvars,
                   fg_config_getenv_fn getenv_fn, void *payload) FG_MUST_CHECK;

/* Frees what fg_config_load allocated in `cfg`. */
void fg_config_dispose(void *cfg, const fg_config_var *vars, size_t nvars);

/* `--help` text: one line per variable with type, default and help. */
void fg_config_print_help(FILE *out, const char *program, const fg_config_var *vars, size_t nvars);

/* Markdown table rows (| name | default | help |) for the README. */
void fg_config_print_markdown(FILE *out, const fg_config_var *vars, size_t nvars);

/* Appends url to out with any password replaced by "***" (scheme://user:***@host/...). */
int fg_config_redact_url(fg_buf *out, const char *url) FG_MUST_CHECK;

/* Logs the effective configuration at info level: secrets as [redacted], URLs redacted. */
void fg_config_log(const void *cfg, const fg_config_var *vars, size_t nvars);

#endif

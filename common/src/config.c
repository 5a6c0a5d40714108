/*
 * Table-driven FG_* configuration (see fg/config.h). Parsing is strict: trailing garbage, empty
 * values for required variables and out-of-range numbers are all errors, because a service that
 * starts with a half-understood configuration fails later, far from the cause.
 */
#include "fg/config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fg/base64.h"
#include "fg/log.h"

#define FG_CONFIG_VALUE_MAX 8192

static void *field_at(void *cfg, const fg_config_var *var)
{
    return (char *)cfg + var->offset;
}

static const char *shown(const fg_config_var *var, const char *value)
{
    return (var->flags & FG_CONFIG_SECRET) ? "[redacted]" : value;
}

static int parse_int(long long *out, const fg_config_var *var, const char *value)
{
    char *end = NULL;
    long long v;

    errno = 0;
    v = strtoll(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0')
        return fg_error_set(FG_EINVALID, "%s: '%s' is not an integer", var->name,
                            shown(var, value));
    if (v < var->min || v > var->max)
        return fg_error_set(FG_EINVALID, "%s: %lld is out of range (%lld-%lld)", var->name, v,
                            var->min, var->max);
    *out = v;
    return 0;
}

static int parse_bool(bool *out, const fg_config_var *var, const char *value)
{
    static const char *yes[] = {"1", "true", "yes", "on"};
    static const char *no[] = {"0", "false", "no", "off"};

    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(value, yes[i]) == 0 || strcasecmp(value, no[i]) == 0) {
            *out = strcasecmp(value, yes[i]) == 0;
            return 0;
        }
    }
    return fg_error_set(FG_EINVALID, "%s: '%s' is not a boolean (1/0, true/false, yes/no)",
                        var->name, shown(var, value));
}

static int parse_port(int *out, const fg_config_var *var, const char *value)
{
    fg_config_var bounded = *var;
    long long v;
    int rc;

    bounded.min = 1;
    bounded.max = 65535;
    if ((rc = parse_int(&v, &bounded, value)) < 0)
        return fg_error_set(rc, "%s: '%s' is not a port (1-65535)", var->name, value);
    *out = (int)v;
    return 0;
}

static int parse_url(char **out, const fg_config_var *var, const char *value)
{
    const char *sep = strstr(value, "://");

    if (sep == NULL || sep == value || sep[3] == '\0')
        return fg_error_set(FG_EINVALID, "%s: not a URL (expected scheme://host...)", var->name);
    if ((*out = strdup(value)) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory");
    return 0;
}

static int parse_key(fg_config_key *out, const fg_config_var *var, const char *value)
{
    fg_buf raw;
    int rc;

    fg_buf_init(&raw, FG_CONFIG_VALUE_MAX);
    if (fg_base64_decode(&raw, value, strlen(value)) < 0) {
        fg_buf_dispose(&raw);
        return fg_error_set(FG_EINVALID, "%s: not valid base64", var->name);
    }
    if ((long long)raw.len < var->min) {
        rc = fg_error_set(FG_EINVALID, "%s: key is %zu bytes, at least %lld are needed", var->name,
                          raw.len, var->min);
        fg_buf_dispose(&raw);
        return rc;
    }
    out->bytes = (unsigned char *)fg_buf_detach(&raw, &out->len);
    return 0;
}

static int parse_value(void *cfg, const fg_config_var *var, const char *value)
{
    void *field = field_at(cfg, var);

    switch (var->type) {
    case FG_CONFIG_STRING:
        *(char **)field = strdup(value);
        return *(char **)field ? 0 : fg_error_set(FG_ENOMEM, "out of memory");
    case FG_CONFIG_INT:
        return parse_int(field, var, value);
    case FG_CONFIG_BOOL:
        return parse_bool(field, var, value);
    case FG_CONFIG_PORT:
        return parse_port(field, var, value);
    case FG_CONFIG_URL:
        return parse_url(field, var, value);
    case FG_CONFIG_LOG_LEVEL:
        if (fg_log_level_parse(field, value) < 0)
            return fg_error_set(FG_EINVALID,
                                "%s: '%s' is not a log level (debug, info, warn, "
                                "error)",
                                var->name, value);
        return 0;
    case FG_CONFIG_KEY:
        return parse_key(field, var, value);
    }
    return fg_error_set(FG_EINVALID, "%s: unknown type", var->name);
}

static const char *env_getenv(const char *name, void *payload)
{
    (void)payload;
    return getenv(name);
}

static int load_one(void *cfg, const fg_config_var *var, fg_config_getenv_fn get, void *payload)
{
    const char *value = get(var->name, payload);
    int rc;

    if (value == NULL || value[0] == '\0')
        value = var->def;
    if (value == NULL) {
        if (var->flags & FG_CONFIG_REQUIRED)
            return fg_error_set(FG_EINVALID, "%s: required but not set (%s)", var->name, var->help);
        return 0;
    }
    if (strlen(value) > FG_CONFIG_VALUE_MAX)
        return fg_error_set(FG_EINVALID, "%s: value longer than %d bytes", var->name,
                            FG_CONFIG_VALUE_MAX);
    if ((rc = parse_value(cfg, var, value)) < 0)
        return rc;
    if (var->check != NULL && (rc = var->check(value)) < 0) {
        char reason[256]; /* fg_error_last() is the buffer fg_error_set writes to */
        snprintf(reason, sizeof(reason), "%s", fg_error_last());
        if (strncmp(reason, var->name, strlen(var->name)) == 0) /* already names it */
            return fg_error_set(rc, "%s", reason);
        return fg_error_set(rc, "%s: %s", var->name, reason);
    }
    return 0;
}

int fg_config_load(void *out, const fg_config_var *vars, size_t nvars,
                   fg_config_getenv_fn getenv_fn, void *payload)
{
    int rc = 0;

    if (getenv_fn == NULL)
        getenv_fn = env_getenv;
    for (size_t i = 0; i < nvars && rc == 0; i++)
        rc = load_one(out, &vars[i], getenv_fn, payload);
    if (rc < 0) {
        char saved[512];
        snprintf(saved, sizeof(saved), "%s", fg_error_last());
        fg_config_dispose(out, vars, nvars);
        fg_error_set(rc, "%s", saved);
    }
    return rc;
}

void fg_config_dispose(void *cfg, const fg_config_var *vars, size_t nvars)
{
    for (size_t i = 0; i < nvars; i++) {
        void *field = field_at(cfg, &vars[i]);
        switch (vars[i].type) {
        case FG_CONFIG_STRING:
        case FG_CONFIG_URL:
            free(*(char **)field);
            *(char **)field = NULL;
            break;
        case FG_CONFIG_KEY: {
            fg_config_key *key = field;
            if (key->bytes != NULL)
                memset(key->bytes, 0, key->len);
            free(key->bytes);
            key->bytes = NULL;
            key->len = 0;
            break;
        }
        default:
            break;
        }
    }
}

static const char *type_name(fg_config_type type)
{
    static const char *names[] = {"string", "integer",   "boolean",   "port",
                                  "url",    "log level", "base64 key"};
    return names[type];
}

void fg_config_print_help(FILE *out, const char *program, const fg_config_var *vars, size_t nvars)
{
    fprintf(out, "usage: %s\nConfiguration (environment variables):\n", program);
    for (size_t i = 0; i < nvars; i++) {
        const fg_config_var *v = &vars[i];
        fprintf(out, "  %-28s %-10s %s", v->name, type_name(v->type), v->help);
        if (v->def != NULL && !(v->flags & FG_CONFIG_SECRET))
            fprintf(out, " (default: %s)", v->def);
        if (v->flags & FG_CONFIG_REQUIRED)
            fprintf(out, " (required)");
        fputc('\n', out);
    }
}

void fg_config_print_markdown(FILE *out, const fg_config_var *vars, size_t nvars)
{
    for (size_t i = 0; i < nvars; i++) {
        const fg_config_var *v = &vars[i];
        const char *def = v->def == NULL                  ? "—"
                          : (v->flags & FG_CONFIG_SECRET) ? "(secret)"
                                                          : v->def;
        fprintf(out, "| `%s` | %s | `%s` | %s%s |\n", v->name, type_name(v->type), def, v->help,
                (v->flags & FG_CONFIG_REQUIRED) ? " Required." : "");
    }
}

/* Appends url[0..len) with the password of its userinfo replaced. */
static int redact_userinfo(fg_buf *out, const char *url, size_t len)
{
    const char *scheme_end = strstr(url, "://");
    const char *authority, *at, *colon, *slash;
    int rc;

    if (scheme_end == NULL || (size_t)(scheme_end - url) >= len)
        return fg_buf_put(out, url, len);
    authority = scheme_end + 3;
    slash = memchr(authority, '/', len - (size_t)(authority - url));
    at = memchr(authority, '@', (size_t)((slash ? slash : url + len) - authority));
    colon = at ? memchr(authority, ':', (size_t)(at - authority)) : NULL;
    if (colon == NULL)
        return fg_buf_put(out, url, len);
    if ((rc = fg_buf_put(out, url, (size_t)(colon + 1 - url))) < 0 ||
        (rc = fg_buf_puts(out, "***")) < 0)
        return rc;
    return fg_buf_put(out, at, len - (size_t)(at - url));
}

/* Appends a query string with the value of every password=... parameter replaced (libpq takes
 * its password from there too). */
static int redact_query(fg_buf *out, const char *query)
{
    const char *p = query;
    int rc = 0;

    while (rc == 0 && *p != '\0') {
        size_t n = strcspn(p, "&");
        bool secret = strncmp(p, "password=", 9) == 0;

        rc = secret ? fg_buf_puts(out, "password=***") : fg_buf_put(out, p, n);
        p += n;
        if (rc == 0 && *p == '&') {
            rc = fg_buf_putc(out, '&');
            p++;
        }
    }
    return rc;
}

int fg_config_redact_url(fg_buf *out, const char *url)
{
    const char *query = strchr(url, '?');
    int rc;

    if ((rc = redact_userinfo(out, url, query ? (size_t)(query - url) : strlen(url))) < 0 ||
        query == NULL)
        return rc;
    if ((rc = fg_buf_putc(out, '?')) < 0)
        return rc;
    return redact_query(out, query + 1);
}

static int format_value(fg_buf *out, const void *cfg, const fg_config_var *var)
{
    const void *field = (const char *)cfg + var->offset;
    const char *text = *(char *const *)field;

    if (var->flags & FG_CONFIG_SECRET)
        return fg_buf_puts(out, "[redacted]");
    switch (var->type) {
    case FG_CONFIG_STRING:
        return fg_buf_puts(out, text ? text : "");
    case FG_CONFIG_URL:
        return text ? fg_config_redact_url(out, text) : 0;
    case FG_CONFIG_INT:
        return fg_buf_printf(out, "%lld", *(const long long *)field);
    case FG_CONFIG_BOOL:
        return fg_buf_puts(out, *(const bool *)field ? "true" : "false");
    case FG_CONFIG_PORT:
        return fg_buf_printf(out, "%d", *(const int *)field);
    case FG_CONFIG_LOG_LEVEL:
        return fg_buf_printf(out, "%d", (int)*(const fg_log_level *)field);
    case FG_CONFIG_KEY:
        return fg_buf_puts(out, "[redacted]");
    }
    return 0;
}

static void log_one(const void *cfg, const fg_config_var *var)
{
    fg_buf value;

    fg_buf_init(&value, FG_CONFIG_VALUE_MAX + 64);
    if (format_value(&value, cfg, var) < 0)
        fg_buf_clear(&value);
    fg_log_emit(FG_LOG_INFO,
                FG_LOG_FIELDS(FG_LOG_STR("name", var->name), FG_LOG_STR("value", value.ptr)),
                "config");
    fg_buf_dispose(&value);
}

void fg_config_log(const void *cfg, const fg_config_var *vars, size_t nvars)
{
    for (size_t i = 0; i < nvars; i++)
        log_one(cfg, &vars[i]);
}

/*
 * amqp:// URL parsing (see fg/amqp.h), following RabbitMQ's URI spec: user, password and vhost
 * are percent-decoded, the vhost is one path segment ("%2f" is "/"), an absent path means "/".
 *
 * Error messages quote nothing from the URL but a well-formed host: the password may sit anywhere
 * in a malformed URL (a missing '@' turns it into the port), so echoing any other part could leak.
 */
#include "fg/amqp.h"

#include "fg/text.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AMQP_DEFAULT_PORT 5672

/* Decodes s[0..n) into a new string; FG_EINVALID (no message) on a bad escape or %00. */
static int percent_decode(char **out, const char *s, size_t n)
{
    char *d = malloc(n + 1);

    if (d == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory parsing the AMQP URL");
    if (fg_percent_decode(d, s, n, false) < 0) {
        free(d);
        return FG_EINVALID;
    }
    *out = d;
    return 0;
}

static int decode_part(char **out, const char *s, size_t n, const char *what)
{
    int rc = percent_decode(out, s, n);

    if (rc == FG_EINVALID)
        return fg_error_set(FG_EINVALID, "AMQP URL: the %s has a bad %%-escape", what);
    return rc;
}

static int parse_port(int *out, const char *s, size_t n)
{
    int port = 0;

    if (n == 0 || n > 5)
        return FG_EINVALID;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return FG_EINVALID;
        port = port * 10 + (s[i] - '0');
    }
    if (port < 1 || port > 65535)
        return FG_EINVALID;
    *out = port;
    return 0;
}

static bool host_char_ok(char c, bool bracketed)
{
    if (isalnum((unsigned char)c) || c == '.' || c == '-')
        return true;
    return bracketed ? c == ':' : c == '_';
}

/* host[:port] or [v6]:port in s[0..n). */
static int parse_host_port(fg_amqp_url *u, const char *s, size_t n)
{
    const char *host = s, *port = NULL;
    size_t host_len = n, port_len = 0;
    bool bracketed = n > 0 && s[0] == '[';
    const char *close = bracketed ? memchr(s, ']', n) : NULL;
    const char *colon = NULL;

    if (bracketed && close == NULL)
        return fg_error_set(FG_EINVALID, "AMQP URL: unterminated [ in the host");
    if (bracketed) {
        host = s + 1;
        host_len = (size_t)(close - host);
        if (close + 1 < s + n && close[1] != ':')
            return fg_error_set(FG_EINVALID, "AMQP URL: junk after ] in the host");
        colon = close + 1 < s + n ? close + 1 : NULL;
    } else {
        for (const char *p = s; p < s + n; p++)
            colon = *p == ':' ? p : colon;
        host_len = colon ? (size_t)(colon - s) : n;
    }
    if (colon != NULL) {
        port = colon + 1;
        port_len = (size_t)(s + n - port);
    }
    if (host_len == 0)
        return fg_error_set(FG_EINVALID, "AMQP URL: no host");
    for (size_t i = 0; i < host_len; i++) {
        if (!host_char_ok(host[i], bracketed))
            return fg_error_set(FG_EINVALID, "AMQP URL: the host has an invalid character");
    }
    if ((u->host = strndup(host, host_len)) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory parsing the AMQP URL");
    u->port = AMQP_DEFAULT_PORT;
    if (port != NULL && parse_port(&u->port, port, port_len) < 0)
        return fg_error_set(FG_EINVALID, "AMQP URL: the port of host %s is not a number in 1-65535",
                            u->host);
    return 0;
}

static int parse_userinfo(fg_amqp_url *u, const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    size_t user_len = colon ? (size_t)(colon - s) : n;
    int rc;

    if ((rc = decode_part(&u->user, s, user_len, "user")) < 0)
        return rc;
    if (colon == NULL)
        return decode_part(&u->password, "guest", 5, "password");
    return decode_part(&u->password, colon + 1, (size_t)(s + n - colon - 1), "password");
}

static int parse_vhost(fg_amqp_url *u, const char *path)
{
    if (path == NULL)
        return decode_part(&u->vhost, "/", 1, "vhost");
    if (strchr(path + 1, '/') != NULL)
        return fg_error_set(FG_EINVALID,
                            "AMQP URL: the vhost must be one path segment (write / as %%2f)");
    return decode_part(&u->vhost, path + 1, strlen(path + 1), "vhost");
}

int fg_amqp_url_parse(fg_amqp_url *out, const char *url)
{
    const char *rest, *path, *at = NULL, *auth_end;
    int rc = FG_ERROR;

    memset(out, 0, sizeof(*out));
    if (url == NULL || url[0] == '\0')
        return fg_error_set(FG_EINVALID, "AMQP URL is empty");
    if (strnlen(url, FG_AMQP_URL_MAX + 1) > FG_AMQP_URL_MAX)
        return fg_error_set(FG_ETOOBIG, "AMQP URL is longer than %d bytes", FG_AMQP_URL_MAX);
    if (strncasecmp(url, "amqps://", 8) == 0)
        return fg_error_set(FG_EINVALID, "AMQP URL: amqps:// (TLS) is not supported");
    if (strncasecmp(url, "amqp://", 7) != 0)
        return fg_error_set(FG_EINVALID, "AMQP URL must start with amqp://");
    rest = url + 7;
    if (strpbrk(rest, "?#") != NULL)
        return fg_error_set(FG_EINVALID, "AMQP URL: query strings and fragments are not supported");
    path = strchr(rest, '/');
    auth_end = path ? path : rest + strlen(rest);
    /* The last '@' ends the userinfo: an unescaped '@' in a password is common in practice. */
    for (const char *p = rest; p < auth_end; p++)
        at = *p == '@' ? p : at;
    if (at != NULL && (rc = parse_userinfo(out, rest, (size_t)(at - rest))) < 0)
        goto done;
    if (at == NULL && ((rc = decode_part(&out->user, "guest", 5, "user")) < 0 ||
                       (rc = decode_part(&out->password, "guest", 5, "password")) < 0))
        goto done;
    rest = at ? at + 1 : rest;
    if ((rc = parse_host_port(out, rest, (size_t)(auth_end - rest))) < 0)
        goto done;
    if ((rc = parse_vhost(out, path)) < 0)
        goto done;
    rc = 0;
done:
    if (rc < 0)
        fg_amqp_url_dispose(out);
    return rc;
}

void fg_amqp_url_dispose(fg_amqp_url *u)
{
    if (u == NULL)
        return;
    free(u->host);
    free(u->user);
    if (u->password != NULL)
        explicit_bzero(u->password, strlen(u->password));
    free(u->password);
    free(u->vhost);
    memset(u, 0, sizeof(*u));
}

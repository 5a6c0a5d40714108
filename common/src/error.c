/*
 * Thread-local last-error message. See fg/error.h for the model.
 */
#include "fg/error.h"

#include <stdarg.h>
#include <stdio.h>

#define FG_ERROR_MSG_MAX 512

static _Thread_local char last_message[FG_ERROR_MSG_MAX];
static _Thread_local int last_code;

int fg_error_set(int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(last_message, sizeof(last_message), fmt, ap);
    va_end(ap);
    last_code = code;
    return code;
}

const char *fg_error_last(void)
{
    return last_message;
}

int fg_error_last_code(void)
{
    return last_code;
}

void fg_error_clear(void)
{
    last_message[0] = '\0';
    last_code = FG_OK;
}

const char *fg_error_name(int code)
{
    switch (code) {
    case FG_OK:
        return "ok";
    case FG_ENOTFOUND:
        return "not_found";
    case FG_EINVALID:
        return "invalid";
    case FG_ETOOBIG:
        return "too_big";
    case FG_ETIMEOUT:
        return "timeout";
    case FG_EUNAVAILABLE:
        return "unavailable";
    case FG_ECONFLICT:
        return "conflict";
    case FG_EAUTH:
        return "unauthorized";
    case FG_ENOMEM:
        return "out_of_memory";
    default:
        return "error";
    }
}

/*
 * The trailers of a commit message, by git's own rules (git 2.39 trailer.c as used by
 * `git log --format=%(trailers:only,unfold)`): only the message's last paragraph, when it is all
 * trailers or holds a git-generated line and at least 25% trailers; ':' as the only separator;
 * continuation lines folded into one space; comment, cut-line and "Conflicts:" tails ignored.
 * libgit2's git_message_trailers differs from git on several of these (docs/internals/
 * extraction.md), hence this parser. It does not interpret values (names, emails): that is the
 * graph's job. A cs_trailers is caller-held and used by one thread at a time.
 */
#ifndef CS_TRAILERS_H
#define CS_TRAILERS_H

#include <stddef.h>

#include "fg/buf.h"
#include "fg/error.h"

/* Trailers kept per message; later ones are counted in `dropped`. */
#define CS_TRAILERS_MAX 256

typedef struct {
    const char *key; /* NUL-terminated, borrowed from the cs_trailers (valid until next parse) */
    size_t key_len;
    const char *value; /* unfolded and trimmed as git prints it; NUL-terminated */
    size_t value_len;
} cs_trailer;

typedef struct {
    cs_trailer items[CS_TRAILERS_MAX];
    size_t count;
    size_t dropped; /* trailers past CS_TRAILERS_MAX */
    fg_buf text;    /* owns the keys and values */
} cs_trailers;

void cs_trailers_init(cs_trailers *t);
void cs_trailers_dispose(cs_trailers *t);

/* Parses the trailers of msg (len bytes: the commit message as stored, after the header's blank
 * line, already converted to UTF-8 if the commit declared another encoding; it stops at a NUL as
 * git does). Replaces what t held. Keys and values are git's bytes (not UTF-8-checked).
 * FG_ENOMEM. */
int cs_trailers_parse(cs_trailers *t, const char *msg, size_t len) FG_MUST_CHECK;

#endif

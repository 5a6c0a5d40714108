/*
 * Contributor activities of one commit (DESIGN.md "The graph"): authored-commit always,
 * committed-commit when the committer's email differs, and one per trailer whose key the alias
 * table (data, below in tg_activity.c) maps to a type and whose value reads `Name <email>`; one
 * activity per (type, lower-cased email). It does not write RDF (tg_rdf.h does) nor parse the
 * trailer block (commit-sync did, to git's rules). Pure functions; any thread.
 */
#ifndef TG_ACTIVITY_H
#define TG_ACTIVITY_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/error.h"
#include "fg/proto.h"

/* The most activities one commit can have: author, committer and one per trailer. */
#define TG_ACTIVITY_MAX (FG_PROTO_TRAILERS_MAX + 2)

typedef enum {
    TG_ACTIVITY_AUTHORED,
    TG_ACTIVITY_COMMITTED,
    TG_ACTIVITY_SIGNED_OFF,
    TG_ACTIVITY_REVIEWED,
    TG_ACTIVITY_TESTED,
    TG_ACTIVITY_CO_AUTHORED,
    TG_ACTIVITY_REPORTED,
    TG_ACTIVITY_APPROVED,
    TG_ACTIVITY_INFLUENCED,
    TG_ACTIVITY_INFORMED,
    TG_ACTIVITY_RESOLVED,
    TG_ACTIVITY_TYPE_COUNT
} tg_activity_type;

/* One activity; the strings are borrowed from the commit (name and email are NOT
 * NUL-terminated when they come from a trailer value: use the lengths). */
typedef struct {
    tg_activity_type type;
    const char *name;
    size_t name_len;
    const char *email; /* as written, not lower-cased */
    size_t email_len;
    const char *started_at; /* author time, committer time for committed-commit */
} tg_activity;

/* "authored-commit", ...; NULL out of range. */
const char *tg_activity_type_name(tg_activity_type type);

/* The type the trailer key (compared ASCII case-insensitively, surrounding blanks ignored) stands
 * for. FG_ENOTFOUND for a key the alias table does not list. */
int tg_activity_type_of_trailer(tg_activity_type *out, const char *key) FG_MUST_CHECK;

/* Splits a trailer value of the form `Name <email>` (blanks around it ignored; Name may be
 * empty; the email is the text inside the final <...>, which must end the value, be non-empty
 * and hold no blank, control character, '<' or '>', and fit FG_PROTO_EMAIL_MAX bytes).
 * FG_EINVALID, with the reason, for anything else. */
int tg_activity_parse_person(const char **out_name, size_t *out_name_len, const char **out_email,
                             size_t *out_email_len, const char *value) FG_MUST_CHECK;

/* True when a[0..a_len) and b[0..b_len) are equal after ASCII lower-casing (DESIGN.md compares
 * emails that way). */
bool tg_activity_email_equal(const char *a, size_t a_len, const char *b, size_t b_len);

/* The activities of commit c in out[0..*out_n): authored first, then committed, then the
 * trailers' in message order; a later duplicate (same type and email) is dropped, and so are
 * trailers with unknown keys or malformed values (*out_skipped counts the malformed ones of
 * known keys). Borrowing: out points into c. Never fails. */
void tg_activity_derive(tg_activity out[TG_ACTIVITY_MAX], size_t *out_n, size_t *out_skipped,
                        const fg_proto_commit *c);

#endif

/*
 * Activities of a commit (see tg_activity.h). The alias table is the one place that says which
 * trailer keys count; docs/vocabulary.md lists the same rows.
 */
#include "tg_activity.h"

#include <string.h>

static const char *const type_names[TG_ACTIVITY_TYPE_COUNT] = {
    [TG_ACTIVITY_AUTHORED] = "authored-commit",
    [TG_ACTIVITY_COMMITTED] = "committed-commit",
    [TG_ACTIVITY_SIGNED_OFF] = "signed-off-commit",
    [TG_ACTIVITY_REVIEWED] = "reviewed-commit",
    [TG_ACTIVITY_TESTED] = "tested-commit",
    [TG_ACTIVITY_CO_AUTHORED] = "co-authored-commit",
    [TG_ACTIVITY_REPORTED] = "reported-commit",
    [TG_ACTIVITY_APPROVED] = "approved-commit",
    [TG_ACTIVITY_INFLUENCED] = "influenced-commit",
    [TG_ACTIVITY_INFORMED] = "informed-commit",
    [TG_ACTIVITY_RESOLVED] = "resolved-commit",
};

/* Trailer key -> activity type. Only the keys DESIGN.md names for the types whose counts are
 * checked against git (signed-off, reviewed, tested, co-authored, reported): one key each, so
 * the graph's counts equal `git log --format=%(trailers:key=...)`. The "influenced" family is
 * open-ended in DESIGN.md; these are the customary kernel and git.git keys. */
static const struct {
    const char *key;
    tg_activity_type type;
} aliases[] = {
    {"Signed-off-by", TG_ACTIVITY_SIGNED_OFF},
    {"Reviewed-by", TG_ACTIVITY_REVIEWED},
    {"Tested-by", TG_ACTIVITY_TESTED},
    {"Co-authored-by", TG_ACTIVITY_CO_AUTHORED},
    {"Reported-by", TG_ACTIVITY_REPORTED},
    {"Acked-by", TG_ACTIVITY_APPROVED},
    {"Approved-by", TG_ACTIVITY_APPROVED},
    {"Helped-by", TG_ACTIVITY_INFLUENCED},
    {"Suggested-by", TG_ACTIVITY_INFLUENCED},
    {"Mentored-by", TG_ACTIVITY_INFLUENCED},
    {"Inspired-by", TG_ACTIVITY_INFLUENCED},
    {"Thanks-to", TG_ACTIVITY_INFLUENCED},
    {"Based-on-patch-by", TG_ACTIVITY_INFLUENCED},
    {"Original-patch-by", TG_ACTIVITY_INFLUENCED},
    {"Originally-by", TG_ACTIVITY_INFLUENCED},
    {"Cc", TG_ACTIVITY_INFORMED},
    {"Informed-by", TG_ACTIVITY_INFORMED},
    {"Resolved-by", TG_ACTIVITY_RESOLVED},
};

const char *tg_activity_type_name(tg_activity_type type)
{
    return (unsigned)type < TG_ACTIVITY_TYPE_COUNT ? type_names[type] : NULL;
}

static char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c | 0x20) : c;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool tg_activity_email_equal(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a_len != b_len)
        return false;
    for (size_t i = 0; i < a_len; i++)
        if (ascii_lower(a[i]) != ascii_lower(b[i]))
            return false;
    return true;
}

int tg_activity_type_of_trailer(tg_activity_type *out, const char *key)
{
    size_t len;

    while (is_blank(*key))
        key++;
    len = strlen(key);
    while (len > 0 && is_blank(key[len - 1]))
        len--;
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
        if (tg_activity_email_equal(aliases[i].key, strlen(aliases[i].key), key, len)) {
            *out = aliases[i].type;
            return 0;
        }
    }
    return fg_error_set(FG_ENOTFOUND, "trailer key is not in the alias table");
}

int tg_activity_parse_person(const char **out_name, size_t *out_name_len, const char **out_email,
                             size_t *out_email_len, const char *value)
{
    const char *start = value, *open;
    size_t len, name_len;

    while (is_blank(*start))
        start++;
    len = strlen(start);
    while (len > 0 && is_blank(start[len - 1]))
        len--;
    if (len == 0 || start[len - 1] != '>')
        return fg_error_set(FG_EINVALID, "not 'Name <email>': does not end with '>'");
    for (open = start + len - 1; open > start && open[-1] != '<'; open--)
        if ((unsigned char)open[-1] <= 0x20 || open[-1] == 0x7F || open[-1] == '>')
            return fg_error_set(FG_EINVALID, "not 'Name <email>': bad character in the email");
    if (open == start)
        return fg_error_set(FG_EINVALID, "not 'Name <email>': no '<'");
    if (open == start + len - 1)
        return fg_error_set(FG_EINVALID, "not 'Name <email>': empty email");
    if ((size_t)(start + len - 1 - open) > FG_PROTO_EMAIL_MAX)
        return fg_error_set(FG_EINVALID, "not 'Name <email>': email too long");
    name_len = (size_t)(open - 1 - start);
    while (name_len > 0 && is_blank(start[name_len - 1]))
        name_len--;
    *out_name = start;
    *out_name_len = name_len;
    *out_email = open;
    *out_email_len = (size_t)(start + len - 1 - open);
    return 0;
}

/* Appends an activity unless one of the same type and email is there already. */
static void add(tg_activity *out, size_t *n, const tg_activity *a)
{
    for (size_t i = 0; i < *n; i++)
        if (out[i].type == a->type &&
            tg_activity_email_equal(out[i].email, out[i].email_len, a->email, a->email_len))
            return;
    out[(*n)++] = *a;
}

static tg_activity from_person(tg_activity_type type, const fg_proto_person *p,
                               const char *started_at)
{
    return (tg_activity){type, p->name, strlen(p->name), p->email, strlen(p->email), started_at};
}

void tg_activity_derive(tg_activity out[TG_ACTIVITY_MAX], size_t *out_n, size_t *out_skipped,
                        const fg_proto_commit *c)
{
    tg_activity a;
    size_t n = 0, skipped = 0;

    a = from_person(TG_ACTIVITY_AUTHORED, &c->author, c->author.at);
    add(out, &n, &a);
    if (!tg_activity_email_equal(c->author.email, strlen(c->author.email), c->committer.email,
                                 strlen(c->committer.email))) {
        a = from_person(TG_ACTIVITY_COMMITTED, &c->committer, c->committer.at);
        add(out, &n, &a);
    }
    for (size_t i = 0; i < c->trailer_count && i < FG_PROTO_TRAILERS_MAX; i++) {
        tg_activity t = {TG_ACTIVITY_AUTHORED, NULL, 0, NULL, 0, c->author.at};

        if (tg_activity_type_of_trailer(&t.type, c->trailers[i].key) < 0)
            continue;
        if (tg_activity_parse_person(&t.name, &t.name_len, &t.email, &t.email_len,
                                     c->trailers[i].value) < 0) {
            skipped++;
            continue;
        }
        add(out, &n, &t);
    }
    fg_error_clear();
    *out_n = n;
    *out_skipped = skipped;
}

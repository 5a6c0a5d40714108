/*
 * One commit to one body (DESIGN.md "Messages"). The commit object is parsed here rather than
 * through git_commit: git's own rules for idents and the `encoding` header apply (pretty.c
 * split_ident_line, logmsg_reencode), and no libgit2 object is allocated per commit. The tree
 * diff is a walk over both trees that compares entry ids, in git's tree order, so it only opens
 * what changed, and each changed file is counted by cs_numstat. Merges get no diff, as in
 * `git log --numstat`.
 */
#include <errno.h>
#include <iconv.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cs_extract_int.h"
#include "cs_numstat.h"
#include "cs_trailers.h"
#include "fg/proto.h"

#define HEX_LEN         40
#define PARENT_CACHE    4096 /* commit -> tree ids kept per worker (direct-mapped) */
#define ENCODING_MAX    64   /* bytes of an `encoding` header we try to convert from */
#define YEAR_9999_END   253402300799LL
#define S_IFMT_         0170000
#define MODE_TREE       0040000
#define MODE_BLOB       0100644
#define MODE_EXEC       0100755
#define MODE_LINK       0120000
#define MODE_GITLINK    0160000
#define SUBPROJECT_TEXT "Subproject commit "

typedef struct {
    size_t path_off; /* into worker.paths */
    size_t path_len;
    uint64_t insertions;
    uint64_t deletions;
    bool binary;
} file_stat;

typedef struct {
    git_oid commit;
    git_oid tree;
    bool used;
} parent_entry;

/* A commit object seen as git's parser sees it; pointers into the object's (or the converted)
 * text. */
typedef struct {
    const char *tree; /* 40 hex or NULL */
    const char *parents[FG_PROTO_PARENTS_MAX];
    size_t parent_count; /* all parents, even past the array */
    const char *author, *committer, *encoding;
    size_t author_len, committer_len, encoding_len;
    const char *message;
    size_t message_len;
} commit_view;

typedef struct {
    const char *name, *email;
    size_t name_len, email_len;
    long long seconds;
    int offset_minutes;
} ident;

struct cs_extract__worker {
    git_repository *repo; /* borrowed */
    cs_extract__odb *odb;
    bool shallow;
    size_t files_max;
    cs_numstat *numstat;
    cs_trailers trailers;
    fg_buf converted; /* the commit text in UTF-8 when it declared another encoding */
    fg_buf scratch;   /* one sanitised string */
    fg_buf path;      /* the path being walked */
    fg_buf paths;     /* paths of the files listed */
    file_stat *files;
    size_t file_count, files_cap;
    uint64_t insertions, deletions, files_changed;
    char iconv_name[ENCODING_MAX];
    iconv_t iconv;
    parent_entry parent_cache[PARENT_CACHE];
    git_oid current; /* the commit being extracted, for error messages */
};

/* ---- libgit2 ---- */

/* why may be fg_error_last() itself: it is copied before the message is replaced. */
static int fail(const cs_extract__worker *w, int code, const char *what, const git_oid *id,
                const char *why)
{
    char sha[HEX_LEN + 1], obj[HEX_LEN + 1], reason[512];

    snprintf(reason, sizeof(reason), "%s", why);
    git_oid_tostr(sha, sizeof(sha), &w->current);
    git_oid_tostr(obj, sizeof(obj), id);
    return fg_error_set(code, "commit %s: %s %s: %s", sha, what, obj, reason);
}

static int read_object(cs_extract__worker *w, cs_extract__object **out, const git_oid *id,
                       git_object_t type, const char *what, size_t max)
{
    int rc = cs_extract__odb_read(out, w->odb, id, max);

    if (rc == FG_ETOOBIG)
        return rc;
    if (rc < 0)
        return fail(w, rc, what, id, fg_error_last());
    if (cs_extract__object_type(*out) != type) {
        char why[32];
        snprintf(why, sizeof(why), "is a %s",
                 git_object_type2string(cs_extract__object_type(*out)));
        cs_extract__object_release(w->odb, *out);
        *out = NULL;
        return fail(w, FG_ENOTFOUND, what, id, why);
    }
    return 0;
}

/* git_oid_equal is a call into libgit2; this is on every tree entry */
static bool same_id(const git_oid *a, const git_oid *b)
{
    return memcmp(a->id, b->id, GIT_OID_RAWSZ) == 0;
}

static size_t oid_slot(const git_oid *id, size_t size)
{
    uint32_t h;

    memcpy(&h, id->id, sizeof(h));
    return h % size;
}

/* ---- commit text ---- */

static const char *line_end(const char *s, const char *end)
{
    const char *nl = memchr(s, '\n', (size_t)(end - s));

    return nl != NULL ? nl : end;
}

static bool header(const char *s, const char *eol, const char *name, const char **value,
                   size_t *len)
{
    size_t n = strlen(name);

    if ((size_t)(eol - s) < n + 1 || memcmp(s, name, n) != 0 || s[n] != ' ')
        return false;
    *value = s + n + 1;
    *len = (size_t)(eol - *value);
    return true;
}

/* The header lines up to the first empty line, then the message (parse_commit_buffer and
 * pretty.c: the first author/committer/encoding line wins, continuation lines of gpgsig and
 * mergetag are skipped). */
static void parse_commit(commit_view *c, const char *text, size_t len)
{
    const char *s = text, *end = text + len;
    const char *v;
    size_t vlen;

    memset(c, 0, sizeof(*c));
    while (s < end && *s != '\n') {
        const char *eol = line_end(s, end);
        if (header(s, eol, "tree", &v, &vlen) && vlen >= HEX_LEN && c->tree == NULL) {
            c->tree = v;
        } else if (header(s, eol, "parent", &v, &vlen) && vlen >= HEX_LEN) {
            if (c->parent_count < FG_PROTO_PARENTS_MAX)
                c->parents[c->parent_count] = v;
            c->parent_count++;
        } else if (c->author == NULL && header(s, eol, "author", &v, &vlen)) {
            c->author = v;
            c->author_len = vlen;
        } else if (c->committer == NULL && header(s, eol, "committer", &v, &vlen)) {
            c->committer = v;
            c->committer_len = vlen;
        } else if (c->encoding == NULL && header(s, eol, "encoding", &v, &vlen)) {
            c->encoding = v;
            c->encoding_len = vlen;
        }
        s = eol < end ? eol + 1 : end;
    }
    if (s < end)
        s++;
    /* git stops at a NUL in the message (it is a C string to log and trailers) */
    c->message = s;
    c->message_len = (size_t)(end - s);
    v = memchr(s, '\0', c->message_len);
    if (v != NULL)
        c->message_len = (size_t)(v - s);
}

static bool git_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t digits(const char *s, const char *end)
{
    size_t n = 0;

    while (s + n < end && s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

/* The date and zone after the last '>' (split_ident_line: a date without a zone is no date).
 * git shows a missing or overflowing date as the epoch; so do we for dates past year 9999, and
 * for zones RFC 3339 cannot write we keep the instant and show it in UTC. */
static void parse_date(ident *id, const char *s, const char *end)
{
    long long seconds = 0, tz = 0;
    size_t n, tzn;

    while (s < end && git_space((unsigned char)*s))
        s++;
    if ((n = digits(s, end)) == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (seconds > (YEAR_9999_END - 9) / 10)
            return;
        seconds = seconds * 10 + (s[i] - '0');
    }
    s += n;
    while (s < end && git_space((unsigned char)*s))
        s++;
    if (s >= end || (*s != '+' && *s != '-') || (tzn = digits(s + 1, end)) == 0)
        return;
    for (size_t i = 1; i <= tzn && i <= 9; i++)
        tz = tz * 10 + (s[i] - '0');
    if (tzn > 9 || tz / 100 > 23 || tz % 100 > 59)
        tz = 0;
    if (*s == '-')
        tz = -tz;
    if (seconds > YEAR_9999_END - 86400)
        return;
    id->seconds = seconds;
    id->offset_minutes = (int)(tz / 100 * 60 + tz % 100);
}

/* split_ident_line: "Name <email> date zone"; a line without '<' or '>' has no parts. */
static void parse_ident(ident *id, const char *line, size_t len)
{
    const char *end = line + len, *lt, *gt, *name_end;

    memset(id, 0, sizeof(*id));
    id->name = id->email = "";
    if (line == NULL || (lt = memchr(line, '<', len)) == NULL ||
        (gt = memchr(lt + 1, '>', (size_t)(end - lt - 1))) == NULL)
        return;
    for (name_end = lt; name_end > line && git_space((unsigned char)name_end[-1]); name_end--)
        ;
    id->name = line;
    id->name_len = (size_t)(name_end - line);
    id->email = lt + 1;
    id->email_len = (size_t)(gt - lt - 1);
    /* the date follows the last '>' of the line (broken idents have more than one) */
    for (gt = end - 1; *gt != '>'; gt--)
        ;
    parse_date(id, gt + 1, end);
}

/* ---- encoding (logmsg_reencode: the whole commit text is converted, header included) ---- */

static bool is_utf8_name(const char *s, size_t len)
{
    return (len == 5 && strncasecmp(s, "utf-8", 5) == 0) ||
           (len == 4 && strncasecmp(s, "utf8", 4) == 0);
}

/* Converts text to UTF-8 into w->converted; false when the encoding is unknown or the text is
 * not valid in it, in which case git keeps the original bytes (and so do we, sanitised). */
static bool convert(cs_extract__worker *w, const char *enc, size_t enc_len, const char *text,
                    size_t len)
{
    char *in = (char *)text; /* iconv's prototype is not const-correct */
    size_t in_left = len;

    if (enc_len >= ENCODING_MAX)
        return false;
    if (w->iconv == (iconv_t)-1 || strlen(w->iconv_name) != enc_len ||
        memcmp(w->iconv_name, enc, enc_len) != 0) {
        if (w->iconv != (iconv_t)-1)
            iconv_close(w->iconv);
        memcpy(w->iconv_name, enc, enc_len);
        w->iconv_name[enc_len] = '\0';
        if ((w->iconv = iconv_open("UTF-8", w->iconv_name)) == (iconv_t)-1)
            return false;
    }
    iconv(w->iconv, NULL, NULL, NULL, NULL);
    fg_buf_clear(&w->converted);
    while (in_left > 0) {
        char *out;
        size_t out_left, before;
        if (fg_buf_reserve(&w->converted, in_left * 2 + 16) < 0)
            return false;
        out = w->converted.ptr + w->converted.len;
        out_left = w->converted.cap - w->converted.len - 1;
        before = out_left;
        if (iconv(w->iconv, &in, &in_left, &out, &out_left) == (size_t)-1 && errno != E2BIG) {
            w->converted.len += before - out_left;
            return false;
        }
        w->converted.len += before - out_left;
    }
    w->converted.ptr[w->converted.len] = '\0';
    return true;
}

/* ---- tree diff ---- */

typedef struct {
    const char *name;
    size_t name_len;
    unsigned mode;
    const git_oid *id;
} entry;

/* canon_mode: trees from old gits carry modes like 100664. */
static unsigned canon_mode(unsigned mode)
{
    switch (mode & S_IFMT_) {
    case 0100000:
        return (mode & 0100) ? MODE_EXEC : MODE_BLOB;
    case MODE_LINK:
        return MODE_LINK;
    case MODE_TREE:
        return MODE_TREE;
    default:
        return MODE_GITLINK;
    }
}

/* Reads the entry at *pos of a raw tree; false at the end, and on a malformed entry with *bad
 * set (git refuses such a tree; counting what precedes it would be wrong). */
static bool next_entry(entry *e, const char *data, size_t size, size_t *pos, bool *bad)
{
    const char *p = data + *pos, *end = data + size, *nul;
    unsigned mode = 0;

    if (p >= end)
        return false;
    for (; p < end && *p >= '0' && *p <= '7' && mode < 01000000; p++)
        mode = mode * 8 + (unsigned)(*p - '0');
    if (p >= end || *p != ' ' || (nul = memchr(p + 1, '\0', (size_t)(end - p - 1))) == NULL ||
        nul == p + 1 || (size_t)(end - nul - 1) < GIT_OID_RAWSZ) {
        *bad = true;
        return false;
    }
    e->name = p + 1;
    e->name_len = (size_t)(nul - p - 1);
    e->mode = canon_mode(mode);
    e->id = (const git_oid *)(const void *)(nul + 1);
    *pos = (size_t)(nul + 1 + GIT_OID_RAWSZ - data);
    return true;
}

/* base_name_compare: a tree sorts as if its name ended with '/'. */
static int entry_compare(const entry *a, const entry *b)
{
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int cmp = memcmp(a->name, b->name, n);
    unsigned char ca, cb;

    if (cmp != 0)
        return cmp;
    ca = n < a->name_len ? (unsigned char)a->name[n] : (a->mode == MODE_TREE ? '/' : 0);
    cb = n < b->name_len ? (unsigned char)b->name[n] : (b->mode == MODE_TREE ? '/' : 0);
    return ca < cb ? -1 : ca > cb ? 1 : 0;
}

/* The content git diffs for a side: the blob, or for a submodule the line git makes up. */
typedef struct {
    cs_extract__object *blob;
    const char *data;
    size_t size;
    bool too_big; /* past git's big_file_threshold: binary, never read */
    char text[sizeof(SUBPROJECT_TEXT) + HEX_LEN + 1];
} side;

static int load_side(cs_extract__worker *w, side *s, const entry *e)
{
    int rc;

    memset(s, 0, sizeof(*s));
    if (e == NULL) {
        s->data = "";
        return 0;
    }
    if (e->mode == MODE_GITLINK) {
        memcpy(s->text, SUBPROJECT_TEXT, sizeof(SUBPROJECT_TEXT) - 1);
        git_oid_fmt(s->text + sizeof(SUBPROJECT_TEXT) - 1, e->id);
        s->text[sizeof(s->text) - 2] = '\n';
        s->data = s->text;
        s->size = sizeof(s->text) - 1;
        return 0;
    }
    rc = read_object(w, &s->blob, e->id, GIT_OBJECT_BLOB, "blob", CS_NUMSTAT_BIG_FILE);
    if (rc == FG_ETOOBIG) {
        s->too_big = true;
        s->data = "";
        return 0;
    }
    if (rc < 0)
        return rc;
    s->data = cs_extract__object_data(s->blob);
    s->size = cs_extract__object_size(s->blob);
    return 0;
}

static bool side_binary(const side *s)
{
    return s->too_big || cs_numstat_is_binary(s->data, s->size);
}

static int record_file(cs_extract__worker *w, const entry *e, uint64_t ins, uint64_t del,
                       bool binary)
{
    size_t base = w->path.len;
    file_stat *f;
    int rc;

    w->files_changed++;
    w->insertions += ins;
    w->deletions += del;
    if (w->file_count >= w->files_max)
        return 0;
    if (w->file_count == w->files_cap) {
        size_t cap = w->files_cap > 0 ? w->files_cap * 2 : 64;
        file_stat *nf = realloc(w->files, cap * sizeof(*nf));
        if (nf == NULL)
            return fg_error_set(FG_ENOMEM, "out of memory listing files");
        w->files = nf;
        w->files_cap = cap;
    }
    f = &w->files[w->file_count];
    f->path_off = w->paths.len;
    if ((rc = fg_buf_put(&w->paths, w->path.ptr, base)) < 0 ||
        (rc = fg_buf_put(&w->paths, e->name, e->name_len)) < 0)
        return rc;
    f->path_len = base + e->name_len;
    f->insertions = ins;
    f->deletions = del;
    f->binary = binary;
    w->file_count++;
    return 0;
}

/* One changed path that is not a tree on either side (builtin_diffstat): binary on either side
 * counts as changed with no lines; the same content under a new mode is 0 0. */
static int diff_file(cs_extract__worker *w, const entry *old, const entry *new)
{
    side a, b;
    uint64_t ins = 0, del = 0;
    bool binary;
    int rc;

    if ((rc = load_side(w, &a, old)) < 0)
        return rc;
    if ((rc = load_side(w, &b, new)) < 0)
        goto done;
    binary = side_binary(&a) || side_binary(&b);
    if (binary || (old != NULL && new != NULL &&same_id(old->id, new->id))) {
        /* nothing to count */
    } else if (old == NULL) {
        ins = cs_numstat_lines(b.data, b.size);
    } else if (new == NULL) {
        del = cs_numstat_lines(a.data, a.size);
    } else if ((rc = cs_numstat_diff(w->numstat, a.data, a.size, b.data, b.size, &ins, &del)) < 0) {
        goto done;
    }
    rc = record_file(w, new != NULL ? new : old, ins, del, binary);
done:
    cs_extract__object_release(w->odb, a.blob);
    cs_extract__object_release(w->odb, b.blob);
    return rc;
}

static int diff_trees(cs_extract__worker *w, const git_oid *old, const git_oid *new, int depth);

/* A path present on one side or both; trees are walked, the rest counted. */
static int diff_entry(cs_extract__worker *w, const entry *old, const entry *new, int depth)
{
    bool old_tree = old != NULL && old->mode == MODE_TREE;
    bool new_tree = new != NULL &&new->mode == MODE_TREE;
    const entry *named = new != NULL ? new : old;
    size_t base = w->path.len;
    int rc;

    if (!old_tree && !new_tree)
        return diff_file(w, old, new);
    if ((rc = fg_buf_put(&w->path, named->name, named->name_len)) < 0 ||
        (rc = fg_buf_putc(&w->path, '/')) < 0)
        return rc;
    rc = diff_trees(w, old != NULL ? old->id : NULL, new != NULL ? new->id : NULL, depth + 1);
    w->path.len = base;
    w->path.ptr[base] = '\0';
    return rc;
}

static int diff_trees(cs_extract__worker *w, const git_oid *old, const git_oid *new, int depth)
{
    cs_extract__object *ot = NULL, *nt = NULL;
    const char *od = NULL, *nd = NULL;
    size_t os = 0, ns = 0, op = 0, np = 0;
    entry oe, ne;
    bool has_o, has_n, bad_o = false, bad_n = false;
    int rc = FG_ERROR;

    if (depth > CS_EXTRACT_TREE_DEPTH_MAX) {
        char sha[HEX_LEN + 1];
        git_oid_tostr(sha, sizeof(sha), &w->current);
        return fg_error_set(FG_EINVALID, "commit %s: trees nested deeper than %d", sha,
                            CS_EXTRACT_TREE_DEPTH_MAX);
    }
    if (old != NULL &&
        (rc = read_object(w, &ot, old, GIT_OBJECT_TREE, "tree", CS_NUMSTAT_SIZE_MAX)) < 0)
        goto done;
    if (new != NULL &&
        (rc = read_object(w, &nt, new, GIT_OBJECT_TREE, "tree", CS_NUMSTAT_SIZE_MAX)) < 0)
        goto done;
    if (ot != NULL) {
        od = cs_extract__object_data(ot);
        os = cs_extract__object_size(ot);
    }
    if (nt != NULL) {
        nd = cs_extract__object_data(nt);
        ns = cs_extract__object_size(nt);
    }
    has_o = od != NULL && next_entry(&oe, od, os, &op, &bad_o);
    has_n = nd != NULL && next_entry(&ne, nd, ns, &np, &bad_n);
    rc = 0;
    while ((has_o || has_n) && rc == 0) {
        int cmp = !has_o ? 1 : !has_n ? -1 : entry_compare(&oe, &ne);
        if (cmp < 0) {
            rc = diff_entry(w, &oe, NULL, depth);
        } else if (cmp > 0) {
            rc = diff_entry(w, NULL, &ne, depth);
        } else if (!same_id(oe.id, ne.id) || oe.mode != ne.mode) {
            rc = diff_entry(w, &oe, &ne, depth);
        }
        if (cmp <= 0)
            has_o = next_entry(&oe, od, os, &op, &bad_o);
        if (cmp >= 0)
            has_n = next_entry(&ne, nd, ns, &np, &bad_n);
    }
    if (rc == 0 && (bad_o || bad_n))
        rc = fail(w, FG_EINVALID, "tree", bad_o ? old : new, "malformed entry");
done:
    cs_extract__object_release(w->odb, ot);
    cs_extract__object_release(w->odb, nt);
    return rc;
}

/* The tree of the first parent: from the cache, or from the parent's commit object. */
static int parent_tree(cs_extract__worker *w, git_oid *out, const git_oid *parent, bool *missing)
{
    parent_entry *slot = &w->parent_cache[oid_slot(parent, PARENT_CACHE)];
    cs_extract__object *obj = NULL;
    commit_view c;
    int rc;

    *missing = false;
    if (slot->used && same_id(&slot->commit, parent)) {
        git_oid_cpy(out, &slot->tree);
        return 0;
    }
    rc = cs_extract__odb_read(&obj, w->odb, parent, CS_NUMSTAT_SIZE_MAX);
    if (rc == FG_ENOTFOUND && w->shallow) {
        /* a shallow clone's boundary: git shows it as a root commit */
        *missing = true;
        return 0;
    }
    if (rc < 0)
        return fail(w, rc, "parent", parent, fg_error_last());
    parse_commit(&c, cs_extract__object_data(obj), cs_extract__object_size(obj));
    rc = 0;
    if (cs_extract__object_type(obj) != GIT_OBJECT_COMMIT || c.tree == NULL ||
        git_oid_fromstrn(out, c.tree, HEX_LEN) < 0)
        rc = fail(w, FG_ERROR, "parent", parent, "not a commit with a tree");
    cs_extract__object_release(w->odb, obj);
    return rc;
}

static void remember_tree(cs_extract__worker *w, const git_oid *commit, const git_oid *tree)
{
    parent_entry *slot = &w->parent_cache[oid_slot(commit, PARENT_CACHE)];

    git_oid_cpy(&slot->commit, commit);
    git_oid_cpy(&slot->tree, tree);
    slot->used = true;
}

static int diff_commit(cs_extract__worker *w, const commit_view *c)
{
    git_oid tree, ptree;
    bool missing = true;
    int rc;

    w->file_count = 0;
    w->insertions = w->deletions = w->files_changed = 0;
    fg_buf_clear(&w->paths);
    fg_buf_clear(&w->path);
    if (c->tree == NULL || git_oid_fromstrn(&tree, c->tree, HEX_LEN) < 0)
        return fail(w, FG_ERROR, "commit", &w->current, "no tree");
    remember_tree(w, &w->current, &tree);
    if (c->parent_count > 1)
        return 0;
    if (c->parent_count == 1) {
        git_oid parent;
        if (git_oid_fromstrn(&parent, c->parents[0], HEX_LEN) < 0)
            return fail(w, FG_ERROR, "commit", &w->current, "malformed parent");
        if ((rc = parent_tree(w, &ptree, &parent, &missing)) < 0)
            return rc;
    }
    return diff_trees(w, missing ? NULL : &ptree, &tree, 0);
}

/* ---- JSON ---- */

/* Appends "s" (len bytes) as a JSON string of valid UTF-8, cut to max_chars characters. */
static int put_text(cs_extract__worker *w, fg_buf *out, const char *s, size_t len, size_t max_chars)
{
    size_t keep;
    int rc;

    /* every character kept comes from at most 4 input bytes: the rest cannot be kept */
    if (len / 4 > max_chars)
        len = max_chars * 4;
    fg_buf_clear(&w->scratch);
    if ((rc = fg_proto_utf8_sanitise(&w->scratch, s, len)) < 0)
        return rc;
    keep = w->scratch.len;
    if (keep > max_chars)
        keep = fg_proto_utf8_prefix(w->scratch.ptr, max_chars);
    if ((rc = fg_buf_putc(out, '"')) < 0 ||
        (rc = fg_buf_put_json_string(out, w->scratch.ptr, keep)) < 0)
        return rc;
    return fg_buf_putc(out, '"');
}

static int put_uint(fg_buf *out, uint64_t v)
{
    char tmp[24];
    size_t n = sizeof(tmp);

    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    return fg_buf_put(out, tmp + n, sizeof(tmp) - n);
}

/* Days since 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's algorithm), to stay
 * clear of gmtime_r, which takes glibc's timezone lock. */
static void civil(long long days, int *y, int *m, int *d)
{
    long long z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;

    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static void two(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* RFC 3339 in the ident's own zone, as git's %aI prints it. */
static int put_time(fg_buf *out, const ident *id)
{
    long long local = id->seconds + (long long)id->offset_minutes * 60;
    long long days = local >= 0 ? local / 86400 : -((-local + 86399) / 86400);
    long long sod = local - days * 86400;
    int y, m, d, off = id->offset_minutes < 0 ? -id->offset_minutes : id->offset_minutes;
    char t[27] = "\"0000-00-00T00:00:00+00:00\"";

    civil(days, &y, &m, &d);
    two(t + 1, y / 100);
    two(t + 3, y % 100);
    two(t + 6, m);
    two(t + 9, d);
    two(t + 12, (int)(sod / 3600));
    two(t + 15, (int)(sod / 60 % 60));
    two(t + 18, (int)(sod % 60));
    t[20] = id->offset_minutes < 0 ? '-' : '+';
    two(t + 21, off / 60);
    two(t + 24, off % 60);
    return fg_buf_put(out, t, sizeof(t));
}

static int put_person(cs_extract__worker *w, fg_buf *out, const char *key, const ident *id)
{
    int rc;

    if ((rc = fg_buf_printf(out, ",\"%s\":{\"name\":", key)) < 0 ||
        (rc = put_text(w, out, id->name, id->name_len, FG_PROTO_NAME_MAX)) < 0 ||
        (rc = fg_buf_puts(out, ",\"email\":")) < 0 ||
        (rc = put_text(w, out, id->email, id->email_len, FG_PROTO_EMAIL_MAX)) < 0 ||
        (rc = fg_buf_puts(out, ",\"at\":")) < 0 || (rc = put_time(out, id)) < 0)
        return rc;
    return fg_buf_putc(out, '}');
}

static int put_trailers(cs_extract__worker *w, fg_buf *out)
{
    int rc = fg_buf_puts(out, ",\"trailers\":[");

    for (size_t i = 0; i < w->trailers.count && i < FG_PROTO_TRAILERS_MAX && rc == 0; i++) {
        const cs_trailer *t = &w->trailers.items[i];
        if ((rc = fg_buf_puts(out, i > 0 ? ",{\"key\":" : "{\"key\":")) < 0 ||
            (rc = put_text(w, out, t->key, t->key_len, FG_PROTO_TRAILER_KEY_MAX)) < 0 ||
            (rc = fg_buf_puts(out, ",\"value\":")) < 0 ||
            (rc = put_text(w, out, t->value, t->value_len, FG_PROTO_TRAILER_VALUE_MAX)) < 0)
            return rc;
        rc = fg_buf_putc(out, '}');
    }
    return rc < 0 ? rc : fg_buf_putc(out, ']');
}

static int put_files(cs_extract__worker *w, fg_buf *out)
{
    int rc;

    if ((rc = fg_buf_puts(out, ",\"stats\":{\"insertions\":")) < 0 ||
        (rc = put_uint(out, w->insertions)) < 0 || (rc = fg_buf_puts(out, ",\"deletions\":")) < 0 ||
        (rc = put_uint(out, w->deletions)) < 0 || (rc = fg_buf_puts(out, ",\"files\":")) < 0 ||
        (rc = put_uint(out, w->files_changed)) < 0 || (rc = fg_buf_puts(out, "},\"files\":[")) < 0)
        return rc;
    for (size_t i = 0; i < w->file_count; i++) {
        const file_stat *f = &w->files[i];
        if ((rc = fg_buf_puts(out, i > 0 ? ",{\"path\":" : "{\"path\":")) < 0 ||
            (rc = put_text(w, out, w->paths.ptr + f->path_off, f->path_len,
                           FG_PROTO_FILE_PATH_MAX)) < 0 ||
            (rc = fg_buf_puts(out, ",\"insertions\":")) < 0 ||
            (rc = put_uint(out, f->insertions)) < 0 ||
            (rc = fg_buf_puts(out, ",\"deletions\":")) < 0 ||
            (rc = put_uint(out, f->deletions)) < 0 ||
            (rc = fg_buf_puts(out, f->binary ? ",\"binary\":true}" : "}")) < 0)
            return rc;
    }
    return fg_buf_printf(out, "],\"filesTruncated\":%s}",
                         w->files_changed > w->file_count ? "true" : "false");
}

static int put_body(cs_extract__worker *w, fg_buf *out, const commit_view *c)
{
    char sha[HEX_LEN + 1];
    ident author, committer;
    int rc;

    git_oid_tostr(sha, sizeof(sha), &w->current);
    parse_ident(&author, c->author, c->author_len);
    parse_ident(&committer, c->committer, c->committer_len);
    if ((rc = fg_buf_printf(out, "{\"sha\":\"%s\",\"parents\":[", sha)) < 0)
        return rc;
    for (size_t i = 0; i < c->parent_count && i < FG_PROTO_PARENTS_MAX; i++) {
        char hex[HEX_LEN + 1];
        /* lower-case hex, whatever the object wrote */
        for (size_t k = 0; k < HEX_LEN; k++) {
            char ch = c->parents[i][k];
            hex[k] = (char)(ch >= 'A' && ch <= 'F' ? ch - 'A' + 'a' : ch);
        }
        hex[HEX_LEN] = '\0';
        if ((rc = fg_buf_printf(out, "%s\"%s\"", i > 0 ? "," : "", hex)) < 0)
            return rc;
    }
    if ((rc = fg_buf_printf(out, "],\"isMerge\":%s", c->parent_count > 1 ? "true" : "false")) < 0 ||
        (rc = put_person(w, out, "author", &author)) < 0 ||
        (rc = put_person(w, out, "committer", &committer)) < 0 ||
        (rc = fg_buf_puts(out, ",\"message\":")) < 0 ||
        (rc = put_text(w, out, c->message, c->message_len, FG_PROTO_COMMIT_MESSAGE_MAX)) < 0 ||
        (rc = put_trailers(w, out)) < 0)
        return rc;
    return put_files(w, out);
}

/* ---- public (to cs_extract.c) ---- */

int cs_extract__worker_new(cs_extract__worker **out, git_repository *repo,
                           const cs_extract__packs *packs, size_t files_max)
{
    cs_extract__worker *w = calloc(1, sizeof(*w));
    int rc = FG_ENOMEM;

    *out = NULL;
    if (w == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory for an extraction worker");
    w->repo = repo;
    w->files_max = files_max;
    w->iconv = (iconv_t)-1;
    w->shallow = git_repository_is_shallow(repo) == 1;
    cs_trailers_init(&w->trailers);
    fg_buf_init(&w->converted, CS_EXTRACT_BODY_MAX);
    fg_buf_init(&w->scratch, CS_EXTRACT_BODY_MAX);
    fg_buf_init(&w->path, CS_EXTRACT_BODY_MAX);
    fg_buf_init(&w->paths, CS_EXTRACT_BODY_MAX);
    if ((rc = cs_extract__odb_new(&w->odb, repo, packs, CS_EXTRACT_CACHE_MAX)) < 0 ||
        (rc = cs_numstat_new(&w->numstat)) < 0)
        goto done;
    *out = w;
    w = NULL;
    rc = 0;
done:
    cs_extract__worker_free(w);
    return rc;
}

void cs_extract__worker_free(cs_extract__worker *w)
{
    if (w == NULL)
        return;
    if (w->iconv != (iconv_t)-1)
        iconv_close(w->iconv);
    cs_numstat_free(w->numstat);
    cs_trailers_dispose(&w->trailers);
    fg_buf_dispose(&w->converted);
    fg_buf_dispose(&w->scratch);
    fg_buf_dispose(&w->path);
    fg_buf_dispose(&w->paths);
    free(w->files);
    cs_extract__odb_free(w->odb);
    free(w);
}

int cs_extract__commit(cs_extract__worker *w, fg_buf *out, const git_oid *oid)
{
    cs_extract__object *obj = NULL;
    commit_view c;
    size_t mark = out->len;
    int rc;

    git_oid_cpy(&w->current, oid);
    if ((rc = read_object(w, &obj, oid, GIT_OBJECT_COMMIT, "commit", CS_NUMSTAT_SIZE_MAX)) < 0)
        return rc == FG_ETOOBIG ? fail(w, rc, "commit", oid, "too big") : rc;
    parse_commit(&c, cs_extract__object_data(obj), cs_extract__object_size(obj));
    if (c.encoding != NULL && !is_utf8_name(c.encoding, c.encoding_len) &&
        convert(w, c.encoding, c.encoding_len, cs_extract__object_data(obj),
                cs_extract__object_size(obj)))
        parse_commit(&c, w->converted.ptr, w->converted.len);
    if ((rc = diff_commit(w, &c)) < 0 ||
        (rc = cs_trailers_parse(&w->trailers, c.message, c.message_len)) < 0 ||
        (rc = put_body(w, out, &c)) < 0) {
        out->len = mark;
        out->ptr[mark] = '\0';
    }
    cs_extract__object_release(w->odb, obj);
    return rc;
}

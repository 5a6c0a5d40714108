/*
 * The vocabulary as N-Triples (see tg_rdf.h). Every IRI is built from checked parts (the base,
 * 40-hex shas, hex hashes, decimal ids), so only literals and the clone URL go through escaping.
 */
#include "tg_rdf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg/crypto.h"
#include "tg_activity.h"
#include "tg_ntriples.h"

#define FG(term)     TG_RDF_NS_FG term
#define SCHEMA(term) TG_RDF_NS_SCHEMA term
#define PROV(term)   TG_RDF_NS_PROV term

/* sha + type + email, the email in UTF-8 bytes: every schema-valid commit fits */
#define HASH_INPUT_MAX (FG_PROTO_SHA_LEN + 32 + 4 * FG_PROTO_EMAIL_MAX)
#define SEEN_KEYS_MAX  ((size_t)64 << 20) /* bytes of remembered (person, name) keys */
#define NAME_BYTES_MAX (FG_PROTO_TRAILER_VALUE_MAX * 4) /* a name in UTF-8, from any source */

struct tg_rdf_seen_slot {
    uint64_t hash; /* 0: empty */
    size_t off, len;
};

/* ---- IRIs -------------------------------------------------------------------------------- */

static bool iri_safe(unsigned char c)
{
    return c > 0x20 && c < 0x7F && strchr("<>\"{}|^`\\", c) == NULL;
}

int tg_rdf_check_base(const char *base)
{
    size_t len = strlen(base);

    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
        return fg_error_set(FG_EINVALID, "graph base must be an http:// or https:// IRI");
    if (len > TG_RDF_BASE_MAX)
        return fg_error_set(FG_EINVALID, "graph base longer than %d bytes", TG_RDF_BASE_MAX);
    for (size_t i = 0; i < len; i++)
        if (!iri_safe((unsigned char)base[i]) || base[i] == '?' || base[i] == '#')
            return fg_error_set(FG_EINVALID,
                                "graph base holds a character an IRI path cannot carry as is");
    return 0;
}

/* base without its trailing slashes: "{base}/projects/1" never gets a double slash */
static int base_len(size_t *out, const char *base)
{
    size_t len = strlen(base);
    int rc;

    if ((rc = tg_rdf_check_base(base)) < 0)
        return rc;
    while (len > 0 && base[len - 1] == '/')
        len--;
    *out = len;
    return 0;
}

static int format_iri(char out[TG_RDF_IRI_MAX], const char *base, const char *kind,
                      const char *tail)
{
    size_t len;
    int rc;

    if ((rc = base_len(&len, base)) < 0)
        return rc;
    if ((size_t)snprintf(out, TG_RDF_IRI_MAX, "%.*s/%s/%s", (int)len, base, kind, tail) >=
        TG_RDF_IRI_MAX)
        return fg_error_set(FG_EINVALID, "IRI too long");
    return 0;
}

int tg_rdf_project_iri(char out[TG_RDF_IRI_MAX], const char *base, long long id)
{
    char tail[24];

    if (id < 1 || id > FG_PROTO_INT_MAX)
        return fg_error_set(FG_EINVALID, "project id %lld out of range", id);
    snprintf(tail, sizeof(tail), "%lld", id);
    return format_iri(out, base, "projects", tail);
}

static bool is_sha(const char *s)
{
    size_t i = 0;

    for (; s[i] != '\0' && i < FG_PROTO_SHA_LEN; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == FG_PROTO_SHA_LEN && s[i] == '\0';
}

int tg_rdf_commit_iri(char out[TG_RDF_IRI_MAX], const char *base, const char *sha)
{
    if (!is_sha(sha))
        return fg_error_set(FG_EINVALID, "sha: not 40 lower-case hex digits");
    return format_iri(out, base, "commits", sha);
}

/* Appends email, ASCII-lower-cased, to buf at *len (buf holds HASH_INPUT_MAX bytes). */
static int put_lower(char *buf, size_t *len, const char *s, size_t n)
{
    if (n > HASH_INPUT_MAX - *len)
        return fg_error_set(FG_EINVALID, "email longer than %d bytes", FG_PROTO_EMAIL_MAX);
    for (size_t i = 0; i < n; i++)
        buf[(*len)++] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
    return 0;
}

int tg_rdf_person_iri(char out[TG_RDF_IRI_MAX], char *hash_out, const char *base, const char *email,
                      size_t email_len)
{
    char input[HASH_INPUT_MAX], hash[FG_CRYPTO_SHA1_HEX_LEN + 1];
    size_t len = 0;
    int rc;

    if ((rc = put_lower(input, &len, email, email_len)) < 0 ||
        (rc = fg_crypto_sha1_hex(hash, input, len)) < 0 ||
        (rc = format_iri(out, base, "persons", hash)) < 0)
        return rc;
    if (hash_out != NULL)
        memcpy(hash_out, hash, sizeof(hash));
    return 0;
}

int tg_rdf_activity_iri(char out[TG_RDF_IRI_MAX], const char *base, const char *sha,
                        const char *type, const char *email, size_t email_len)
{
    char input[HASH_INPUT_MAX], hash[FG_CRYPTO_SHA1_HEX_LEN + 1];
    size_t len = strlen(sha) + strlen(type);
    int rc;

    if (!is_sha(sha) || strlen(type) > 32)
        return fg_error_set(FG_EINVALID, "activity of a bad sha or type");
    snprintf(input, sizeof(input), "%s%s", sha, type);
    if ((rc = put_lower(input, &len, email, email_len)) < 0 ||
        (rc = fg_crypto_sha1_hex(hash, input, len)) < 0)
        return rc;
    return format_iri(out, base, "activities", hash);
}

/* ---- schema:codeRepository ------------------------------------------------------------- */

/* RFC 3986 pchar plus '/': what a path may hold without encoding ('%', '?', '#' are encoded, so
 * a local file name that contains them survives). */
static bool path_plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~!$&'()*+,;=:@/", c) != NULL);
}

static int put_path(fg_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;

    for (size_t i = 0; i < len && rc == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        char pct[3] = {'%', hex[c >> 4], hex[c & 15]};
        rc = path_plain(c) ? fg_buf_putc(out, (char)c) : fg_buf_put(out, pct, 3);
    }
    return rc;
}

/* `[user@]host:path` as git reads it: no scheme, a ':' before any '/'. */
static int put_scp_like(fg_buf *out, const char *url)
{
    const char *colon = strchr(url, ':'), *slash = strchr(url, '/');
    int rc;

    if (colon == NULL || colon == url || (slash != NULL && slash < colon) || colon[1] == '\0')
        return fg_error_set(FG_EINVALID, "clone URL is neither a URL, an absolute path nor "
                                         "user@host:path");
    if ((rc = fg_buf_puts(out, "ssh://")) < 0 ||
        (rc = tg_nt_put_iri(out, url, (size_t)(colon - url))) < 0 ||
        (colon[1] != '/' && (rc = fg_buf_putc(out, '/')) < 0))
        return rc;
    return put_path(out, colon + 1, strlen(colon + 1));
}

int tg_rdf_code_repository(fg_buf *out, const char *clone_url)
{
    const char *sep = strstr(clone_url, "://");
    size_t mark = out->len;
    int rc;

    if (clone_url[0] == '/') {
        if ((rc = fg_buf_puts(out, "file://")) == 0)
            rc = put_path(out, clone_url, strlen(clone_url));
    } else if (sep != NULL && sep != clone_url) {
        rc = tg_nt_put_iri(out, clone_url, strlen(clone_url));
    } else {
        rc = put_scp_like(out, clone_url);
    }
    if (rc < 0) {
        out->len = mark;
        out->ptr[mark] = '\0';
    }
    return rc;
}

/* ---- the doc: persons written once ------------------------------------------------------ */

int tg_rdf_doc_init(tg_rdf_doc *doc, const char *base, bool store_emails, long long project_id)
{
    size_t len;
    int rc;

    memset(doc, 0, sizeof(*doc));
    fg_buf_init(&doc->keys, SEEN_KEYS_MAX);
    if ((rc = base_len(&len, base)) < 0 ||
        (rc = tg_rdf_project_iri(doc->project, base, project_id)) < 0)
        return rc;
    memcpy(doc->base, base, len);
    doc->base[len] = '\0';
    doc->store_emails = store_emails;
    return 0;
}

void tg_rdf_doc_dispose(tg_rdf_doc *doc)
{
    if (doc == NULL)
        return;
    free(doc->slots);
    doc->slots = NULL;
    fg_buf_dispose(&doc->keys);
}

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 14695981039346656037ull;

    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h == 0 ? 1 : h;
}

static int grow(tg_rdf_doc *doc)
{
    size_t n = doc->nslots ? doc->nslots * 2 : 1024;
    struct tg_rdf_seen_slot *slots = calloc(n, sizeof(*slots));

    if (slots == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory");
    for (size_t i = 0; i < doc->nslots; i++) {
        size_t j = doc->slots[i].hash & (n - 1);
        if (doc->slots[i].hash == 0)
            continue;
        while (slots[j].hash != 0)
            j = (j + 1) & (n - 1);
        slots[j] = doc->slots[i];
    }
    free(doc->slots);
    doc->slots = slots;
    doc->nslots = n;
    return 0;
}

/* True when key was seen before; otherwise remembers it (while there is room) and says false.
 * A full set answers false: the doc then repeats triples, which the store keeps once anyway. */
static bool seen(tg_rdf_doc *doc, const char *key, size_t len)
{
    uint64_t h = fnv1a(key, len);
    size_t j;

    if (doc->nseen >= TG_RDF_SEEN_MAX || ((doc->nseen + 1) * 2 > doc->nslots && grow(doc) < 0)) {
        fg_error_clear();
        return false;
    }
    for (j = h & (doc->nslots - 1); doc->slots[j].hash != 0; j = (j + 1) & (doc->nslots - 1))
        if (doc->slots[j].hash == h && doc->slots[j].len == len &&
            memcmp(doc->keys.ptr + doc->slots[j].off, key, len) == 0)
            return true;
    if (fg_buf_put(&doc->keys, key, len) < 0) {
        fg_error_clear();
        return false;
    }
    doc->slots[j] = (struct tg_rdf_seen_slot){h, doc->keys.len - len, len};
    doc->nseen++;
    return false;
}

/* ---- triples ----------------------------------------------------------------------------- */

static int put_literal(fg_buf *out, const char *s, const char *p, const char *lit,
                       const char *datatype)
{
    return tg_nt_triple_literal(out, s, p, lit, strlen(lit), datatype);
}

static int put_integer(fg_buf *out, const char *s, const char *p, long long v)
{
    char text[24];

    snprintf(text, sizeof(text), "%lld", v);
    return put_literal(out, s, p, text, TG_NT_XSD_INTEGER);
}

/* The person's own triples the first time the doc meets them, and each new name. */
static int put_person(fg_buf *out, tg_rdf_doc *doc, const char *iri, const char *hash,
                      const tg_activity *a)
{
    char key[1 + FG_CRYPTO_SHA1_HEX_LEN + NAME_BYTES_MAX];
    size_t name_len = a->name_len < NAME_BYTES_MAX ? a->name_len : NAME_BYTES_MAX;
    int rc;

    key[0] = 'P';
    memcpy(key + 1, hash, FG_CRYPTO_SHA1_HEX_LEN);
    if (!seen(doc, key, 1 + FG_CRYPTO_SHA1_HEX_LEN) &&
        ((rc = tg_nt_triple_iri(out, iri, TG_RDF_TYPE, SCHEMA("Person"))) < 0 ||
         (rc = put_literal(out, iri, FG("emailSha1"), hash, NULL)) < 0 ||
         (doc->store_emails && a->email_len > 0 &&
          (rc = tg_nt_triple_literal(out, iri, SCHEMA("email"), a->email, a->email_len, NULL)) <
              0)))
        return rc;
    if (name_len == 0)
        return 0;
    key[0] = 'N';
    memcpy(key + 1 + FG_CRYPTO_SHA1_HEX_LEN, a->name, name_len);
    if (seen(doc, key, 1 + FG_CRYPTO_SHA1_HEX_LEN + name_len))
        return 0;
    return tg_nt_triple_literal(out, iri, SCHEMA("name"), a->name, a->name_len, NULL);
}

static int put_activity(fg_buf *out, tg_rdf_doc *doc, const char *commit_iri, const char *sha,
                        const tg_activity *a)
{
    char iri[TG_RDF_IRI_MAX], person[TG_RDF_IRI_MAX], hash[FG_CRYPTO_SHA1_HEX_LEN + 1];
    const char *type = tg_activity_type_name(a->type);
    int rc;

    if ((rc = tg_rdf_person_iri(person, hash, doc->base, a->email, a->email_len)) < 0 ||
        (rc = tg_rdf_activity_iri(iri, doc->base, sha, type, a->email, a->email_len)) < 0 ||
        (rc = put_person(out, doc, person, hash, a)) < 0 ||
        (rc = tg_nt_triple_iri(out, iri, TG_RDF_TYPE, FG("Activity"))) < 0 ||
        (rc = tg_nt_triple_iri(out, iri, TG_RDF_TYPE, PROV("Activity"))) < 0 ||
        (rc = put_literal(out, iri, FG("type"), type, NULL)) < 0 ||
        (rc = tg_nt_triple_iri(out, iri, FG("commit"), commit_iri)) < 0 ||
        (rc = tg_nt_triple_iri(out, iri, PROV("wasAssociatedWith"), person)) < 0 ||
        (rc = put_literal(out, iri, PROV("startedAtTime"), a->started_at, TG_NT_XSD_DATETIME)) < 0)
        return rc;
    return tg_nt_triple_iri(out, iri, SCHEMA("isPartOf"), doc->project);
}

static int put_commit_node(fg_buf *out, const tg_rdf_doc *doc, const char *iri,
                           const fg_proto_commit *c)
{
    char parent[TG_RDF_IRI_MAX];
    int rc;

    if ((rc = tg_nt_triple_iri(out, iri, TG_RDF_TYPE, FG("Commit"))) < 0 ||
        (rc = put_literal(out, iri, FG("sha"), c->sha, NULL)) < 0)
        return rc;
    for (size_t i = 0; i < c->parent_count; i++)
        if ((rc = tg_rdf_commit_iri(parent, doc->base, c->parents[i])) < 0 ||
            (rc = tg_nt_triple_iri(out, iri, FG("parent"), parent)) < 0)
            return rc;
    if ((rc = put_literal(out, iri, FG("authoredAt"), c->author.at, TG_NT_XSD_DATETIME)) < 0 ||
        (rc = put_literal(out, iri, FG("committedAt"), c->committer.at, TG_NT_XSD_DATETIME)) < 0 ||
        (rc = put_literal(out, iri, FG("message"), c->message, NULL)) < 0 ||
        (rc = put_integer(out, iri, FG("insertions"), c->insertions)) < 0 ||
        (rc = put_integer(out, iri, FG("deletions"), c->deletions)) < 0 ||
        (rc = put_integer(out, iri, FG("filesChanged"), c->files_changed)) < 0 ||
        (rc = put_literal(out, iri, FG("isMerge"), c->is_merge ? "true" : "false",
                          TG_NT_XSD_BOOLEAN)) < 0)
        return rc;
    return tg_nt_triple_iri(out, iri, SCHEMA("isPartOf"), doc->project);
}

/* After a failed commit the caller drops its partial output, persons included: forgetting them
 * all makes later commits state them again (harmless repeats) instead of never. */
static void forget_persons(tg_rdf_doc *doc)
{
    if (doc->slots != NULL)
        memset(doc->slots, 0, doc->nslots * sizeof(*doc->slots));
    doc->nseen = 0;
    fg_buf_clear(&doc->keys);
}

int tg_rdf_put_commit(fg_buf *out, tg_rdf_doc *doc, const fg_proto_commit *c)
{
    tg_activity acts[TG_ACTIVITY_MAX];
    char iri[TG_RDF_IRI_MAX];
    size_t n, skipped;
    int rc;

    if (c->sha == NULL || c->author.at == NULL || c->committer.at == NULL || c->message == NULL)
        return fg_error_set(FG_EINVALID, "commit body without sha, times or message");
    if ((rc = tg_rdf_commit_iri(iri, doc->base, c->sha)) < 0)
        return rc;
    if ((rc = put_commit_node(out, doc, iri, c)) < 0)
        goto done;
    tg_activity_derive(acts, &n, &skipped, c);
    for (size_t i = 0; i < n; i++)
        if ((rc = put_activity(out, doc, iri, c->sha, &acts[i])) < 0)
            goto done;
    doc->counts.commits++;
    doc->counts.activities += n;
    doc->counts.skipped_trailers += skipped;
    rc = 0;
done:
    if (rc < 0)
        forget_persons(doc);
    return rc;
}

int tg_rdf_put_project(fg_buf *out, tg_rdf_doc *doc, const tg_rdf_project *p)
{
    const char *forge = fg_proto_forge_name(p->forge), *name;
    size_t mark;
    int rc;

    if (forge == NULL || p->path == NULL || p->path[0] == '\0')
        return fg_error_set(FG_EINVALID, "project without forge or path");
    name = strrchr(p->path, '/') ? strrchr(p->path, '/') + 1 : p->path;
    if ((rc = tg_nt_triple_iri(out, doc->project, TG_RDF_TYPE, SCHEMA("SoftwareSourceCode"))) < 0 ||
        (rc = put_literal(out, doc->project, SCHEMA("name"), name, NULL)) < 0 ||
        (rc = put_literal(out, doc->project, FG("forge"), forge, NULL)) < 0 ||
        (rc = put_literal(out, doc->project, FG("path"), p->path, NULL)) < 0)
        return rc;
    if (p->clone_url == NULL)
        return 0;
    mark = out->len;
    if ((rc = fg_buf_putc(out, '<')) < 0 || (rc = fg_buf_puts(out, doc->project)) < 0 ||
        (rc = fg_buf_puts(out, "> <" SCHEMA("codeRepository") "> <")) < 0)
        return rc;
    if ((rc = tg_rdf_code_repository(out, p->clone_url)) == FG_EINVALID) {
        out->len = mark; /* a URL the vocabulary cannot state: the node goes without it */
        out->ptr[mark] = '\0';
        fg_error_clear();
        return 0;
    }
    return rc < 0 ? rc : fg_buf_puts(out, "> .\n");
}

/*
 * The mirrors (see cs_mirror.h and docs/internals/commit-sync.md): paths, the flock-based lock,
 * clone and fetch with libgit2, the tips of branches and tags, and the state file.
 */
#include "cs_mirror.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <ftw.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fg/log.h"

#define CS_MIRROR_LOCK_POLL_MS 50
#define CS_MIRROR_STATE_HEADER "forgegraph commit-sync state 1\n"
#define CS_MIRROR_OIDS_GROW    1024

struct cs_mirror_lock {
    int fd;
};

static const char *const fetch_refspecs[] = {"+refs/heads/*:refs/heads/*",
                                             "+refs/tags/*:refs/tags/*"};

/* fg_error_set(code, "<fmt...>: <the previous message>"). The previous message is copied first:
 * fg_error_set writes the very buffer fg_error_last() returns. */
static int FG_PRINTF(2, 3) error_wrap(int code, const char *fmt, ...)
{
    char cause[512], prefix[512];
    va_list ap;

    snprintf(cause, sizeof(cause), "%s", fg_error_last());
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    return fg_error_set(code, "%s: %s", prefix, cause);
}

/* ---- sets of object ids ------------------------------------------------------------------- */

void cs_oids_init(cs_oids *s)
{
    s->v = NULL;
    s->n = 0;
    s->cap = 0;
}

void cs_oids_dispose(cs_oids *s)
{
    free(s->v);
    cs_oids_init(s);
}

int cs_oids_add(cs_oids *s, const git_oid *oid)
{
    if (s->n == s->cap) {
        size_t cap = s->cap < CS_MIRROR_OIDS_GROW ? CS_MIRROR_OIDS_GROW : s->cap * 2;
        git_oid *v;

        if (s->n >= CS_MIRROR_OIDS_MAX)
            return fg_error_set(FG_ETOOBIG, "more than %d commits in one set", CS_MIRROR_OIDS_MAX);
        if (cap > CS_MIRROR_OIDS_MAX)
            cap = CS_MIRROR_OIDS_MAX;
        if ((v = realloc(s->v, cap * sizeof(*v))) == NULL)
            return fg_error_set(FG_ENOMEM, "out of memory for %zu commit ids", cap);
        s->v = v;
        s->cap = cap;
    }
    git_oid_cpy(&s->v[s->n++], oid);
    return 0;
}

static int oid_compare(const void *a, const void *b)
{
    return git_oid_cmp(a, b);
}

void cs_oids_sort_unique(cs_oids *s)
{
    size_t kept = 0;

    if (s->n < 2)
        return;
    qsort(s->v, s->n, sizeof(*s->v), oid_compare);
    for (size_t i = 1; i < s->n; i++)
        if (git_oid_cmp(&s->v[kept], &s->v[i]) != 0)
            git_oid_cpy(&s->v[++kept], &s->v[i]);
    s->n = kept + 1;
}

bool cs_oids_contains(const cs_oids *sorted, const git_oid *oid)
{
    return sorted->n > 0 &&
           bsearch(oid, sorted->v, sorted->n, sizeof(*sorted->v), oid_compare) != NULL;
}

bool cs_oids_equal(const cs_oids *a, const cs_oids *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof(*a->v)) == 0);
}

/* ---- paths -------------------------------------------------------------------------------- */

static int mirror_path(char *out, size_t size, const char *dir, long long project,
                       const char *suffix)
{
    int n = snprintf(out, size, "%s/%lld%s", dir, project, suffix);

    if (n < 0 || (size_t)n >= size)
        return fg_error_set(FG_ETOOBIG, "FG_MIRROR_DIR is too long for a path");
    return 0;
}

static long long monotonic_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the lock ----------------------------------------------------------------------------- */

/* A lock file may be unlinked by a PROJECT_REMOVED between our open and our flock: holding a
 * lock on a file that no longer has the name would not exclude the next process, so the name
 * must still lead to the inode we locked. */
static bool still_named(int fd, const char *path)
{
    struct stat held, named;

    return fstat(fd, &held) == 0 && stat(path, &named) == 0 && held.st_dev == named.st_dev &&
           held.st_ino == named.st_ino;
}

/* One attempt: 1 taken (fd in *out_fd), 0 held by someone else, < 0 failure. */
static int try_lock(int *out_fd, const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    int err;

    if (fd < 0)
        return fg_error_set(FG_ERROR, "cannot open the lock file %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        if (still_named(fd, path)) {
            *out_fd = fd;
            return 1;
        }
        close(fd);
        return 0;
    }
    err = errno;
    close(fd);
    if (err != EWOULDBLOCK && err != EINTR)
        return fg_error_set(FG_ERROR, "cannot lock %s: %s", path, strerror(err));
    return 0;
}

int cs_mirror_lock_take(cs_mirror_lock **out, bool *out_waited, const char *dir, long long project,
                        int timeout_ms)
{
    char path[PATH_MAX];
    long long deadline = monotonic_ms() + timeout_ms;
    const struct timespec poll = {0, CS_MIRROR_LOCK_POLL_MS * 1000000L};
    int fd = -1;
    int rc;

    *out = NULL;
    *out_waited = false;
    if ((rc = mirror_path(path, sizeof(path), dir, project, ".lock")) < 0)
        return rc;
    /* Polling rather than a blocking flock: the bus thread must come back to the broker, so the
     * wait has a deadline, after which the message is retried later. */
    while ((rc = try_lock(&fd, path)) == 0) {
        if (!*out_waited)
            fg_log_emit(FG_LOG_INFO, FG_LOG_FIELDS(FG_LOG_INT("project", project)),
                        "mirror of project %lld is being synced by another process: waiting",
                        project);
        *out_waited = true;
        if (monotonic_ms() >= deadline)
            return fg_error_set(FG_ETIMEOUT,
                                "project %lld: another sync of this project is still running "
                                "after %d ms",
                                project, timeout_ms);
        nanosleep(&poll, NULL);
    }
    if (rc < 0)
        return rc;
    if ((*out = malloc(sizeof(**out))) == NULL) {
        close(fd);
        return fg_error_set(FG_ENOMEM, "out of memory for a lock");
    }
    (*out)->fd = fd;
    return 0;
}

void cs_mirror_lock_release(cs_mirror_lock *lock)
{
    if (lock == NULL)
        return;
    close(lock->fd); /* closing the last descriptor releases the flock */
    free(lock);
}

/* ---- URLs and secrets --------------------------------------------------------------------- */

int cs_mirror_url_display(fg_buf *out, const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *authority, *end, *at;

    if (scheme == NULL) /* a local path: nothing secret in it */
        return fg_buf_puts(out, url);
    authority = scheme + 3;
    end = authority + strcspn(authority, "/?#");
    at = NULL;
    for (const char *p = authority; p < end; p++)
        if (*p == '@')
            at = p;
    if (at != NULL)
        authority = at + 1;
    if (fg_buf_put(out, url, (size_t)(scheme + 3 - url)) < 0 ||
        fg_buf_put(out, authority, strcspn(authority, "?#")) < 0)
        return fg_error_set(FG_ETOOBIG, "URL too long to show");
    return 0;
}

/* The password of a URL's userinfo ("https://user:pw@host/..."), to scrub from messages. */
static int url_password(char *out, size_t size, const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *authority, *end, *at = NULL, *colon;

    out[0] = '\0';
    if (scheme == NULL)
        return 0;
    authority = scheme + 3;
    end = authority + strcspn(authority, "/?#");
    for (const char *p = authority; p < end; p++)
        if (*p == '@')
            at = p;
    if (at == NULL || (colon = memchr(authority, ':', (size_t)(at - authority))) == NULL)
        return 0;
    if ((size_t)(at - colon - 1) >= size)
        return fg_error_set(FG_ETOOBIG, "URL password too long");
    memcpy(out, colon + 1, (size_t)(at - colon - 1));
    out[at - colon - 1] = '\0';
    return 0;
}

/* Copies msg into out with every occurrence of the secrets replaced by ***: libgit2's messages
 * are not ours, and one must never carry a credential into a log. */
static void scrub(char *out, size_t size, const char *msg, const char *const *secrets,
                  size_t nsecrets)
{
    size_t o = 0;

    while (*msg != '\0' && o + 1 < size) {
        size_t skip = 0;

        for (size_t i = 0; i < nsecrets && skip == 0; i++)
            if (secrets[i] != NULL && secrets[i][0] != '\0' &&
                strncmp(msg, secrets[i], strlen(secrets[i])) == 0)
                skip = strlen(secrets[i]);
        if (skip > 0) {
            for (const char *r = "***"; *r != '\0' && o + 1 < size; r++)
                out[o++] = *r;
            msg += skip;
        } else {
            out[o++] = *msg++;
        }
    }
    out[o] = '\0';
}

/* ---- token-repository --------------------------------------------------------------------- */

static int token_from_body(char **out, const fg_buf *body, long long project)
{
    struct json_object *root = json_tokener_parse(body->ptr);
    struct json_object *token = NULL;
    const char *value;
    int rc = FG_ERROR;

    if (root == NULL || !json_object_object_get_ex(root, "token", &token) ||
        !json_object_is_type(token, json_type_string)) {
        rc = fg_error_set(FG_EUNAVAILABLE,
                          "project %lld: token-repository's answer holds no token string", project);
        goto done;
    }
    value = json_object_get_string(token);
    if (strlen(value) > CS_MIRROR_TOKEN_MAX || value[0] == '\0') {
        rc = fg_error_set(FG_EUNAVAILABLE, "project %lld: the token is empty or too long", project);
        goto done;
    }
    if ((*out = strdup(value)) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory for a token");
        goto done;
    }
    rc = 0;
done:
    json_object_put(root);
    return rc;
}

int cs_mirror_token(char **out, fg_http_client *http, const char *base_url, const char *service_key,
                    long long project)
{
    char url[CS_MIRROR_URL_MAX];
    fg_buf auth;
    const char *headers[1];
    fg_http_client_request req;
    fg_http_client_response res;
    int rc = FG_ERROR;

    *out = NULL;
    fg_buf_init(&auth, 1024);
    fg_http_client_response_init(&res);
    snprintf(url, sizeof(url), "%s/projects/%lld/tokens", base_url, project);
    if ((rc = fg_buf_printf(&auth, "Authorization: Bearer %s", service_key)) < 0)
        goto done;
    fg_http_client_request_init(&req);
    req.url = url;
    headers[0] = auth.ptr;
    req.headers = headers;
    req.nheaders = 1;
    if ((rc = fg_http_client_send(http, &res, &req)) < 0) {
        rc = error_wrap(FG_EUNAVAILABLE, "project %lld: token-repository did not answer", project);
        goto done;
    }
    if (res.status == 404) {
        rc = 0;
        goto done;
    }
    if (res.status != 200) {
        rc = fg_error_set(FG_EUNAVAILABLE, "project %lld: token-repository answered %ld", project,
                          res.status);
        goto done;
    }
    rc = token_from_body(out, &res.body, project);
done:
    /* the body held the token in clear: leave no copy in freed memory */
    explicit_bzero(res.body.ptr, res.body.len);
    explicit_bzero(auth.ptr, auth.len);
    fg_http_client_response_dispose(&res);
    fg_buf_dispose(&auth);
    return rc;
}

/* ---- fetching ----------------------------------------------------------------------------- */

typedef struct {
    const cs_remote *remote;
    int offered;        /* times the token was handed to libgit2 */
    bool no_token;      /* the remote asked for credentials we do not have */
    bool token_refused; /* the remote asked again after getting the token */
} cred_state;

/* libgit2 asks again after every 401: the second time means the token was refused, and
 * answering again would loop. */
static int on_credentials(git_credential **out, const char *url, const char *username_from_url,
                          unsigned int allowed, void *payload)
{
    cred_state *c = payload;
    const char *user = c->remote->username ? c->remote->username : "git";

    (void)url;
    (void)username_from_url;
    if (c->remote->token == NULL || !(allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT)) {
        c->no_token = true;
        return GIT_EUSER;
    }
    if (c->offered++ > 0) {
        c->token_refused = true;
        return GIT_EUSER;
    }
    return git_credential_userpass_plaintext_new(out, user, c->remote->token);
}

static bool is_local_path(const char *url)
{
    return strstr(url, "://") == NULL;
}

static int write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- local sources: their object files linked in ------------------------------------------ */

/* The local path a remote names: a plain path, or a file:/// URL with nothing to decode. NULL
 * for anything else (the transport handles it). */
static const char *local_source_path(const char *url)
{
    if (is_local_path(url))
        return url;
    if (strncmp(url, "file:///", 8) == 0 && strchr(url, '%') == NULL)
        return url + 7;
    return NULL;
}

/* vsnprintf into a path buffer; FG_ETOOBIG when it does not fit. */
static int FG_PRINTF(3, 4) path_printf(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size)
        return fg_error_set(FG_ETOOBIG, "path too long: %s", out);
    return 0;
}

/* Copies src to dst through a temporary name beside dst (libgit2 ignores tmp_ names), so no half
 * file ever carries an object's name. */
static int copy_file(const char *src, const char *dst_dir, const char *dst)
{
    char tmp[PATH_MAX], chunk[65536];
    int in = -1, out = -1, rc = FG_ERROR;
    bool made = false;
    ssize_t n = 0;

    if ((rc = path_printf(tmp, sizeof(tmp), "%s/tmp_fg_copy_XXXXXX", dst_dir)) < 0)
        return rc;
    if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = errno == ENOENT ? 0 : fg_error_set(FG_ERROR, "%s: %s", src, strerror(errno));
        goto done;
    }
    if ((out = mkostemp(tmp, O_CLOEXEC)) < 0) {
        rc = fg_error_set(FG_ERROR, "%s: %s", tmp, strerror(errno));
        goto done;
    }
    made = true;
    while ((n = read(in, chunk, sizeof(chunk))) > 0)
        if (write_all(out, chunk, (size_t)n) < 0)
            break;
    if (n != 0 || fchmod(out, 0444) != 0 || close(out) != 0) {
        out = -1;
        rc = fg_error_set(FG_ERROR, "cannot copy %s: %s", src, strerror(errno));
        goto done;
    }
    out = -1;
    if (rename(tmp, dst) != 0) {
        rc = fg_error_set(FG_ERROR, "cannot rename %s: %s", tmp, strerror(errno));
        goto done;
    }
    made = false;
    rc = 0;
done:
    if (out >= 0)
        close(out);
    if (in >= 0)
        close(in);
    if (made)
        unlink(tmp);
    return rc;
}

/* Puts the source's file at dst unless dst exists: a hard link, or a copy when the file system
 * refuses one (another device, protected_hardlinks). *linked counts what was added. A source
 * file that vanished meanwhile (a gc) is skipped: the fetch gets whatever is still needed. */
static int put_object_file(size_t *linked, const char *src, const char *dst_dir, const char *dst)
{
    struct stat st;
    int rc;

    if (lstat(dst, &st) == 0)
        return 0;
    if (link(src, dst) == 0) {
        (*linked)++;
        return 0;
    }
    if (errno == EEXIST || errno == ENOENT)
        return 0;
    if ((rc = copy_file(src, dst_dir, dst)) == 0)
        (*linked)++;
    return rc;
}

static bool hex_name(const char *s, size_t len)
{
    if (strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Loose objects: objects/xx/<38 hex>. */
static int link_loose(size_t *linked, const char *src_objects, const char *dst_objects)
{
    char sdir[PATH_MAX], ddir[PATH_MAX], s[PATH_MAX], d[PATH_MAX];
    struct dirent *e;
    DIR *dir;
    int rc = 0;

    for (unsigned b = 0; b < 256 && rc == 0; b++) {
        if ((rc = path_printf(sdir, sizeof(sdir), "%s/%02x", src_objects, b)) < 0 ||
            (rc = path_printf(ddir, sizeof(ddir), "%s/%02x", dst_objects, b)) < 0)
            break;
        if ((dir = opendir(sdir)) == NULL)
            continue; /* none with this prefix */
        if (mkdir(ddir, 0755) != 0 && errno != EEXIST)
            rc = fg_error_set(FG_ERROR, "cannot create %s: %s", ddir, strerror(errno));
        while (rc == 0 && (e = readdir(dir)) != NULL) {
            if (!hex_name(e->d_name, GIT_OID_HEXSZ - 2))
                continue;
            if ((rc = path_printf(s, sizeof(s), "%s/%s", sdir, e->d_name)) < 0 ||
                (rc = path_printf(d, sizeof(d), "%s/%s", ddir, e->d_name)) < 0)
                break;
            rc = put_object_file(linked, s, ddir, d);
        }
        closedir(dir);
    }
    return rc;
}

/* Packs: objects/pack/pack-<hex>.pack, then its .idx (libgit2 finds a pack by its index, so
 * the index goes last, as git itself renames them). */
static int link_packs(size_t *linked, const char *src_objects, const char *dst_objects)
{
    char sdir[PATH_MAX], ddir[PATH_MAX], s[PATH_MAX], d[PATH_MAX];
    static const char *const exts[] = {".pack", ".idx"};
    struct dirent *e;
    DIR *dir;
    int rc = 0;

    if ((rc = path_printf(sdir, sizeof(sdir), "%s/pack", src_objects)) < 0 ||
        (rc = path_printf(ddir, sizeof(ddir), "%s/pack", dst_objects)) < 0)
        return rc;
    if ((dir = opendir(sdir)) == NULL)
        return 0;
    if (mkdir(ddir, 0755) != 0 && errno != EEXIST) {
        closedir(dir);
        return fg_error_set(FG_ERROR, "cannot create %s: %s", ddir, strerror(errno));
    }
    while (rc == 0 && (e = readdir(dir)) != NULL) {
        size_t len = strlen(e->d_name);

        if (len <= 9 || strncmp(e->d_name, "pack-", 5) != 0 ||
            strcmp(e->d_name + len - 4, ".idx") != 0)
            continue;
        for (size_t i = 0; i < 2 && rc == 0; i++) {
            if ((rc = path_printf(s, sizeof(s), "%s/%.*s%s", sdir, (int)(len - 4), e->d_name,
                                  exts[i])) < 0 ||
                (rc = path_printf(d, sizeof(d), "%s/%.*s%s", ddir, (int)(len - 4), e->d_name,
                                  exts[i])) < 0)
                break;
            rc = put_object_file(linked, s, ddir, d);
        }
    }
    closedir(dir);
    return rc;
}

/* For a local source, hard-links (or copies) its object files into the mirror before the fetch,
 * as `git clone --local` does: the fetch then finds every wanted object present and only moves
 * refs. libgit2's local transport would build a pack of what is missing with its own delta
 * search instead, which took 90 to 157 s to clone the 100,000-commit bench repository and 5.5 s
 * to fetch one new commit (it sends the new commit's whole tree: 10,830 objects); linked, 0.11 s
 * and 0.02 s. Best effort: whatever is not linked, the fetch still brings (objects in the
 * source's alternates included). */
static void link_local_objects(git_repository *repo, long long project, const char *url)
{
    const char *path = local_source_path(url);
    git_repository *src = NULL;
    git_buf src_objects = {0}, dst_objects = {0};
    size_t linked = 0;
    int rc = 0;

    if (path == NULL)
        return;
    if (git_repository_open_ext(&src, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0 ||
        git_repository_item_path(&src_objects, src, GIT_REPOSITORY_ITEM_OBJECTS) < 0 ||
        git_repository_item_path(&dst_objects, repo, GIT_REPOSITORY_ITEM_OBJECTS) < 0) {
        git_error_clear(); /* the fetch reports what is wrong with the source */
        goto done;
    }
    if ((rc = link_packs(&linked, src_objects.ptr, dst_objects.ptr)) < 0 ||
        (rc = link_loose(&linked, src_objects.ptr, dst_objects.ptr)) < 0)
        fg_log_emit(FG_LOG_WARN, FG_LOG_FIELDS(FG_LOG_INT("project", project)),
                    "project %lld: linking the local source's objects: %s; the fetch copies them",
                    project, fg_error_last());
    else if (linked > 0)
        fg_log_emit(FG_LOG_DEBUG,
                    FG_LOG_FIELDS(FG_LOG_INT("project", project), FG_LOG_INT("files", linked)),
                    "project %lld: %zu object files linked from the local source", project, linked);
done:
    git_buf_dispose(&src_objects);
    git_buf_dispose(&dst_objects);
    git_repository_free(src);
}

static int fetch_failed(long long project, const cs_remote *remote, const cred_state *c)
{
    const git_error *e = git_error_last();
    char password[CS_MIRROR_URL_MAX];
    char detail[1024];
    fg_buf shown;
    const char *secrets[2];
    int rc;

    fg_buf_init(&shown, CS_MIRROR_URL_MAX);
    if (cs_mirror_url_display(&shown, remote->url) < 0 ||
        url_password(password, sizeof(password), remote->url) < 0)
        password[0] = '\0';
    secrets[0] = password;
    secrets[1] = remote->token;
    if (c->token_refused)
        snprintf(detail, sizeof(detail), "the remote refused the project's token");
    else if (c->no_token)
        snprintf(detail, sizeof(detail),
                 "the remote asks for credentials and token-repository has no token for the "
                 "project");
    else
        scrub(detail, sizeof(detail), e != NULL ? e->message : "unknown libgit2 error", secrets, 2);
    rc = fg_error_set(FG_EUNAVAILABLE, "project %lld: cannot fetch %s: %s", project, shown.ptr,
                      detail);
    fg_buf_dispose(&shown);
    return rc;
}

static int fetch(git_repository *repo, long long project, const cs_remote *remote)
{
    git_remote *origin = NULL;
    git_remote_create_options ro;
    git_fetch_options fo;
    cred_state creds = {remote, 0, false, false};
    git_strarray specs = {(char **)fetch_refspecs, 2};
    struct stat st;
    int rc = FG_ERROR;

    if (is_local_path(remote->url) && stat(remote->url, &st) != 0) {
        rc = fg_error_set(FG_EUNAVAILABLE, "project %lld: cannot fetch %s: %s", project,
                          remote->url, strerror(errno));
        goto done;
    }
    /* An anonymous remote keeps the URL (and any userinfo in it) out of the mirror's config;
     * the refspecs given to the fetch are the ones pruning applies to. No url.*.insteadOf:
     * libgit2 1.5 leaks pcre2 match data on every config key its regex does not match (20 KiB
     * per fetch), and a service's remotes should not depend on a user's git config anyway. */
    git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
    ro.repository = repo;
    ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
    if (git_remote_create_with_opts(&origin, remote->url, &ro) < 0) {
        rc = fetch_failed(project, remote, &creds);
        goto done;
    }
    link_local_objects(repo, project, remote->url);
    git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
    fo.prune = GIT_FETCH_PRUNE;
    fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE; /* the refspec takes every tag already */
    fo.update_fetchhead = 0;
    fo.callbacks.credentials = on_credentials;
    fo.callbacks.payload = &creds;
    if (git_remote_fetch(origin, &specs, &fo, NULL) < 0) {
        rc = fetch_failed(project, remote, &creds);
        goto done;
    }
    rc = 0;
done:
    git_remote_free(origin);
    return rc;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Removes a directory tree without following symbolic links. */
static int remove_tree(const char *path)
{
    struct stat st;

    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : fg_error_set(FG_ERROR, "%s: %s", path, strerror(errno));
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return fg_error_set(FG_ERROR, "cannot delete %s: %s", path, strerror(errno));
    return 0;
}

static int git_failed(const char *what, const char *path)
{
    const git_error *e = git_error_last();

    return fg_error_set(FG_ERROR, "%s %s: %s", what, path, e ? e->message : "libgit2 error");
}

/* The first sync: a bare repository built beside the mirror's place and renamed into it. */
static int clone_mirror(const char *path, const char *partial, long long project,
                        const cs_remote *remote)
{
    git_repository *repo = NULL;
    int rc = FG_ERROR;

    /* a partial clone left by a crash: we hold the lock, so nobody else is making it */
    if ((rc = remove_tree(partial)) < 0)
        goto done;
    if (git_repository_init(&repo, partial, 1) < 0) {
        rc = git_failed("cannot create", partial);
        goto done;
    }
    if ((rc = fetch(repo, project, remote)) < 0)
        goto done;
    git_repository_free(repo);
    repo = NULL;
    if (rename(partial, path) != 0) {
        rc = fg_error_set(FG_ERROR, "cannot rename %s: %s", partial, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    git_repository_free(repo);
    if (rc < 0 && remove_tree(partial) < 0)
        fg_log_warn("project %lld: cannot clean up %s", project, partial);
    return rc;
}

int cs_mirror_open(git_repository **out, const char *dir, long long project)
{
    char path[PATH_MAX];
    int rc;

    *out = NULL;
    if ((rc = mirror_path(path, sizeof(path), dir, project, ".git")) < 0)
        return rc;
    if (git_repository_open_bare(out, path) < 0)
        return fg_error_set(FG_ENOTFOUND, "project %lld has no mirror", project);
    return 0;
}

int cs_mirror_update(git_repository **out, bool *out_cloned, const char *dir, long long project,
                     const cs_remote *remote)
{
    char path[PATH_MAX], partial[PATH_MAX];
    git_repository *repo = NULL;
    struct stat st;
    int rc = FG_ERROR;

    *out = NULL;
    *out_cloned = false;
    if ((rc = mirror_path(path, sizeof(path), dir, project, ".git")) < 0 ||
        (rc = mirror_path(partial, sizeof(partial), dir, project, ".git.partial")) < 0)
        goto done;
    if (git_repository_open_bare(&repo, path) == 0) {
        rc = fetch(repo, project, remote);
        goto done;
    }
    if (lstat(path, &st) == 0) {
        /* there but not a repository: the mirror is only a cache of the remote, so rebuild */
        fg_log_warn("project %lld: %s is not a usable mirror (%s): cloning again", project, path,
                    git_error_last() ? git_error_last()->message : "?");
        if ((rc = remove_tree(path)) < 0)
            goto done;
    }
    if ((rc = clone_mirror(path, partial, project, remote)) < 0)
        goto done;
    *out_cloned = true;
    if (git_repository_open_bare(&repo, path) < 0) {
        rc = git_failed("cannot open", path);
        goto done;
    }
    rc = 0;
done:
    if (rc < 0)
        git_repository_free(repo);
    else
        *out = repo;
    return rc;
}

int cs_mirror_tips(cs_oids *out, git_repository *repo)
{
    git_reference_iterator *it = NULL;
    git_reference *ref = NULL;
    git_object *peeled = NULL;
    size_t refs = 0;
    int rc = FG_ERROR, grc;

    out->n = 0;
    if (git_reference_iterator_new(&it, repo) < 0) {
        rc = git_failed("cannot list the refs of", git_repository_path(repo));
        goto done;
    }
    while ((grc = git_reference_next(&ref, it)) == 0) {
        const char *name = git_reference_name(ref);

        if ((strncmp(name, "refs/heads/", 11) == 0 || strncmp(name, "refs/tags/", 10) == 0) &&
            git_reference_peel(&peeled, ref, GIT_OBJECT_COMMIT) == 0) {
            if (++refs > CS_MIRROR_TIPS_MAX) {
                rc = fg_error_set(FG_ETOOBIG, "more than %d branches and tags", CS_MIRROR_TIPS_MAX);
                goto done;
            }
            if ((rc = cs_oids_add(out, git_object_id(peeled))) < 0)
                goto done;
        }
        git_object_free(peeled);
        peeled = NULL;
        git_reference_free(ref);
        ref = NULL;
    }
    if (grc != GIT_ITEROVER) {
        rc = git_failed("cannot list the refs of", git_repository_path(repo));
        goto done;
    }
    cs_oids_sort_unique(out);
    rc = 0;
done:
    git_object_free(peeled);
    git_reference_free(ref);
    git_reference_iterator_free(it);
    return rc;
}

int cs_mirror_remove(const char *dir, long long project)
{
    char path[PATH_MAX], partial[PATH_MAX], lock[PATH_MAX];
    int rc;

    if ((rc = mirror_path(path, sizeof(path), dir, project, ".git")) < 0 ||
        (rc = mirror_path(partial, sizeof(partial), dir, project, ".git.partial")) < 0 ||
        (rc = mirror_path(lock, sizeof(lock), dir, project, ".lock")) < 0 ||
        (rc = remove_tree(path)) < 0 || (rc = remove_tree(partial)) < 0)
        return rc;
    /* unlinked while still held: a waiter that locked the old inode sees the name gone and
     * starts over with a fresh file (still_named) */
    if (unlink(lock) != 0 && errno != ENOENT)
        return fg_error_set(FG_ERROR, "cannot delete %s: %s", lock, strerror(errno));
    return 0;
}

/* ---- state -------------------------------------------------------------------------------- */

static int read_small_file(fg_buf *out, const char *path, bool *out_found)
{
    char chunk[65536];
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc = 0;

    *out_found = false;
    if (fd < 0)
        return errno == ENOENT ? 0 : fg_error_set(FG_ERROR, "%s: %s", path, strerror(errno));
    while ((n = read(fd, chunk, sizeof(chunk))) > 0)
        if ((rc = fg_buf_put(out, chunk, (size_t)n)) < 0)
            break;
    if (n < 0)
        rc = fg_error_set(FG_ERROR, "%s: %s", path, strerror(errno));
    close(fd);
    *out_found = rc == 0;
    return rc;
}

/* Parses the state text; false for anything but the exact format. */
static bool parse_state(cs_oids *out, const char *text, size_t len)
{
    const size_t header = strlen(CS_MIRROR_STATE_HEADER);
    git_oid oid;

    if (len < header || memcmp(text, CS_MIRROR_STATE_HEADER, header) != 0)
        return false;
    for (size_t at = header; at < len; at += GIT_OID_HEXSZ + 1) {
        if (len - at < GIT_OID_HEXSZ + 1 || text[at + GIT_OID_HEXSZ] != '\n' ||
            git_oid_fromstrn(&oid, text + at, GIT_OID_HEXSZ) < 0 || cs_oids_add(out, &oid) < 0)
            return false;
    }
    return true;
}

int cs_mirror_state_read(cs_oids *out, bool *out_found, const char *dir, long long project)
{
    char path[PATH_MAX];
    fg_buf text;
    bool present = false;
    int rc;

    out->n = 0;
    *out_found = false;
    fg_buf_init(&text, CS_MIRROR_STATE_MAX);
    if ((rc = mirror_path(path, sizeof(path), dir, project, ".git/" CS_MIRROR_STATE_NAME)) < 0)
        goto done;
    if (read_small_file(&text, path, &present) < 0 || !present) {
        rc = 0; /* unreadable counts as absent: it only costs a full comparison */
        goto done;
    }
    if (!parse_state(out, text.ptr, text.len)) {
        fg_log_warn("project %lld: ignoring the malformed state file %s", project, path);
        out->n = 0;
        rc = 0;
        goto done;
    }
    cs_oids_sort_unique(out);
    *out_found = true;
    rc = 0;
done:
    fg_buf_dispose(&text);
    return rc;
}

int cs_mirror_state_write(const char *dir, long long project, const cs_oids *tips)
{
    char path[PATH_MAX], tmp[PATH_MAX], hex[GIT_OID_HEXSZ + 2];
    fg_buf text;
    int fd = -1;
    int rc = FG_ERROR;

    fg_buf_init(&text, CS_MIRROR_STATE_MAX);
    if ((rc = mirror_path(path, sizeof(path), dir, project, ".git/" CS_MIRROR_STATE_NAME)) < 0 ||
        (rc = mirror_path(tmp, sizeof(tmp), dir, project, ".git/" CS_MIRROR_STATE_NAME ".tmp")) <
            0 ||
        (rc = fg_buf_puts(&text, CS_MIRROR_STATE_HEADER)) < 0)
        goto done;
    for (size_t i = 0; i < tips->n; i++) {
        git_oid_fmt(hex, &tips->v[i]);
        hex[GIT_OID_HEXSZ] = '\n';
        if ((rc = fg_buf_put(&text, hex, GIT_OID_HEXSZ + 1)) < 0)
            goto done;
    }
    if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
        write_all(fd, text.ptr, text.len) < 0 || fsync(fd) < 0) {
        rc = fg_error_set(FG_ERROR, "cannot write %s: %s", tmp, strerror(errno));
        goto done;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = fg_error_set(FG_ERROR, "cannot rename %s: %s", tmp, strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    fg_buf_dispose(&text);
    return rc;
}

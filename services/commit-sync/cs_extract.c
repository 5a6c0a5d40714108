/*
 * Extraction across threads with the caller's order kept. The oids are cut into blocks of
 * consecutive commits; each worker thread (its own repository handle, object reader and cache)
 * takes the next block, extracts it in the order given into a slot of a ring, and the calling
 * thread hands the bodies to the callback in order. The ring bounds memory: a worker waits when
 * it is a ring ahead of the caller.
 */
#include "cs_extract.h"

#include <pthread.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cs_extract_int.h"
#include "fg/proto.h"

#define BLOCK_MAX    1024 /* commits per block: fewer boundaries, less work done twice */
#define RING_PER_THR 2    /* slots per thread */
#define THREADS_MAX  64   /* workers, whatever the machine says */
#define ERROR_TEXT   512  /* bytes of a worker's error message carried to the caller */
#define TRIM_EVERY   1024 /* commits between two drops of the pack pages from the RSS */

typedef enum {
    SLOT_FREE,    /* no block, or its bodies were handed over */
    SLOT_WORKING, /* a worker owns it */
    SLOT_DONE     /* bodies (or an error) ready for the caller */
} slot_state;

typedef struct {
    slot_state state;
    fg_buf bodies;
    size_t start[BLOCK_MAX];
    size_t len[BLOCK_MAX];
    size_t count;
    int rc;
    char error[ERROR_TEXT];
} slot;

typedef struct {
    git_repository *repo; /* the caller's: only its path is used by threads */
    cs_extract__packs *packs;
    const git_oid *oids;
    size_t n, block, nblocks, files_max;
    pthread_mutex_t lock;
    pthread_cond_t room;  /* a slot was freed or stop was set */
    pthread_cond_t ready; /* a slot is done */
    size_t next;          /* next block to take */
    size_t emitted;       /* blocks handed over */
    bool stop;
    slot *ring;
    size_t ring_size;
} job;

/* Extracts a block in the order given. In git log order (newest first) that follows the delta
 * direction of a repacked pack, whose newer objects are whole and older ones deltas of them, so
 * delta bases are in the cache when needed (measured: a quarter less time than oldest first on a
 * real-code history); a commit's diff reads its parent's trees, which its parent's diff reads
 * again next. */
static void run_block(cs_extract__worker *w, slot *s, const git_oid *oids, size_t count)
{
    fg_buf_clear(&s->bodies);
    s->count = count;
    s->rc = 0;
    for (size_t i = 0; i < count; i++) {
        s->start[i] = s->bodies.len;
        /* each body is NUL-terminated in place, so callers may treat it as a C string */
        if ((s->rc = cs_extract__commit(w, &s->bodies, &oids[i])) < 0 ||
            (s->rc = fg_buf_putc(&s->bodies, '\0')) < 0) {
            snprintf(s->error, sizeof(s->error), "%s", fg_error_last());
            return;
        }
        s->len[i] = s->bodies.len - 1 - s->start[i];
    }
}

static size_t block_count(const job *j, size_t b)
{
    size_t first = b * j->block;

    return j->n - first < j->block ? j->n - first : j->block;
}

/* Takes the next block when the ring has room; false when there is nothing left to do. */
static bool take_block(job *j, size_t *b)
{
    bool ok;

    pthread_mutex_lock(&j->lock);
    while (!j->stop && j->next < j->nblocks && j->next >= j->emitted + j->ring_size)
        pthread_cond_wait(&j->room, &j->lock);
    ok = !j->stop && j->next < j->nblocks;
    if (ok) {
        *b = j->next++;
        j->ring[*b % j->ring_size].state = SLOT_WORKING;
    }
    pthread_mutex_unlock(&j->lock);
    return ok;
}

static void finish_block(job *j, slot *s)
{
    pthread_mutex_lock(&j->lock);
    s->state = SLOT_DONE;
    pthread_cond_broadcast(&j->ready);
    pthread_mutex_unlock(&j->lock);
}

static void *worker_main(void *arg)
{
    job *j = arg;
    git_repository *repo = NULL;
    cs_extract__worker *w = NULL;
    int rc = FG_ERROR;
    size_t b;

    /* libgit2: a repository handle is not for two threads; each worker opens its own */
    if (git_repository_open_bare(&repo, git_repository_path(j->repo)) < 0) {
        rc = fg_error_set(FG_ERROR, "opening %s: %s", git_repository_path(j->repo),
                          git_error_last() != NULL ? git_error_last()->message : "");
    } else {
        rc = cs_extract__worker_new(&w, repo, j->packs, j->files_max);
    }
    while (take_block(j, &b)) {
        slot *s = &j->ring[b % j->ring_size];
        if (rc < 0) {
            /* could not start: the error goes with the first block this thread takes */
            s->rc = rc;
            snprintf(s->error, sizeof(s->error), "%s", fg_error_last());
        } else {
            run_block(w, s, j->oids + b * j->block, block_count(j, b));
        }
        finish_block(j, s);
    }
    cs_extract__worker_free(w);
    git_repository_free(repo);
    return NULL;
}

/* Hands block b's bodies to fn once a worker is done with it. */
static int emit_block(job *j, size_t b, cs_commit_fn fn, void *payload)
{
    slot *s = &j->ring[b % j->ring_size];
    const git_oid *oids = j->oids + b * j->block;
    int rc = 0;

    pthread_mutex_lock(&j->lock);
    while (s->state != SLOT_DONE)
        pthread_cond_wait(&j->ready, &j->lock);
    pthread_mutex_unlock(&j->lock);
    if (s->rc < 0)
        rc = fg_error_set(s->rc, "%s", s->error);
    for (size_t i = 0; i < s->count && rc == 0; i++)
        rc = fn(s->bodies.ptr + s->start[i], s->len[i], &oids[i], payload);
    pthread_mutex_lock(&j->lock);
    s->state = SLOT_FREE;
    j->emitted++;
    if (rc < 0)
        j->stop = true;
    pthread_cond_broadcast(&j->room);
    pthread_mutex_unlock(&j->lock);
    return rc;
}

static int run_threads(job *j, size_t threads, cs_commit_fn fn, void *payload)
{
    pthread_t tids[THREADS_MAX];
    size_t started = 0;
    int rc = 0;

    for (; started < threads; started++) {
        if (pthread_create(&tids[started], NULL, worker_main, j) != 0)
            break;
    }
    if (started == 0)
        rc = fg_error_set(FG_ERROR, "could not start an extraction thread");
    for (size_t b = 0, since_trim = 0; b < j->nblocks && rc == 0; b++) {
        rc = emit_block(j, b, fn, payload);
        if ((since_trim += block_count(j, b)) >= TRIM_EVERY) {
            cs_extract__packs_trim(j->packs);
            since_trim = 0;
        }
    }
    pthread_mutex_lock(&j->lock);
    j->stop = true;
    pthread_cond_broadcast(&j->room);
    pthread_mutex_unlock(&j->lock);
    for (size_t t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    return rc;
}

/* One thread: the caller's own, with the caller's repository. */
static int run_inline(job *j, cs_commit_fn fn, void *payload)
{
    cs_extract__worker *w = NULL;
    size_t since_trim = 0;
    int rc;

    if ((rc = cs_extract__worker_new(&w, j->repo, j->packs, j->files_max)) < 0)
        return rc;
    for (size_t b = 0; b < j->nblocks && rc == 0; b++) {
        slot *s = &j->ring[0];
        const git_oid *oids = j->oids + b * j->block;
        run_block(w, s, oids, block_count(j, b));
        if ((rc = s->rc) < 0)
            rc = fg_error_set(s->rc, "%s", s->error);
        for (size_t i = 0; i < s->count && rc == 0; i++)
            rc = fn(s->bodies.ptr + s->start[i], s->len[i], &oids[i], payload);
        if ((since_trim += s->count) >= TRIM_EVERY) {
            cs_extract__packs_trim(j->packs);
            since_trim = 0;
        }
    }
    cs_extract__worker_free(w);
    return rc;
}

/* ---- public ---- */

void cs_extract_options_init(cs_extract_options *o)
{
    memset(o, 0, sizeof(*o));
}

int cs_extract(git_repository *repo, const git_oid *oids, size_t n, const cs_extract_options *o,
               cs_commit_fn fn, void *payload)
{
    cs_extract_options defaults;
    job j;
    long online;
    size_t threads;
    int rc;

    if (o == NULL) {
        cs_extract_options_init(&defaults);
        o = &defaults;
    }
    if (n == 0)
        return 0;
    online = sysconf(_SC_NPROCESSORS_ONLN);
    threads = o->threads > 0 ? (size_t)o->threads : online > 0 ? (size_t)online : 1;
    if (threads > THREADS_MAX)
        threads = THREADS_MAX;
    memset(&j, 0, sizeof(j));
    j.repo = repo;
    j.oids = oids;
    j.n = n;
    j.files_max =
        o->files_max == 0 || o->files_max > FG_PROTO_FILES_MAX ? FG_PROTO_FILES_MAX : o->files_max;
    /* blocks small enough that every thread gets work, large enough to keep a history's
     * neighbours together */
    j.block = (n + 2 * threads - 1) / (2 * threads);
    j.block = j.block > BLOCK_MAX ? BLOCK_MAX : j.block;
    j.nblocks = (n + j.block - 1) / j.block;
    if (threads > j.nblocks)
        threads = j.nblocks;
    j.ring_size = threads > 1 ? threads * RING_PER_THR : 1;
    if ((j.ring = calloc(j.ring_size, sizeof(*j.ring))) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory for the extraction ring");
    for (size_t i = 0; i < j.ring_size; i++)
        fg_buf_init(&j.ring[i].bodies, (size_t)BLOCK_MAX * CS_EXTRACT_BODY_MAX);
    pthread_mutex_init(&j.lock, NULL);
    pthread_cond_init(&j.room, NULL);
    pthread_cond_init(&j.ready, NULL);
    if ((rc = cs_extract__packs_open(&j.packs, repo)) == 0)
        rc = threads > 1 ? run_threads(&j, threads, fn, payload) : run_inline(&j, fn, payload);
    cs_extract__packs_close(j.packs);
    pthread_cond_destroy(&j.ready);
    pthread_cond_destroy(&j.room);
    pthread_mutex_destroy(&j.lock);
    for (size_t i = 0; i < j.ring_size; i++)
        fg_buf_dispose(&j.ring[i].bodies);
    free(j.ring);
    return rc;
}

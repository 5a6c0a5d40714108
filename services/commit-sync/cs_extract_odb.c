/*
 * A per-thread reader of a repository's pack files, because object access is most of the
 * extraction's time and libgit2's own reader (git_odb_read) pays for things this job does not
 * need: locks shared by every thread (pack files are global in libgit2), a calloc and a copy per
 * object, a 16 MiB delta-base cache that long histories thrash, and the adler32 of every zlib
 * stream. This reader maps each pack and its index v2 read-only, finds ids by fanout and binary
 * search, inflates raw deflate (the zlib header is checked, its checksum is not: git verified
 * the pack when it was fetched, and strict hash verification is off anyway), applies deltas, and
 * keeps every object it builds in one LRU cache keyed by pack position, so a delta base, a tree
 * read again for the next commit, or a blob that the next commit changes again is not inflated
 * twice. Anything it cannot serve (loose objects, alternates, index v1, a base outside the
 * packs) comes from libgit2 unchanged.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cs_extract_int.h"

#define PACKS_MAX     4096  /* pack files used; more fall back to libgit2 */
#define CHAIN_MAX     10000 /* delta chain length before we call the pack corrupt */
#define BUCKETS       65536 /* cache hash buckets, in each of the two tables */
#define OBJ_OFS_DELTA 6
#define OBJ_REF_DELTA 7
#define IDX_HEADER    8
#define IDX_FANOUT    1024
#define NO_PACK       UINT32_MAX

typedef struct {
    const unsigned char *idx, *pack;
    size_t idx_size, pack_size;
    uint32_t count;
    const unsigned char *names, *offsets, *large;
    size_t large_count;
} pack;

struct cs_extract__object {
    uint32_t pack; /* NO_PACK: from libgit2, not cached */
    uint64_t offset;
    git_object_t type;
    size_t size;
    char *data;
    git_odb_object *git; /* when from libgit2 */
    unsigned refs;
    bool cached;
    bool has_id; /* read by id (not only as a delta base) */
    git_oid id;
    cs_extract__object *prev, *next; /* LRU list, while cached and unreferenced */
    cs_extract__object *chain;       /* bucket by pack position */
    cs_extract__object *id_chain;    /* bucket by id */
};

typedef struct {
    uint32_t pack;
    uint64_t offset;   /* of the object's header */
    uint64_t data;     /* of its compressed data */
    size_t delta_size; /* inflated size of the delta */
} chain_link;

struct cs_extract__packs {
    pack *packs;
    uint32_t npacks;
};

struct cs_extract__odb {
    git_odb *git;
    const pack *packs; /* borrowed from the shared cs_extract__packs */
    uint32_t npacks, last;
    z_stream z;
    bool z_ready;
    unsigned char *scratch; /* inflated deltas */
    size_t scratch_cap;
    chain_link *chain;
    size_t chain_cap;
    cs_extract__object *buckets[BUCKETS];
    cs_extract__object *id_buckets[BUCKETS];
    cs_extract__object *lru_head, *lru_tail; /* head: most recent */
    size_t cached_bytes, cache_max;
};

/* ---- packs ---- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static const unsigned char *map_file(const char *path, size_t *size)
{
    struct stat st;
    void *m = MAP_FAILED;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        *size = (size_t)st.st_size;
        m = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    }
    close(fd);
    return m == MAP_FAILED ? NULL : m;
}

/* Maps one pack and its index v2; false (and nothing mapped) for anything else. */
static bool open_pack(pack *p, const char *idx_path)
{
    char pack_path[4096];
    size_t n = strlen(idx_path);
    uint32_t prev = 0;

    memset(p, 0, sizeof(*p));
    if (n < 4 || n >= sizeof(pack_path))
        return false;
    memcpy(pack_path, idx_path, n - 4);
    memcpy(pack_path + n - 4, ".pack", 6);
    if ((p->idx = map_file(idx_path, &p->idx_size)) == NULL)
        return false;
    if ((p->pack = map_file(pack_path, &p->pack_size)) == NULL)
        goto fail;
    if (p->idx_size < IDX_HEADER + IDX_FANOUT + 40 || memcmp(p->idx, "\377tOc", 4) != 0 ||
        be32(p->idx + 4) != 2 || p->pack_size < 32 || memcmp(p->pack, "PACK", 4) != 0)
        goto fail;
    for (int i = 0; i < 256; i++) {
        uint32_t v = be32(p->idx + IDX_HEADER + 4 * i);
        if (v < prev)
            goto fail;
        prev = v;
    }
    p->count = prev;
    if ((p->idx_size - IDX_HEADER - IDX_FANOUT - 40) / 28 < p->count)
        goto fail;
    p->names = p->idx + IDX_HEADER + IDX_FANOUT;
    p->offsets = p->names + (size_t)p->count * 24; /* past the names and the CRCs */
    p->large = p->offsets + (size_t)p->count * 4;
    p->large_count = (p->idx_size - 40 - (size_t)(p->large - p->idx)) / 8;
    return true;
fail:
    if (p->idx != NULL)
        munmap((void *)p->idx, p->idx_size);
    if (p->pack != NULL)
        munmap((void *)p->pack, p->pack_size);
    memset(p, 0, sizeof(*p));
    return false;
}

static int add_packs(cs_extract__packs *odb, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];
    int rc = 0;

    if (d == NULL)
        return 0; /* no packs: libgit2 serves everything */
    while ((e = readdir(d)) != NULL && odb->npacks < PACKS_MAX) {
        size_t n = strlen(e->d_name);
        if (n < 9 || strncmp(e->d_name, "pack-", 5) != 0 || strcmp(e->d_name + n - 4, ".idx"))
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >= (int)sizeof(path))
            continue;
        if ((odb->npacks & (odb->npacks - 1)) == 0) {
            pack *np = realloc(odb->packs, (odb->npacks ? odb->npacks * 2 : 4) * sizeof(pack));
            if (np == NULL) {
                rc = fg_error_set(FG_ENOMEM, "out of memory listing packs");
                break;
            }
            odb->packs = np;
        }
        if (open_pack(&odb->packs[odb->npacks], path))
            odb->npacks++;
    }
    closedir(d);
    return rc;
}

static bool offset_of(const pack *p, uint32_t i, uint64_t *offset)
{
    uint32_t off = be32(p->offsets + (size_t)i * 4);

    if (off & 0x80000000U) {
        if ((off & 0x7fffffffU) >= p->large_count)
            return false;
        *offset = be64(p->large + (size_t)(off & 0x7fffffffU) * 8);
    } else {
        *offset = off;
    }
    return *offset >= 12 && *offset < p->pack_size;
}

/* Position of id in pack p, or false. Ids are uniformly spread, so the first probes interpolate
 * on the leading 64 bits (a couple of probes instead of a dozen cache misses), then binary
 * search finishes. */
static bool find_in_pack(const pack *p, const git_oid *id, uint64_t *offset)
{
    const unsigned char *fan = p->idx + IDX_HEADER;
    uint32_t first = id->id[0], lo = first ? be32(fan + 4 * (first - 1)) : 0;
    uint32_t hi = be32(fan + 4 * first);
    uint64_t key = be64(id->id), lo_key = (uint64_t)first << 56, hi_key = lo_key | (~0ULL >> 8);

    for (int probes = 0; lo < hi; probes++) {
        uint32_t mid = lo + (hi - lo) / 2;
        const unsigned char *name;
        uint64_t probe;
        int cmp;

        if (probes < 3 && hi - lo > 8 && hi_key > lo_key && key >= lo_key && key <= hi_key) {
            double f = (double)(key - lo_key) / (double)(hi_key - lo_key);
            mid = lo + (uint32_t)(f * (double)(hi - lo - 1));
        }
        name = p->names + (size_t)mid * 20;
        probe = be64(name);
        cmp = probe < key ? -1 : probe > key ? 1 : memcmp(name + 8, id->id + 8, 12);
        if (cmp == 0)
            return offset_of(p, mid, offset);
        if (cmp < 0) {
            lo = mid + 1;
            lo_key = probe;
        } else {
            hi = mid;
            hi_key = probe;
        }
    }
    return false;
}

static bool locate(cs_extract__odb *odb, const git_oid *id, uint32_t *pk, uint64_t *offset)
{
    if (odb->npacks == 0)
        return false;
    if (find_in_pack(&odb->packs[odb->last], id, offset)) {
        *pk = odb->last;
        return true;
    }
    for (uint32_t i = 0; i < odb->npacks; i++) {
        if (i != odb->last && find_in_pack(&odb->packs[i], id, offset)) {
            *pk = odb->last = i;
            return true;
        }
    }
    return false;
}

/* ---- cache ---- */

static size_t bucket(uint32_t pk, uint64_t offset)
{
    return (size_t)((offset * 0x9E3779B97F4A7C15ULL + pk) >> 40) % BUCKETS;
}

static size_t id_bucket(const git_oid *id)
{
    uint32_t h;

    memcpy(&h, id->id + 4, sizeof(h));
    return h % BUCKETS;
}

static void lru_unlink(cs_extract__odb *odb, cs_extract__object *o)
{
    if (o->prev != NULL)
        o->prev->next = o->next;
    else
        odb->lru_head = o->next;
    if (o->next != NULL)
        o->next->prev = o->prev;
    else
        odb->lru_tail = o->prev;
    o->prev = o->next = NULL;
}

static void object_free(cs_extract__object *o)
{
    if (o->git != NULL)
        git_odb_object_free(o->git);
    else
        free(o->data);
    free(o);
}

static void uncache(cs_extract__odb *odb, cs_extract__object *o)
{
    cs_extract__object **pp = &odb->buckets[bucket(o->pack, o->offset)];

    while (*pp != o)
        pp = &(*pp)->chain;
    *pp = o->chain;
    if (o->has_id) {
        pp = &odb->id_buckets[id_bucket(&o->id)];
        while (*pp != o)
            pp = &(*pp)->id_chain;
        *pp = o->id_chain;
    }
    odb->cached_bytes -= o->size;
    o->cached = false;
}

static void hold(cs_extract__odb *odb, cs_extract__object *o)
{
    if (o->refs++ == 0)
        lru_unlink(odb, o);
}

/* A cached object by id: no index lookup at all. */
static cs_extract__object *cache_get_id(cs_extract__odb *odb, const git_oid *id)
{
    cs_extract__object *o = odb->id_buckets[id_bucket(id)];

    for (; o != NULL; o = o->id_chain) {
        if (memcmp(o->id.id, id->id, GIT_OID_RAWSZ) == 0) {
            hold(odb, o);
            return o;
        }
    }
    return NULL;
}

/* Files a cached object under the id it was asked by. */
static void name_object(cs_extract__odb *odb, cs_extract__object *o, const git_oid *id)
{
    size_t b;

    if (!o->cached || o->has_id)
        return;
    git_oid_cpy(&o->id, id);
    o->has_id = true;
    b = id_bucket(id);
    o->id_chain = odb->id_buckets[b];
    odb->id_buckets[b] = o;
}

/* Drops least recently used objects nobody holds until the cache fits. */
static void trim(cs_extract__odb *odb)
{
    while (odb->cached_bytes > odb->cache_max && odb->lru_tail != NULL) {
        cs_extract__object *o = odb->lru_tail;
        lru_unlink(odb, o);
        uncache(odb, o);
        object_free(o);
    }
}

static cs_extract__object *cache_get(cs_extract__odb *odb, uint32_t pk, uint64_t offset)
{
    cs_extract__object *o = odb->buckets[bucket(pk, offset)];

    for (; o != NULL; o = o->chain) {
        if (o->pack == pk && o->offset == offset) {
            hold(odb, o);
            return o;
        }
    }
    return NULL;
}

/* A new object, held once by the caller; cached unless it is a large part of the cache. */
static cs_extract__object *object_new(cs_extract__odb *odb, uint32_t pk, uint64_t offset,
                                      git_object_t type, char *data, size_t size)
{
    cs_extract__object *o = calloc(1, sizeof(*o));

    if (o == NULL) {
        free(data);
        return NULL;
    }
    o->pack = pk;
    o->offset = offset;
    o->type = type;
    o->data = data;
    o->size = size;
    o->refs = 1;
    if (pk != NO_PACK && size <= odb->cache_max / 8) {
        size_t b = bucket(pk, offset);
        o->cached = true;
        o->chain = odb->buckets[b];
        odb->buckets[b] = o;
        odb->cached_bytes += size;
    }
    return o;
}

/* ---- inflating and deltas ---- */

static int corrupt(const git_oid *id, const char *what)
{
    char sha[GIT_OID_HEXSZ + 1];

    git_oid_tostr(sha, sizeof(sha), id);
    return fg_error_set(FG_ERROR, "object %s: corrupt pack (%s)", sha, what);
}

/* Parses the object header at offset: type, inflated size, start of the data. */
static bool parse_header(const pack *p, uint64_t offset, int *type, size_t *size, uint64_t *data)
{
    const unsigned char *s = p->pack + offset, *end = p->pack + p->pack_size;
    unsigned shift = 4;
    size_t n;

    if (offset >= p->pack_size)
        return false;
    *type = (*s >> 4) & 7;
    n = *s & 15;
    while (*s++ & 0x80) {
        if (s >= end || shift > 57)
            return false;
        n |= (size_t)(*s & 0x7f) << shift;
        shift += 7;
    }
    *size = n;
    *data = (uint64_t)(s - p->pack);
    return true;
}

/* Inflates exactly size bytes of the zlib stream at data into out (size + 1 bytes). */
static bool inflate_at(cs_extract__odb *odb, const pack *p, uint64_t data, unsigned char *out,
                       size_t size)
{
    const unsigned char *in = p->pack + data;
    size_t avail = p->pack_size - data;
    int zr;

    /* the zlib header: deflate, no preset dictionary, valid check bits; then raw deflate */
    if (avail < 2 || (in[0] & 0x0f) != 8 || (in[0] >> 4) > 7 || (in[1] & 0x20) != 0 ||
        ((unsigned)in[0] << 8 | in[1]) % 31 != 0)
        return false;
    if (inflateReset(&odb->z) != Z_OK)
        return false;
    odb->z.next_in = (Bytef *)(in + 2); /* zlib does not write its input */
    odb->z.avail_in = avail - 2 > UINT32_MAX ? UINT32_MAX : (uInt)(avail - 2);
    odb->z.next_out = out;
    odb->z.avail_out = size + 1 > UINT32_MAX ? UINT32_MAX : (uInt)(size + 1);
    do {
        zr = inflate(&odb->z, Z_FINISH);
    } while (zr == Z_OK && odb->z.total_out <= size);
    return zr == Z_STREAM_END && odb->z.total_out == size;
}

static bool varint(const unsigned char **p, const unsigned char *end, size_t *out)
{
    unsigned shift = 0;
    size_t v = 0;

    do {
        if (*p >= end || shift > 63)
            return false;
        v |= (size_t)(**p & 0x7f) << shift;
        shift += 7;
    } while (*(*p)++ & 0x80);
    *out = v;
    return true;
}

/* git's delta format: copy ranges of the base, insert literal bytes. */
static bool apply_delta(const unsigned char *delta, size_t len, const cs_extract__object *base,
                        size_t max, char **out, size_t *out_size)
{
    const unsigned char *p = delta, *end = delta + len;
    size_t src_size, dst_size, at = 0;
    char *dst;

    if (!varint(&p, end, &src_size) || !varint(&p, end, &dst_size) || src_size != base->size ||
        dst_size > max)
        return false;
    if ((dst = malloc(dst_size + 1)) == NULL)
        return false;
    while (p < end) {
        unsigned op = *p++;
        if (op & 0x80) {
            size_t off = 0, n = 0;
            for (int i = 0; i < 4; i++)
                if (op & (1u << i)) {
                    if (p >= end)
                        goto bad;
                    off |= (size_t)*p++ << (8 * i);
                }
            for (int i = 0; i < 3; i++)
                if (op & (0x10u << i)) {
                    if (p >= end)
                        goto bad;
                    n |= (size_t)*p++ << (8 * i);
                }
            if (n == 0)
                n = 0x10000;
            if (off > base->size || n > base->size - off || n > dst_size - at)
                goto bad;
            memcpy(dst + at, base->data + off, n);
            at += n;
        } else if (op != 0) {
            if (op > (size_t)(end - p) || op > dst_size - at)
                goto bad;
            memcpy(dst + at, p, op);
            p += op;
            at += op;
        } else {
            goto bad;
        }
    }
    if (at != dst_size)
        goto bad;
    dst[dst_size] = '\0';
    *out = dst;
    *out_size = dst_size;
    return true;
bad:
    free(dst);
    return false;
}

static int grow(void **buf, size_t *cap, size_t n, size_t size)
{
    void *nb;
    size_t want = *cap > 0 ? *cap : 16;

    if (n <= *cap)
        return 0;
    while (want < n)
        want *= 2;
    if ((nb = realloc(*buf, want * size)) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory reading objects");
    *buf = nb;
    *cap = want;
    return 0;
}

static int type_of(int pack_type, git_object_t *out)
{
    switch (pack_type) {
    case 1:
        *out = GIT_OBJECT_COMMIT;
        return 0;
    case 2:
        *out = GIT_OBJECT_TREE;
        return 0;
    case 3:
        *out = GIT_OBJECT_BLOB;
        return 0;
    case 4:
        *out = GIT_OBJECT_TAG;
        return 0;
    default:
        return -1;
    }
}

/* Follows the delta chain from (pk, offset) down to a cached object or a whole one; *depth links
 * are left in odb->chain, outermost first. */
static int walk_chain(cs_extract__odb *odb, const git_oid *id, uint32_t pk, uint64_t offset,
                      size_t max, cs_extract__object **base, size_t *depth)
{
    *depth = 0;
    for (;;) {
        const pack *p = &odb->packs[pk];
        int type, rc;
        size_t size;
        uint64_t data;
        git_object_t gt;

        if ((*base = cache_get(odb, pk, offset)) != NULL)
            return 0;
        if (!parse_header(p, offset, &type, &size, &data))
            return corrupt(id, "object header");
        if (type != OBJ_OFS_DELTA && type != OBJ_REF_DELTA) {
            char *buf;
            if (type_of(type, &gt) < 0)
                return corrupt(id, "object type");
            if (size > max)
                return fg_error_set(FG_ETOOBIG, "object of %zu bytes", size);
            if ((buf = malloc(size + 1)) == NULL)
                return fg_error_set(FG_ENOMEM, "out of memory for an object of %zu bytes", size);
            if (!inflate_at(odb, p, data, (unsigned char *)buf, size)) {
                free(buf);
                return corrupt(id, "deflate stream");
            }
            buf[size] = '\0';
            if ((*base = object_new(odb, pk, offset, gt, buf, size)) == NULL)
                return fg_error_set(FG_ENOMEM, "out of memory for an object");
            return 0;
        }
        if (*depth == CHAIN_MAX)
            return corrupt(id, "delta chain too long");
        if ((rc = grow((void **)&odb->chain, &odb->chain_cap, *depth + 1, sizeof(chain_link))) < 0)
            return rc;
        odb->chain[*depth] = (chain_link){pk, offset, 0, size};
        if (type == OBJ_OFS_DELTA) {
            const unsigned char *s = p->pack + data, *end = p->pack + p->pack_size;
            uint64_t back;
            if (s >= end)
                return corrupt(id, "delta base");
            back = *s & 0x7f;
            while (*s++ & 0x80) {
                if (s >= end || back > (UINT64_MAX >> 8))
                    return corrupt(id, "delta base");
                back = ((back + 1) << 7) | (*s & 0x7f);
            }
            if (back == 0 || back >= offset)
                return corrupt(id, "delta base offset");
            odb->chain[*depth].data = (uint64_t)(s - p->pack);
            offset -= back;
        } else {
            git_oid base_id;
            if (p->pack_size - data < GIT_OID_RAWSZ)
                return corrupt(id, "delta base id");
            git_oid_fromraw(&base_id, p->pack + data);
            odb->chain[*depth].data = data + GIT_OID_RAWSZ;
            if (!locate(odb, &base_id, &pk, &offset))
                return FG_ENOTFOUND; /* a base outside the packs: libgit2 will do */
        }
        (*depth)++;
    }
}

/* Applies the chain's deltas onto base, innermost first; every result is cached. */
static int apply_chain(cs_extract__odb *odb, const git_oid *id, size_t depth, size_t max,
                       cs_extract__object **inout)
{
    cs_extract__object *base = *inout;
    int rc = 0;

    while (depth-- > 0 && rc == 0) {
        const chain_link *l = &odb->chain[depth];
        cs_extract__object *next;
        char *out = NULL;
        size_t out_size = 0;

        if ((rc = grow((void **)&odb->scratch, &odb->scratch_cap, l->delta_size + 1, 1)) < 0)
            break;
        if (!inflate_at(odb, &odb->packs[l->pack], l->data, odb->scratch, l->delta_size))
            rc = corrupt(id, "delta stream");
        else if (!apply_delta(odb->scratch, l->delta_size, base, max, &out, &out_size))
            rc = corrupt(id, "delta");
        else if ((next = object_new(odb, l->pack, l->offset, base->type, out, out_size)) == NULL)
            rc = fg_error_set(FG_ENOMEM, "out of memory for an object");
        else {
            cs_extract__object_release(odb, base);
            base = next;
        }
    }
    *inout = base;
    return rc;
}

/* ---- public (to cs_extract_commit.c) ---- */

int cs_extract__packs_open(cs_extract__packs **out, git_repository *repo)
{
    cs_extract__packs *packs = calloc(1, sizeof(*packs));
    char dir[4096];
    int rc;

    *out = NULL;
    if (packs == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory for the pack list");
    snprintf(dir, sizeof(dir), "%sobjects/pack", git_repository_commondir(repo));
    if ((rc = add_packs(packs, dir)) < 0) {
        cs_extract__packs_close(packs);
        return rc;
    }
    *out = packs;
    return 0;
}

void cs_extract__packs_trim(cs_extract__packs *packs)
{
    /* the pages stay in the page cache; only our mapping of them goes, and comes back on the
     * next touch (a minor fault) */
    for (uint32_t i = 0; packs != NULL && i < packs->npacks; i++)
        madvise((void *)packs->packs[i].pack, packs->packs[i].pack_size, MADV_DONTNEED);
}

void cs_extract__packs_close(cs_extract__packs *packs)
{
    if (packs == NULL)
        return;
    for (uint32_t i = 0; i < packs->npacks; i++) {
        munmap((void *)packs->packs[i].idx, packs->packs[i].idx_size);
        munmap((void *)packs->packs[i].pack, packs->packs[i].pack_size);
    }
    free(packs->packs);
    free(packs);
}

int cs_extract__odb_new(cs_extract__odb **out, git_repository *repo, const cs_extract__packs *packs,
                        size_t cache_max)
{
    cs_extract__odb *odb = calloc(1, sizeof(*odb));
    int rc = FG_ERROR;

    *out = NULL;
    if (odb == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory for an object reader");
    odb->cache_max = cache_max;
    odb->packs = packs->packs;
    odb->npacks = packs->npacks;
    if (git_repository_odb(&odb->git, repo) < 0) {
        rc = fg_error_set(FG_ERROR, "opening the object database: %s",
                          git_error_last() != NULL ? git_error_last()->message : "");
        goto done;
    }
    if (inflateInit2(&odb->z, -15) != Z_OK) {
        rc = fg_error_set(FG_ENOMEM, "zlib: cannot start an inflate stream");
        goto done;
    }
    odb->z_ready = true;
    *out = odb;
    odb = NULL;
    rc = 0;
done:
    cs_extract__odb_free(odb);
    return rc;
}

void cs_extract__odb_free(cs_extract__odb *odb)
{
    if (odb == NULL)
        return;
    for (size_t b = 0; b < BUCKETS; b++) {
        for (cs_extract__object *o = odb->buckets[b], *next; o != NULL; o = next) {
            next = o->chain;
            object_free(o); /* callers released theirs before freeing the reader */
        }
    }
    if (odb->z_ready)
        inflateEnd(&odb->z);
    free(odb->scratch);
    free(odb->chain);
    git_odb_free(odb->git);
    free(odb);
}

/* libgit2's reader, for what the packs do not hold. */
static int read_git(cs_extract__odb *odb, cs_extract__object **out, const git_oid *id)
{
    git_odb_object *g = NULL;
    cs_extract__object *o;
    char sha[GIT_OID_HEXSZ + 1];
    int rc = git_odb_read(&g, odb->git, id);

    if (rc < 0) {
        git_oid_tostr(sha, sizeof(sha), id);
        return fg_error_set(rc == GIT_ENOTFOUND ? FG_ENOTFOUND : FG_ERROR, "object %s: %s", sha,
                            git_error_last() != NULL ? git_error_last()->message : "not found");
    }
    if ((o = calloc(1, sizeof(*o))) == NULL) {
        git_odb_object_free(g);
        return fg_error_set(FG_ENOMEM, "out of memory for an object");
    }
    o->pack = NO_PACK;
    o->git = g;
    o->data = (char *)git_odb_object_data(g); /* never written: released through o->git */
    o->size = git_odb_object_size(g);
    o->type = git_odb_object_type(g);
    o->refs = 1;
    *out = o;
    return 0;
}

int cs_extract__odb_read(cs_extract__object **out, cs_extract__odb *odb, const git_oid *id,
                         size_t max)
{
    cs_extract__object *base = NULL;
    uint32_t pk;
    uint64_t offset;
    size_t depth = 0;
    int rc;

    *out = NULL;
    if ((*out = cache_get_id(odb, id)) != NULL)
        return 0;
    if (!locate(odb, id, &pk, &offset))
        return read_git(odb, out, id);
    if ((rc = walk_chain(odb, id, pk, offset, max, &base, &depth)) == FG_ENOTFOUND)
        return read_git(odb, out, id);
    if (rc == 0)
        rc = apply_chain(odb, id, depth, max, &base);
    if (rc < 0) {
        cs_extract__object_release(odb, base);
        return rc;
    }
    name_object(odb, base, id);
    *out = base;
    return 0;
}

const char *cs_extract__object_data(const cs_extract__object *o)
{
    return o->data;
}

size_t cs_extract__object_size(const cs_extract__object *o)
{
    return o->size;
}

git_object_t cs_extract__object_type(const cs_extract__object *o)
{
    return o->type;
}

void cs_extract__object_release(cs_extract__odb *odb, cs_extract__object *o)
{
    if (o == NULL || --o->refs > 0)
        return;
    if (!o->cached) {
        object_free(o);
        return;
    }
    o->prev = NULL;
    o->next = odb->lru_head;
    if (odb->lru_head != NULL)
        odb->lru_head->prev = o;
    odb->lru_head = o;
    if (odb->lru_tail == NULL)
        odb->lru_tail = o;
    trim(odb);
}

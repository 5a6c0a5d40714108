/*
 * Exact numstat without git's diff machinery. git counts the '+' and '-' lines of its xdiff
 * output (diff.c builtin_diffstat); those are the lines xdl_do_diff marks as changed, which
 * depends on every step of xdiff's default (Myers) path:
 *   1. lines are records, a final line without newline included, compared byte for byte;
 *   2. the common head and tail are trimmed (xdl_trim_ends);
 *   3. lines of the middle without any match in the other whole file are dropped as changed, and
 *      so are lines with many matches (>= sqrt of the file's lines, at most 1024) inside runs
 *      of such lines (xdl_cleanup_records, xdl_clean_mmatch);
 *   4. the rest goes through divide-and-conquer Myers whose split gives up on minimality past a
 *      cost (xdl_split's snake and "enough is enough" heuristics), so the result is not
 *      always the minimal diff: the same heuristics are reproduced step by step.
 * The sliding of change groups that follows in git (xdl_change_compact) moves changes without
 * changing their number, so it is not needed. Where this code differs from xdiff is in cost
 * only: the head and tail are found by comparing bytes, and only middle lines are hashed
 * (head and tail lines are only looked up, and only when their length matches a middle line).
 */
#include "cs_numstat.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define BINARY_SNIFF   8000 /* git's FIRST_FEW_BYTES */
#define MAX_EQLIMIT    1024 /* XDL_MAX_EQLIMIT */
#define SIMSCAN_WINDOW 100  /* XDL_SIMSCAN_WINDOW */
#define KPDIS_RUN      4    /* XDL_KPDIS_RUN */
#define MAX_COST_MIN   256  /* XDL_MAX_COST_MIN */
#define HEUR_MIN_COST  256  /* XDL_HEUR_MIN_COST */
#define SNAKE_CNT      20   /* XDL_SNAKE_CNT */
#define K_HEUR         4    /* XDL_K_HEUR */
#define LINE_MAX_      LONG_MAX
#define LENGTH_FILTER  4096 /* bits of the middle-line length filter */

typedef struct {
    const char *ptr;
    uint32_t len;
    uint32_t cls;
} line;

typedef struct {
    uint64_t hash;
    const char *ptr;
    uint32_t len;
    uint32_t in_a; /* occurrences in the middle of a, then in all of a */
    uint32_t in_b;
} line_class;

typedef struct {
    long off1, lim1, off2, lim2;
    int need_min;
} frame;

struct cs_numstat {
    line *lines;
    size_t lines_cap;
    line_class *classes;
    size_t classes_cap;
    uint32_t *slots;
    size_t slots_cap;
    char *dis;
    size_t dis_cap;
    uint32_t *ha;
    size_t ha_cap;
    long *kvd;
    size_t kvd_cap;
    frame *stack;
    size_t stack_cap;
    uint64_t length_filter[LENGTH_FILTER / 64];
};

/* ---- scratch ---- */

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    void *np;
    size_t want = *cap > 0 ? *cap : 64;

    if (n <= *cap)
        return 0;
    while (want < n)
        want *= 2;
    if (want > SIZE_MAX / size || (np = realloc(*p, want * size)) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory diffing %zu lines", n);
    *p = np;
    *cap = want;
    return 0;
}

/* ---- bytes ---- */

static uint64_t load64(const char *p)
{
    uint64_t w;

    memcpy(&w, p, sizeof(w));
    return w;
}

/* Newlines in p[0, n), eight bytes at a time: an exact zero-byte test (no carries between
 * bytes), then the per-byte flags summed by one multiplication (no popcnt instruction needed). */
static size_t count_newlines(const char *p, size_t n)
{
    const uint64_t ones = 0x0101010101010101ULL, low7 = 0x7f7f7f7f7f7f7f7fULL;
    size_t count = 0, i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t x = load64(p + i) ^ (ones * '\n');
        uint64_t zero = ~(((x & low7) + low7) | x) & (ones << 7);
        count += (size_t)(((zero >> 7) * ones) >> 56);
    }
    for (; i < n; i++)
        count += p[i] == '\n';
    return count;
}

/* Length of the common prefix of a and b. */
static size_t common_head(const char *a, const char *b, size_t n)
{
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t x = load64(a + i) ^ load64(b + i);
        if (x != 0)
            return i + (size_t)__builtin_ctzll(x) / 8;
    }
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

/* Length of the common suffix of a[0, alen) and b[0, blen), at most n = min(alen, blen). */
static size_t common_tail(const char *a, size_t alen, const char *b, size_t blen, size_t n)
{
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        uint64_t x = load64(a + alen - i - 8) ^ load64(b + blen - i - 8);
        if (x != 0)
            return i + (size_t)__builtin_clzll(x) / 8;
    }
    while (i < n && a[alen - i - 1] == b[blen - i - 1])
        i++;
    return i;
}

static uint64_t hash_line(const char *p, size_t n)
{
    const uint64_t k = 0x9E3779B97F4A7C15ULL;
    uint64_t h = n * k;
    size_t i = 0;

    for (; i + 8 <= n; i += 8) {
        h = (h ^ load64(p + i)) * k;
        h ^= h >> 29;
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, p + i, n - i);
        h = (h ^ w) * k;
    }
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ULL;
    return h ^ (h >> 32);
}

/* ---- line classes (xdl_classify_record: equal lines share one class) ---- */

static uint32_t find_class(const cs_numstat *ns, size_t mask, uint64_t h, const char *p,
                           uint32_t len, size_t *slot)
{
    size_t i = (size_t)h & mask;

    for (; ns->slots[i] != 0; i = (i + 1) & mask) {
        const line_class *c = &ns->classes[ns->slots[i] - 1];
        if (c->hash == h && c->len == len && memcmp(c->ptr, p, len) == 0)
            break;
    }
    *slot = i;
    return ns->slots[i];
}

/* Splits [p, end) into lines at ns->lines + first and classifies them; returns the count. */
static size_t classify(cs_numstat *ns, size_t first, const char *p, const char *end, size_t mask,
                       size_t *nclasses, int side)
{
    size_t n = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl + 1 : end;
        uint32_t len = (uint32_t)(stop - p), id;
        uint64_t h = hash_line(p, len);
        size_t slot;
        line_class *c;

        if ((id = find_class(ns, mask, h, p, len, &slot)) == 0) {
            c = &ns->classes[*nclasses];
            c->hash = h;
            c->ptr = p;
            c->len = len;
            c->in_a = c->in_b = 0;
            id = (uint32_t)++ * nclasses;
            ns->slots[slot] = id;
            ns->length_filter[(len % LENGTH_FILTER) / 64] |= 1ULL << (len % 64);
        }
        c = &ns->classes[id - 1];
        if (side == 0)
            c->in_a++;
        else
            c->in_b++;
        ns->lines[first + n].ptr = p;
        ns->lines[first + n].len = len;
        ns->lines[first + n].cls = id - 1;
        n++;
        p = stop;
    }
    return n;
}

/* Adds the lines of [p, end), present in both files, to the counts of the middle's classes. */
static void count_shared(cs_numstat *ns, const char *p, const char *end, size_t mask)
{
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl + 1 : end;
        uint32_t len = (uint32_t)(stop - p), id;
        size_t slot;

        if (ns->length_filter[(len % LENGTH_FILTER) / 64] & (1ULL << (len % 64))) {
            if ((id = find_class(ns, mask, hash_line(p, len), p, len, &slot)) != 0) {
                ns->classes[id - 1].in_a++;
                ns->classes[id - 1].in_b++;
            }
        }
        p = stop;
    }
}

/* ---- xdl_cleanup_records ---- */

static long bogosqrt(long n)
{
    long i = 1;

    for (; n > 0; n >>= 2)
        i <<= 1;
    return i;
}

/* xdl_clean_mmatch: a line with many matches (dis 2) is dropped when it sits in a run of
 * no-match and many-match lines that is mostly no-match. */
static bool clean_mmatch(const char *dis, long i, long s, long e)
{
    long r, rdis0 = 0, rpdis0 = 1, rdis1 = 0, rpdis1 = 1;

    if (i - s > SIMSCAN_WINDOW)
        s = i - SIMSCAN_WINDOW;
    if (e - i > SIMSCAN_WINDOW)
        e = i + SIMSCAN_WINDOW;
    for (r = 1; i - r >= s; r++) {
        if (dis[i - r] == 0)
            rdis0++;
        else if (dis[i - r] == 2)
            rpdis0++;
        else
            break;
    }
    if (rdis0 == 0)
        return false;
    for (r = 1; i + r <= e; r++) {
        if (dis[i + r] == 0)
            rdis1++;
        else if (dis[i + r] == 2)
            rpdis1++;
        else
            break;
    }
    if (rdis1 == 0)
        return false;
    rdis1 += rdis0;
    rpdis1 += rpdis0;
    return rpdis1 * KPDIS_RUN < rpdis1 + rdis1;
}

/* Keeps the middle lines [first, first + n) worth diffing (their classes into ha) and returns
 * how many; the others are changed lines. other_a: the match count is the one in a. */
static long keep_lines(cs_numstat *ns, size_t first, size_t n, long nrec, bool other_a,
                       uint32_t *ha)
{
    long mlim = bogosqrt(nrec), kept = 0;

    if (mlim > MAX_EQLIMIT)
        mlim = MAX_EQLIMIT;
    for (size_t i = 0; i < n; i++) {
        const line_class *c = &ns->classes[ns->lines[first + i].cls];
        long nm = other_a ? c->in_a : c->in_b;
        ns->dis[i] = nm == 0 ? 0 : nm >= mlim ? 2 : 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (ns->dis[i] == 1 || (ns->dis[i] == 2 && !clean_mmatch(ns->dis, (long)i, 0, (long)n - 1)))
            ha[kept++] = ns->lines[first + i].cls;
    }
    return kept;
}

/* ---- xdl_split / xdl_recs_cmp ---- */

typedef struct {
    long i1, i2;
    int min_lo, min_hi;
} split_point;

typedef struct {
    const uint32_t *ha1, *ha2;
    long *kvdf, *kvdb;
    long mxcost;
} myers;

/* The heuristic of xdl_split: with a good snake past HEUR_MIN_COST, take a diagonal that got
 * far enough; returns true with spl set. */
static bool split_heuristic(const myers *m, long off1, long lim1, long off2, long lim2, long ec,
                            long fmin, long fmax, long bmin, long bmax, split_point *spl)
{
    long fmid = off1 - off2, bmid = lim1 - lim2, best = 0, d, k;

    for (d = fmax; d >= fmin; d -= 2) {
        long dd = d > fmid ? d - fmid : fmid - d, i1 = m->kvdf[d], i2 = i1 - d;
        long v = (i1 - off1) + (i2 - off2) - dd;
        if (v > K_HEUR * ec && v > best && off1 + SNAKE_CNT <= i1 && i1 < lim1 &&
            off2 + SNAKE_CNT <= i2 && i2 < lim2) {
            for (k = 1; m->ha1[i1 - k] == m->ha2[i2 - k]; k++) {
                if (k == SNAKE_CNT) {
                    best = v;
                    spl->i1 = i1;
                    spl->i2 = i2;
                    break;
                }
            }
        }
    }
    if (best > 0) {
        spl->min_lo = 1;
        spl->min_hi = 0;
        return true;
    }
    for (d = bmax; d >= bmin; d -= 2) {
        long dd = d > bmid ? d - bmid : bmid - d, i1 = m->kvdb[d], i2 = i1 - d;
        long v = (lim1 - i1) + (lim2 - i2) - dd;
        if (v > K_HEUR * ec && v > best && off1 < i1 && i1 <= lim1 - SNAKE_CNT && off2 < i2 &&
            i2 <= lim2 - SNAKE_CNT) {
            for (k = 0; m->ha1[i1 + k] == m->ha2[i2 + k]; k++) {
                if (k == SNAKE_CNT - 1) {
                    best = v;
                    spl->i1 = i1;
                    spl->i2 = i2;
                    break;
                }
            }
        }
    }
    if (best > 0) {
        spl->min_lo = 0;
        spl->min_hi = 1;
        return true;
    }
    return false;
}

/* "Enough is enough": past the cost limit, the furthest-reaching path of either direction. */
static void split_give_up(const myers *m, long off1, long lim1, long off2, long lim2, long fmin,
                          long fmax, long bmin, long bmax, split_point *spl)
{
    long fbest = -1, fbest1 = -1, bbest = LINE_MAX_, bbest1 = LINE_MAX_, d, i1, i2;

    for (d = fmax; d >= fmin; d -= 2) {
        i1 = m->kvdf[d] < lim1 ? m->kvdf[d] : lim1;
        i2 = i1 - d;
        if (lim2 < i2) {
            i1 = lim2 + d;
            i2 = lim2;
        }
        if (fbest < i1 + i2) {
            fbest = i1 + i2;
            fbest1 = i1;
        }
    }
    for (d = bmax; d >= bmin; d -= 2) {
        i1 = m->kvdb[d] > off1 ? m->kvdb[d] : off1;
        i2 = i1 - d;
        if (i2 < off2) {
            i1 = off2 + d;
            i2 = off2;
        }
        if (i1 + i2 < bbest) {
            bbest = i1 + i2;
            bbest1 = i1;
        }
    }
    if ((lim1 + lim2) - bbest < fbest - (off1 + off2)) {
        spl->i1 = fbest1;
        spl->i2 = fbest - fbest1;
        spl->min_lo = 1;
        spl->min_hi = 0;
    } else {
        spl->i1 = bbest1;
        spl->i2 = bbest - bbest1;
        spl->min_lo = 0;
        spl->min_hi = 1;
    }
}

/* xdl_split: the middle snake of the box, found from both ends at once. */
static void split(const myers *m, long off1, long lim1, long off2, long lim2, int need_min,
                  split_point *spl)
{
    const uint32_t *ha1 = m->ha1, *ha2 = m->ha2;
    long *kvdf = m->kvdf, *kvdb = m->kvdb;
    long dmin = off1 - lim2, dmax = lim1 - off2, fmid = off1 - off2, bmid = lim1 - lim2;
    long odd = (fmid - bmid) & 1, fmin = fmid, fmax = fmid, bmin = bmid, bmax = bmid;
    long ec, d, i1, i2, prev1;

    kvdf[fmid] = off1;
    kvdb[bmid] = lim1;
    for (ec = 1;; ec++) {
        bool got_snake = false;

        /* the diagonal domain grows by one each way, or shrinks at the box's edge */
        if (fmin > dmin)
            kvdf[--fmin - 1] = -1;
        else
            ++fmin;
        if (fmax < dmax)
            kvdf[++fmax + 1] = -1;
        else
            --fmax;
        for (d = fmax; d >= fmin; d -= 2) {
            i1 = kvdf[d - 1] >= kvdf[d + 1] ? kvdf[d - 1] + 1 : kvdf[d + 1];
            prev1 = i1;
            i2 = i1 - d;
            for (; i1 < lim1 && i2 < lim2 && ha1[i1] == ha2[i2]; i1++, i2++)
                ;
            if (i1 - prev1 > SNAKE_CNT)
                got_snake = true;
            kvdf[d] = i1;
            if (odd && bmin <= d && d <= bmax && kvdb[d] <= i1) {
                spl->i1 = i1;
                spl->i2 = i2;
                spl->min_lo = spl->min_hi = 1;
                return;
            }
        }
        if (bmin > dmin)
            kvdb[--bmin - 1] = LINE_MAX_;
        else
            ++bmin;
        if (bmax < dmax)
            kvdb[++bmax + 1] = LINE_MAX_;
        else
            --bmax;
        for (d = bmax; d >= bmin; d -= 2) {
            i1 = kvdb[d - 1] < kvdb[d + 1] ? kvdb[d - 1] : kvdb[d + 1] - 1;
            prev1 = i1;
            i2 = i1 - d;
            for (; i1 > off1 && i2 > off2 && ha1[i1 - 1] == ha2[i2 - 1]; i1--, i2--)
                ;
            if (prev1 - i1 > SNAKE_CNT)
                got_snake = true;
            kvdb[d] = i1;
            if (!odd && fmin <= d && d <= fmax && i1 <= kvdf[d]) {
                spl->i1 = i1;
                spl->i2 = i2;
                spl->min_lo = spl->min_hi = 1;
                return;
            }
        }
        if (need_min)
            continue;
        if (got_snake && ec > HEUR_MIN_COST &&
            split_heuristic(m, off1, lim1, off2, lim2, ec, fmin, fmax, bmin, bmax, spl))
            return;
        if (ec >= m->mxcost) {
            split_give_up(m, off1, lim1, off2, lim2, fmin, fmax, bmin, bmax, spl);
            return;
        }
    }
}

static int push(cs_numstat *ns, size_t *depth, long off1, long lim1, long off2, long lim2,
                int need_min)
{
    int rc = grow((void **)&ns->stack, &ns->stack_cap, *depth + 1, sizeof(frame));

    if (rc == 0)
        ns->stack[(*depth)++] = (frame){off1, lim1, off2, lim2, need_min};
    return rc;
}

/* xdl_recs_cmp with an explicit stack, in the recursion's order (low half first). */
static int compare(cs_numstat *ns, const myers *m, long n1, long n2, uint64_t *changed1,
                   uint64_t *changed2)
{
    size_t depth = 0;
    int rc = push(ns, &depth, 0, n1, 0, n2, 0);

    while (rc == 0 && depth > 0) {
        frame f = ns->stack[--depth];
        split_point spl = {0, 0, 0, 0};

        for (; f.off1 < f.lim1 && f.off2 < f.lim2 && m->ha1[f.off1] == m->ha2[f.off2];
             f.off1++, f.off2++)
            ;
        for (; f.off1 < f.lim1 && f.off2 < f.lim2 && m->ha1[f.lim1 - 1] == m->ha2[f.lim2 - 1];
             f.lim1--, f.lim2--)
            ;
        if (f.off1 == f.lim1 || f.off2 == f.lim2) {
            *changed1 += (uint64_t)(f.lim1 - f.off1);
            *changed2 += (uint64_t)(f.lim2 - f.off2);
            continue;
        }
        split(m, f.off1, f.lim1, f.off2, f.lim2, f.need_min, &spl);
        if ((rc = push(ns, &depth, spl.i1, f.lim1, spl.i2, f.lim2, spl.min_hi)) == 0)
            rc = push(ns, &depth, f.off1, spl.i1, f.off2, spl.i2, spl.min_lo);
    }
    return rc;
}

/* ---- the middle ---- */

/* Diffs the middles a[a0, a1) and b[b0, b1) (both non-empty) of files of n1 and n2 lines whose
 * common head is a[0, a0) and common tail a[a1, alen). */
static int diff_middle(cs_numstat *ns, const char *a, size_t a0, size_t a1, size_t alen,
                       const char *b, size_t b0, size_t b1, size_t n1, size_t n2, uint64_t *added,
                       uint64_t *deleted)
{
    size_t m1 = count_newlines(a + a0, a1 - a0) + 1, m2 = count_newlines(b + b0, b1 - b0) + 1;
    size_t nclasses = 0, slots = 64, mask, k1, k2;
    long kept1, kept2, ndiags;
    uint64_t changed1 = 0, changed2 = 0;
    myers m;
    int rc;

    while (slots < 2 * (m1 + m2))
        slots *= 2;
    mask = slots - 1;
    if ((rc = grow((void **)&ns->lines, &ns->lines_cap, m1 + m2, sizeof(line))) < 0 ||
        (rc = grow((void **)&ns->classes, &ns->classes_cap, m1 + m2, sizeof(line_class))) < 0 ||
        (rc = grow((void **)&ns->slots, &ns->slots_cap, slots, sizeof(uint32_t))) < 0 ||
        (rc = grow((void **)&ns->dis, &ns->dis_cap, m1 > m2 ? m1 : m2, 1)) < 0 ||
        (rc = grow((void **)&ns->ha, &ns->ha_cap, m1 + m2, sizeof(uint32_t))) < 0)
        return rc;
    memset(ns->slots, 0, slots * sizeof(uint32_t));
    memset(ns->length_filter, 0, sizeof(ns->length_filter));
    k1 = classify(ns, 0, a + a0, a + a1, mask, &nclasses, 0);
    k2 = classify(ns, k1, b + b0, b + b1, mask, &nclasses, 1);
    /* the middles end where the shared tail starts, which may leave a final newline-less part
     * uncounted by the +1 above: trust the split */
    m1 = k1;
    m2 = k2;
    count_shared(ns, a, a + a0, mask);
    count_shared(ns, a + a1, a + alen, mask);
    kept1 = keep_lines(ns, 0, m1, (long)n1, false, ns->ha);
    kept2 = keep_lines(ns, m1, m2, (long)n2, true, ns->ha + kept1);
    ndiags = kept1 + kept2 + 3;
    if ((rc = grow((void **)&ns->kvd, &ns->kvd_cap, 2 * (size_t)ndiags + 2, sizeof(long))) < 0)
        return rc;
    m.ha1 = ns->ha;
    m.ha2 = ns->ha + kept1;
    m.kvdf = ns->kvd + kept2 + 1;
    m.kvdb = m.kvdf + ndiags;
    m.mxcost = bogosqrt(ndiags);
    if (m.mxcost < MAX_COST_MIN)
        m.mxcost = MAX_COST_MIN;
    if ((rc = compare(ns, &m, kept1, kept2, &changed1, &changed2)) < 0)
        return rc;
    *deleted = (uint64_t)(m1 - (size_t)kept1) + changed1;
    *added = (uint64_t)(m2 - (size_t)kept2) + changed2;
    return 0;
}

/* ---- public ---- */

int cs_numstat_new(cs_numstat **out)
{
    if ((*out = calloc(1, sizeof(**out))) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory for the numstat scratch");
    return 0;
}

void cs_numstat_free(cs_numstat *ns)
{
    if (ns == NULL)
        return;
    free(ns->lines);
    free(ns->classes);
    free(ns->slots);
    free(ns->dis);
    free(ns->ha);
    free(ns->kvd);
    free(ns->stack);
    free(ns);
}

size_t cs_numstat_lines(const char *data, size_t len)
{
    if (len == 0)
        return 0;
    return count_newlines(data, len) + (data[len - 1] != '\n');
}

bool cs_numstat_is_binary(const char *data, size_t len)
{
    return memchr(data, '\0', len < BINARY_SNIFF ? len : BINARY_SNIFF) != NULL;
}

int cs_numstat_diff(cs_numstat *ns, const char *a, size_t alen, const char *b, size_t blen,
                    uint64_t *added, uint64_t *deleted)
{
    size_t n1, n2, shortest, head, tail, pre, suf, a0, a1, b1;

    *added = *deleted = 0;
    if (alen > CS_NUMSTAT_SIZE_MAX || blen > CS_NUMSTAT_SIZE_MAX)
        return fg_error_set(FG_ETOOBIG, "file too big to diff (%zu and %zu bytes)", alen, blen);
    n1 = cs_numstat_lines(a, alen);
    n2 = cs_numstat_lines(b, blen);
    shortest = alen < blen ? alen : blen;
    head = common_head(a, b, shortest);
    if (head == alen && head == blen)
        return 0;
    /* xdl_trim_ends, in bytes: the head lines are the newlines inside the common prefix */
    pre = count_newlines(a, head);
    tail = common_tail(a, alen, b, blen, shortest);
    suf = tail >= 2 ? count_newlines(a + alen - tail, tail - 1) : 0;
    if ((tail == alen || tail == blen) && tail > 0 &&
        (tail == alen || a[alen - tail - 1] == '\n') &&
        (tail == blen || b[blen - tail - 1] == '\n'))
        suf++;
    if (suf > (n1 < n2 ? n1 : n2) - pre)
        suf = (n1 < n2 ? n1 : n2) - pre;
    if (n1 - pre - suf == 0 || n2 - pre - suf == 0) {
        *deleted = n1 - pre - suf;
        *added = n2 - pre - suf;
        return 0;
    }
    /* both middles are non-empty, so the tail was not cut by the head: its first line starts
     * right at the tail or after the first newline in it */
    a0 = 0;
    if (pre > 0) {
        const char *last_nl = memrchr(a, '\n', head);
        a0 = (size_t)(last_nl - a) + 1;
    }
    if ((tail == alen || tail == blen) && tail > 0 &&
        (tail == alen || a[alen - tail - 1] == '\n') &&
        (tail == blen || b[blen - tail - 1] == '\n')) {
        a1 = alen - tail;
    } else {
        const char *nl = tail > 0 ? memchr(a + alen - tail, '\n', tail) : NULL;
        a1 = nl != NULL && (size_t)(nl - a) + 1 < alen ? (size_t)(nl - a) + 1 : alen;
    }
    b1 = blen - (alen - a1);
    return diff_middle(ns, a, a0, a1, alen, b, a0, b1, n1, n2, added, deleted);
}

/*
 * Prometheus metrics registry (see fg/metrics.h).
 *
 * Structure (families, series) changes only under the registry mutex and is never shrunk, so a
 * series pointer handed out stays valid without a lock. Values are doubles kept as their bit
 * patterns in 64-bit atomics: C11 has no atomic add for double, so additions are a
 * compare-and-swap loop. Histogram buckets count per bucket (not cumulatively) and the render
 * sums them, so _count always equals the +Inf bucket even while other threads observe.
 */
#include "fg/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for the rendered label pairs of one series (names, escaped values, quotes, commas). */
#define LABELS_TEXT_MAX                                                                            \
    (FG_METRICS_LABELS_MAX * (FG_METRICS_NAME_MAX + 2 * FG_METRICS_LABEL_VALUE_MAX + 4))

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind;

typedef struct family family;

struct fg_metric {
    const family *family;
    char *labels;             /* rendered `a="x",b="y"`; "" without labels */
    _Atomic uint64_t value;   /* double bits: counter or gauge value, histogram sum */
    _Atomic uint64_t *counts; /* histogram only: per bucket, nbounds + 1 (the last is +Inf) */
};

struct family {
    char *name;
    char *help;
    metric_kind kind;
    char *label_names[FG_METRICS_LABELS_MAX];
    size_t nlabels;
    double bounds[FG_METRICS_BUCKETS_MAX];
    size_t nbounds;
    fg_metric *series[FG_METRICS_SERIES_MAX];
    size_t nseries;
};

struct fg_metrics {
    pthread_mutex_t lock;
    family *families[FG_METRICS_FAMILIES_MAX];
    size_t nfamilies;
};

static const double default_bounds[] = {.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

/* ---- atomic doubles ---------------------------------------------------------------------- */

static double bits_to_double(uint64_t bits)
{
    double d;

    memcpy(&d, &bits, sizeof(d));
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t bits;

    memcpy(&bits, &d, sizeof(bits));
    return bits;
}

static double atomic_double_load(_Atomic uint64_t *p)
{
    return bits_to_double(atomic_load_explicit(p, memory_order_relaxed));
}

static void atomic_double_add(_Atomic uint64_t *p, double amount)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);

    while (!atomic_compare_exchange_weak_explicit(p, &old,
                                                  double_to_bits(bits_to_double(old) + amount),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* ---- names, labels, values --------------------------------------------------------------- */

static bool name_char_ok(char c, bool first, bool colon)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return true;
    if (c == ':')
        return colon;
    return !first && c >= '0' && c <= '9';
}

/* Metric names may contain ':' (recording rules), label names may not; "__" is reserved. */
static int check_name(const char *name, bool metric)
{
    size_t i, len = name != NULL ? strlen(name) : 0;

    if (len == 0 || len > FG_METRICS_NAME_MAX)
        return fg_error_set(FG_EINVALID, "metric or label name empty or over %d bytes",
                            FG_METRICS_NAME_MAX);
    for (i = 0; i < len; i++)
        if (!name_char_ok(name[i], i == 0, metric))
            return fg_error_set(FG_EINVALID, "bad %s name \"%.*s\"", metric ? "metric" : "label",
                                FG_METRICS_NAME_MAX, name);
    if (!metric && strncmp(name, "__", 2) == 0)
        return fg_error_set(FG_EINVALID, "label name \"%s\" uses the reserved prefix __", name);
    return 0;
}

/* Escapes as the text format asks: backslash and newline always, the double quote in label
 * values only (HELP text keeps its quotes). */
static int put_escaped(fg_buf *out, const char *s, bool quote)
{
    int rc = 0;

    for (; *s != '\0' && rc == 0; s++) {
        if (*s == '\\')
            rc = fg_buf_puts(out, "\\\\");
        else if (*s == '\n')
            rc = fg_buf_puts(out, "\\n");
        else if (*s == '"' && quote)
            rc = fg_buf_puts(out, "\\\"");
        else
            rc = fg_buf_putc(out, *s);
    }
    return rc;
}

static int render_labels(fg_buf *out, const char *const *labels, size_t *out_count,
                         metric_kind kind)
{
    size_t n;
    int rc = 0;

    for (n = 0; labels != NULL && labels[2 * n] != NULL && rc == 0; n++) {
        const char *key = labels[2 * n], *value = labels[2 * n + 1];

        if (n == FG_METRICS_LABELS_MAX)
            return fg_error_set(FG_EINVALID, "more than %d labels", FG_METRICS_LABELS_MAX);
        if (value == NULL)
            return fg_error_set(FG_EINVALID, "label \"%.*s\" has no value", FG_METRICS_NAME_MAX,
                                key);
        if ((rc = check_name(key, false)) < 0)
            return rc;
        if (kind == KIND_HISTOGRAM && strcmp(key, "le") == 0)
            return fg_error_set(FG_EINVALID, "label name \"le\" is reserved in a histogram");
        if (strlen(value) > FG_METRICS_LABEL_VALUE_MAX)
            return fg_error_set(FG_EINVALID, "value of label \"%s\" over %d bytes", key,
                                FG_METRICS_LABEL_VALUE_MAX);
        if (n > 0 && (rc = fg_buf_putc(out, ',')) < 0)
            return rc;
        if ((rc = fg_buf_printf(out, "%s=\"", key)) == 0 &&
            (rc = put_escaped(out, value, true)) == 0)
            rc = fg_buf_putc(out, '"');
    }
    *out_count = n;
    return rc;
}

/* Integral values print as integers (counts stay readable); others in the shortest %g form that
 * reads back as the same double, like the Go client's FormatFloat(v, 'g', -1). */
static int put_double(fg_buf *out, double v)
{
    char tmp[40];
    int precision;

    if (isnan(v))
        return fg_buf_puts(out, "NaN");
    if (isinf(v))
        return fg_buf_puts(out, v > 0 ? "+Inf" : "-Inf");
    if (v > -9007199254740992.0 && v < 9007199254740992.0 && (double)(int64_t)v == v)
        return fg_buf_printf(out, "%lld", (long long)(int64_t)v);
    for (precision = 1; precision <= 17; precision++) {
        char *end = NULL;

        snprintf(tmp, sizeof(tmp), "%.*g", precision, v);
        if (strtod(tmp, &end) == v && *end == '\0')
            break;
    }
    return fg_buf_puts(out, tmp);
}

/* ---- families and series (registry lock held) --------------------------------------------- */

static void series_free(fg_metric *m)
{
    if (m == NULL)
        return;
    free(m->labels);
    free((void *)m->counts);
    free(m);
}

static void family_free(family *fam)
{
    size_t i;

    if (fam == NULL)
        return;
    for (i = 0; i < fam->nseries; i++)
        series_free(fam->series[i]);
    for (i = 0; i < fam->nlabels; i++)
        free(fam->label_names[i]);
    free(fam->name);
    free(fam->help);
    free(fam);
}

static family *family_find(const fg_metrics *reg, const char *name)
{
    size_t i;

    for (i = 0; i < reg->nfamilies; i++)
        if (strcmp(reg->families[i]->name, name) == 0)
            return reg->families[i];
    return NULL;
}

static int family_new(family **out, fg_metrics *reg, metric_kind kind, const char *name,
                      const char *help, const char *const *labels, size_t nlabels,
                      const double *bounds, size_t nbounds)
{
    family *fam = NULL;
    size_t i;
    int rc = FG_ENOMEM;

    if (reg->nfamilies == FG_METRICS_FAMILIES_MAX) {
        rc = fg_error_set(FG_ETOOBIG, "more than %d metric families", FG_METRICS_FAMILIES_MAX);
        goto done;
    }
    if ((fam = calloc(1, sizeof(*fam))) == NULL)
        goto done;
    fam->kind = kind;
    fam->name = strdup(name);
    fam->help = strndup(help != NULL ? help : "", FG_METRICS_HELP_MAX);
    if (fam->name == NULL || fam->help == NULL)
        goto done;
    for (i = 0; i < nlabels; i++, fam->nlabels++)
        if ((fam->label_names[i] = strdup(labels[2 * i])) == NULL)
            goto done;
    if (kind == KIND_HISTOGRAM) {
        memcpy(fam->bounds, bounds, nbounds * sizeof(*bounds));
        fam->nbounds = nbounds;
    }
    reg->families[reg->nfamilies++] = fam;
    *out = fam;
    fam = NULL;
    rc = 0;
done:
    if (rc == FG_ENOMEM)
        fg_error_set(rc, "out of memory creating metric %s", name);
    family_free(fam);
    return rc;
}

static int family_check(const family *fam, metric_kind kind, const char *const *labels,
                        size_t nlabels, const double *bounds, size_t nbounds, bool bounds_given)
{
    size_t i;

    if (fam->kind != kind)
        return fg_error_set(FG_ECONFLICT, "metric %s is a %s, not a %s", fam->name,
                            kind_names[fam->kind], kind_names[kind]);
    if (nlabels != fam->nlabels)
        return fg_error_set(FG_EINVALID, "metric %s takes %zu labels, not %zu", fam->name,
                            fam->nlabels, nlabels);
    for (i = 0; i < nlabels; i++)
        if (strcmp(labels[2 * i], fam->label_names[i]) != 0)
            return fg_error_set(FG_EINVALID, "metric %s: label %zu is %s, not %s", fam->name, i,
                                fam->label_names[i], labels[2 * i]);
    if (bounds_given &&
        (nbounds != fam->nbounds || memcmp(bounds, fam->bounds, nbounds * sizeof(*bounds)) != 0))
        return fg_error_set(FG_ECONFLICT, "histogram %s exists with other buckets", fam->name);
    return 0;
}

static int series_get(fg_metric **out, family *fam, const char *key)
{
    fg_metric *m = NULL;
    size_t i;
    int rc = FG_ENOMEM;

    for (i = 0; i < fam->nseries; i++) {
        if (strcmp(fam->series[i]->labels, key) == 0) {
            *out = fam->series[i];
            return 0;
        }
    }
    if (fam->nseries == FG_METRICS_SERIES_MAX)
        return fg_error_set(FG_ETOOBIG, "metric %s has %d label sets already", fam->name,
                            FG_METRICS_SERIES_MAX);
    if ((m = calloc(1, sizeof(*m))) == NULL || (m->labels = strdup(key)) == NULL)
        goto done;
    if (fam->kind == KIND_HISTOGRAM &&
        (m->counts = calloc(fam->nbounds + 1, sizeof(*m->counts))) == NULL)
        goto done;
    m->family = fam;
    atomic_init(&m->value, double_to_bits(0.0));
    fam->series[fam->nseries++] = m;
    *out = m;
    m = NULL;
    rc = 0;
done:
    if (rc < 0)
        fg_error_set(rc, "out of memory creating a series of metric %s", fam->name);
    series_free(m);
    return rc;
}

static int check_bounds(const double *bounds, size_t n)
{
    size_t i;

    if (n == 0 || n > FG_METRICS_BUCKETS_MAX)
        return fg_error_set(FG_EINVALID, "a histogram takes 1 to %d bucket bounds, not %zu",
                            FG_METRICS_BUCKETS_MAX, n);
    for (i = 0; i < n; i++) {
        if (!isfinite(bounds[i]))
            return fg_error_set(FG_EINVALID, "histogram bucket bounds must be finite");
        if (i > 0 && bounds[i] <= bounds[i - 1])
            return fg_error_set(FG_EINVALID, "histogram bucket bounds must increase strictly");
    }
    return 0;
}

static int lookup(fg_metric **out, fg_metrics *reg, metric_kind kind, const char *name,
                  const char *help, const char *const *labels, const double *bounds, size_t nbounds)
{
    fg_buf key;
    family *fam;
    size_t nlabels = 0;
    bool locked = false, bounds_given = bounds != NULL;
    int rc;

    *out = NULL;
    fg_buf_init(&key, LABELS_TEXT_MAX);
    if ((rc = check_name(name, true)) < 0)
        goto done;
    if ((rc = render_labels(&key, labels, &nlabels, kind)) < 0)
        goto done;
    if (kind == KIND_HISTOGRAM && bounds_given && (rc = check_bounds(bounds, nbounds)) < 0)
        goto done;
    if (!bounds_given) {
        bounds = default_bounds;
        nbounds = sizeof(default_bounds) / sizeof(default_bounds[0]);
    }
    pthread_mutex_lock(&reg->lock);
    locked = true;
    if ((fam = family_find(reg, name)) != NULL)
        rc = family_check(fam, kind, labels, nlabels, bounds, nbounds, bounds_given);
    else
        rc = family_new(&fam, reg, kind, name, help, labels, nlabels, bounds, nbounds);
    if (rc < 0)
        goto done;
    if ((rc = series_get(out, fam, key.ptr)) < 0)
        goto done;
    rc = 0;
done:
    if (locked)
        pthread_mutex_unlock(&reg->lock);
    fg_buf_dispose(&key);
    return rc;
}

/* ---- public: registry -------------------------------------------------------------------- */

int fg_metrics_new(fg_metrics **out)
{
    fg_metrics *reg = calloc(1, sizeof(*reg));

    *out = NULL;
    if (reg == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory creating a metrics registry");
    if (pthread_mutex_init(&reg->lock, NULL) != 0) {
        free(reg);
        return fg_error_set(FG_ERROR, "cannot create the metrics registry's mutex");
    }
    *out = reg;
    return 0;
}

void fg_metrics_free(fg_metrics *reg)
{
    size_t i;

    if (reg == NULL)
        return;
    for (i = 0; i < reg->nfamilies; i++)
        family_free(reg->families[i]);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

int fg_metrics_counter(fg_metric **out, fg_metrics *reg, const char *name, const char *help,
                       const char *const *labels)
{
    return lookup(out, reg, KIND_COUNTER, name, help, labels, NULL, 0);
}

int fg_metrics_gauge(fg_metric **out, fg_metrics *reg, const char *name, const char *help,
                     const char *const *labels)
{
    return lookup(out, reg, KIND_GAUGE, name, help, labels, NULL, 0);
}

int fg_metrics_histogram(fg_metric **out, fg_metrics *reg, const char *name, const char *help,
                         const char *const *labels, const double *buckets, size_t nbuckets)
{
    return lookup(out, reg, KIND_HISTOGRAM, name, help, labels, buckets, nbuckets);
}

/* ---- public: updates --------------------------------------------------------------------- */

void fg_metric_inc(fg_metric *m)
{
    fg_metric_add(m, 1.0);
}

void fg_metric_add(fg_metric *m, double amount)
{
    if (m == NULL || m->family->kind == KIND_HISTOGRAM || isnan(amount))
        return;
    if (m->family->kind == KIND_COUNTER && amount < 0)
        return;
    atomic_double_add(&m->value, amount);
}

void fg_metric_set(fg_metric *m, double value)
{
    if (m == NULL || m->family->kind != KIND_GAUGE)
        return;
    atomic_store_explicit(&m->value, double_to_bits(value), memory_order_relaxed);
}

void fg_metric_observe(fg_metric *m, double value)
{
    const family *fam;
    size_t i = 0;

    if (m == NULL || m->family->kind != KIND_HISTOGRAM || isnan(value))
        return;
    fam = m->family;
    while (i < fam->nbounds && value > fam->bounds[i])
        i++;
    atomic_fetch_add_explicit(&m->counts[i], 1, memory_order_relaxed);
    atomic_double_add(&m->value, value);
}

static uint64_t histogram_count(fg_metric *m)
{
    uint64_t total = 0;
    size_t i;

    for (i = 0; i <= m->family->nbounds; i++)
        total += atomic_load_explicit(&m->counts[i], memory_order_relaxed);
    return total;
}

double fg_metric_value(const fg_metric *m)
{
    fg_metric *mut = (fg_metric *)m; /* atomic loads want a non-const object */

    if (m == NULL)
        return 0;
    if (m->family->kind == KIND_HISTOGRAM)
        return (double)histogram_count(mut);
    return atomic_double_load(&mut->value);
}

/* ---- public: render ---------------------------------------------------------------------- */

/* One sample line: name[suffix]{labels[,extra]} value */
static int put_sample(fg_buf *out, const family *fam, const char *suffix, const fg_metric *m,
                      const char *extra, double value)
{
    int rc;
    bool braces = m->labels[0] != '\0' || extra != NULL;

    if ((rc = fg_buf_printf(out, "%s%s", fam->name, suffix)) < 0)
        return rc;
    if (braces && (rc = fg_buf_printf(out, "{%s%s%s}", m->labels,
                                      m->labels[0] != '\0' && extra != NULL ? "," : "",
                                      extra != NULL ? extra : "")) < 0)
        return rc;
    if ((rc = fg_buf_putc(out, ' ')) < 0 || (rc = put_double(out, value)) < 0)
        return rc;
    return fg_buf_putc(out, '\n');
}

static int render_histogram(fg_buf *out, const family *fam, fg_metric *m)
{
    fg_buf le;
    uint64_t cumulative = 0;
    size_t i;
    int rc = 0;

    fg_buf_init(&le, 64);
    for (i = 0; i <= fam->nbounds && rc == 0; i++) {
        cumulative += atomic_load_explicit(&m->counts[i], memory_order_relaxed);
        fg_buf_clear(&le);
        if ((rc = fg_buf_puts(&le, "le=\"")) < 0)
            break;
        rc = i < fam->nbounds ? put_double(&le, fam->bounds[i]) : fg_buf_puts(&le, "+Inf");
        if (rc == 0 && (rc = fg_buf_putc(&le, '"')) == 0)
            rc = put_sample(out, fam, "_bucket", m, le.ptr, (double)cumulative);
    }
    if (rc == 0 && (rc = put_sample(out, fam, "_sum", m, NULL, atomic_double_load(&m->value))) == 0)
        rc = put_sample(out, fam, "_count", m, NULL, (double)cumulative);
    fg_buf_dispose(&le);
    return rc;
}

static int render_family(fg_buf *out, const family *fam)
{
    size_t i;
    int rc;

    if ((rc = fg_buf_printf(out, "# HELP %s ", fam->name)) < 0 ||
        (rc = put_escaped(out, fam->help, false)) < 0 ||
        (rc = fg_buf_printf(out, "\n# TYPE %s %s\n", fam->name, kind_names[fam->kind])) < 0)
        return rc;
    for (i = 0; i < fam->nseries && rc == 0; i++) {
        fg_metric *m = fam->series[i];

        if (fam->kind == KIND_HISTOGRAM)
            rc = render_histogram(out, fam, m);
        else
            rc = put_sample(out, fam, "", m, NULL, atomic_double_load(&m->value));
    }
    return rc;
}

int fg_metrics_render(fg_metrics *reg, fg_buf *out)
{
    size_t i;
    int rc = 0;

    pthread_mutex_lock(&reg->lock);
    for (i = 0; i < reg->nfamilies && rc == 0; i++)
        rc = render_family(out, reg->families[i]);
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

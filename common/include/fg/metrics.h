/*
 * A Prometheus metrics registry: counters, gauges and histograms, each a family with optional
 * labels whose label sets (series) are created on demand, rendered in the text exposition
 * format 0.0.4. It does not serve HTTP (fg/http_server.h does) and does not push anywhere.
 * The registry owns every family and series; an fg_metric pointer stays valid until
 * fg_metrics_free. Thread-safe: creation and rendering take the registry's mutex, updates are
 * lock-free atomics, so a bus thread may update while the HTTP thread renders.
 */
#ifndef FG_METRICS_H
#define FG_METRICS_H

#include <stddef.h>

#include "fg/buf.h"
#include "fg/error.h"

#define FG_METRICS_FAMILIES_MAX    128 /* families in one registry */
#define FG_METRICS_SERIES_MAX      256 /* label sets in one family */
#define FG_METRICS_LABELS_MAX      8   /* label pairs in one series */
#define FG_METRICS_BUCKETS_MAX     32  /* finite histogram bucket bounds */
#define FG_METRICS_NAME_MAX        128 /* metric and label name length */
#define FG_METRICS_LABEL_VALUE_MAX 256 /* label value length in bytes */
#define FG_METRICS_HELP_MAX        512 /* help text length in bytes */

typedef struct fg_metrics fg_metrics;
typedef struct fg_metric fg_metric;

/* Label pairs for the constructors: FG_METRIC_LABELS("route", "/health", "status", "200"). */
#define FG_METRIC_LABELS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Creates an empty registry. FG_ENOMEM when allocation fails. */
int fg_metrics_new(fg_metrics **out) FG_MUST_CHECK;

/* Frees the registry with every family and series; accepts NULL. No thread may still use it. */
void fg_metrics_free(fg_metrics *reg);

/*
 * Returns in *out the series of counter family `name` with the given labels, creating the family
 * (with `help`) and the series on first use; later calls with the same labels return the same
 * pointer. `labels` is NULL or a NULL-terminated array of name, value, name, value...; every
 * series of a family must use the same label names in the same order. Values are copied and
 * escaped on output, so any UTF-8 text is safe.
 * FG_EINVALID: bad metric or label name, odd label array, different label names than the
 * family's, a value over FG_METRICS_LABEL_VALUE_MAX. FG_ECONFLICT: `name` exists with another
 * type. FG_ETOOBIG: FG_METRICS_FAMILIES_MAX or FG_METRICS_SERIES_MAX reached. FG_ENOMEM.
 */
int fg_metrics_counter(fg_metric **out, fg_metrics *reg, const char *name, const char *help,
                       const char *const *labels) FG_MUST_CHECK;

/* As fg_metrics_counter, for a gauge. */
int fg_metrics_gauge(fg_metric **out, fg_metrics *reg, const char *name, const char *help,
                     const char *const *labels) FG_MUST_CHECK;

/*
 * As fg_metrics_counter, for a histogram with the given finite upper bounds (strictly
 * increasing, at most FG_METRICS_BUCKETS_MAX; +Inf is implicit). buckets == NULL takes the
 * family's bounds, or Prometheus' defaults (.005 .01 .025 .05 .1 .25 .5 1 2.5 5 10) for a new
 * family. FG_EINVALID for unordered or non-finite bounds; FG_ECONFLICT when given bounds differ
 * from those of the existing family; otherwise as fg_metrics_counter.
 */
int fg_metrics_histogram(fg_metric **out, fg_metrics *reg, const char *name, const char *help,
                         const char *const *labels, const double *buckets,
                         size_t nbuckets) FG_MUST_CHECK;

/*
 * Updates; safe from any thread, lock-free. A NULL metric is ignored (so a failed lookup never
 * breaks the caller), as is a call that does not fit the type: inc/add on a counter or gauge
 * (a counter ignores negative and NaN amounts), set on a gauge, observe on a histogram.
 */
void fg_metric_inc(fg_metric *m);
void fg_metric_add(fg_metric *m, double amount);
void fg_metric_set(fg_metric *m, double value);
void fg_metric_observe(fg_metric *m, double value);

/* The current value of a counter or gauge, or the observation count of a histogram (tests and
 * status pages read this). 0 for NULL. */
double fg_metric_value(const fg_metric *m);

/*
 * Appends the whole registry to `out` in the Prometheus text format 0.0.4: families in creation
 * order, each with # HELP and # TYPE, series in creation order; histograms as cumulative
 * _bucket{le=...} lines ending with le="+Inf", then _sum and _count. Integral values print
 * without a fraction, others in the shortest form that reads back exactly.
 * FG_ETOOBIG when `out`'s cap is reached (out then holds a truncated text), FG_ENOMEM.
 */
int fg_metrics_render(fg_metrics *reg, fg_buf *out) FG_MUST_CHECK;

#endif

/* fg_metrics: the exact Prometheus text of a small registry, value formatting, label rules and
 * limits, and updates from several threads adding up while another thread renders. */
#include "test_support.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "fg/metrics.h"

#define THREAD_UPDATES 100000

static void test_metrics__renders_exact_text_format(void **state)
{
    static const double bounds[] = {0.1, 1, 2.5};
    const char *expected =
        "# HELP fg_events_total Events seen.\\nBy \"status\", with a \\\\ backslash.\n"
        "# TYPE fg_events_total counter\n"
        "fg_events_total{status=\"NEW\"} 2\n"
        "fg_events_total{status=\"a\\\"b\\\\c\\nd\"} 1.5\n"
        "# HELP fg_queue_depth Messages waiting.\n"
        "# TYPE fg_queue_depth gauge\n"
        "fg_queue_depth 3.25\n"
        "# HELP fg_latency_seconds Time to answer.\n"
        "# TYPE fg_latency_seconds histogram\n"
        "fg_latency_seconds_bucket{route=\"/x\",method=\"GET\",le=\"0.1\"} 1\n"
        "fg_latency_seconds_bucket{route=\"/x\",method=\"GET\",le=\"1\"} 3\n"
        "fg_latency_seconds_bucket{route=\"/x\",method=\"GET\",le=\"2.5\"} 3\n"
        "fg_latency_seconds_bucket{route=\"/x\",method=\"GET\",le=\"+Inf\"} 4\n"
        "fg_latency_seconds_sum{route=\"/x\",method=\"GET\"} 4.5625\n"
        "fg_latency_seconds_count{route=\"/x\",method=\"GET\"} 4\n";
    fg_metrics *reg = NULL;
    fg_metric *news = NULL, *odd = NULL, *depth = NULL, *latency = NULL;
    fg_buf out;
    (void)state;

    fg_buf_init(&out, 1 << 16);
    assert_int_equal(fg_metrics_new(&reg), 0);
    assert_int_equal(fg_metrics_counter(&news, reg, "fg_events_total",
                                        "Events seen.\nBy \"status\", with a \\ backslash.",
                                        FG_METRIC_LABELS("status", "NEW")),
                     0);
    assert_int_equal(fg_metrics_counter(&odd, reg, "fg_events_total", "ignored the second time",
                                        FG_METRIC_LABELS("status", "a\"b\\c\nd")),
                     0);
    assert_int_equal(fg_metrics_gauge(&depth, reg, "fg_queue_depth", "Messages waiting.", NULL), 0);
    assert_int_equal(fg_metrics_histogram(&latency, reg, "fg_latency_seconds", "Time to answer.",
                                          FG_METRIC_LABELS("route", "/x", "method", "GET"), bounds,
                                          3),
                     0);
    fg_metric_inc(news);
    fg_metric_inc(news);
    fg_metric_add(odd, 1.5);
    fg_metric_set(depth, 1);
    fg_metric_add(depth, 2.25);
    fg_metric_observe(latency, 0.0625); /* binary-exact values keep the sum exact */
    fg_metric_observe(latency, 0.5);
    fg_metric_observe(latency, 1); /* on a bound: counted in that bucket (le is <=) */
    fg_metric_observe(latency, 2.5 + 0.5);
    assert_int_equal(fg_metrics_render(reg, &out), 0);
    assert_string_equal(out.ptr, expected);
    fg_buf_dispose(&out);
    fg_metrics_free(reg);
}

static void test_metrics__formats_values_and_default_buckets(void **state)
{
    fg_metrics *reg = NULL;
    fg_metric *g = NULL, *h = NULL;
    fg_buf out;
    (void)state;

    fg_buf_init(&out, 1 << 16);
    assert_int_equal(fg_metrics_new(&reg), 0);
    assert_int_equal(fg_metrics_histogram(&h, reg, "h_seconds", "", NULL, NULL, 0), 0);
    fg_metric_observe(h, 12);
    assert_int_equal(fg_metrics_render(reg, &out), 0);
    assert_non_null(strstr(out.ptr, "# HELP h_seconds \n# TYPE h_seconds histogram\n"
                                    "h_seconds_bucket{le=\"0.005\"} 0\n"
                                    "h_seconds_bucket{le=\"0.01\"} 0\n"));
    assert_non_null(strstr(out.ptr, "h_seconds_bucket{le=\"10\"} 0\n"
                                    "h_seconds_bucket{le=\"+Inf\"} 1\n"
                                    "h_seconds_sum 12\nh_seconds_count 1\n"));

    {
        static const struct {
            double value;
            const char *text;
        } cases[] = {{0.1, "g 0.1\n"},
                     {-3, "g -3\n"},
                     {1e-7, "g 1e-07\n"},
                     {1e21, "g 1e+21\n"},
                     {123456789, "g 123456789\n"},
                     {1.0 / 3, "g 0.3333333333333333\n"},
                     {NAN, "g NaN\n"},
                     {INFINITY, "g +Inf\n"},
                     {-INFINITY, "g -Inf\n"}};
        assert_int_equal(fg_metrics_gauge(&g, reg, "g", "", NULL), 0);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            fg_metric_set(g, cases[i].value);
            fg_buf_clear(&out);
            assert_int_equal(fg_metrics_render(reg, &out), 0);
            assert_non_null(strstr(out.ptr, cases[i].text));
        }
    }
    fg_buf_dispose(&out);
    fg_metrics_free(reg);
}

static void test_metrics__same_labels_same_series(void **state)
{
    fg_metrics *reg = NULL;
    fg_metric *a = NULL, *b = NULL, *c = NULL;
    (void)state;

    assert_int_equal(fg_metrics_new(&reg), 0);
    assert_int_equal(fg_metrics_counter(&a, reg, "c_total", "", FG_METRIC_LABELS("k", "1")), 0);
    assert_int_equal(fg_metrics_counter(&b, reg, "c_total", "", FG_METRIC_LABELS("k", "1")), 0);
    assert_int_equal(fg_metrics_counter(&c, reg, "c_total", "", FG_METRIC_LABELS("k", "2")), 0);
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    fg_metric_add(a, -5); /* a counter never goes down */
    fg_metric_set(a, 7);  /* nor is it set */
    fg_metric_observe(a, 1);
    fg_metric_inc(b);
    fg_metric_inc(NULL);
    assert_true(fg_metric_value(a) == 1.0);
    assert_true(fg_metric_value(c) == 0.0);
    fg_metrics_free(reg);
}

static void test_metrics__refuses_bad_names_labels_and_types(void **state)
{
    static const double unordered[] = {1, 0.5}, other[] = {1, 2};
    fg_metrics *reg = NULL;
    fg_metric *m = NULL;
    (void)state;

    assert_int_equal(fg_metrics_new(&reg), 0);
    assert_int_equal(fg_metrics_counter(&m, reg, "9bad", "", NULL), FG_EINVALID);
    assert_null(m);
    assert_int_equal(fg_metrics_counter(&m, reg, "bad-name", "", NULL), FG_EINVALID);
    assert_int_equal(fg_metrics_counter(&m, reg, "ok", "", FG_METRIC_LABELS("bad-label", "x")),
                     FG_EINVALID);
    assert_int_equal(fg_metrics_counter(&m, reg, "ok", "", FG_METRIC_LABELS("__reserved", "x")),
                     FG_EINVALID);
    assert_int_equal(fg_metrics_counter(&m, reg, "ok", "", FG_METRIC_LABELS("odd")), FG_EINVALID);
    assert_int_equal(fg_metrics_histogram(&m, reg, "h", "", FG_METRIC_LABELS("le", "1"), NULL, 0),
                     FG_EINVALID);
    assert_int_equal(fg_metrics_histogram(&m, reg, "h", "", NULL, unordered, 2), FG_EINVALID);

    assert_int_equal(fg_metrics_counter(&m, reg, "ok", "", FG_METRIC_LABELS("a", "x")), 0);
    assert_int_equal(fg_metrics_gauge(&m, reg, "ok", "", FG_METRIC_LABELS("a", "x")), FG_ECONFLICT);
    assert_int_equal(fg_metrics_counter(&m, reg, "ok", "", FG_METRIC_LABELS("b", "x")),
                     FG_EINVALID);
    assert_int_equal(fg_metrics_counter(&m, reg, "ok", "", NULL), FG_EINVALID);
    assert_int_equal(fg_metrics_histogram(&m, reg, "h", "", NULL, other, 2), 0);
    assert_int_equal(fg_metrics_histogram(&m, reg, "h", "", NULL, NULL, 0), 0);
    assert_int_equal(fg_metrics_histogram(&m, reg, "h", "", NULL, unordered + 1, 1), FG_ECONFLICT);
    fg_metrics_free(reg);
}

static void test_metrics__bounds_label_sets_per_family(void **state)
{
    fg_metrics *reg = NULL;
    fg_metric *m = NULL;
    char value[16];
    (void)state;

    assert_int_equal(fg_metrics_new(&reg), 0);
    for (int i = 0; i < FG_METRICS_SERIES_MAX; i++) {
        snprintf(value, sizeof(value), "%d", i);
        assert_int_equal(fg_metrics_counter(&m, reg, "c_total", "", FG_METRIC_LABELS("i", value)),
                         0);
    }
    assert_int_equal(fg_metrics_counter(&m, reg, "c_total", "", FG_METRIC_LABELS("i", "new")),
                     FG_ETOOBIG);
    assert_null(m);
    /* an existing set is still found */
    assert_int_equal(fg_metrics_counter(&m, reg, "c_total", "", FG_METRIC_LABELS("i", "7")), 0);
    fg_metrics_free(reg);
}

static void test_metrics__render_respects_buffer_cap(void **state)
{
    fg_metrics *reg = NULL;
    fg_metric *m = NULL;
    fg_buf out;
    (void)state;

    fg_buf_init(&out, 16);
    assert_int_equal(fg_metrics_new(&reg), 0);
    assert_int_equal(fg_metrics_counter(&m, reg, "a_rather_long_name_total", "help", NULL), 0);
    assert_int_equal(fg_metrics_render(reg, &out), FG_ETOOBIG);
    fg_buf_dispose(&out);
    fg_metrics_free(reg);
}

typedef struct {
    fg_metrics *reg;
    const char *who;
    atomic_int failures;
} updater;

static void *update_many(void *arg)
{
    updater *u = arg;
    fg_metric *total = NULL, *mine = NULL, *latency = NULL, *depth = NULL;

    /* both threads create the shared series concurrently, each also its own */
    if (fg_metrics_counter(&total, u->reg, "t_total", "", FG_METRIC_LABELS("k", "shared")) < 0 ||
        fg_metrics_counter(&mine, u->reg, "t_total", "", FG_METRIC_LABELS("k", u->who)) < 0 ||
        fg_metrics_histogram(&latency, u->reg, "t_seconds", "", NULL, NULL, 0) < 0 ||
        fg_metrics_gauge(&depth, u->reg, "t_depth", "", NULL) < 0) {
        atomic_fetch_add(&u->failures, 1);
        return NULL;
    }
    for (int i = 0; i < THREAD_UPDATES; i++) {
        fg_metric_inc(total);
        fg_metric_inc(mine);
        fg_metric_observe(latency, 0.5);
        fg_metric_add(depth, 0.25);
    }
    return NULL;
}

static void test_metrics__concurrent_updates_add_up(void **state)
{
    fg_metrics *reg = NULL;
    pthread_t t1, t2;
    updater u1, u2;
    fg_buf out;
    char expected[128];
    (void)state;

    assert_int_equal(fg_metrics_new(&reg), 0);
    u1 = (updater){reg, "one", 0};
    u2 = (updater){reg, "two", 0};
    fg_buf_init(&out, 1 << 20);
    assert_int_equal(pthread_create(&t1, NULL, update_many, &u1), 0);
    assert_int_equal(pthread_create(&t2, NULL, update_many, &u2), 0);
    for (int i = 0; i < 50; i++) { /* render while the others write */
        fg_buf_clear(&out);
        assert_int_equal(fg_metrics_render(reg, &out), 0);
    }
    assert_int_equal(pthread_join(t1, NULL), 0);
    assert_int_equal(pthread_join(t2, NULL), 0);
    assert_int_equal(atomic_load(&u1.failures) + atomic_load(&u2.failures), 0);
    fg_buf_clear(&out);
    assert_int_equal(fg_metrics_render(reg, &out), 0);
    snprintf(expected, sizeof(expected), "t_total{k=\"shared\"} %d\n", 2 * THREAD_UPDATES);
    assert_non_null(strstr(out.ptr, expected));
    snprintf(expected, sizeof(expected), "t_total{k=\"one\"} %d\n", THREAD_UPDATES);
    assert_non_null(strstr(out.ptr, expected));
    snprintf(expected, sizeof(expected), "t_total{k=\"two\"} %d\n", THREAD_UPDATES);
    assert_non_null(strstr(out.ptr, expected));
    snprintf(expected, sizeof(expected), "t_seconds_bucket{le=\"0.5\"} %d\n", 2 * THREAD_UPDATES);
    assert_non_null(strstr(out.ptr, expected));
    snprintf(expected, sizeof(expected), "t_seconds_sum %d\nt_seconds_count %d\n", THREAD_UPDATES,
             2 * THREAD_UPDATES);
    assert_non_null(strstr(out.ptr, expected));
    snprintf(expected, sizeof(expected), "t_depth %d\n", THREAD_UPDATES / 2);
    assert_non_null(strstr(out.ptr, expected));
    fg_buf_dispose(&out);
    fg_metrics_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics__renders_exact_text_format),
        cmocka_unit_test(test_metrics__formats_values_and_default_buckets),
        cmocka_unit_test(test_metrics__same_labels_same_series),
        cmocka_unit_test(test_metrics__refuses_bad_names_labels_and_types),
        cmocka_unit_test(test_metrics__bounds_label_sets_per_family),
        cmocka_unit_test(test_metrics__render_respects_buffer_cap),
        cmocka_unit_test(test_metrics__concurrent_updates_add_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

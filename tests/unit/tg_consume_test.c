/* The triples-generator consumer without servers: the SUBSCRIPTION it announces (service,
 * instance, capacity per category, inFlight, schema-valid), the forge messages answered as
 * no-ops with a counter, a category it does not consume refused for parking, and settings out of
 * range refused at construction. */
#include "test_support.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tg_consume.h"

static const tg_settings settings = {"http://forgegraph.local", false, 1 << 20, 50, 2000, 1500, 4};

static tg_consumer *consumer_new(fg_metrics *metrics, const tg_settings *s)
{
    tg_store_options so = {"http://127.0.0.1:9", "u", "p", &tg_store_virtuoso, 1000, 1, 0};
    tg_store *store = NULL;
    tg_projects *projects = NULL;
    tg_consumer *c = NULL;

    assert_int_equal(tg_store_new(&store, &so), 0);
    assert_int_equal(tg_projects_new(&projects, "http://127.0.0.1:9", "key"), 0);
    if (tg_consumer_new(&c, s, store, projects, metrics) < 0)
        return NULL;
    return c;
}

static void test_tg_consume__subscription_announces_capacity(void **state)
{
    fg_metrics *metrics = NULL;
    tg_consumer *c;
    fg_proto_msg msg;
    fg_buf body;
    json_object *root, *v, *cap;
    char instance[128], host[64];

    (void)state;
    assert_int_equal(fg_metrics_new(&metrics), 0);
    assert_non_null(c = consumer_new(metrics, &settings));
    fg_proto_msg_init(&msg);
    fg_buf_init(&body, 1 << 20);
    assert_int_equal(tg_consumer_subscription(&msg, c), 0);
    assert_int_equal(fg_proto_msg_serialise(&body, &msg), 0); /* validates against the schema */
    assert_non_null(root = json_tokener_parse(body.ptr));
    assert_true(json_object_object_get_ex(root, "category", &v));
    assert_string_equal(json_object_get_string(v), "SUBSCRIPTION");
    assert_false(json_object_object_get_ex(root, "project", &v));
    assert_true(json_object_object_get_ex(root, "service", &v));
    assert_string_equal(json_object_get_string(v), "triples-generator");
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    snprintf(instance, sizeof(instance), "%s:%ld", host, (long)getpid());
    assert_true(json_object_object_get_ex(root, "instance", &v));
    assert_string_equal(json_object_get_string(v), instance);
    assert_true(json_object_object_get_ex(root, "capacity", &cap));
    assert_int_equal(json_object_object_length(cap), 3);
    assert_true(json_object_object_get_ex(cap, "AWAITING_GENERATION", &v));
    assert_int_equal(json_object_get_int64(v), 2000);
    assert_true(json_object_object_get_ex(cap, "TRIPLES_GENERATED", &v));
    assert_int_equal(json_object_get_int64(v), 1500);
    assert_true(json_object_object_get_ex(cap, "CLEAN_UP", &v));
    assert_int_equal(json_object_get_int64(v), 4);
    assert_true(json_object_object_get_ex(root, "inFlight", &v));
    assert_int_equal(json_object_object_length(v), 0);
    json_object_put(root);
    fg_buf_dispose(&body);
    fg_proto_msg_dispose(&msg);
    tg_consumer_free(c);
    fg_metrics_free(metrics);
}

static void handle(tg_consumer *c, fg_proto_category category, int expected)
{
    fg_proto_project p = {7, FG_PROTO_FORGE_GITHUB, "ns/name"};
    fg_proto_msg msg;

    fg_proto_msg_init(&msg);
    assert_int_equal(fg_proto_msg_start(&msg, category, &p), 0);
    if (category == FG_PROTO_FORGE_EVENT) {
        assert_int_equal(fg_proto_msg_set_string(&msg, "event", "star"), 0);
        assert_int_equal(fg_proto_msg_set_string(&msg, "deliveryId", "d-1"), 0);
        assert_int_equal(fg_proto_msg_set(&msg, "payload", json_object_new_object()), 0);
    }
    if (category == FG_PROTO_COMMIT_SYNC)
        assert_int_equal(fg_proto_msg_set(&msg, "known", json_object_new_array()), 0);
    assert_int_equal(fg_proto_msg_validate(&msg), 0);
    /* no broker, no database: a no-op publishes nothing, and the row is best effort */
    assert_int_equal(tg_consumer_handle_msg(c, NULL, NULL, &msg), expected);
    fg_proto_msg_dispose(&msg);
}

static void test_tg_consume__forge_messages_are_counted_no_ops(void **state)
{
    fg_metrics *metrics = NULL;
    tg_consumer *c;
    fg_buf text;

    (void)state;
    assert_int_equal(fg_metrics_new(&metrics), 0);
    assert_non_null(c = consumer_new(metrics, &settings));
    handle(c, FG_PROTO_MEMBER_SYNC, 0);
    handle(c, FG_PROTO_PROJECT_SYNC, 0);
    handle(c, FG_PROTO_PROJECT_SYNC, 0);
    handle(c, FG_PROTO_FORGE_EVENT, 0);
    handle(c, FG_PROTO_COMMIT_SYNC, FG_EINVALID); /* not ours: parked */
    assert_non_null(strstr(fg_error_last(), "does not consume COMMIT_SYNC"));
    fg_buf_init(&text, 1 << 20);
    assert_int_equal(fg_metrics_render(metrics, &text), 0);
    assert_non_null(strstr(text.ptr, "fg_triples_generator_forge_messages_total{category="
                                     "\"MEMBER_SYNC\"} 1\n"));
    assert_non_null(strstr(text.ptr, "fg_triples_generator_forge_messages_total{category="
                                     "\"PROJECT_SYNC\"} 2\n"));
    assert_non_null(strstr(text.ptr, "fg_triples_generator_forge_messages_total{category="
                                     "\"FORGE_EVENT\"} 1\n"));
    fg_buf_dispose(&text);
    tg_consumer_free(c);
    fg_metrics_free(metrics);
}

static void test_tg_consume__bad_settings_are_refused(void **state)
{
    fg_metrics *metrics = NULL;
    tg_settings s = settings;

    (void)state;
    assert_int_equal(fg_metrics_new(&metrics), 0);
    s.graph_base = "not a url";
    assert_null(consumer_new(metrics, &s));
    assert_non_null(strstr(fg_error_last(), "FG_GRAPH_BASE"));
    s = settings;
    s.clean_up_batch = TG_CLEAN_UP_BATCH_MAX + 1;
    assert_null(consumer_new(metrics, &s));
    fg_metrics_free(metrics);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tg_consume__subscription_announces_capacity),
        cmocka_unit_test(test_tg_consume__forge_messages_are_counted_no_ops),
        cmocka_unit_test(test_tg_consume__bad_settings_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

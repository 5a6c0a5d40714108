/*
 * The dispatcher's tables against the one transition table (el_status.c): what each kind picks
 * is exactly what DISPATCH may move, its SQL names those statuses as literals (the partial
 * indexes of migration 0001 only serve literal predicates), and the tick's settings fall back
 * to el_context.h's defaults. No servers.
 */
#include "test_support.h"

#include <string.h>

#include "el_dispatch.h"
#include "el_schedule.h"
#include "el_status.h"

static bool contains(const el_status *list, size_t n, el_status s)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i] == s)
            return true;
    }
    return false;
}

static void test_el_dispatch__ready_statuses_are_the_dispatch_sources(void **state)
{
    (void)state;
    for (int k = 0; k < EL_DISPATCH_KIND_COUNT; k++) {
        el_status ready[EL_STATUS_COUNT], sources[EL_STATUS_COUNT];
        el_status processing = el_dispatch_processing((el_dispatch_kind)k);
        size_t nready = el_dispatch_ready_statuses(ready, (el_dispatch_kind)k);
        size_t nsources = el_transition_sources(sources, processing, EL_CAUSE_DISPATCH);

        assert_true(el_status_is_processing(processing));
        assert_int_equal(nready, nsources);
        for (size_t i = 0; i < nready; i++)
            assert_true(contains(sources, nsources, ready[i]));
        /* zombie chasing returns an event to a status this kind picks up again */
        assert_true(contains(ready, nready, el_status_before_processing(processing)));
    }
}

static void test_el_dispatch__sql_names_the_statuses_as_literals(void **state)
{
    (void)state;
    for (int k = 0; k < EL_DISPATCH_KIND_COUNT; k++) {
        el_status ready[EL_STATUS_COUNT];
        size_t nready = el_dispatch_ready_statuses(ready, (el_dispatch_kind)k);
        char processing[64];

        snprintf(processing, sizeof(processing), "'%s'",
                 el_status_name(el_dispatch_processing((el_dispatch_kind)k)));
        assert_non_null(
            strstr(el_dispatch_sql((el_dispatch_kind)k, EL_DISPATCH_SQL_CREDIT), processing));
        for (size_t i = 0; i < nready; i++) {
            char literal[64];

            snprintf(literal, sizeof(literal), "'%s'", el_status_name(ready[i]));
            assert_non_null(
                strstr(el_dispatch_sql((el_dispatch_kind)k, EL_DISPATCH_SQL_PICK), literal));
            assert_non_null(
                strstr(el_dispatch_sql((el_dispatch_kind)k, EL_DISPATCH_SQL_CLAIM), literal));
        }
        /* claims skip what another transaction holds instead of waiting for it */
        assert_non_null(
            strstr(el_dispatch_sql((el_dispatch_kind)k, EL_DISPATCH_SQL_CLAIM), "FOR UPDATE"));
        assert_non_null(
            strstr(el_dispatch_sql((el_dispatch_kind)k, EL_DISPATCH_SQL_CLAIM), "SKIP LOCKED"));
    }
    assert_null(el_dispatch_sql(EL_DISPATCH_KIND_COUNT, EL_DISPATCH_SQL_PICK));
    assert_null(el_dispatch_sql(EL_DISPATCH_GENERATION, EL_DISPATCH_SQL_COUNT));
}

static void test_el_dispatch__categories_are_the_protocol_names(void **state)
{
    fg_proto_category c;
    (void)state;

    assert_string_equal(el_dispatch_category(EL_DISPATCH_GENERATION), "AWAITING_GENERATION");
    assert_string_equal(el_dispatch_category(EL_DISPATCH_TRANSFORMATION), "TRIPLES_GENERATED");
    assert_string_equal(el_dispatch_category(EL_DISPATCH_CLEAN_UP), "CLEAN_UP");
    assert_null(el_dispatch_category(EL_DISPATCH_KIND_COUNT));
    for (int k = 0; k < EL_SCHEDULE_COUNT; k++)
        assert_int_equal(fg_proto_category_parse(&c, el_schedule_category((el_schedule_kind)k)), 0);
    assert_null(el_schedule_category(EL_SCHEDULE_COUNT));
}

static void test_el_dispatch__unset_settings_take_the_defaults(void **state)
{
    (void)state;
    assert_int_equal(el_setting(0, 100), 100);
    assert_int_equal(el_setting(-5, 100), 100);
    assert_int_equal(el_setting(7, 100), 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_el_dispatch__ready_statuses_are_the_dispatch_sources),
        cmocka_unit_test(test_el_dispatch__sql_names_the_statuses_as_literals),
        cmocka_unit_test(test_el_dispatch__categories_are_the_protocol_names),
        cmocka_unit_test(test_el_dispatch__unset_settings_take_the_defaults),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

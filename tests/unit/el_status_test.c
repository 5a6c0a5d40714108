/* The event status machine (services/event-log/el_status.c): every (from, to, cause) of all
 * statuses x statuses x causes gets its verdict. The legal transitions are written out here by
 * name, independently of the table, from DESIGN.md "Event statuses" and renku-graph.md §1.2 with
 * forgegraph's differences (no ancestor sweeps, per-commit clean-up, operator replay and retry);
 * a transition added to the table without a line here fails the test, and so does one removed. */
#include "test_support.h"

#include <string.h>

#include "el_status.h"

typedef struct {
    const char *from;
    const char *to;
    const char *cause;
} legal;

static const legal expected[] = {
    {"NONE", "NEW", "CREATION"},
    /* generation: dispatch, replies, zombie chasing */
    {"NEW", "GENERATING_TRIPLES", "DISPATCH"},
    {"GENERATION_RECOVERABLE_FAILURE", "GENERATING_TRIPLES", "DISPATCH"},
    {"GENERATING_TRIPLES", "TRIPLES_GENERATED", "ToTriplesGenerated"},
    {"GENERATING_TRIPLES", "GENERATION_RECOVERABLE_FAILURE", "ToFailure"},
    {"GENERATING_TRIPLES", "GENERATION_NON_RECOVERABLE_FAILURE", "ToFailure"},
    {"GENERATING_TRIPLES", "NEW", "RollbackToNew"},
    {"GENERATING_TRIPLES", "NEW", "ZOMBIE"},
    /* transformation */
    {"TRIPLES_GENERATED", "TRANSFORMING_TRIPLES", "DISPATCH"},
    {"TRANSFORMATION_RECOVERABLE_FAILURE", "TRANSFORMING_TRIPLES", "DISPATCH"},
    {"TRANSFORMING_TRIPLES", "TRIPLES_STORE", "ToTriplesStore"},
    {"TRANSFORMING_TRIPLES", "TRANSFORMATION_RECOVERABLE_FAILURE", "ToFailure"},
    {"TRANSFORMING_TRIPLES", "TRANSFORMATION_NON_RECOVERABLE_FAILURE", "ToFailure"},
    {"TRANSFORMING_TRIPLES", "TRIPLES_GENERATED", "RollbackToTriplesGenerated"},
    {"TRANSFORMING_TRIPLES", "TRIPLES_GENERATED", "ZOMBIE"},
    /* clean-up: every stored status but the deletion ones can become AWAITING_DELETION */
    {"NEW", "AWAITING_DELETION", "ToAwaitingDeletion"},
    {"SKIPPED", "AWAITING_DELETION", "ToAwaitingDeletion"},
    {"GENERATING_TRIPLES", "AWAITING_DELETION", "ToAwaitingDeletion"},
    {"GENERATION_RECOVERABLE_FAILURE", "AWAITING_DELETION", "ToAwaitingDeletion"},
    {"GENERATION_NON_RECOVERABLE_FAILURE", "AWAITING_DELETION", "ToAwaitingDeletion"},
    {"TRIPLES_GENERATED", "AWAITING_DELETION", "ToAwaitingDeletion"},
    {"TRANSFORMING_TRIPLES", "AWAITING_DELETION", "ToAwaitingDeletion"},
    {"TRANSFORMATION_RECOVERABLE_FAILURE", "AWAITING_DELETION", "ToAwaitingDeletion"},
    {"TRANSFORMATION_NON_RECOVERABLE_FAILURE", "AWAITING_DELETION", "ToAwaitingDeletion"},
    {"TRIPLES_STORE", "AWAITING_DELETION", "ToAwaitingDeletion"},
    {"AWAITING_DELETION", "DELETING", "DISPATCH"},
    {"DELETING", "AWAITING_DELETION", "RollbackToAwaitingDeletion"},
    {"DELETING", "AWAITING_DELETION", "ZOMBIE"},
    {"DELETING", "DELETED", "CleanUpDone"},
    /* re-provisioning */
    {"SKIPPED", "NEW", "REPROVISION"},
    {"GENERATING_TRIPLES", "NEW", "REPROVISION"},
    {"GENERATION_RECOVERABLE_FAILURE", "NEW", "REPROVISION"},
    {"GENERATION_NON_RECOVERABLE_FAILURE", "NEW", "REPROVISION"},
    {"TRIPLES_GENERATED", "NEW", "REPROVISION"},
    {"TRANSFORMING_TRIPLES", "NEW", "REPROVISION"},
    {"TRANSFORMATION_RECOVERABLE_FAILURE", "NEW", "REPROVISION"},
    {"TRANSFORMATION_NON_RECOVERABLE_FAILURE", "NEW", "REPROVISION"},
    {"TRIPLES_STORE", "NEW", "REPROVISION"},
    /* operator replay */
    {"GENERATION_RECOVERABLE_FAILURE", "NEW", "REPLAY"},
    {"GENERATION_NON_RECOVERABLE_FAILURE", "NEW", "REPLAY"},
    {"TRIPLES_GENERATED", "NEW", "REPLAY"},
    {"TRANSFORMATION_RECOVERABLE_FAILURE", "NEW", "REPLAY"},
    {"TRANSFORMATION_NON_RECOVERABLE_FAILURE", "NEW", "REPLAY"},
    {"TRIPLES_STORE", "NEW", "REPLAY"},
    {"TRANSFORMATION_RECOVERABLE_FAILURE", "TRIPLES_GENERATED", "REPLAY"},
    {"TRANSFORMATION_NON_RECOVERABLE_FAILURE", "TRIPLES_GENERATED", "REPLAY"},
    {"TRIPLES_STORE", "TRIPLES_GENERATED", "REPLAY"},
    /* operator retry */
    {"GENERATION_RECOVERABLE_FAILURE", "NEW", "RETRY"},
    {"GENERATION_NON_RECOVERABLE_FAILURE", "NEW", "RETRY"},
    {"TRANSFORMATION_RECOVERABLE_FAILURE", "TRIPLES_GENERATED", "RETRY"},
    {"TRANSFORMATION_NON_RECOVERABLE_FAILURE", "TRIPLES_GENERATED", "RETRY"},
};

#define NEXPECTED (sizeof(expected) / sizeof(expected[0]))

static const char *const reply_causes[] = {
    "ToTriplesGenerated",
    "ToTriplesStore",
    "ToFailure",
    "RollbackToNew",
    "RollbackToTriplesGenerated",
    "RollbackToAwaitingDeletion",
    "CleanUpDone",
};

static bool is_expected(el_status from, el_status to, el_cause cause)
{
    for (size_t i = 0; i < NEXPECTED; i++) {
        if (strcmp(expected[i].from, el_status_name(from)) == 0 &&
            strcmp(expected[i].to, el_status_name(to)) == 0 &&
            strcmp(expected[i].cause, el_cause_name(cause)) == 0)
            return true;
    }
    return false;
}

static bool is_reply_name(const char *cause)
{
    for (size_t i = 0; i < sizeof(reply_causes) / sizeof(reply_causes[0]); i++) {
        if (strcmp(reply_causes[i], cause) == 0)
            return true;
    }
    return false;
}

static const char *verdict_name(el_verdict v)
{
    return v == EL_APPLY ? "APPLY" : v == EL_STALE ? "STALE" : "ILLEGAL";
}

/* 14 x 14 x 14 requests: listed ones apply, unlisted replies are stale, the rest illegal. */
static void test_el_status__every_triple_gets_its_verdict(void **state)
{
    size_t applied = 0, stale = 0, illegal = 0;
    (void)state;

    for (int f = 0; f < EL_STATUS_COUNT; f++) {
        for (int t = 0; t < EL_STATUS_COUNT; t++) {
            for (int c = 0; c < EL_CAUSE_COUNT; c++) {
                el_verdict want = is_expected((el_status)f, (el_status)t, (el_cause)c) ? EL_APPLY
                                  : is_reply_name(el_cause_name((el_cause)c))          ? EL_STALE
                                                                                       : EL_ILLEGAL;
                el_verdict got = el_transition_check((el_status)f, (el_status)t, (el_cause)c);

                if (got != want)
                    fail_msg("%s -> %s by %s: %s, expected %s", el_status_name((el_status)f),
                             el_status_name((el_status)t), el_cause_name((el_cause)c),
                             verdict_name(got), verdict_name(want));
                applied += got == EL_APPLY;
                stale += got == EL_STALE;
                illegal += got == EL_ILLEGAL;
            }
        }
    }
    assert_int_equal(applied, NEXPECTED);
    assert_int_equal(applied + stale + illegal,
                     (size_t)EL_STATUS_COUNT * EL_STATUS_COUNT * EL_CAUSE_COUNT);
    assert_true(stale > 0);
    assert_true(illegal > 0);
}

/* Every expected line names real statuses and causes (a typo here would make the test above
 * vacuous for that line). */
static void test_el_status__expected_lines_name_real_statuses(void **state)
{
    (void)state;
    for (size_t i = 0; i < NEXPECTED; i++) {
        bool from = false, to = false, cause = false;

        for (int s = 0; s < EL_STATUS_COUNT; s++) {
            from = from || strcmp(expected[i].from, el_status_name((el_status)s)) == 0;
            to = to || strcmp(expected[i].to, el_status_name((el_status)s)) == 0;
        }
        for (int c = 0; c < EL_CAUSE_COUNT; c++)
            cause = cause || strcmp(expected[i].cause, el_cause_name((el_cause)c)) == 0;
        if (!from || !to || !cause)
            fail_msg("expected[%zu] %s -> %s by %s names an unknown status or cause", i,
                     expected[i].from, expected[i].to, expected[i].cause);
    }
}

/* The set-based updates use el_transition_sources: it must list exactly the applying sources. */
static void test_el_status__sources_agree_with_check(void **state)
{
    (void)state;
    for (int t = 0; t < EL_STATUS_COUNT; t++) {
        for (int c = 0; c < EL_CAUSE_COUNT; c++) {
            el_status sources[EL_STATUS_COUNT];
            size_t n = el_transition_sources(sources, (el_status)t, (el_cause)c);
            size_t want = 0;

            for (int f = 0; f < EL_STATUS_COUNT; f++) {
                bool in = false;

                for (size_t i = 0; i < n; i++)
                    in = in || sources[i] == (el_status)f;
                if (in !=
                    (el_transition_check((el_status)f, (el_status)t, (el_cause)c) == EL_APPLY))
                    fail_msg("sources(%s, %s) and check disagree on %s",
                             el_status_name((el_status)t), el_cause_name((el_cause)c),
                             el_status_name((el_status)f));
                want += in;
            }
            assert_int_equal(n, want);
        }
    }
}

static void test_el_status__replies_are_the_consumer_answers(void **state)
{
    (void)state;
    for (int c = 0; c < EL_CAUSE_COUNT; c++)
        assert_int_equal(el_cause_is_reply((el_cause)c), is_reply_name(el_cause_name((el_cause)c)));
}

/* Names round-trip for the twelve stored statuses; NONE and DELETED are not parseable (never
 * stored, never asked for); an unknown name is refused. */
static void test_el_status__names_round_trip(void **state)
{
    el_status s = EL_STATUS_NONE;
    (void)state;

    for (int i = EL_STATUS_NEW; i < EL_STATUS_DELETED; i++) {
        assert_true(el_status_parse(&s, el_status_name((el_status)i)));
        assert_int_equal(s, i);
    }
    assert_false(el_status_parse(&s, "NONE"));
    assert_false(el_status_parse(&s, "DELETED"));
    assert_false(el_status_parse(&s, "new"));
    assert_string_equal(el_status_name(EL_STATUS_COUNT), "UNKNOWN");
    assert_string_equal(el_cause_name(EL_CAUSE_COUNT), "UNKNOWN");
    assert_string_equal(el_cause_name(EL_CAUSE_TO_TRIPLES_GENERATED), "ToTriplesGenerated");
}

/* Zombie chasing returns each processing status to where it came from, and the table allows
 * exactly that move by ZOMBIE. */
static void test_el_status__zombies_return_to_the_status_before(void **state)
{
    (void)state;
    for (int s = 0; s < EL_STATUS_COUNT; s++) {
        el_status before = el_status_before_processing((el_status)s);

        assert_int_equal(el_status_is_processing((el_status)s), before != EL_STATUS_NONE);
        if (before != EL_STATUS_NONE)
            assert_int_equal(el_transition_check((el_status)s, before, EL_CAUSE_ZOMBIE), EL_APPLY);
    }
    assert_int_equal(el_status_before_processing(EL_STATUS_TRANSFORMING_TRIPLES),
                     EL_STATUS_TRIPLES_GENERATED);
    assert_true(el_status_is_final(EL_STATUS_TRIPLES_STORE));
    assert_false(el_status_is_final(EL_STATUS_NEW));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_el_status__every_triple_gets_its_verdict),
        cmocka_unit_test(test_el_status__expected_lines_name_real_statuses),
        cmocka_unit_test(test_el_status__sources_agree_with_check),
        cmocka_unit_test(test_el_status__replies_are_the_consumer_answers),
        cmocka_unit_test(test_el_status__names_round_trip),
        cmocka_unit_test(test_el_status__zombies_return_to_the_status_before),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

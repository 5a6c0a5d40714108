/*
 * The transition table (see el_status.h). Adapted from renku-graph's §1.2 with the one
 * deliberate difference of DESIGN.md: every event is processed, so no transition sweeps older
 * events along. Adding a transition means adding a row here and a case to
 * tests/unit/el_status_test.c; nothing else in event-log decides what is legal.
 */
#include "el_status.h"

#include <string.h>

typedef struct {
    el_status from;
    el_status to;
    el_cause cause;
} el_transition;

#define S(x) EL_STATUS_##x
#define C(x) EL_CAUSE_##x

static const el_transition transitions[] = {
    {S(NONE), S(NEW), C(CREATION)},
    /* generation */
    {S(NEW), S(GENERATING_TRIPLES), C(DISPATCH)},
    {S(GENERATION_RECOVERABLE_FAILURE), S(GENERATING_TRIPLES), C(DISPATCH)},
    {S(GENERATING_TRIPLES), S(TRIPLES_GENERATED), C(TO_TRIPLES_GENERATED)},
    {S(GENERATING_TRIPLES), S(GENERATION_RECOVERABLE_FAILURE), C(TO_FAILURE)},
    {S(GENERATING_TRIPLES), S(GENERATION_NON_RECOVERABLE_FAILURE), C(TO_FAILURE)},
    {S(GENERATING_TRIPLES), S(NEW), C(ROLLBACK_TO_NEW)},
    {S(GENERATING_TRIPLES), S(NEW), C(ZOMBIE)},
    /* transformation (upload) */
    {S(TRIPLES_GENERATED), S(TRANSFORMING_TRIPLES), C(DISPATCH)},
    {S(TRANSFORMATION_RECOVERABLE_FAILURE), S(TRANSFORMING_TRIPLES), C(DISPATCH)},
    {S(TRANSFORMING_TRIPLES), S(TRIPLES_STORE), C(TO_TRIPLES_STORE)},
    {S(TRANSFORMING_TRIPLES), S(TRANSFORMATION_RECOVERABLE_FAILURE), C(TO_FAILURE)},
    {S(TRANSFORMING_TRIPLES), S(TRANSFORMATION_NON_RECOVERABLE_FAILURE), C(TO_FAILURE)},
    {S(TRANSFORMING_TRIPLES), S(TRIPLES_GENERATED), C(ROLLBACK_TO_TRIPLES_GENERATED)},
    {S(TRANSFORMING_TRIPLES), S(TRIPLES_GENERATED), C(ZOMBIE)},
    /* clean-up: a commit no longer reachable leaves the graph, then the log */
    {S(NEW), S(AWAITING_DELETION), C(TO_AWAITING_DELETION)},
    {S(SKIPPED), S(AWAITING_DELETION), C(TO_AWAITING_DELETION)},
    {S(GENERATING_TRIPLES), S(AWAITING_DELETION), C(TO_AWAITING_DELETION)},
    {S(GENERATION_RECOVERABLE_FAILURE), S(AWAITING_DELETION), C(TO_AWAITING_DELETION)},
    {S(GENERATION_NON_RECOVERABLE_FAILURE), S(AWAITING_DELETION), C(TO_AWAITING_DELETION)},
    {S(TRIPLES_GENERATED), S(AWAITING_DELETION), C(TO_AWAITING_DELETION)},
    {S(TRANSFORMING_TRIPLES), S(AWAITING_DELETION), C(TO_AWAITING_DELETION)},
    {S(TRANSFORMATION_RECOVERABLE_FAILURE), S(AWAITING_DELETION), C(TO_AWAITING_DELETION)},
    {S(TRANSFORMATION_NON_RECOVERABLE_FAILURE), S(AWAITING_DELETION), C(TO_AWAITING_DELETION)},
    {S(TRIPLES_STORE), S(AWAITING_DELETION), C(TO_AWAITING_DELETION)},
    {S(AWAITING_DELETION), S(DELETING), C(DISPATCH)},
    {S(DELETING), S(AWAITING_DELETION), C(ROLLBACK_TO_AWAITING_DELETION)},
    {S(DELETING), S(AWAITING_DELETION), C(ZOMBIE)},
    {S(DELETING), S(DELETED), C(CLEAN_UP_DONE)},
    /* re-provisioning: everything but deletions starts again from NEW */
    {S(SKIPPED), S(NEW), C(REPROVISION)},
    {S(GENERATING_TRIPLES), S(NEW), C(REPROVISION)},
    {S(GENERATION_RECOVERABLE_FAILURE), S(NEW), C(REPROVISION)},
    {S(GENERATION_NON_RECOVERABLE_FAILURE), S(NEW), C(REPROVISION)},
    {S(TRIPLES_GENERATED), S(NEW), C(REPROVISION)},
    {S(TRANSFORMING_TRIPLES), S(NEW), C(REPROVISION)},
    {S(TRANSFORMATION_RECOVERABLE_FAILURE), S(NEW), C(REPROVISION)},
    {S(TRANSFORMATION_NON_RECOVERABLE_FAILURE), S(NEW), C(REPROVISION)},
    {S(TRIPLES_STORE), S(NEW), C(REPROVISION)},
    /* operator replay: regenerate, or upload again what was generated */
    {S(GENERATION_RECOVERABLE_FAILURE), S(NEW), C(REPLAY)},
    {S(GENERATION_NON_RECOVERABLE_FAILURE), S(NEW), C(REPLAY)},
    {S(TRIPLES_GENERATED), S(NEW), C(REPLAY)},
    {S(TRANSFORMATION_RECOVERABLE_FAILURE), S(NEW), C(REPLAY)},
    {S(TRANSFORMATION_NON_RECOVERABLE_FAILURE), S(NEW), C(REPLAY)},
    {S(TRIPLES_STORE), S(NEW), C(REPLAY)},
    {S(TRANSFORMATION_RECOVERABLE_FAILURE), S(TRIPLES_GENERATED), C(REPLAY)},
    {S(TRANSFORMATION_NON_RECOVERABLE_FAILURE), S(TRIPLES_GENERATED), C(REPLAY)},
    {S(TRIPLES_STORE), S(TRIPLES_GENERATED), C(REPLAY)},
    /* operator retry of failures: from the step that failed */
    {S(GENERATION_RECOVERABLE_FAILURE), S(NEW), C(RETRY)},
    {S(GENERATION_NON_RECOVERABLE_FAILURE), S(NEW), C(RETRY)},
    {S(TRANSFORMATION_RECOVERABLE_FAILURE), S(TRIPLES_GENERATED), C(RETRY)},
    {S(TRANSFORMATION_NON_RECOVERABLE_FAILURE), S(TRIPLES_GENERATED), C(RETRY)},
};

#undef S
#undef C

static const char *const status_names[EL_STATUS_COUNT] = {
    "NONE",
    "NEW",
    "SKIPPED",
    "GENERATING_TRIPLES",
    "GENERATION_RECOVERABLE_FAILURE",
    "GENERATION_NON_RECOVERABLE_FAILURE",
    "TRIPLES_GENERATED",
    "TRANSFORMING_TRIPLES",
    "TRANSFORMATION_RECOVERABLE_FAILURE",
    "TRANSFORMATION_NON_RECOVERABLE_FAILURE",
    "TRIPLES_STORE",
    "AWAITING_DELETION",
    "DELETING",
    "DELETED",
};

static const char *const cause_names[EL_CAUSE_COUNT] = {
    "CREATION",
    "DISPATCH",
    "ToTriplesGenerated",
    "ToTriplesStore",
    "ToFailure",
    "RollbackToNew",
    "RollbackToTriplesGenerated",
    "RollbackToAwaitingDeletion",
    "CleanUpDone",
    "ToAwaitingDeletion",
    "ZOMBIE",
    "REPROVISION",
    "REPLAY",
    "RETRY",
};

const char *el_status_name(el_status status)
{
    return (unsigned)status < EL_STATUS_COUNT ? status_names[status] : "UNKNOWN";
}

bool el_status_parse(el_status *out, const char *name)
{
    /* NONE and DELETED are not statuses an event can be stored or asked for in */
    for (int s = EL_STATUS_NEW; s < EL_STATUS_DELETED; s++) {
        if (strcmp(status_names[s], name) == 0) {
            *out = (el_status)s;
            return true;
        }
    }
    return false;
}

const char *el_cause_name(el_cause cause)
{
    return (unsigned)cause < EL_CAUSE_COUNT ? cause_names[cause] : "UNKNOWN";
}

bool el_cause_is_reply(el_cause cause)
{
    switch (cause) {
    case EL_CAUSE_TO_TRIPLES_GENERATED:
    case EL_CAUSE_TO_TRIPLES_STORE:
    case EL_CAUSE_TO_FAILURE:
    case EL_CAUSE_ROLLBACK_TO_NEW:
    case EL_CAUSE_ROLLBACK_TO_TRIPLES_GENERATED:
    case EL_CAUSE_ROLLBACK_TO_AWAITING_DELETION:
    case EL_CAUSE_CLEAN_UP_DONE:
        return true;
    default:
        return false;
    }
}

el_verdict el_transition_check(el_status from, el_status to, el_cause cause)
{
    for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++) {
        const el_transition *t = &transitions[i];
        if (t->from == from && t->to == to && t->cause == cause)
            return EL_APPLY;
    }
    return el_cause_is_reply(cause) ? EL_STALE : EL_ILLEGAL;
}

size_t el_transition_sources(el_status out[EL_STATUS_COUNT], el_status to, el_cause cause)
{
    size_t n = 0;

    for (size_t i = 0; i < sizeof(transitions) / sizeof(transitions[0]); i++) {
        if (transitions[i].to == to && transitions[i].cause == cause)
            out[n++] = transitions[i].from;
    }
    return n;
}

bool el_status_is_processing(el_status status)
{
    return status == EL_STATUS_GENERATING_TRIPLES || status == EL_STATUS_TRANSFORMING_TRIPLES ||
           status == EL_STATUS_DELETING;
}

bool el_status_is_final(el_status status)
{
    return status == EL_STATUS_SKIPPED || status == EL_STATUS_TRIPLES_STORE ||
           status == EL_STATUS_GENERATION_NON_RECOVERABLE_FAILURE ||
           status == EL_STATUS_TRANSFORMATION_NON_RECOVERABLE_FAILURE;
}

el_status el_status_before_processing(el_status processing)
{
    switch (processing) {
    case EL_STATUS_GENERATING_TRIPLES:
        return EL_STATUS_NEW;
    case EL_STATUS_TRANSFORMING_TRIPLES:
        return EL_STATUS_TRIPLES_GENERATED;
    case EL_STATUS_DELETING:
        return EL_STATUS_AWAITING_DELETION;
    default:
        return EL_STATUS_NONE;
    }
}

/*
 * fgctl replay events (a project's events back to NEW or TRIPLES_GENERATED), replay rebuild
 * (statuses from the status log) and fgctl reprovision (the project's graph dropped and every
 * event back to NEW), through event-log's API. Replaying archived deliveries belongs to the
 * webhook and is refused here until it exists.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "fgctl.h"

#define REPLAY_SERVICE "event-log"

static int replay_events(fgctl *ctl, int argc, char **argv)
{
    const char *project_text = NULL, *to = NULL;
    json_object *body = NULL, *answer = NULL;
    long long project = 0;
    bool bad = false;
    char path[64];
    int status;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            ctl->json = true;
        else if (!fgctl_opt_value(&project_text, argc, argv, &i, "--project") &&
                 !fgctl_opt_value(&to, argc, argv, &i, "--to"))
            bad = true;
    }
    if (bad || !fgctl_parse_id(&project, project_text) || to == NULL ||
        (strcmp(to, "NEW") != 0 && strcmp(to, "TRIPLES_GENERATED") != 0)) {
        fprintf(stderr, "usage: fgctl replay events --project ID --to NEW|TRIPLES_GENERATED "
                        "[--json]\n"
                        "NEW generates the events' triples again; TRIPLES_GENERATED uploads "
                        "them again (only events whose payload is still kept).\n");
        return FGCTL_EXIT_USAGE;
    }
    body = json_object_new_object();
    json_object_object_add(body, "to", json_object_new_string(to));
    snprintf(path, sizeof(path), "/projects/%lld/replay", project);
    status = fgctl_call(&answer, ctl, REPLAY_SERVICE, "replay events", "POST", path,
                        json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
    if (status == FGCTL_EXIT_OK && answer != NULL) {
        if (ctl->json)
            fgctl_print_json(answer);
        else
            printf("project %lld: %lld events back to %s, %lld left as they were\n", project,
                   fgctl_json_int(answer, "applied"), to, fgctl_json_int(answer, "skipped"));
    }
    json_object_put(body);
    json_object_put(answer);
    return status;
}

static int replay_rebuild(fgctl *ctl, int argc, char **argv)
{
    bool dry_run = false;
    json_object *answer = NULL;
    int status;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            ctl->json = true;
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = true;
        } else {
            fprintf(stderr, "usage: fgctl replay rebuild [--dry-run] [--json]\n"
                            "Sets every event's status to what the status log says (--dry-run: "
                            "only report the differences).\n");
            return FGCTL_EXIT_USAGE;
        }
    }
    status = fgctl_call(&answer, ctl, REPLAY_SERVICE, "replay rebuild", "POST", "/replay/rebuild",
                        dry_run ? "{\"apply\":false}" : "{\"apply\":true}");
    if (status == FGCTL_EXIT_OK && answer != NULL) {
        if (ctl->json)
            fgctl_print_json(answer);
        else
            printf("%lld events, %lld differences from the status log, %lld fixed\n",
                   fgctl_json_int(answer, "events"), fgctl_json_int(answer, "differences"),
                   fgctl_json_int(answer, "fixed"));
    }
    json_object_put(answer);
    return status;
}

int fgctl_cmd_replay(fgctl *ctl, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;

    if (sub != NULL && strcmp(sub, "events") == 0)
        return replay_events(ctl, argc, argv);
    if (sub != NULL && strcmp(sub, "rebuild") == 0)
        return replay_rebuild(ctl, argc, argv);
    if (sub != NULL && strcmp(sub, "deliveries") == 0)
        return fgctl_cmd_replay_deliveries(ctl, argc, argv);
    fprintf(stderr, "usage: fgctl replay events --project ID --to NEW|TRIPLES_GENERATED\n"
                    "       fgctl replay rebuild [--dry-run]\n");
    return sub != NULL && strcmp(sub, "--help") == 0 ? FGCTL_EXIT_OK : FGCTL_EXIT_USAGE;
}

int fgctl_cmd_reprovision(fgctl *ctl, int argc, char **argv)
{
    json_object *answer = NULL;
    long long project = 0;
    char path[64];
    int status;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            ctl->json = true;
        else if (project != 0 || !fgctl_parse_id(&project, argv[i]))
            project = -1;
    }
    if (project <= 0) {
        fprintf(stderr, "usage: fgctl reprovision PROJECT_ID [--json]\n"
                        "Drops the project's graph and generates every event again.\n");
        return FGCTL_EXIT_USAGE;
    }
    snprintf(path, sizeof(path), "/projects/%lld/reprovision", project);
    status = fgctl_call(&answer, ctl, REPLAY_SERVICE, "reprovision", "POST", path, NULL);
    if (status == FGCTL_EXIT_OK && answer != NULL) {
        if (ctl->json)
            fgctl_print_json(answer);
        else
            printf("project %lld: re-provisioning requested\n", project);
    }
    json_object_put(answer);
    return status;
}

/*
 * wh_json_scan (see wh_json.h): proto's strict scanner (fg_proto_json_scan) with a visitor that
 * picks out the few members intake needs. The rules are proto's reader's because a body accepted
 * here is handed to that reader when it travels as a FORGE_EVENT payload: a body it would refuse
 * must be refused at the door, with a 400, rather than sit in the outbox forever; sharing the
 * scanner makes that hold by construction. The visitor's tags are the roles below, so only the
 * top-level object and the three objects under it that we read have their member names decoded,
 * and a delivery costs one linear scan and no tree.
 */
#include "wh_json.h"

#include <string.h>

/* What a value at the current place is to intake: the visitor's tag (ROLE_NONE is 0, the tag of
 * no interest). */
typedef enum {
    ROLE_NONE,
    ROLE_ROOT,
    ROLE_REPOSITORY, /* root.repository */
    ROLE_PROJECT,    /* root.project */
    ROLE_OA,         /* root.object_attributes */
    ROLE_REPOSITORY_ID,
    ROLE_PROJECT_ID,
    ROLE_TOP_PROJECT_ID,
    ROLE_ACTION,
    ROLE_OA_ACTION
} role;

#define NAME(s) s, sizeof(s) - 1

/* The role of member `name` inside a value of role `parent`; clears what that member held, since
 * the last occurrence of a name is the one that counts. name is NULL when it was too long to be
 * one we look for. */
static int member_role(int parent, const char *name, size_t len, void *payload)
{
    static const struct {
        role parent;
        const char *name;
        size_t len;
        role child;
    } table[] = {
        {ROLE_ROOT, NAME("repository"), ROLE_REPOSITORY},
        {ROLE_ROOT, NAME("project"), ROLE_PROJECT},
        {ROLE_ROOT, NAME("object_attributes"), ROLE_OA},
        {ROLE_ROOT, NAME("project_id"), ROLE_TOP_PROJECT_ID},
        {ROLE_ROOT, NAME("action"), ROLE_ACTION},
        {ROLE_REPOSITORY, NAME("id"), ROLE_REPOSITORY_ID},
        {ROLE_PROJECT, NAME("id"), ROLE_PROJECT_ID},
        {ROLE_OA, NAME("action"), ROLE_OA_ACTION},
    };
    wh_json_facts *f = payload;

    if (name == NULL)
        return ROLE_NONE;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].parent != (role)parent || table[i].len != len ||
            memcmp(table[i].name, name, len) != 0)
            continue;
        switch (table[i].child) {
        case ROLE_REPOSITORY:
        case ROLE_REPOSITORY_ID:
            f->has_repository_id = false;
            break;
        case ROLE_PROJECT:
        case ROLE_PROJECT_ID:
            f->has_project_id = false;
            break;
        case ROLE_OA:
        case ROLE_OA_ACTION:
            f->has_oa_action = false;
            break;
        case ROLE_TOP_PROJECT_ID:
            f->has_top_project_id = false;
            break;
        case ROLE_ACTION:
            f->has_action = false;
            break;
        default:
            break;
        }
        return table[i].child;
    }
    return ROLE_NONE;
}

/* An action is kept when it is 1..FG_PROTO_ACTION_MAX characters of plain text: it goes into log
 * lines and a message field, where a control character (below U+0020, or U+007F) has no place.
 * Checking the decoded bytes is exact, since UTF-8 writes every other character with bytes of
 * 0x80 and above. text is NULL when it was longer than WH_JSON_ACTION_BYTES_MAX. */
static void take_action(char *out, bool *has, const char *text, size_t len)
{
    size_t chars = 0;

    out[0] = '\0';
    if (text == NULL)
        return;
    memcpy(out, text, len);
    out[len] = '\0';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];
        if (c < 0x20 || c == 0x7F)
            return;
        chars += (c & 0xC0) != 0x80;
    }
    *has = chars >= 1 && chars <= FG_PROTO_ACTION_MAX;
}

static void take_string(int tag, const char *text, size_t len, void *payload)
{
    wh_json_facts *f = payload;

    if (tag == ROLE_ACTION)
        take_action(f->action, &f->has_action, text, len);
    else if (tag == ROLE_OA_ACTION)
        take_action(f->oa_action, &f->has_oa_action, text, len);
}

/* An id is kept when it is a non-negative integer that fits a bigint: digits only (no sign,
 * fraction or exponent), at most WH_JSON_ID_DIGITS_MAX of them. */
static void take_id(char *out, bool *has, const char *text, size_t len)
{
    if (len > WH_JSON_ID_DIGITS_MAX)
        return;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return;
    }
    memcpy(out, text, len);
    out[len] = '\0';
    *has = true;
}

static void take_number(int tag, const char *text, size_t len, void *payload)
{
    wh_json_facts *f = payload;

    if (tag == ROLE_REPOSITORY_ID)
        take_id(f->repository_id, &f->has_repository_id, text, len);
    else if (tag == ROLE_PROJECT_ID)
        take_id(f->project_id, &f->has_project_id, text, len);
    else if (tag == ROLE_TOP_PROJECT_ID)
        take_id(f->top_project_id, &f->has_top_project_id, text, len);
}

int wh_json_scan(wh_json_facts *out, const char *body, size_t len)
{
    /* Names and actions are decoded here; a name longer than an action matches nothing anyway. */
    char text[WH_JSON_ACTION_BYTES_MAX];
    const fg_proto_json_visitor visitor = {
        ROLE_ROOT, member_role, take_string, take_number, text, sizeof(text),
    };
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = fg_proto_json_scan(body, len, WH_JSON_DEPTH_MAX, &visitor, out)) < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

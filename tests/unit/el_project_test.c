/* el_project_registration_from_json: what POST /projects accepts and how each refusal names its
 * field, without a database (the idempotent registration itself is tested in
 * integration/el_api_test). */
#include "test_support.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "el_project.h"
#include "fg/error.h"

static int parse(el_project_registration *out, const char *text)
{
    json_object *obj = json_tokener_parse(text);
    int rc = el_project_registration_from_json(out, obj);

    json_object_put(obj);
    return rc;
}

static void test_el_project__accepts_every_clone_url_form(void **state)
{
    static const char *const urls[] = {
        "https://github.com/torvalds/linux.git",
        "http://git.example.org/a/b",
        "ssh://git@gitlab.com/group/sub/repo.git",
        "git://git.kernel.org/pub/scm/git/git.git",
        "file:///srv/mirrors/a/b.git",
        "git@github.com:torvalds/linux.git",
        "/var/lib/forgegraph/testdata/git/repo",
    };
    el_project_registration reg;
    char body[512];
    (void)state;

    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        snprintf(body, sizeof(body), "{\"forge\":\"git\",\"path\":\"ns/name\",\"url\":\"%s\"}",
                 urls[i]);
        if (parse(&reg, body) != 0)
            fail_msg("%s refused: %s", urls[i], fg_error_last());
        assert_string_equal(reg.url, urls[i]);
        assert_int_equal(reg.forge, EL_FORGE_GIT);
        assert_int_equal(reg.forge_id, 0);
    }
    assert_int_equal(parse(&reg, "{\"forge\":\"gitlab\",\"forgeId\":278964,\"path\":"
                                 "\"gitlab-org/frontend/ui\",\"url\":\"/m/ui\"}"),
                     0);
    assert_int_equal(reg.forge, EL_FORGE_GITLAB);
    assert_int_equal(reg.forge_id, 278964);
    assert_string_equal(reg.path, "gitlab-org/frontend/ui");
    assert_int_equal(parse(&reg, "{\"forge\":\"git\",\"forgeId\":null,\"path\":\"a/.github\","
                                 "\"url\":\"/r\"}"),
                     0);
}

static void test_el_project__refusals_name_the_field(void **state)
{
    static const struct {
        const char *body;
        const char *field;
    } cases[] = {
        {"[]", "body"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"/r\",\"extra\":true}", "extra"},
        {"{\"path\":\"a/b\",\"url\":\"/r\"}", "forge"},
        {"{\"forge\":\"GitHub\",\"forgeId\":1,\"path\":\"a/b\",\"url\":\"/r\"}", "forge"},
        {"{\"forge\":\"github\",\"path\":\"a/b\",\"url\":\"/r\"}", "forgeId"},
        {"{\"forge\":\"github\",\"forgeId\":0,\"path\":\"a/b\",\"url\":\"/r\"}", "forgeId"},
        {"{\"forge\":\"github\",\"forgeId\":99999999999999999999,\"path\":\"a/b\",\"url\":\"/r\"}",
         "forgeId"},
        {"{\"forge\":\"git\",\"forgeId\":3,\"path\":\"a/b\",\"url\":\"/r\"}", "forgeId"},
        {"{\"forge\":\"git\",\"path\":\"/a/b\",\"url\":\"/r\"}", "path"},
        {"{\"forge\":\"git\",\"path\":\"a/b/\",\"url\":\"/r\"}", "path"},
        {"{\"forge\":\"git\",\"path\":\"a/./b\",\"url\":\"/r\"}", "path"},
        {"{\"forge\":\"git\",\"path\":\"a/b?c\",\"url\":\"/r\"}", "path"},
        {"{\"forge\":\"git\",\"path\":[\"a\",\"b\"],\"url\":\"/r\"}", "path"},
        {"{\"forge\":\"github\",\"forgeId\":1,\"path\":\"a/b/c\",\"url\":\"/r\"}", "path"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"repo\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"./repo\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"https://\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"https://host\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"file://host/x\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"svn://h/a/b\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"https://me:pw@h/a/b\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"me:pw@h:a/b\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"/r\\n\"}", "url"},
    };
    el_project_registration reg;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *message;

        assert_int_equal(parse(&reg, cases[i].body), FG_EINVALID);
        message = fg_error_last();
        if (strncmp(message, cases[i].field, strlen(cases[i].field)) != 0 ||
            message[strlen(cases[i].field)] != ':')
            fail_msg("%s: expected an error about %s, got: %s", cases[i].body, cases[i].field,
                     message);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_el_project__accepts_every_clone_url_form),
        cmocka_unit_test(test_el_project__refusals_name_the_field),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

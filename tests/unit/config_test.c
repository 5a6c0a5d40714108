/* fg_config: typed parsing, one clear message per bad value, secrets never shown. */
#include "test_support.h"

#include <stddef.h>
#include <string.h>

#include "fg/config.h"
#include "fg/log.h"

typedef struct {
    char *name;
    long long workers;
    int port;
    bool verbose;
    char *db_url;
    fg_log_level level;
    fg_config_key key;
    char *secret;
} sample_config;

static const fg_config_var sample_vars[] = {
    {"FG_NAME", FG_CONFIG_STRING, offsetof(sample_config, name), "fg", 0, 0, 0, "name", NULL},
    {"FG_WORKERS", FG_CONFIG_INT, offsetof(sample_config, workers), "4", 0, 1, 64, "workers", NULL},
    {"FG_PORT", FG_CONFIG_PORT, offsetof(sample_config, port), "9001", 0, 0, 0, "port", NULL},
    {"FG_VERBOSE", FG_CONFIG_BOOL, offsetof(sample_config, verbose), "no", 0, 0, 0, "v", NULL},
    {"FG_DB_URL", FG_CONFIG_URL, offsetof(sample_config, db_url), NULL, FG_CONFIG_REQUIRED, 0, 0,
     "database", NULL},
    {"FG_LEVEL", FG_CONFIG_LOG_LEVEL, offsetof(sample_config, level), "info", 0, 0, 0, "level",
     NULL},
    {"FG_KEY", FG_CONFIG_KEY, offsetof(sample_config, key), NULL, FG_CONFIG_SECRET, 32, 0, "key",
     NULL},
    {"FG_SECRET", FG_CONFIG_INT, offsetof(sample_config, secret), NULL, FG_CONFIG_SECRET, 0, 10,
     "secret number", NULL},
};
#define NVARS (sizeof(sample_vars) / sizeof(sample_vars[0]))

/* A fake environment: NULL-terminated name/value pairs. */
static const char *fake_getenv(const char *name, void *payload)
{
    const char **env = payload;
    for (size_t i = 0; env[i] != NULL; i += 2)
        if (strcmp(env[i], name) == 0)
            return env[i + 1];
    return NULL;
}

static int load(sample_config *cfg, const char **env)
{
    memset(cfg, 0, sizeof(*cfg));
    return fg_config_load(cfg, sample_vars, NVARS, fake_getenv, env);
}

static void test_config__defaults_and_values(void **state)
{
    /* 32 zero bytes */
    const char *env[] = {"FG_DB_URL",  "postgresql://u:pw@127.0.0.1:55432/db",
                         "FG_WORKERS", "8",
                         "FG_VERBOSE", "true",
                         "FG_KEY",     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                         NULL};
    sample_config cfg;
    (void)state;
    assert_int_equal(load(&cfg, env), 0);
    assert_string_equal(cfg.name, "fg");
    assert_int_equal(cfg.workers, 8);
    assert_int_equal(cfg.port, 9001);
    assert_true(cfg.verbose);
    assert_int_equal(cfg.level, FG_LOG_INFO);
    assert_int_equal(cfg.key.len, 32);
    fg_config_dispose(&cfg, sample_vars, NVARS);
    assert_null(cfg.name);
}

static void assert_refused(const char **env, const char *expected)
{
    sample_config cfg;
    assert_int_equal(load(&cfg, env), FG_EINVALID);
    if (strstr(fg_error_last(), expected) == NULL)
        fail_msg("message '%s' lacks '%s'", fg_error_last(), expected);
}

static void test_config__refuses_bad_values_naming_the_variable(void **state)
{
    const char *missing[] = {NULL};
    const char *port[] = {"FG_DB_URL", "postgresql://x/y", "FG_PORT", "99999", NULL};
    const char *workers[] = {"FG_DB_URL", "postgresql://x/y", "FG_WORKERS", "8x", NULL};
    const char *range[] = {"FG_DB_URL", "postgresql://x/y", "FG_WORKERS", "65", NULL};
    const char *url[] = {"FG_DB_URL", "localhost:5432", NULL};
    const char *level[] = {"FG_DB_URL", "postgresql://x/y", "FG_LEVEL", "loud", NULL};
    const char *boolean[] = {"FG_DB_URL", "postgresql://x/y", "FG_VERBOSE", "maybe", NULL};
    (void)state;
    assert_refused(missing, "FG_DB_URL: required");
    assert_refused(port, "FG_PORT: '99999' is not a port");
    assert_refused(workers, "FG_WORKERS: '8x' is not an integer");
    assert_refused(range, "FG_WORKERS: 65 is out of range (1-64)");
    assert_refused(url, "FG_DB_URL: not a URL");
    assert_refused(level, "FG_LEVEL");
    assert_refused(boolean, "FG_VERBOSE: 'maybe'");
}

static void test_config__never_shows_a_secret(void **state)
{
    const char *short_key[] = {"FG_DB_URL", "postgresql://x/y", "FG_KEY", "c2VjcmV0LXZhbHVl", NULL};
    const char *bad_secret[] = {"FG_DB_URL", "postgresql://x/y", "FG_SECRET", "hunter2", NULL};
    (void)state;
    assert_refused(short_key, "FG_KEY: key is 12 bytes, at least 32");
    assert_null(strstr(fg_error_last(), "c2VjcmV0"));
    assert_refused(bad_secret, "FG_SECRET: '[redacted]' is not an integer");
    assert_null(strstr(fg_error_last(), "hunter2"));
}

static void test_config__redacts_url_passwords(void **state)
{
    fg_buf b;
    (void)state;
    fg_buf_init(&b, 1024);
    assert_int_equal(fg_config_redact_url(&b, "amqp://fg:s3cret@127.0.0.1:45672/%2f"), 0);
    assert_string_equal(b.ptr, "amqp://fg:***@127.0.0.1:45672/%2f");
    fg_buf_clear(&b);
    assert_int_equal(fg_config_redact_url(&b, "postgresql://127.0.0.1/db?x=a@b"), 0);
    assert_string_equal(b.ptr, "postgresql://127.0.0.1/db?x=a@b");
    fg_buf_clear(&b);
    assert_int_equal(fg_config_redact_url(&b, "postgresql://h/db?sslmode=off&password=pw&x=1"), 0);
    assert_string_equal(b.ptr, "postgresql://h/db?sslmode=off&password=***&x=1");
    fg_buf_clear(&b);
    assert_int_equal(fg_config_redact_url(&b, "http://user@host/"), 0);
    assert_string_equal(b.ptr, "http://user@host/");
    fg_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config__defaults_and_values),
        cmocka_unit_test(test_config__refuses_bad_values_naming_the_variable),
        cmocka_unit_test(test_config__never_shows_a_secret),
        cmocka_unit_test(test_config__redacts_url_passwords),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

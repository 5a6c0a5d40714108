/*
 * Test helpers (see test_support.h).
 */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fg/buf.h"

const char *fg_test_stack_env(const char *name)
{
    const char *value = getenv(name);

    if (value == NULL || value[0] == '\0') {
        printf("SKIP: %s is not set: no test stack (run tests/run.sh)\n", name);
        fflush(stdout);
        exit(FG_TEST_SKIP);
    }
    return value;
}

const char *fg_test_shared_testdata(const char *relative)
{
    static char path[4096];
    struct stat st;

    snprintf(path, sizeof(path), "%s/../shared/testdata/%s", FG_SOURCE_DIR, relative);
    if (stat(path, &st) != 0) {
        printf("SKIP: %s is absent (../shared/testdata is not beside this clone)\n", path);
        fflush(stdout);
        return NULL;
    }
    return path;
}

int fg_test_stack(const char *args)
{
    char command[1024];
    int status;

    snprintf(command, sizeof(command), "%s/deploy/local/stack.sh %s", FG_SOURCE_DIR, args);
    fflush(stdout);
    status = system(command); /* test-only: drives the stack's own script */
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

long long fg_test_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool fg_test_wait_until(bool (*cond)(void *payload), void *payload, int timeout_ms)
{
    long long deadline = fg_test_now_ms() + timeout_ms;

    for (;;) {
        if (cond(payload))
            return true;
        if (fg_test_now_ms() >= deadline)
            return cond(payload);
        usleep(20 * 1000);
    }
}

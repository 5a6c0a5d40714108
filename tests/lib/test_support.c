/*
 * Test helpers (see test_support.h).
 */
#include "test_support.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fg/amqp.h"
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

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int fg_test_remove_tree(const char *path)
{
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int fg_test_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

bool fg_test_process_exited(void *payload)
{
    fg_test_process *p = payload;

    if (!p->exited && waitpid(p->pid, &p->status, WNOHANG) == p->pid)
        p->exited = true;
    return p->exited;
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

void fg_test_delete_queues(const char *amqp_url, const char *service)
{
    static const char *const suffixes[] = {"", ".retry", ".parked"};
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    fg_amqp_url u;
    char queue[128];

    if (fg_amqp_url_parse(&u, amqp_url) < 0) {
        amqp_destroy_connection(c);
        return;
    }
    if (amqp_socket_open(s, u.host, u.port) == AMQP_STATUS_OK &&
        amqp_login(c, u.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, u.user, u.password)
                .reply_type == AMQP_RESPONSE_NORMAL) {
        amqp_channel_open(c, 1);
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
            snprintf(queue, sizeof(queue), "fg.%s%s", service, suffixes[i]);
            amqp_queue_delete(c, 1, amqp_cstring_bytes(queue), 0, 0);
        }
        amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(c);
    fg_amqp_url_dispose(&u);
}

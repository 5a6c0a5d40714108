/*
 * Helpers shared by the tests: the stack's settings, skipping with a visible reason, waiting on a
 * condition (never a bare sleep), and driving the test stack's servers (stop/start RabbitMQ...).
 */
#ifndef FG_TEST_SUPPORT_H
#define FG_TEST_SUPPORT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <setjmp.h>
#include <cmocka.h>

#define FG_TEST_SKIP 77

/* The value of an FG_* variable exported by `stack.sh env`; when absent the whole test program
 * exits 77 with "SKIP: <why>" (tests/run.sh always provides a stack, a bare ctest may not). */
const char *fg_test_stack_env(const char *name);

/* Path under ../shared/testdata, or NULL (after printing a visible SKIP line) when absent. */
const char *fg_test_shared_testdata(const char *relative);

/* Runs `deploy/local/stack.sh <args>` against the test stack; returns its exit status. */
int fg_test_stack(const char *args);

/* Polls cond(payload) every 20 ms until it is true or timeout_ms passes; returns the last value. */
bool fg_test_wait_until(bool (*cond)(void *payload), void *payload, int timeout_ms);

/* Deletes a test's own queues fg.<service>, fg.<service>.retry and fg.<service>.parked on the
 * broker at amqp_url (those it declared as a stand-in consumer); absent ones are no error, and a
 * broker that cannot be reached leaves them (the next run declares them again). */
void fg_test_delete_queues(const char *amqp_url, const char *service);

/* Monotonic milliseconds. */
long long fg_test_now_ms(void);

/* Removes the file or folder at path with everything under it (symbolic links themselves, not
 * what they point to); 0, or -1 when something could not be removed. */
int fg_test_remove_tree(const char *path);

/* A TCP port on 127.0.0.1 that was free a moment ago (bound, read and closed again), for a
 * service process the test starts. */
int fg_test_free_port(void);

/* A child process a test started and waits for: exited and status are filled once it is reaped. */
typedef struct {
    pid_t pid;
    int status; /* as waitpid gives it */
    bool exited;
} fg_test_process;

/* Whether the process (payload: an fg_test_process) has exited, reaping it then; a condition for
 * fg_test_wait_until. */
bool fg_test_process_exited(void *payload);

#endif

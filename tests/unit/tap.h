/*
 * tap.h - the unit-test harness: each test case runs in a forked child with a
 * timeout, so a crash or a hang is one failure and not the end of the run.
 * Output is TAP ("ok 1 - name", "not ok 2 - name", "ok 3 - name # SKIP why").
 *
 *   TEST(parses_names) { CHECK(wisp_fn_name_valid("a")); }
 *   TAP_MAIN(CASE(parses_names), ...)
 *
 * CHECK failing prints the expression and location and fails the case.
 * SKIP("reason") ends the case as skipped. TAP_TIMEOUT (seconds) may be
 * defined before including this header (default 30).
 */
#ifndef WISP_TESTS_TAP_H
#define WISP_TESTS_TAP_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef TAP_TIMEOUT
#define TAP_TIMEOUT 30
#endif

struct tap_case {
    const char *name;
    void (*fn)(void);
};

static int tap_skip_fd = -1;

#define TEST(name) static void name(void)
#define CASE(fn)                                                                                   \
    {                                                                                              \
#fn, fn                                                                                    \
    }

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "# %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                                     \
            fprintf(stderr, "# %s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__, a_ ? a_ : "(null)", \
                    b_ ? b_ : "(null)");                                                           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "# %s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, a_,    \
                    b_);                                                                           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define SKIP(reason)                                                                               \
    do {                                                                                           \
        if (tap_skip_fd >= 0) {                                                                    \
            ssize_t w_ = write(tap_skip_fd, reason, strlen(reason));                               \
            (void)w_;                                                                              \
        }                                                                                          \
        exit(77);                                                                                  \
    } while (0)

static inline int tap_run(const struct tap_case *cases, size_t n)
{
    const char *only = getenv("TAP_ONLY");
    int failed = 0;
    printf("1..%zu\n", n);
    fflush(stdout);
    for (size_t i = 0; i < n; i++) {
        if (only && strcmp(only, cases[i].name) != 0) {
            printf("ok %zu - %s # SKIP not selected\n", i + 1, cases[i].name);
            continue;
        }
        int p[2];
        if (pipe(p) < 0)
            return 2;
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            tap_skip_fd = p[1];
            alarm(TAP_TIMEOUT);
            cases[i].fn();
            exit(0);
        }
        close(p[1]);
        char reason[256] = "";
        ssize_t r = read(p[0], reason, sizeof reason - 1);
        reason[r > 0 ? r : 0] = '\0';
        close(p[0]);
        int st = 0;
        waitpid(pid, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            printf("ok %zu - %s\n", i + 1, cases[i].name);
        } else if (WIFEXITED(st) && WEXITSTATUS(st) == 77) {
            printf("ok %zu - %s # SKIP %s\n", i + 1, cases[i].name, reason);
        } else {
            failed++;
            if (WIFSIGNALED(st))
                printf("not ok %zu - %s (killed by signal %d%s)\n", i + 1, cases[i].name,
                       WTERMSIG(st), WTERMSIG(st) == SIGALRM ? ": timeout" : "");
            else
                printf("not ok %zu - %s (exit %d)\n", i + 1, cases[i].name, WEXITSTATUS(st));
        }
        fflush(stdout);
    }
    return failed ? 1 : 0;
}

#define TAP_MAIN(...)                                                                              \
    int main(void)                                                                                 \
    {                                                                                              \
        static const struct tap_case cases_[] = {__VA_ARGS__};                                     \
        return tap_run(cases_, sizeof cases_ / sizeof cases_[0]);                                  \
    }

#endif

/* A fork bomb: every process forks in a loop, children too, until a fork
 * fails. A counter shared by the whole tree caps it at 1000 processes (so
 * the host control stays harmless); the first process reports how many
 * forks succeeded. The sandbox's process limit stops it well before. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BOUND 1000

struct tree {
    int slots;    /* forks begun, capped at BOUND */
    int inflight; /* processes between their check and fork's return */
    int forks;    /* forks that succeeded */
    int err;      /* the first failure's errno */
    int failed;
};

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_SEQ_CST)
#define ADD(x, n) __atomic_fetch_add(&(x), (n), __ATOMIC_SEQ_CST)

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct tree *t = mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int p[2];
    if (t == MAP_FAILED || pipe(p) != 0)
        return perror("setup"), 1;
    pid_t first = getpid();

    for (;;) {
        ADD(t->inflight, 1);
        if (LOAD(t->failed) || ADD(t->slots, 1) >= BOUND) {
            ADD(t->inflight, -1);
            break;
        }
        pid_t pid = fork();
        if (pid == 0) { /* the child bombs on; only the first keeps the write end */
            if (p[1] >= 0)
                close(p[1]);
            p[1] = -1;
            continue;
        }
        if (pid < 0) {
            int zero = 0;
            __atomic_compare_exchange_n(&t->err, &zero, errno, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            __atomic_store_n(&t->failed, 1, __ATOMIC_SEQ_CST);
        } else {
            ADD(t->forks, 1);
        }
        ADD(t->inflight, -1);
        if (pid < 0)
            break;
    }

    if (getpid() != first) { /* wait for the first one's word, reap, go */
        char c;
        (void)!read(p[0], &c, 1);
        while (wait(NULL) > 0)
            ;
        _exit(0);
    }
    /* Every process stops at its next check now; wait for those mid-fork. */
    struct timespec ms = {0, 1000000};
    while (LOAD(t->inflight) > 0)
        nanosleep(&ms, NULL);
    int forks = LOAD(t->forks), err = LOAD(t->err);
    close(p[1]);
    while (wait(NULL) > 0)
        ;
    if (forks >= BOUND)
        printf("ESCAPED could start %d processes\n", forks);
    else
        printf("CONTAINED fork bomb stopped at %d processes (%s)\n", forks,
               err ? strerrorname_np(err) : "?");
    return 0;
}

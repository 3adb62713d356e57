/* clone3 with CLONE_NEWUSER in its struct clone_args. clone3 passes its
 * flags in memory, out of a seccomp filter's reach, so the filter answers
 * every clone3 with ENOSYS (libc then falls back to clone, whose flags it
 * checks). Any other answer than a refusal would be a way around 56. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = CLONE_NEWUSER;
    a.exit_signal = SIGCHLD;
    printf("TRYING clone3\n");
    long r = syscall(SYS_clone3, &a, sizeof a);
    if (r == 0)
        _exit(0); /* the child, in its new user namespace */
    if (r < 0) {
        printf("CONTAINED clone3 new user namespace (%s)\n", strerrorname_np(errno));
        return 0;
    }
    waitpid((pid_t)r, NULL, 0);
    printf("ESCAPED clone3 started pid %ld in a new user namespace\n", r);
    return 0;
}

/* clone(CLONE_NEWUSER | SIGCHLD) as a raw system call: a new user namespace
 * (a full capability set inside it) through clone's flags rather than
 * unshare (16). The filter allows clone only without namespace flags. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("TRYING clone\n");
    long r = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (r == 0)
        _exit(0); /* the child, in its new user namespace */
    if (r < 0) {
        printf("CONTAINED clone new user namespace (%s)\n", strerrorname_np(errno));
        return 0;
    }
    waitpid((pid_t)r, NULL, 0);
    printf("ESCAPED clone started pid %ld in a new user namespace\n", r);
    return 0;
}

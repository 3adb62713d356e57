/* A 32-bit system call through int $0x80 from this 64-bit process: i386
 * ptrace (26), PTRACE_ATTACH to a child of our own. x86_64's 26 is msync,
 * which the filter allows: only its architecture check tells the two apart,
 * and its bad-arch action kills the caller (SIGSYS, number unknown). A kernel
 * without the 32-bit ABI (ia32_emulation off) faults the instruction before
 * any filter (SIGSEGV): nothing to test there, UNSUPPORTED. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static sigjmp_buf fault;

static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(fault, 1);
}

static long int80(long nr, long a, long b, long c, long d)
{
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d)
                     : "memory", "cc", "r8", "r9", "r10", "r11");
    return ret;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int p[2];
    if (pipe(p) != 0)
        return perror("pipe"), 1;
    pid_t child = fork();
    if (child < 0)
        return perror("fork"), 1;
    if (child == 0) { /* lives until its parent is gone */
        char c;
        close(p[1]);
        (void)!read(p[0], &c, 1);
        _exit(0);
    }
    close(p[0]);
    struct sigaction sa = {.sa_handler = on_segv};
    sigaction(SIGSEGV, &sa, NULL);

    int r = 0;
    printf("TRYING int $0x80 ptrace\n");
    if (sigsetjmp(fault, 1) == 0) {
        r = (int)int80(26, 16 /* PTRACE_ATTACH */, child, 0, 0);
        if (r == 0) {
            waitpid(child, NULL, __WALL);
            printf("ESCAPED int $0x80: i386 ptrace attached to pid %d\n", (int)child);
        } else {
            printf("CONTAINED int $0x80 ptrace (%s)\n", strerrorname_np(-r));
        }
    } else {
        printf("UNSUPPORTED int $0x80: this kernel has no 32-bit syscall ABI (SIGSEGV)\n");
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, __WALL);
    return 0;
}

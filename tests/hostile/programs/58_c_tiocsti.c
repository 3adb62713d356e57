/* ioctl(TIOCSTI): push a byte into a terminal's input queue as if typed (the
 * classic way out through a shared tty). Tried on fds 0-2, /dev/tty and a
 * pty pair of our own; the filter kills TIOCSTI whatever the fd. ESCAPED if
 * a call injects a byte, or reaches the kernel at all (ENOTTY on a pipe: the
 * filter let it through). The host control's pipes answer ENOTTY, and root
 * (CAP_SYS_ADMIN) may push into its own pty, which it reads back. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

/* 63_c_tiocsti_highbits.c includes this file with its own request. */
#ifndef STI_PUSH
#define STI_PUSH(fd, c) ioctl(fd, TIOCSTI, c)
#define STI_TRYING ""
#define STI_WHAT ""
#endif

static int reached, injected;
static char report[512];

static void note(const char *what, const char *result)
{
    size_t n = strlen(report);
    snprintf(report + n, sizeof report - n, "%s%s %s", n ? ", " : "", what, result);
}

static int attempt(const char *what, int fd)
{
    char c = '#';
    if (STI_PUSH(fd, &c) == 0) {
        reached = injected = 1;
        note(what, "injected");
        return 1;
    }
    int e = errno;
    if (e != EPERM && e != EACCES && e != ENOSYS)
        reached = 1; /* a refusal of the kernel's own, past the filter */
    note(what, strerrorname_np(e));
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("TRYING ioctl TIOCSTI" STI_TRYING "\n");
    attempt("fd0", 0);
    attempt("fd1", 1);
    attempt("fd2", 2);

    int t = open("/dev/tty", O_RDWR | O_NOCTTY);
    if (t < 0) {
        note("/dev/tty", strerrorname_np(errno));
    } else {
        attempt("/dev/tty", t);
        close(t);
    }

    int m = posix_openpt(O_RDWR | O_NOCTTY), s = -1;
    if (m >= 0 && grantpt(m) == 0 && unlockpt(m) == 0)
        s = open(ptsname(m), O_RDWR | O_NOCTTY | O_NONBLOCK);
    if (s < 0) {
        note("pty", strerrorname_np(errno));
    } else {
        struct termios tio;
        if (tcgetattr(s, &tio) == 0) {
            cfmakeraw(&tio);
            tcsetattr(s, TCSANOW, &tio);
        }
        if (attempt("pty", s)) {
            struct pollfd pf = {.fd = s, .events = POLLIN};
            char c = 0;
            if (poll(&pf, 1, 1000) == 1 && read(s, &c, 1) == 1 && c == '#')
                note("pty", "read back the byte");
        }
    }
    if (s >= 0)
        close(s);
    if (m >= 0)
        close(m);

    if (injected)
        printf("ESCAPED TIOCSTI" STI_WHAT " injected input: %s\n", report);
    else if (reached)
        printf("ESCAPED TIOCSTI" STI_WHAT " reached the kernel: %s\n", report);
    else
        printf("CONTAINED TIOCSTI" STI_WHAT ": %s\n", report);
    return 0;
}

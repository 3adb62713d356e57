/* TIOCSTI with the upper 32 bits of the request set, as a raw ioctl: the
 * kernel takes the request as a 32-bit int (0xffffffff00005412 is TIOCSTI to
 * it), so a filter that compared all 64 bits would let it through. Otherwise
 * as 58: fds 0-2, /dev/tty and a pty pair of our own; ESCAPED if a call
 * injects a byte or reaches the kernel at all; the host control escapes as
 * 58's does (ENOTTY on its pipes, a byte pushed into its own pty). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#define TIOCSTI_HIGH (0xffffffff00000000ul | TIOCSTI)

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
    if (syscall(SYS_ioctl, fd, TIOCSTI_HIGH, &c) == 0) {
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
    printf("TRYING ioctl TIOCSTI with high bits\n");
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
        printf("ESCAPED TIOCSTI (high bits) injected input: %s\n", report);
    else if (reached)
        printf("ESCAPED TIOCSTI (high bits) reached the kernel: %s\n", report);
    else
        printf("CONTAINED TIOCSTI (high bits): %s\n", report);
    return 0;
}

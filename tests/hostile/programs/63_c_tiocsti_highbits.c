/* TIOCSTI with the upper 32 bits of the request set, as a raw ioctl: the
 * kernel takes the request as a 32-bit int (0xffffffff00005412 is TIOCSTI to
 * it), so a filter that compared all 64 bits would let it through. Otherwise
 * as 58: fds 0-2, /dev/tty and a pty pair of our own; ESCAPED if a call
 * injects a byte or reaches the kernel at all; the host control escapes as
 * 58's does (ENOTTY on its pipes, a byte pushed into its own pty). */
#define _GNU_SOURCE
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define STI_PUSH(fd, c) syscall(SYS_ioctl, fd, 0xffffffff00000000ul | TIOCSTI, c)
#define STI_TRYING " with high bits"
#define STI_WHAT " (high bits)"
#include "58_c_tiocsti.c"

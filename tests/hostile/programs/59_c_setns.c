/* setns(2) through a namespace file: our own network namespace,
 * /proc/self/ns/net (a no-op that still proves the call is permitted; with
 * another process's file it would move us into its namespace). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("CONTAINED setns: no /proc/self/ns/net (%s)\n", strerrorname_np(errno));
        return 0;
    }
    printf("TRYING setns\n");
    if (setns(fd, CLONE_NEWNET) == 0)
        printf("ESCAPED setns into a network namespace\n");
    else
        printf("CONTAINED setns (%s)\n", strerrorname_np(errno));
    close(fd);
    return 0;
}

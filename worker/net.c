/*
 * net.c - the network namespace: a fresh one holds only a down loopback;
 * bring it up so tasks can talk to themselves. Nothing else is created.
 */
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sandbox_internal.h"

int sbx_net_setup(struct sbx_err *e)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return sbx_fail(e, "socket for loopback setup", errno);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    sbx_strlcpy(ifr.ifr_name, "lo", sizeof ifr.ifr_name);
    int rc = 0;
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
        rc = sbx_fail(e, "SIOCGIFFLAGS lo", errno);
    } else {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0)
            rc = sbx_fail(e, "SIOCSIFFLAGS lo up", errno);
    }
    close(fd);
    return rc;
}

/*
 * userns.c - the user namespace: the parent writes the child's uid/gid maps
 * (setgroups denied, in-sandbox 0 -> host nobody, never host root); the child
 * then switches to its mapped root, which holds capabilities only inside its
 * own namespaces.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sandbox_internal.h"

static int write_proc_file(pid_t pid, const char *name, const char *data, char *msg,
                           size_t msglen)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(msg, msglen, "open %s: %s", path, strerror(errno));
        return -1;
    }
    size_t len = strlen(data);
    ssize_t n = write(fd, data, len);
    int err = errno;
    close(fd);
    if (n != (ssize_t)len) {
        snprintf(msg, msglen, "write %s: %s", path, n < 0 ? strerror(err) : "short write");
        return -1;
    }
    return 0;
}

int sbx_userns_write_maps(pid_t child, char *msg, size_t msglen)
{
    char map[64];
    if (write_proc_file(child, "setgroups", "deny", msg, msglen) != 0)
        return -1;
    snprintf(map, sizeof map, "0 %u 1\n", SBX_HOST_UID);
    if (write_proc_file(child, "uid_map", map, msg, msglen) != 0)
        return -1;
    snprintf(map, sizeof map, "0 %u 1\n", SBX_HOST_GID);
    return write_proc_file(child, "gid_map", map, msg, msglen);
}

int sbx_userns_become_root(struct sbx_err *e)
{
    /* setgroups(2) is denied in this namespace: the supplementary groups
     * inherited from the host are unmapped and show as nogroup. */
    if (setresgid(0, 0, 0) != 0)
        return sbx_fail(e, "setresgid(0)", errno);
    if (setresuid(0, 0, 0) != 0)
        return sbx_fail(e, "setresuid(0)", errno);
    return 0;
}

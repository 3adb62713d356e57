/*
 * userns.c - the user namespace and the sandbox's ids. The parent writes
 * the child's maps: one id only, in-sandbox uid/gid 1000 ("sandbox") ->
 * host nobody (65534), setgroups denied. uid 0 does not exist inside at
 * all, and no in-sandbox id is host root.
 *
 * The child (the sandbox's init) then switches to uid/gid 1000 and keeps
 * its capabilities over its own namespaces: it created the user namespace,
 * and the kernel clears capabilities on setuid only when leaving the
 * namespace's uid 0, which is unmapped here. caps.c drops them all once
 * setup is done; the task inherits uid 1000 and nothing else.
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
    snprintf(map, sizeof map, "%u %u 1\n", SBX_UID, SBX_HOST_UID);
    if (write_proc_file(child, "uid_map", map, msg, msglen) != 0)
        return -1;
    snprintf(map, sizeof map, "%u %u 1\n", SBX_GID, SBX_HOST_GID);
    return write_proc_file(child, "gid_map", map, msg, msglen);
}

int sbx_userns_switch_ids(struct sbx_err *e)
{
    /* setgroups(2) is denied in this namespace: the supplementary groups
     * inherited from the host are unmapped and show as nogroup. */
    if (setresgid(SBX_GID, SBX_GID, SBX_GID) != 0)
        return sbx_fail(e, "setresgid(sandbox)", errno);
    if (setresuid(SBX_UID, SBX_UID, SBX_UID) != 0)
        return sbx_fail(e, "setresuid(sandbox)", errno);
    return 0;
}

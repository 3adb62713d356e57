/*
 * caps.c - privileges: empties all five capability sets (bounding, ambient,
 * inheritable, permitted, effective), locks the securebits so that uid 0
 * inside the sandbox never regains capabilities across execve, and sets
 * no_new_privs. Called once setup no longer needs privilege.
 */
#include <errno.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox_internal.h"

int sbx_caps_drop_all(struct sbx_err *e)
{
    /* Bounding set first: dropping needs CAP_SETPCAP, which capset removes. */
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL)
                break; /* past the kernel's last capability */
            return sbx_fail(e, "PR_CAPBSET_DROP", errno);
        }
    }
    const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                               SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                               SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) != 0)
        return sbx_fail(e, "PR_SET_SECUREBITS", errno);
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
        return sbx_fail(e, "PR_CAP_AMBIENT_CLEAR_ALL", errno);

    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capset, &hdr, data) != 0)
        return sbx_fail(e, "capset(0)", errno);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return sbx_fail(e, "PR_SET_NO_NEW_PRIVS", errno);

    /* Verify rather than trust. */
    if (syscall(SYS_capget, &hdr, data) != 0)
        return sbx_fail(e, "capget", errno);
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
        if (data[i].effective || data[i].permitted || data[i].inheritable)
            return sbx_fail(e, "capabilities still present after capset", 0);
    if (prctl(PR_CAPBSET_READ, 0, 0, 0, 0) != 0)
        return sbx_fail(e, "bounding set not empty", 0);
    return 0;
}

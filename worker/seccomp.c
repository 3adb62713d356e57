/*
 * seccomp.c - the syscall allowlist and its user-notification listener.
 *
 * The filter is built with libseccomp and exported to a BPF program in a
 * sealed memfd: once per broker (sandbox_filter_fd, handed to every worker:
 * building it costs a fresh process milliseconds of allocation), or per
 * sandbox when none is given. The task process attaches it with
 * SECCOMP_FILTER_FLAG_NEW_LISTENER before it is ready (its children inherit
 * it) and hands the listener fd to the supervisor (init.c, supervise.c);
 * the init attaches the same program for itself, without a listener, once
 * the task is assigned.
 *
 * Default action: SECCOMP_RET_USER_NOTIF, not KILL_PROCESS. A forbidden
 * call blocks in the kernel and the supervisor reads its number from the
 * listener, then SIGKILLs the whole sandbox: the call never runs (the
 * supervisor never answers, let alone with "continue"), and the result can
 * name it (a KILL_PROCESS death tells the parent nothing but SIGSYS). If the
 * supervisor is gone, the listener is closed and the call fails with ENOSYS;
 * the init's PR_SET_PDEATHSIG kills the sandbox anyway. Explicit answers:
 * clone3 fails with ENOSYS (libc falls back to clone), socket with a family
 * other than unix/inet/inet6 with EAFNOSUPPORT. A call through a foreign ABI
 * (i386, x32) hits the bad-arch action, KILL_PROCESS: SIGSYS, number unknown.
 * Argument filters: clone without namespace flags, socket/socketpair
 * families, and ioctl without TIOCSTI.
 *
 * Deliberately absent (reported and killed): mount family, pivot_root,
 * chroot, ptrace, bpf, perf_event_open, keyctl/add_key/request_key,
 * userfaultfd, io_uring_*, kexec_*, module loading, reboot, swapon/off, clock
 * setting, personality, open_by_handle_at, process_vm_*, unshare, setns,
 * seccomp, and everything else not listed below.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox_internal.h"

/* What /usr/bin/python3 (3.11) and /bin/sh (dash) with coreutils need, found
 * with strace -f -c on this machine, plus their close relatives. */
static const char *const allowed[] = {
    /* files and fds */
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
    "preadv2", "pwritev2", "open", "openat", "openat2", "close", "close_range", "creat",
    "lseek", "dup", "dup2", "dup3", "fcntl", "flock", "fsync", "fdatasync", "ftruncate",
    "truncate", "fallocate", "fadvise64", "readahead", "sendfile", "splice", "tee",
    "copy_file_range", "stat", "fstat", "lstat", "newfstatat", "statx", "statfs", "fstatfs",
    "access", "faccessat", "faccessat2", "getdents", "getdents64", "getcwd", "chdir",
    "fchdir", "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "link",
    "linkat", "unlink", "unlinkat", "symlink", "symlinkat", "readlink", "readlinkat",
    "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat", "umask",
    "utime", "utimes", "utimensat", "futimesat", "mknod", "mknodat", "getxattr",
    "lgetxattr", "fgetxattr", "listxattr", "llistxattr", "flistxattr", "pipe", "pipe2",
    "memfd_create", "eventfd", "eventfd2", "inotify_init", "inotify_init1",
    "inotify_add_watch", "inotify_rm_watch",
    /* polling */
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_wait", "epoll_pwait", "epoll_pwait2",
    /* memory */
    "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "msync", "mincore",
    /* processes and threads */
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
    "getpid", "getppid", "gettid", "getpgrp", "getpgid", "setpgid", "getsid", "setsid",
    "set_tid_address", "set_robust_list", "get_robust_list", "rseq", "futex",
    "arch_prctl", "prctl", "sched_yield", "sched_getaffinity", "sched_setaffinity",
    "sched_getparam", "sched_getscheduler", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getattr", "getpriority", "setpriority", "getcpu",
    "membarrier", "pidfd_open", "pidfd_send_signal", "prlimit64", "getrlimit",
    "setrlimit", "getrusage", "times", "sysinfo", "uname", "capget",
    /* credentials (no capabilities remain, so only no-op changes succeed) */
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid",
    "setfsgid",
    /* signals */
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait",
    "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack", "kill",
    "tkill", "tgkill", "pause", "signalfd", "signalfd4", "restart_syscall",
    /* time */
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday",
    "time", "alarm", "getitimer", "setitimer", "timer_create", "timer_settime",
    "timer_gettime", "timer_getoverrun", "timer_delete", "timerfd_create",
    "timerfd_settime", "timerfd_gettime",
    /* sockets (socket/socketpair are argument-filtered below) */
    "connect", "accept", "accept4", "bind", "listen", "shutdown", "getsockname",
    "getpeername", "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg",
    "recvmsg", "sendmmsg", "recvmmsg",
    /* System V IPC: private to the sandbox's IPC namespace */
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl",
    "msgget", "msgsnd", "msgrcv", "msgctl",
    /* randomness */
    "getrandom",
};

/* Socket families a task may use (netns: loopback only); all < 11. */
static const int families[] = {AF_UNIX, AF_INET, AF_INET6};

#define CLONE_NS_FLAGS                                                                       \
    (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |           \
     CLONE_NEWPID | CLONE_NEWNET)

static int add_rules(scmp_filter_ctx ctx, char *msg, size_t msglen)
{
    int rc;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        int nr = seccomp_syscall_resolve_name(allowed[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* not a syscall on this architecture */
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)) != 0) {
            snprintf(msg, msglen, "seccomp rule %s: %s", allowed[i], strerror(-rc));
            return -1;
        }
    }

    /* clone: threads and fork, never new namespaces. */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NS_FLAGS, 0));
    /* clone3 passes flags in memory, out of the filter's reach. */
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);

    /* socket: the allowed families; every other value fails with
     * EAFNOSUPPORT (glibc probes netlink, e.g. in getaddrinfo), so the rules
     * must not overlap: exact compares, everything else enumerated. */
    for (int fam = 0; rc == 0 && fam < 11; fam++) {
        bool ok = false;
        for (size_t i = 0; i < sizeof families / sizeof families[0]; i++)
            ok |= families[i] == fam;
        rc = seccomp_rule_add(ctx, ok ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(EAFNOSUPPORT),
                              SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fam, 0));
    }
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
                              SCMP_A0(SCMP_CMP_GE, 11, 0));
    if (rc == 0)
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, AF_UNIX));

    /* ioctl with any request but TIOCSTI. The kernel uses the low 32 bits of
     * the request, and libseccomp has no masked not-equal, so: allow when any
     * one of those 32 bits differs from TIOCSTI's. */
    for (int bit = 0; rc == 0 && bit < 32; bit++) {
        uint64_t m = 1ull << bit;
        rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, m, (TIOCSTI & m) ^ m));
    }
    if (rc != 0) {
        snprintf(msg, msglen, "seccomp argument rule: %s", strerror(-rc));
        return -1;
    }
    return 0;
}

int sbx_seccomp_export(int *out, char *msg, size_t msglen)
{
    *out = -1;
    /* libseccomp probes the kernel's seccomp API level and refuses actions it
     * thinks unsupported; emulators such as valgrind hide the seccomp syscall.
     * The kernel has the final say when the filter is attached (failure there
     * fails the sandbox), so assume level 5: NOTIFY (kernel >= 5.0). Note that
     * valgrind 3.19 does not pass seccomp(2) through at all, so under it every
     * sandbox fails closed (SANDBOX_ERROR) at sbx_seccomp_notif_size. */
    if (seccomp_api_get() < 5 && seccomp_api_set(5) != 0) {
        snprintf(msg, msglen, "seccomp API level 5 (user notification) unavailable");
        return -1;
    }
    /* Everything not ruled on below: notify the supervisor (see the top). */
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_NOTIFY);
    if (!ctx) {
        snprintf(msg, msglen, "seccomp_init failed");
        return -1;
    }
    int rc = -1, fd = -1;
    int err = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (err != 0) {
        snprintf(msg, msglen, "seccomp bad-arch action: %s", strerror(-err));
        goto out;
    }
    if (add_rules(ctx, msg, msglen) != 0)
        goto out;
    /* libseccomp 2.5 exports only to an fd: a memfd, sealed once written. */
    fd = memfd_create("airlock-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) {
        snprintf(msg, msglen, "memfd_create: %s", strerror(errno));
        goto out;
    }
    if ((err = seccomp_export_bpf(ctx, fd)) != 0) {
        snprintf(msg, msglen, "seccomp_export_bpf: %s", strerror(-err));
        goto out;
    }
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        snprintf(msg, msglen, "sealing the seccomp program: %s", strerror(errno));
        goto out;
    }
    *out = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    seccomp_release(ctx);
    return rc;
}

int sbx_seccomp_read(int fd, struct sock_fprog *prog, char *msg, size_t msglen)
{
    memset(prog, 0, sizeof *prog);
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_WRITE) || !(seals & F_SEAL_SHRINK)) {
        snprintf(msg, msglen, "the seccomp program's fd is not a sealed memfd");
        return -1;
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % sizeof(struct sock_filter) != 0 ||
        size / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        snprintf(msg, msglen, "seccomp program has a bad size (%lld)", (long long)size);
        return -1;
    }
    void *buf = malloc((size_t)size);
    if (!buf) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    if (pread(fd, buf, (size_t)size, 0) != size) {
        snprintf(msg, msglen, "reading seccomp program: %s", strerror(errno));
        free(buf);
        return -1;
    }
    prog->len = (unsigned short)(size / sizeof(struct sock_filter));
    prog->filter = buf;
    return 0;
}

int sbx_seccomp_build(struct sock_fprog *prog, char *msg, size_t msglen)
{
    int fd;
    memset(prog, 0, sizeof *prog);
    if (sbx_seccomp_export(&fd, msg, msglen) != 0)
        return -1;
    int rc = sbx_seccomp_read(fd, prog, msg, msglen);
    close(fd);
    return rc;
}

int sandbox_filter_fd(char *msg, size_t msglen)
{
    int fd;
    return sbx_seccomp_export(&fd, msg, msglen) == 0 ? fd : -1;
}

void sbx_seccomp_free(struct sock_fprog *prog)
{
    free(prog->filter);
    prog->filter = NULL;
    prog->len = 0;
}

int sbx_seccomp_notif_size(size_t *size, char *msg, size_t msglen)
{
    struct seccomp_notif_sizes sz;
    memset(&sz, 0, sizeof sz);
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz) != 0) {
        snprintf(msg, msglen, "seccomp(SECCOMP_GET_NOTIF_SIZES): %s", strerror(errno));
        return -1;
    }
    size_t n = sz.seccomp_notif > sizeof(struct seccomp_notif) ? sz.seccomp_notif
                                                                : sizeof(struct seccomp_notif);
    if (n > SBX_NOTIF_MAX) {
        snprintf(msg, msglen, "seccomp notification size %zu exceeds %d", n, SBX_NOTIF_MAX);
        return -1;
    }
    *size = n;
    return 0;
}

int sbx_seccomp_load(const struct sock_fprog *prog, bool with_listener, int *listener,
                     struct sbx_err *e)
{
    /* seccomp(2), not prctl: only it takes flags. The listener fd comes back
     * close-on-exec. The kernel allows one listener per filter chain. */
    long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                      with_listener ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0, prog);
    if (fd < 0)
        return sbx_fail(e, with_listener ? "seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER)"
                                         : "seccomp(SECCOMP_SET_MODE_FILTER)",
                        errno);
    *listener = with_listener ? (int)fd : -1;
    return 0;
}

int sbx_seccomp_receive(int listener, size_t notif_size, int *nr, uint32_t *arch)
{
    /* The kernel wants a zeroed buffer of at least its own struct's size. */
    union {
        struct seccomp_notif n;
        unsigned char raw[SBX_NOTIF_MAX];
    } buf;
    if (notif_size < sizeof buf.n || notif_size > sizeof buf)
        return -EINVAL;
    memset(&buf, 0, sizeof buf);
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &buf) != 0)
        return -errno;
    *nr = buf.n.data.nr;
    *arch = buf.n.data.arch;
    return 0;
}

void sbx_seccomp_describe(uint32_t arch, int nr, char *buf, size_t len)
{
    char *name = seccomp_syscall_resolve_num_arch(arch, nr);
    if (name)
        snprintf(buf, len, "forbidden system call %d (%s)", nr, name);
    else
        snprintf(buf, len, "forbidden system call %d", nr);
    free(name);
}

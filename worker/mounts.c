/*
 * mounts.c - the sandbox's root filesystem. In the child's private mount
 * namespace: a small tmpfs becomes the new root, holding read-only binds of
 * /usr (and the merged-/usr symlinks or binds for /bin, /sbin, /lib*), a
 * synthetic minimal /etc, a fresh /proc for the new pid namespace (its
 * kernel-tunable parts read-only), a minimal /dev, and size-capped tmpfs
 * /tmp, /dev/shm and /work (disk_bytes each but /dev/shm). pivot_root, detach the host's tree, remount the
 * root read-only. Nothing else of the host (no /home, /root, /var, /run,
 * /etc/shadow, host /tmp) exists inside.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sandbox_internal.h"

/* Where the new root is assembled: a path of the (private) host tree. */
#define NEWROOT "/tmp"

#define RO_FLAGS (MS_RDONLY | MS_NOSUID | MS_NODEV)

static const char passwd[] = "sandbox:x:" SBX_STR(SBX_UID_N) ":" SBX_STR(SBX_GID_N)
                             ":airlock sandbox:/work:/bin/sh\n"
                             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
static const char group[] = "sandbox:x:" SBX_STR(SBX_GID_N) ":\nnogroup:x:65534:\n";
static const char hosts[] = "127.0.0.1\tlocalhost " SBX_HOSTNAME "\n::1\tlocalhost\n";
static const char nsswitch[] = "passwd: files\ngroup: files\nhosts: files\n";

/* Changes the per-mount flags of the mount at path to flags, keeping what
 * the kernel locks for a user namespace (noexec and the atime mode of mounts
 * inherited from the host). Classic MS_REMOUNT rather than mount_setattr:
 * works on older kernels and under valgrind. */
static int remount(const char *path, unsigned long flags, struct sbx_err *e)
{
    struct statvfs sv;
    if (statvfs(path, &sv) != 0)
        return sbx_fail2(e, "statvfs", path, errno);
    flags |= sv.f_flag & (ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_NOATIME | ST_NODIRATIME |
                          ST_RELATIME);
    if (!(sv.f_flag & (ST_NOATIME | ST_RELATIME)))
        flags |= MS_STRICTATIME;
    if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags, NULL) != 0)
        return sbx_fail2(e, "remount", path, errno);
    return 0;
}

/* Bind of src onto the existing dst, then flags on it. Not recursive: the
 * host's submounts under src are not carried into the sandbox. */
static int bind(const char *src, const char *dst, unsigned long flags, struct sbx_err *e)
{
    if (mount(src, dst, NULL, MS_BIND, NULL) != 0)
        return sbx_fail2(e, "bind mount", src, errno);
    return remount(dst, flags, e);
}

static int tmpfs(const char *dst, unsigned long flags, const char *opts, struct sbx_err *e)
{
    if (mount("tmpfs", dst, "tmpfs", flags, opts) != 0)
        return sbx_fail2(e, "mount tmpfs", dst, errno);
    return 0;
}

static int mkdir_p1(const char *path, mode_t mode, struct sbx_err *e)
{
    if (mkdir(path, mode) != 0 && errno != EEXIST)
        return sbx_fail2(e, "mkdir", path, errno);
    return 0;
}

static int write_file(const char *path, const void *data, size_t len, mode_t mode,
                      struct sbx_err *e)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return sbx_fail2(e, "create", path, errno);
    int rc = write_all(fd, data, len);
    int err = errno;
    if (close(fd) != 0 && rc == 0) {
        rc = -1;
        err = errno;
    }
    return rc == 0 ? 0 : sbx_fail2(e, "write", path, err);
}

/* An empty file to bind a host file onto. */
static int touch(const char *path, struct sbx_err *e)
{
    return write_file(path, "", 0, 0444, e);
}

/* /bin, /lib, ... : the same symlink as on the host (merged /usr), else a
 * read-only bind of the directory; skipped when the host has none. */
static int mirror(const char *host, const char *dst, struct sbx_err *e)
{
    struct stat st;
    if (lstat(host, &st) != 0)
        return errno == ENOENT ? 0 : sbx_fail2(e, "lstat", host, errno);
    if (S_ISLNK(st.st_mode)) {
        char target[256];
        ssize_t n = readlink(host, target, sizeof target - 1);
        if (n < 0)
            return sbx_fail2(e, "readlink", host, errno);
        target[n] = '\0';
        if (symlink(target, dst) != 0)
            return sbx_fail2(e, "symlink", dst, errno);
        return 0;
    }
    if (!S_ISDIR(st.st_mode))
        return 0;
    if (mkdir_p1(dst, 0755, e) != 0)
        return -1;
    return bind(host, dst, RO_FLAGS, e);
}

static int setup_etc(struct sbx_err *e)
{
    if (mkdir_p1("etc", 0755, e) || write_file("etc/passwd", passwd, sizeof passwd - 1, 0444, e) ||
        write_file("etc/group", group, sizeof group - 1, 0444, e) ||
        write_file("etc/hostname", SBX_HOSTNAME "\n", sizeof SBX_HOSTNAME, 0444, e) ||
        write_file("etc/hosts", hosts, sizeof hosts - 1, 0444, e) ||
        write_file("etc/nsswitch.conf", nsswitch, sizeof nsswitch - 1, 0444, e))
        return -1;
    /* The dynamic linker's cache (optional: ld.so falls back to its search path). */
    if (access("/etc/ld.so.cache", R_OK) == 0)
        if (touch("etc/ld.so.cache", e) || bind("/etc/ld.so.cache", "etc/ld.so.cache", RO_FLAGS, e))
            return -1;
    return 0;
}

/* proc for the new pid namespace; mounted while the host's /proc is still
 * visible (the kernel refuses a proc mount in a user namespace otherwise). */
static int setup_proc(struct sbx_err *e)
{
    static const char *const ro[] = {"proc/sys", "proc/sysrq-trigger", "proc/irq", "proc/bus"};
    if (mkdir_p1("proc", 0555, e) != 0)
        return -1;
    if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        return sbx_fail(e, "mount proc", errno);
    for (size_t i = 0; i < sizeof ro / sizeof ro[0]; i++) {
        if (access(ro[i], F_OK) != 0)
            continue;
        if (bind(ro[i], ro[i], RO_FLAGS | MS_NOEXEC, e) != 0)
            return -1;
    }
    return 0;
}

static int setup_dev(struct sbx_err *e)
{
    static const char *const nodes[] = {"null", "zero", "full", "random", "urandom"};
    static const char *const links[][2] = {{"/proc/self/fd", "dev/fd"},
                                           {"/proc/self/fd/0", "dev/stdin"},
                                           {"/proc/self/fd/1", "dev/stdout"},
                                           {"/proc/self/fd/2", "dev/stderr"}};
    if (mkdir_p1("dev", 0755, e) ||
        tmpfs("dev", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755", e))
        return -1;
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++) {
        char host[32] = "/dev/", dst[32] = "dev/";
        sbx_strlcpy(host + 5, nodes[i], sizeof host - 5);
        sbx_strlcpy(dst + 4, nodes[i], sizeof dst - 4);
        /* Read-only mount, nosuid, noexec; device writes still work. */
        if (touch(dst, e) || bind(host, dst, MS_RDONLY | MS_NOSUID | MS_NOEXEC, e))
            return -1;
    }
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
        if (symlink(links[i][0], links[i][1]) != 0)
            return sbx_fail2(e, "symlink", links[i][1], errno);
    if (mkdir_p1("dev/shm", 01777, e) ||
        tmpfs("dev/shm", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=" SBX_STR(SBX_SHM_MB) "m,nr_inodes=256,mode=1777", e))
        return -1;
    return remount("dev", MS_RDONLY | MS_NOSUID | MS_NOEXEC, e);
}

/* "size=<disk KiB>k,<rest>" without allocating (we run after clone). */
static void size_opts(char *buf, size_t size, uint64_t bytes, const char *rest)
{
    char digits[24];
    int n = 0;
    uint64_t kib = (bytes + 1023) / 1024;
    do
        digits[n++] = (char)('0' + kib % 10);
    while ((kib /= 10) && n < (int)sizeof digits);
    size_t k = sbx_strlcpy(buf, "size=", size);
    while (n > 0 && k + 1 < size)
        buf[k++] = digits[--n];
    buf[k] = '\0';
    if (k + 1 < size)
        sbx_strlcpy(buf + k, rest, size - k);
}

int sbx_mounts_setup(uint64_t disk_bytes, struct sbx_err *e)
{
    /* Every runtime lives under /usr today. Nothing we do here may propagate back to the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return sbx_fail(e, "make / private", errno);
    if (tmpfs(NEWROOT, MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=512,mode=0755", e))
        return -1;
    if (chdir(NEWROOT) != 0)
        return sbx_fail2(e, "chdir", NEWROOT, errno);

    if (mkdir_p1("usr", 0755, e) || bind("/usr", "usr", RO_FLAGS, e) ||
        mirror("/bin", "bin", e) || mirror("/sbin", "sbin", e) || mirror("/lib", "lib", e) ||
        mirror("/lib64", "lib64", e) || mirror("/lib32", "lib32", e) ||
        mirror("/libx32", "libx32", e))
        return -1;
    if (setup_etc(e) || setup_proc(e) || setup_dev(e))
        return -1;
    /* /tmp and /work: disk_bytes each (their pages count as the task's
     * memory too, under a memory cgroup). */
    char tmp_opts[96], work_opts[96];
    size_opts(tmp_opts, sizeof tmp_opts, disk_bytes, "k,nr_inodes=4096,mode=1777");
    size_opts(work_opts, sizeof work_opts, disk_bytes, "k,nr_inodes=4096,mode=0755");
    if (mkdir_p1("tmp", 01777, e) || tmpfs("tmp", MS_NOSUID | MS_NODEV, tmp_opts, e) ||
        mkdir_p1("work", 0755, e) || tmpfs("work", MS_NOSUID | MS_NODEV, work_opts, e))
        return -1;

    /* Swap roots and drop the host's tree entirely (pivot_root(".", ".")
     * stacks the old root on the new one; detaching "." removes it). */
    if (syscall(SYS_pivot_root, ".", ".") != 0)
        return sbx_fail(e, "pivot_root", errno);
    if (umount2(".", MNT_DETACH) != 0)
        return sbx_fail(e, "detach old root", errno);
    if (chdir("/") != 0)
        return sbx_fail(e, "chdir /", errno);
    return remount("/", RO_FLAGS, e);
}

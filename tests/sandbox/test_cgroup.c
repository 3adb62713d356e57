/*
 * test_cgroup.c - worker/cgroup.c against real cgroups (needs root) and, for
 * the v2 logic this host may not have, against a fake cgroup tree.
 *
 * "real v1" / "real v2" tests run the same bodies on the host's real
 * hierarchies; each is skipped (with the reason) when that version is not
 * usable here. The real v2 tests do what the broker does (prepare=1: the test
 * process moves to <own>/supervisor) and undo it at the end. "real v2 bare"
 * uses a plain cgroup2 directory without controllers (attach, cgroup.kill,
 * cpu.stat, rmdir). "fake" tests point host init at a temp directory with
 * regular files standing in for cgroupfs; mkdirat is wrapped (-Wl,--wrap) so
 * that a new directory gets its interface files, as the kernel would do.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <mntent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"

#define MiB (1024ull * 1024)

/* snprintf that fails the test on truncation. */
__attribute__((format(printf, 3, 4))) static void fmt(char *out, size_t size, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(out, size, f, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < size);
}

/* ------------------------------------------------------------ fake cgroupfs */

/* Interface files a new fake cgroup directory gets: name, content pairs. */
static const char *const v2_files[] = {
    "cgroup.controllers", "cpu memory pids\n", "cgroup.subtree_control", "",
    "cgroup.procs", "", "cgroup.kill", "",
    "cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
    "memory.max", "max\n", "memory.swap.max", "max\n", "memory.oom.group", "0\n",
    "memory.peak", "0\n", "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    "pids.max", "max\n", NULL};
/* The same on an old kernel: no swap accounting, memory.oom.group,
 * memory.peak or cgroup.kill. */
static const char *const v2_old_files[] = {
    "cgroup.controllers", "cpu memory pids\n", "cgroup.subtree_control", "",
    "cgroup.procs", "", "cpu.stat", "usage_usec 0\n", "memory.max", "max\n",
    "memory.events", "oom 0\noom_kill 0\n", "pids.max", "max\n", NULL};
static const char *const *fake_files; /* NULL: mkdirat is just mkdirat */

int __real_mkdirat(int dirfd, const char *path, mode_t mode);
int __wrap_mkdirat(int dirfd, const char *path, mode_t mode);
int __wrap_mkdirat(int dirfd, const char *path, mode_t mode)
{
    int rc = __real_mkdirat(dirfd, path, mode);
    if (rc != 0 || !fake_files)
        return rc;
    int dfd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    for (const char *const *f = fake_files; *f; f += 2) {
        int fd = openat(dfd, f[0], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, f[1], strlen(f[1])), (ssize_t)strlen(f[1]));
        close(fd);
    }
    close(dfd);
    return 0;
}

static void put(const char *dir, const char *name, const char *content)
{
    char p[PATH_MAX];
    fmt(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
}

/* Content of dir/name ("" when absent), in a static buffer. */
static const char *get(const char *dir, const char *name)
{
    static char buf[4096];
    char p[PATH_MAX];
    fmt(p, sizeof p, "%s/%s", dir, name);
    buf[0] = '\0';
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        buf[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    return buf;
}

static void mkdirs(const char *path)
{
    char p[PATH_MAX];
    fmt(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            assert_true(mkdir(p, 0755) == 0 || errno == EEXIST);
            *s = '/';
        }
    }
    assert_true(mkdir(p, 0755) == 0 || errno == EEXIST);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    return remove(p);
}

/* ------------------------------------------------------------ fixture */

struct fx {
    struct sbx_cgroup_host h;
    struct sbx_cgroup cg;
    char msg[1024];
    pid_t kids[8];
    int nkids;
    bool no_limits;      /* real v2 bare: no memory/pids controllers */
    char tmp[PATH_MAX];  /* fake tree (removed at teardown), "" when none */
    char bare[PATH_MAX]; /* real v2 dir the test made, "" when none */
    struct sbx_cgroup_sources src;
    char mi[PATH_MAX], sc[PATH_MAX], root[PATH_MAX];
};

/* Real hosts, found once. */
static struct sbx_cgroup_host g_v1, g_v2;
static char g_v1_why[1024], g_v2_why[1024];
static struct { bool moved; char c[PATH_MAX]; bool had_sup, had_tasks, root; } g_v2_undo;

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    *state = f;
    return 0;
}

static void reap_all(int64_t wait_ms)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        pid_t p = waitpid(-1, NULL, WNOHANG);
        if (p < 0)
            return; /* ECHILD: none left */
        if (p == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > wait_ms)
                return;
            usleep(1000);
        }
    }
}

/* One child's wait status, polling up to wait_ms. Its pid, 0 on timeout. */
static pid_t reap_one(int64_t wait_ms, int *st)
{
    for (int64_t waited = 0; waited <= wait_ms; waited++) {
        pid_t p = waitpid(-1, st, WNOHANG);
        if (p != 0)
            return p < 0 ? 0 : p;
        usleep(1000);
    }
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    fake_files = NULL;
    for (int i = 0; i < f->nkids; i++)
        kill(f->kids[i], SIGKILL);
    if (f->tmp[0]) /* fake tree: rmdir cannot work, drop it first */
        nftw(f->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    char msg[512];
    if (sbx_cgroup_destroy(&f->cg, msg, sizeof msg) != 0)
        fprintf(stderr, "  teardown: %s\n", msg);
    reap_all(3000);
    if (f->bare[0] && rmdir(f->bare) != 0)
        fprintf(stderr, "  teardown: rmdir %s: %s\n", f->bare, strerror(errno));
    free(f);
    return 0;
}

static void ok(int rc, const char *msg)
{
    if (rc != 0)
        fprintf(stderr, "  error: %s\n", msg);
    assert_int_equal(rc, 0);
}

static void new_name(char out[32])
{
    static int n;
    fmt(out, 32, "t%d-%d", (int)getpid(), n++);
}

/* Forks a child that waits for go() before running fn. */
static pid_t spawn(struct fx *f, int (*fn)(void *), void *arg, int *go_fd)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        close(p[1]);
        if (read(p[0], &c, 1) != 1)
            _exit(120);
        _exit(fn(arg));
    }
    close(p[0]);
    assert_true(f->nkids < 8);
    f->kids[f->nkids++] = pid;
    *go_fd = p[1];
    return pid;
}

static void go(int fd)
{
    assert_int_equal(write(fd, "g", 1), 1);
    close(fd);
}

static int wait_status(pid_t pid)
{
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return st;
}

/* ------------------------------------------------------------ child bodies */

static int eat_memory(void *arg)
{
    size_t len = (size_t)(uintptr_t)arg;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 3;
    for (size_t i = 0; i < len; i += 4096)
        p[i] = 1;
    return 0; /* survived: the limit did not hold */
}

/* Forks up to 20 sleepers; exits with how many forks worked, +100 when no
 * fork failed with EAGAIN. */
static int fork_sleepers(void *arg)
{
    (void)arg;
    int n = 0, err = 0;
    for (int i = 0; i < 20; i++) {
        pid_t p = fork();
        if (p == 0) {
            pause();
            _exit(0);
        }
        if (p < 0) {
            err = errno;
            break;
        }
        n++;
    }
    return err == EAGAIN ? n : 100 + n;
}

static int spin_300ms(void *arg)
{
    (void)arg;
    struct timespec t;
    volatile uint64_t x = 0;
    do {
        for (int i = 0; i < 100000; i++)
            x += (uint64_t)i;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    } while (t.tv_sec * 1000 + t.tv_nsec / 1000000 < 300);
    return 0;
}

/* Five sleeping children, then sleeps; each says 'r' on the fd in arg. */
static int sleeper_tree(void *arg)
{
    int ready = (int)(intptr_t)arg;
    for (int i = 0; i < 5; i++) {
        pid_t p = fork();
        if (p < 0)
            return 4;
        if (p == 0)
            break;
    }
    if (write(ready, "r", 1) != 1)
        _exit(5);
    for (;;)
        pause();
}

static int idle(void *arg)
{
    (void)arg;
    pause();
    return 0;
}

static int nothing(void *arg)
{
    (void)arg;
    return 0;
}

/* ------------------------------------------------------------ real hosts */

/* Uses the real host of that version, or skips saying why. */
static void use_real(struct fx *f, int version)
{
    const struct sbx_cgroup_host *h = version == 1 ? &g_v1 : &g_v2;
    if (h->version != version) {
        print_message("  [skipped: real cgroup v%d not usable here: %s]\n", version,
                      version == 1 ? g_v1_why : g_v2_why);
        skip();
    }
    f->h = *h;
}

static void make(struct fx *f, uint64_t mem, uint32_t pids)
{
    char name[32];
    new_name(name);
    if (f->no_limits)
        mem = pids = 0;
    ok(sbx_cgroup_create(&f->h, name, mem, pids, &f->cg, f->msg, sizeof f->msg), f->msg);
}

/* A child allocating 128 MiB under a 32 MiB limit dies of the OOM killer. */
static void body_oom(struct fx *f)
{
    int g;
    make(f, 32 * MiB, 64);
    pid_t pid = spawn(f, eat_memory, (void *)(uintptr_t)(128 * MiB), &g);
    ok(sbx_cgroup_attach(&f->cg, pid, f->msg, sizeof f->msg), f->msg);
    go(g);
    int st = wait_status(pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    struct sbx_cgroup_stats s;
    assert_int_equal(sbx_cgroup_stats(&f->cg, &s), 0);
    print_message("  [oom: peak %llu bytes, oom_kills %llu]\n",
                  (unsigned long long)s.memory_peak_bytes, (unsigned long long)s.oom_kills);
    assert_true(s.oom_kills >= 1);
    char peak[PATH_MAX + 16];
    fmt(peak, sizeof peak, "%s/memory.peak", f->cg.path[0]);
    if (f->h.version == 1 || exists(peak)) /* v2: memory.peak since Linux 5.19 */
        assert_true(s.memory_peak_bytes > 0);
    assert_true(s.memory_peak_bytes <= 32 * MiB);
    ok(sbx_cgroup_destroy(&f->cg, f->msg, sizeof f->msg), f->msg);
}

/* pids.max 8: a child forking 20 sleepers gets EAGAIN after 7. */
static void body_pids(struct fx *f)
{
    int g;
    make(f, 256 * MiB, 8);
    pid_t pid = spawn(f, fork_sleepers, NULL, &g);
    ok(sbx_cgroup_attach(&f->cg, pid, f->msg, sizeof f->msg), f->msg);
    go(g);
    int st = wait_status(pid);
    assert_true(WIFEXITED(st));
    print_message("  [pids: %d forks worked]\n", WEXITSTATUS(st));
    assert_int_equal(WEXITSTATUS(st), 7); /* the child itself is the 8th; < 100: EAGAIN */
    ok(sbx_cgroup_destroy(&f->cg, f->msg, sizeof f->msg), f->msg); /* kills the sleepers */
    reap_all(3000);
}

/* A child spinning 300 ms of CPU is accounted. */
static void body_cpu(struct fx *f)
{
    int g;
    make(f, 256 * MiB, 64);
    pid_t pid = spawn(f, spin_300ms, NULL, &g);
    ok(sbx_cgroup_attach(&f->cg, pid, f->msg, sizeof f->msg), f->msg);
    go(g);
    int st = wait_status(pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    struct sbx_cgroup_stats s;
    assert_int_equal(sbx_cgroup_stats(&f->cg, &s), 0);
    print_message("  [cpu: %llu ms]\n", (unsigned long long)(s.cpu_ns / 1000000));
    if (f->cg.version == 1 && f->cg.dirfd[SBX_CG_CPUACCT] < 0) {
        assert_int_equal(s.cpu_ns, 0);
        return;
    }
    assert_true(s.cpu_ns >= 200000000ull);
    assert_true(s.cpu_ns < 10000000000ull);
}

/* kill() takes down a whole tree of sleepers; all of them die of SIGKILL
 * (we are their subreaper, so the orphaned grandchildren come back to us). */
static void body_kill_tree(struct fx *f)
{
    int g, ready[2];
    make(f, 256 * MiB, 64);
    assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
    pid_t pid = spawn(f, sleeper_tree, (void *)(intptr_t)ready[1], &g);
    close(ready[1]);
    ok(sbx_cgroup_attach(&f->cg, pid, f->msg, sizeof f->msg), f->msg);
    go(g);
    char buf[6];
    for (size_t got = 0; got < sizeof buf;) {
        ssize_t n = read(ready[0], buf + got, sizeof buf - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    close(ready[0]);

    sbx_cgroup_kill(&f->cg);
    int killed = 0, other = 0;
    for (int i = 0; i < 6; i++) {
        int st;
        pid_t p = reap_one(5000, &st);
        assert_true(p > 0);
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
            killed++;
        else
            other++;
    }
    assert_int_equal(killed, 6);
    assert_int_equal(other, 0);
    f->nkids = 0;
    const char *slot = f->cg.path[f->cg.version == 2 ? 0 : SBX_CG_PIDS];
    assert_string_equal(get(slot, "cgroup.procs"), "");
}

/* destroy() kills what is still running, removes every directory, zeroes
 * the struct; again, or on a zeroed struct, it is a no-op. */
static void body_destroy(struct fx *f)
{
    int g;
    make(f, 64 * MiB, 16);
    pid_t pid = spawn(f, idle, NULL, &g);
    ok(sbx_cgroup_attach(&f->cg, pid, f->msg, sizeof f->msg), f->msg);
    go(g);
    char paths[SBX_CG_N][PATH_MAX];
    int n = 0;
    for (int i = 0; i < SBX_CG_N; i++) {
        fmt(paths[i], PATH_MAX, "%s", f->cg.path[i]);
        if (paths[i][0]) {
            assert_true(exists(paths[i]));
            n++;
        }
    }
    assert_true(n >= 1);
    ok(sbx_cgroup_destroy(&f->cg, f->msg, sizeof f->msg), f->msg);
    for (int i = 0; i < SBX_CG_N; i++) {
        struct stat st;
        if (paths[i][0]) {
            assert_int_equal(stat(paths[i], &st), -1);
            assert_int_equal(errno, ENOENT);
        }
        assert_int_equal(f->cg.dirfd[i], -1);
    }
    int st = wait_status(pid);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    f->nkids = 0;
    assert_int_equal(f->cg.version, 0);
    assert_int_equal(sbx_cgroup_destroy(&f->cg, f->msg, sizeof f->msg), 0);

    if (fcntl(0, F_GETFD) < 0) /* make fd 0 something destroy must not close */
        assert_int_equal(open("/dev/null", O_RDONLY), 0);
    struct sbx_cgroup zero;
    memset(&zero, 0, sizeof zero); /* dirfd 0s: must not close stdin */
    assert_int_equal(sbx_cgroup_destroy(&zero, f->msg, sizeof f->msg), 0);
    assert_true(fcntl(0, F_GETFD) >= 0);
}

/* Names are checked; an existing cgroup is neither reused nor removed. */
static void body_names(struct fx *f)
{
    static const char *const bad[] = {"a/b", "..", ".", "", "a b", "a.b", "../../x", "x\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = sbx_cgroup_create(&f->h, bad[i], MiB, 8, &f->cg, f->msg, sizeof f->msg);
        assert_int_equal(rc, -1);
        assert_non_null(strstr(f->msg, "invalid"));
        assert_int_equal(f->cg.version, 0);
    }
    char longname[SBX_CG_NAME_MAX + 2];
    int n = snprintf(longname, sizeof longname, "T%d", (int)getpid());
    memset(longname + n, 'a', sizeof longname - 1 - (size_t)n);
    longname[SBX_CG_NAME_MAX + 1] = '\0'; /* 65 */
    assert_int_equal(sbx_cgroup_create(&f->h, longname, MiB, 8, &f->cg, f->msg, sizeof f->msg), -1);
    assert_non_null(strstr(f->msg, "invalid"));
    longname[SBX_CG_NAME_MAX] = '\0'; /* 64: fine */
    ok(sbx_cgroup_create(&f->h, longname, MiB, 8, &f->cg, f->msg, sizeof f->msg), f->msg);

    struct sbx_cgroup dup;
    assert_int_equal(sbx_cgroup_create(&f->h, longname, MiB, 8, &dup, f->msg, sizeof f->msg), -1);
    assert_non_null(strstr(f->msg, "File exists"));
    assert_int_equal(dup.version, 0);
    for (int i = 0; i < SBX_CG_N; i++)
        if (f->cg.path[i][0])
            assert_true(exists(f->cg.path[i])); /* the failed create left the first alone */
    ok(sbx_cgroup_destroy(&f->cg, f->msg, sizeof f->msg), f->msg);
}

/* Rough cost of create + attach + destroy (child exits before destroy). */
static void body_cost(struct fx *f)
{
    enum { N = 100 };
    double total = 0, worst = 0;
    for (int i = 0; i < N; i++) {
        int g;
        pid_t pid = spawn(f, nothing, NULL, &g);
        struct timespec a, b, c, d;
        char name[32];
        new_name(name);
        clock_gettime(CLOCK_MONOTONIC, &a);
        ok(sbx_cgroup_create(&f->h, name, 64 * MiB, 16, &f->cg, f->msg, sizeof f->msg), f->msg);
        ok(sbx_cgroup_attach(&f->cg, pid, f->msg, sizeof f->msg), f->msg);
        clock_gettime(CLOCK_MONOTONIC, &b);
        go(g);
        wait_status(pid);
        f->nkids = 0;
        clock_gettime(CLOCK_MONOTONIC, &c);
        ok(sbx_cgroup_destroy(&f->cg, f->msg, sizeof f->msg), f->msg);
        clock_gettime(CLOCK_MONOTONIC, &d);
        double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6 +
                    (d.tv_sec - c.tv_sec) * 1e3 + (d.tv_nsec - c.tv_nsec) / 1e6;
        total += ms;
        worst = ms > worst ? ms : worst;
    }
    print_message("  [cost v%d: create+attach+destroy mean %.3f ms, worst %.3f ms over %d]\n",
                  f->h.version, total / N, worst, N);
    assert_true(total / N < 50.0);
}

#define REAL(body)                                                                           \
    static void test_real_v1_##body(void **state)                                            \
    {                                                                                        \
        use_real(*state, 1);                                                                 \
        body_##body(*state);                                                                 \
    }                                                                                        \
    static void test_real_v2_##body(void **state)                                            \
    {                                                                                        \
        use_real(*state, 2);                                                                 \
        body_##body(*state);                                                                 \
    }
REAL(oom)
REAL(pids)
REAL(cpu)
REAL(kill_tree)
REAL(destroy)
REAL(names)
REAL(cost)

/* The cgroup2 mount point and this process's v2 cgroup ("" when none). */
static void own_v2(char mnt[PATH_MAX], char rel[PATH_MAX])
{
    mnt[0] = rel[0] = '\0';
    FILE *m = setmntent("/proc/self/mounts", "re");
    assert_non_null(m);
    struct mntent *e;
    while ((e = getmntent(m)))
        if (strcmp(e->mnt_type, "cgroup2") == 0 && !mnt[0])
            fmt(mnt, PATH_MAX, "%s", e->mnt_dir);
    endmntent(m);
    FILE *c = fopen("/proc/self/cgroup", "re");
    assert_non_null(c);
    char line[PATH_MAX + 64];
    while (fgets(line, sizeof line, c))
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            fmt(rel, PATH_MAX, "%s", line + 3);
        }
    fclose(c);
}

static bool v1_mounted(const char *ctrl)
{
    FILE *m = setmntent("/proc/self/mounts", "re");
    assert_non_null(m);
    struct mntent *e;
    bool found = false;
    while ((e = getmntent(m)))
        found |= strcmp(e->mnt_type, "cgroup") == 0 && hasmntopt(e, ctrl);
    endmntent(m);
    return found;
}

/* Auto detection on this host picks what is there and says so. */
static void test_real_host_auto(void **state)
{
    struct fx *f = *state;
    ok(sbx_cgroup_host_init(&f->h, 0, 0, f->msg, sizeof f->msg), f->msg);
    print_message("  [%s]\n", f->h.desc);
    char want[64];
    fmt(want, sizeof want, "cgroup v%d (memory, pids", f->h.version);
    assert_ptr_equal(strstr(f->h.desc, want), f->h.desc);
    if (g_v2.version == 2) {
        assert_int_equal(f->h.version, 2);
        return;
    }
    /* This kind of host: v1 memory/pids hierarchies next to an empty cgroup2. */
    assert_true(v1_mounted("memory") && v1_mounted("pids"));
    assert_int_equal(f->h.version, 1);
    assert_int_equal(access(f->h.v1_memory, W_OK), 0);
    assert_int_equal(access(f->h.v1_pids, W_OK), 0);
    assert_non_null(strstr(f->h.desc, f->h.v1_memory));
    if (v1_mounted("cpuacct"))
        assert_non_null(strstr(f->h.desc, ", cpuacct)"));
    /* The own memory cgroup from /proc/self/cgroup ends the v1 memory path. */
    FILE *c = fopen("/proc/self/cgroup", "re");
    assert_non_null(c);
    char line[PATH_MAX + 64], own[PATH_MAX] = "";
    while (fgets(line, sizeof line, c)) {
        char *p = strstr(line, ":memory:");
        if (p) {
            p[strcspn(p, "\n")] = '\0';
            fmt(own, sizeof own, "%s", p + 8);
        }
    }
    fclose(c);
    assert_true(own[0] != '\0');
    size_t ol = strlen(own), ml = strlen(f->h.v1_memory);
    if (strcmp(own, "/") != 0)
        assert_true(ml >= ol && strcmp(f->h.v1_memory + ml - ol, own) == 0);
}

/* Real v2 that is not usable is refused with the precise reason, and
 * without touching anything. */
static void test_real_v2_refusal(void **state)
{
    struct fx *f = *state;
    if (g_v2.version == 2) {
        print_message("  [skipped: cgroup v2 is usable here]\n");
        skip();
    }
    char mnt[PATH_MAX], rel[PATH_MAX], c[PATH_MAX + 16];
    own_v2(mnt, rel);
    if (!mnt[0]) {
        assert_non_null(strstr(g_v2_why, "no cgroup2 hierarchy mounted"));
        return;
    }
    fmt(c, sizeof c, "%s%s", mnt, strcmp(rel, "/") ? rel : "");
    print_message("  [v2 refused: %s]\n", g_v2_why);
    const char *ctrls = get(c, "cgroup.controllers");
    if (!strstr(ctrls, "memory") || !strstr(ctrls, "pids")) {
        assert_non_null(strstr(g_v2_why, "memory and pids controllers are not available"));
        char sup[PATH_MAX + 32];
        fmt(sup, sizeof sup, "%s/supervisor", c);
        assert_false(exists(sup)); /* refused before any change */
    }
    /* A worker (prepare=0) outside <C>/supervisor is told so. */
    assert_int_equal(sbx_cgroup_host_init(&f->h, 2, 0, f->msg, sizeof f->msg), -1);
    assert_non_null(strstr(f->msg, "supervisor"));
    assert_int_equal(f->h.version, 0);
}

/* Real cgroup2 without memory/pids controllers (the hybrid host's empty
 * unified hierarchy): attach, cpu.stat accounting, cgroup.kill and rmdir on
 * the real v2 interface, with limits left unset. */
static void test_real_v2_bare(void **state)
{
    struct fx *f = *state;
    char mnt[PATH_MAX], rel[PATH_MAX];
    own_v2(mnt, rel);
    if (!mnt[0]) {
        print_message("  [skipped: no cgroup2 mount]\n");
        skip();
    }
    char base_rel[PATH_MAX];
    fmt(base_rel, sizeof base_rel, "%s/airlock-test-%d", strcmp(rel, "/") ? rel : "",
             (int)getpid());
    fmt(f->bare, sizeof f->bare, "%s%s", mnt, base_rel);
    if (mkdir(f->bare, 0755) != 0) {
        f->bare[0] = '\0';
        print_message("  [skipped: cannot mkdir in own cgroup2: %s]\n", strerror(errno));
        skip();
    }
    memset(&f->h, 0, sizeof f->h);
    f->h.version = 2;
    fmt(f->h.v2_base, sizeof f->h.v2_base, "%s", f->bare);
    fmt(f->h.procs_rel, sizeof f->h.procs_rel, "%s", base_rel);
    f->no_limits = true;

    body_cpu(f);
    ok(sbx_cgroup_destroy(&f->cg, f->msg, sizeof f->msg), f->msg);
    body_kill_tree(f);
    ok(sbx_cgroup_destroy(&f->cg, f->msg, sizeof f->msg), f->msg);
    body_destroy(f);
}

/* ------------------------------------------------------------ fake trees */

/* A temp tree: <tmp>/mountinfo, <tmp>/cgroup (self), <tmp>/root/... */
static void fake_init(struct fx *f, const char *mountinfo, const char *self_cgroup)
{
    fmt(f->tmp, sizeof f->tmp, "/tmp/airlock-cgtest-XXXXXX");
    assert_non_null(mkdtemp(f->tmp));
    put(f->tmp, "mountinfo", mountinfo);
    put(f->tmp, "cgroup", self_cgroup);
    fmt(f->mi, sizeof f->mi, "%s/mountinfo", f->tmp);
    fmt(f->sc, sizeof f->sc, "%s/cgroup", f->tmp);
    fmt(f->root, sizeof f->root, "%s/root", f->tmp);
    f->src = (struct sbx_cgroup_sources){f->mi, f->sc, f->root};
}

/* <root><rel>, made with the given cgroup.controllers. */
static void fake_cgroup(struct fx *f, const char *rel, const char *controllers, char out[PATH_MAX])
{
    fmt(out, PATH_MAX, "%s%s", f->root, rel);
    mkdirs(out);
    put(out, "cgroup.controllers", controllers);
    put(out, "cgroup.subtree_control", "");
    put(out, "cgroup.procs", "");
}

#define V2_MOUNTINFO                                                                         \
    "24 1 0:22 / /proc rw,nosuid - proc proc rw\n"                                          \
    "30 1 0:26 / /sys/fs/cgroup rw,nosuid,nodev shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
#define SERVICE "/system.slice/airlock.service"

/* fake v2: the broker's prepare makes C/supervisor (and moves itself there)
 * and C/tasks, enabling the controllers; the worker then finds the same. */
static void test_fake_v2_prepare_then_worker(void **state)
{
    struct fx *f = *state;
    char c[PATH_MAX], path[PATH_MAX + 32], pid[24];
    fake_init(f, V2_MOUNTINFO, "12:pids:/\n0::" SERVICE "\n");
    fake_cgroup(f, "/sys/fs/cgroup" SERVICE, "cpuset cpu io memory pids\n", c);
    fake_files = v2_files;

    ok(sbx_cgroup_host_init_from(&f->h, 2, 1, &f->src, f->msg, sizeof f->msg), f->msg);
    assert_int_equal(f->h.version, 2);
    fmt(path, sizeof path, "%s/tasks", c);
    assert_string_equal(f->h.v2_base, path);
    assert_string_equal(f->h.procs_rel, SERVICE "/tasks");
    assert_non_null(strstr(f->h.desc, "cgroup v2 (memory, pids, cpu) under "));
    fmt(path, sizeof path, "%s/supervisor", c);
    fmt(pid, sizeof pid, "%d", (int)getpid());
    assert_string_equal(get(path, "cgroup.procs"), pid);
    assert_string_equal(get(c, "cgroup.subtree_control"), "+memory +pids +cpu");
    fmt(path, sizeof path, "%s/tasks", c);
    assert_string_equal(get(path, "cgroup.subtree_control"), "+memory +pids +cpu");

    /* The worker, in C/supervisor; the kernel would show the enabled set. */
    put(path, "cgroup.subtree_control", "cpu memory pids\n");
    put(f->tmp, "cgroup", "0::" SERVICE "/supervisor\n");
    struct sbx_cgroup_host w;
    ok(sbx_cgroup_host_init_from(&w, 0, 0, &f->src, f->msg, sizeof f->msg), f->msg);
    assert_int_equal(w.version, 2);
    assert_string_equal(w.v2_base, f->h.v2_base);
    assert_string_equal(w.procs_rel, f->h.procs_rel);
    /* A broker already in C/supervisor (re-exec) does not nest again. */
    ok(sbx_cgroup_host_init_from(&w, 2, 1, &f->src, f->msg, sizeof f->msg), f->msg);
    assert_string_equal(w.v2_base, f->h.v2_base);
    fmt(path, sizeof path, "%s/supervisor/supervisor", c);
    assert_false(exists(path));
    /* Without cpu: memory + pids alone are enough, desc says so. */
    fmt(path, sizeof path, "%s/tasks", c);
    put(path, "cgroup.subtree_control", "memory pids\n");
    ok(sbx_cgroup_host_init_from(&w, 2, 0, &f->src, f->msg, sizeof f->msg), f->msg);
    assert_non_null(strstr(w.desc, "cpu controller off"));
}

/* fake v2: what is missing is said exactly, and nothing is changed. */
static void test_fake_v2_refusals(void **state)
{
    struct fx *f = *state;
    char c[PATH_MAX], path[PATH_MAX + 32];
    fake_init(f, V2_MOUNTINFO, "0::" SERVICE "\n");
    fake_cgroup(f, "/sys/fs/cgroup" SERVICE, "cpu io\n", c);
    fake_files = v2_files;

    assert_int_equal(sbx_cgroup_host_init_from(&f->h, 2, 1, &f->src, f->msg, sizeof f->msg), -1);
    assert_non_null(strstr(f->msg, "memory and pids controllers are not available"));
    assert_non_null(strstr(f->msg, "\"cpu io\""));
    fmt(path, sizeof path, "%s/supervisor", c);
    assert_false(exists(path));
    assert_int_equal(f->h.version, 0);

    /* auto: v2 refused, no v1 mounted either: both reasons. */
    assert_int_equal(sbx_cgroup_host_init_from(&f->h, 0, 1, &f->src, f->msg, sizeof f->msg), -1);
    assert_non_null(strstr(f->msg, "no usable cgroups: cgroup v2: "));
    print_message("  [auto: %s]\n", f->msg);
    assert_non_null(strstr(f->msg, "cgroup v1: no memory cgroup v1 hierarchy (none in "));

    /* worker outside <C>/supervisor */
    assert_int_equal(sbx_cgroup_host_init_from(&f->h, 2, 0, &f->src, f->msg, sizeof f->msg), -1);
    assert_non_null(strstr(f->msg, "not in a <C>/supervisor cgroup"));

    /* worker in supervisor, but C/tasks never prepared, then without memory */
    put(f->tmp, "cgroup", "0::" SERVICE "/supervisor\n");
    assert_int_equal(sbx_cgroup_host_init_from(&f->h, 2, 0, &f->src, f->msg, sizeof f->msg), -1);
    assert_non_null(strstr(f->msg, "tasks/cgroup.subtree_control: No such file"));
    fmt(path, sizeof path, "%s/tasks", c);
    mkdirs(path);
    put(path, "cgroup.subtree_control", "cpu pids\n");
    assert_int_equal(sbx_cgroup_host_init_from(&f->h, 2, 0, &f->src, f->msg, sizeof f->msg), -1);
    assert_non_null(strstr(f->msg, "does not enable memory and pids"));

    /* own cgroup not below the mount's root */
    nftw(f->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    fake_init(f, "30 1 0:26 /other /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "0::/mine\n");
    assert_int_equal(sbx_cgroup_host_init_from(&f->h, 2, 1, &f->src, f->msg, sizeof f->msg), -1);
    assert_non_null(strstr(f->msg, "own cgroup2 cgroup /mine is not below any of its mounts"));
    assert_int_equal(sbx_cgroup_host_init_from(&f->h, 3, 1, &f->src, f->msg, sizeof f->msg), -1);
    assert_non_null(strstr(f->msg, "must be 0 (auto), 1 or 2"));
}

/* fake v2: C at the root of a mount whose root is a sub-cgroup (container
 * view), at an escaped mount point ("\040" = space). */
static void test_fake_v2_mount_root(void **state)
{
    struct fx *f = *state;
    char c[PATH_MAX], path[PATH_MAX + 32];
    fake_init(f, "30 1 0:26 /kubepods/pod1 /mnt/cg\\040two rw - cgroup2 none rw\n",
              "0::/kubepods/pod1\n");
    fake_cgroup(f, "/mnt/cg two", "memory pids\n", c);
    fake_files = v2_files;
    ok(sbx_cgroup_host_init_from(&f->h, 0, 1, &f->src, f->msg, sizeof f->msg), f->msg);
    assert_int_equal(f->h.version, 2);
    fmt(path, sizeof path, "%s/tasks", c);
    assert_string_equal(f->h.v2_base, path);
    assert_string_equal(f->h.procs_rel, "/kubepods/pod1/tasks");
    assert_string_equal(get(c, "cgroup.subtree_control"), "+memory +pids"); /* no cpu there */
}

/* fake v2: create writes the limits, attach the pid, stats parse the
 * files, kill writes cgroup.kill; a failed create removes its directory. */
static void test_fake_v2_create(void **state)
{
    struct fx *f = *state;
    char c[PATH_MAX];
    fake_init(f, V2_MOUNTINFO, "0::" SERVICE "\n");
    fake_cgroup(f, "/sys/fs/cgroup" SERVICE, "cpu memory pids\n", c);
    fake_files = v2_files;
    ok(sbx_cgroup_host_init_from(&f->h, 2, 1, &f->src, f->msg, sizeof f->msg), f->msg);

    ok(sbx_cgroup_create(&f->h, "job-1", 32 * MiB, 8, &f->cg, f->msg, sizeof f->msg), f->msg);
    const char *d = f->cg.path[0];
    char want[PATH_MAX + 32];
    fmt(want, sizeof want, "%s/job-1", f->h.v2_base);
    assert_string_equal(d, want);
    assert_string_equal(f->cg.procs_rel, SERVICE "/tasks/job-1");
    assert_int_equal(f->cg.dirfd[1], -1);
    assert_string_equal(get(d, "memory.max"), "33554432");
    assert_string_equal(get(d, "memory.swap.max"), "0");
    assert_string_equal(get(d, "memory.oom.group"), "1");
    assert_string_equal(get(d, "pids.max"), "8");

    ok(sbx_cgroup_attach(&f->cg, 4242, f->msg, sizeof f->msg), f->msg);
    assert_string_equal(get(d, "cgroup.procs"), "4242");

    put(d, "cpu.stat", "usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n");
    put(d, "memory.peak", "5000\n");
    put(d, "memory.events", "low 0\nhigh 0\nmax 3\noom 2\noom_kill 1\noom_group_kill 1\n");
    struct sbx_cgroup_stats s;
    assert_int_equal(sbx_cgroup_stats(&f->cg, &s), 0);
    assert_int_equal(s.cpu_ns, 1234000);
    assert_int_equal(s.memory_peak_bytes, 5000);
    assert_int_equal(s.oom_kills, 1);
    put(d, "memory.peak", "garbage\n");
    assert_int_equal(sbx_cgroup_stats(&f->cg, &s), -1);

    sbx_cgroup_kill(&f->cg);
    assert_string_equal(get(d, "cgroup.kill"), "1");

    /* Limit 0 leaves the file as it was. */
    struct sbx_cgroup cg2;
    ok(sbx_cgroup_create(&f->h, "job-2", 0, 0, &cg2, f->msg, sizeof f->msg), f->msg);
    assert_string_equal(get(cg2.path[0], "memory.max"), "max\n");
    assert_string_equal(get(cg2.path[0], "pids.max"), "max\n");
    /* A fake directory full of regular files cannot be rmdir'ed: destroy
     * says so, closes its fds and keeps the path for a retry. */
    assert_int_equal(sbx_cgroup_destroy(&cg2, f->msg, sizeof f->msg), -1);
    assert_non_null(strstr(f->msg, "rmdir"));
    assert_int_equal(cg2.dirfd[0], -1);
    assert_true(cg2.path[0][0] != '\0');
    char p2[PATH_MAX];
    fmt(p2, sizeof p2, "%s", cg2.path[0]);
    nftw(p2, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    ok(sbx_cgroup_destroy(&cg2, f->msg, sizeof f->msg), f->msg); /* retry: gone is fine */
    assert_int_equal(cg2.version, 0);

    /* A create that fails after its mkdir removes the directory again. */
    fake_files = NULL; /* the kernel "forgot" memory.max */
    struct sbx_cgroup cg3;
    assert_int_equal(sbx_cgroup_create(&f->h, "job-3", MiB, 8, &cg3, f->msg, sizeof f->msg), -1);
    assert_non_null(strstr(f->msg, "writing memory.max in "));
    assert_int_equal(cg3.version, 0);
    fmt(want, sizeof want, "%s/job-3", f->h.v2_base);
    assert_false(exists(want));
}

static void pause_forever(void)
{
    for (;;)
        pause();
}

/* fake v2, old kernel (no memory.swap.max, oom.group, memory.peak,
 * cgroup.kill): create skips what is absent, stats report peak 0, kill falls
 * back to the cgroup.procs loop -- which must not signal a process listed
 * there that is not really in the cgroup (here: a live bystander). */
static void test_fake_v2_old_kernel(void **state)
{
    struct fx *f = *state;
    char c[PATH_MAX], pid[24];
    fake_init(f, V2_MOUNTINFO, "0::" SERVICE "\n");
    fake_cgroup(f, "/sys/fs/cgroup" SERVICE, "memory pids\n", c);
    fake_files = v2_old_files;
    ok(sbx_cgroup_host_init_from(&f->h, 2, 1, &f->src, f->msg, sizeof f->msg), f->msg);
    ok(sbx_cgroup_create(&f->h, "old", 32 * MiB, 8, &f->cg, f->msg, sizeof f->msg), f->msg);
    const char *d = f->cg.path[0];
    assert_string_equal(get(d, "memory.max"), "33554432");
    char absent[PATH_MAX + 32];
    fmt(absent, sizeof absent, "%s/memory.swap.max", d);
    assert_false(exists(absent));

    put(d, "cpu.stat", "usage_usec 7\n");
    struct sbx_cgroup_stats s;
    assert_int_equal(sbx_cgroup_stats(&f->cg, &s), 0);
    assert_int_equal(s.cpu_ns, 7000);
    assert_int_equal(s.memory_peak_bytes, 0);

    pid_t by = fork();
    assert_true(by >= 0);
    if (by == 0)
        pause_forever();
    f->kids[f->nkids++] = by;
    fmt(pid, sizeof pid, "%d\n", (int)by);
    put(d, "cgroup.procs", pid);
    sbx_cgroup_kill(&f->cg);
    assert_int_equal(waitpid(by, NULL, WNOHANG), 0); /* still alive */
    put(d, "cgroup.procs", "");
}

/* fake v1: cpu and cpuacct mounted together, own cgroups below each. */
static void test_fake_v1(void **state)
{
    struct fx *f = *state;
    char m[PATH_MAX], p[PATH_MAX], a[PATH_MAX];
    fake_init(f,
              "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
              "34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
              "38 30 0:35 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n",
              "9:name=systemd:/x\n8:pids:/svc\n4:memory:/svc/m\n2:cpu,cpuacct:/svc\n0::/\n");
    fake_cgroup(f, "/sys/fs/cgroup/memory/svc/m", "", m);
    fake_cgroup(f, "/sys/fs/cgroup/pids/svc", "", p);
    fake_cgroup(f, "/sys/fs/cgroup/cpu,cpuacct/svc", "", a);
    ok(sbx_cgroup_host_init_from(&f->h, 0, 1, &f->src, f->msg, sizeof f->msg), f->msg);
    assert_int_equal(f->h.version, 1);
    assert_string_equal(f->h.v1_memory, m);
    assert_string_equal(f->h.v1_pids, p);
    assert_string_equal(f->h.v1_cpuacct, a);
    assert_string_equal(f->h.procs_rel, "/svc");
    assert_ptr_equal(strstr(f->h.desc, "cgroup v1 (memory, pids, cpuacct) under "), f->h.desc);

    static const char *const v1_files[] = {"cgroup.procs", "", "memory.limit_in_bytes", "",
                                           "pids.max", "", NULL};
    fake_files = v1_files;
    ok(sbx_cgroup_create(&f->h, "j", 32 * MiB, 8, &f->cg, f->msg, sizeof f->msg), f->msg);
    assert_string_equal(f->cg.procs_rel, "/svc/airlock-j");
    char want[PATH_MAX + 16];
    fmt(want, sizeof want, "%s/airlock-j", a);
    assert_string_equal(f->cg.path[SBX_CG_CPUACCT], want);
    assert_string_equal(get(f->cg.path[SBX_CG_MEMORY], "memory.limit_in_bytes"), "33554432");
    assert_string_equal(get(f->cg.path[SBX_CG_PIDS], "pids.max"), "8");

    /* no cpuacct mounted: optional, said in desc */
    put(f->tmp, "mountinfo",
        "34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "38 30 0:35 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n");
    ok(sbx_cgroup_host_init_from(&f->h, 1, 0, &f->src, f->msg, sizeof f->msg), f->msg);
    assert_string_equal(f->h.v1_cpuacct, "");
    assert_non_null(strstr(f->h.desc, "no cpuacct"));
    /* no pids hierarchy: refused, saying so */
    put(f->tmp, "mountinfo", "34 30 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
    assert_int_equal(sbx_cgroup_host_init_from(&f->h, 1, 0, &f->src, f->msg, sizeof f->msg), -1);
    assert_string_equal(f->msg, "cgroup v1: no pids cgroup v1 hierarchy mounted");
}

/* ------------------------------------------------------------ real v2 setup */

/* The real v2 tests do what the broker does; this undoes it afterwards. */
static int group_setup(void **state)
{
    (void)state;
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0)
        return -1;
    if (sbx_cgroup_host_init(&g_v1, 1, 0, g_v1_why, sizeof g_v1_why) != 0)
        memset(&g_v1, 0, sizeof g_v1);

    char mnt[PATH_MAX], rel[PATH_MAX];
    own_v2(mnt, rel);
    if (mnt[0]) {
        fmt(g_v2_undo.c, sizeof g_v2_undo.c, "%s%s", mnt, strcmp(rel, "/") ? rel : "");
        char p[PATH_MAX + 16];
        fmt(p, sizeof p, "%s/supervisor", g_v2_undo.c);
        g_v2_undo.had_sup = exists(p);
        fmt(p, sizeof p, "%s/tasks", g_v2_undo.c);
        g_v2_undo.had_tasks = exists(p);
        g_v2_undo.root = strcmp(rel, "/") == 0;
    }
    if (sbx_cgroup_host_init(&g_v2, 2, 1, g_v2_why, sizeof g_v2_why) != 0)
        memset(&g_v2, 0, sizeof g_v2);
    else
        g_v2_undo.moved = true;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (!g_v2_undo.moved)
        return 0;
    /* Tasks are gone; turn the controllers off (except at a real root),
     * move back to C and remove what prepare made. */
    char p[PATH_MAX + 32], pid[24];
    const char *c = g_v2_undo.c;
    fmt(p, sizeof p, "%s/tasks", c);
    put(p, "cgroup.subtree_control", "-memory -pids -cpu");
    if (!g_v2_undo.had_tasks)
        rmdir(p);
    if (!g_v2_undo.root)
        put(c, "cgroup.subtree_control", "-memory -pids -cpu");
    fmt(pid, sizeof pid, "%d", (int)getpid());
    put(c, "cgroup.procs", pid);
    if (!g_v2_undo.had_sup) {
        fmt(p, sizeof p, "%s/supervisor", c);
        rmdir(p);
    }
    return 0;
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_fake_v2_prepare_then_worker),
        T(test_fake_v2_refusals),
        T(test_fake_v2_mount_root),
        T(test_fake_v2_create),
        T(test_fake_v2_old_kernel),
        T(test_fake_v1),
        T(test_real_host_auto),
        T(test_real_v2_refusal),
        T(test_real_v2_bare),
        T(test_real_v1_oom),
        T(test_real_v1_pids),
        T(test_real_v1_cpu),
        T(test_real_v1_kill_tree),
        T(test_real_v1_destroy),
        T(test_real_v1_names),
        T(test_real_v1_cost),
        T(test_real_v2_oom),
        T(test_real_v2_pids),
        T(test_real_v2_cpu),
        T(test_real_v2_kill_tree),
        T(test_real_v2_destroy),
        T(test_real_v2_names),
        T(test_real_v2_cost),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/*
 * cgroup.c - per-task cgroups (see cgroup.h): finds the host's cgroup setup
 * from /proc/self/mountinfo and /proc/self/cgroup, does the one-time v2
 * delegation setup, and makes, fills, measures, kills and removes the task
 * cgroups. Owns the task cgroup directories it creates and their dirfds;
 * keeps no global state.
 *
 * All cgroupfs files are written with one write(2) and read whole; a file
 * that only some kernels have (memory.swap.max, memory.peak, cgroup.kill,
 * memory.oom.group, memsw) is used when present and skipped when ENOENT.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

#define KILL_ROUNDS 100      /* kill loop: passes over cgroup.procs, 1 ms apart */
#define DESTROY_WAIT_MS 2000 /* how long destroy waits for the cgroup to empty */

/* ------------------------------------------------------------ small helpers */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Reads a small file whole into buf, NUL-terminated. Length, or -1 + errno. */
static ssize_t read_at(int dirfd, const char *name, char *buf, size_t size)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len + 1 < size) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
    return (ssize_t)len;
}

/* Writes s with a single write(2), as cgroupfs wants. 0, or -1 + errno. */
static int write_at(int dirfd, const char *name, const char *s)
{
    int fd = openat(dirfd, name, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = strlen(s);
    ssize_t n = write(fd, s, len);
    int e = n < 0 ? errno : EIO;
    if (close(fd) != 0 && n == (ssize_t)len)
        return -1;
    if (n != (ssize_t)len) {
        errno = e;
        return -1;
    }
    return 0;
}

static int write_u64_at(int dirfd, const char *name, uint64_t v)
{
    char s[24];
    snprintf(s, sizeof s, "%" PRIu64, v);
    return write_at(dirfd, name, s);
}

/* Is word one of the items of list (separated by any of seps)? */
static bool has_word(const char *list, const char *word, const char *seps)
{
    size_t wl = strlen(word);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, seps);
        if (n == wl && memcmp(p, word, wl) == 0)
            return true;
        p += n;
        p += strspn(p, seps);
    }
    return false;
}

/* A decimal number ended by a space, newline or NUL. */
static int parse_u64(const char *s, uint64_t *v)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-' || (*end != '\0' && *end != '\n' && *end != ' '))
        return -1;
    *v = x;
    return 0;
}

/* A number from a cgroup file: the whole file (key NULL) or the "key N" line
 * of a flat-keyed file. 0 with *v set, 1 when the file or key is absent
 * (older kernels), -1 + errno on error. */
static int read_u64_at(int dirfd, const char *name, const char *key, uint64_t *v)
{
    char buf[4096];
    if (read_at(dirfd, name, buf, sizeof buf) < 0)
        return errno == ENOENT ? 1 : -1;
    if (!key)
        return parse_u64(buf, v) == 0 ? 0 : (errno = EINVAL, -1);
    size_t kl = strlen(key);
    for (const char *p = buf; *p; p += strcspn(p, "\n"), p += *p == '\n')
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
            return parse_u64(p + kl + 1, v) == 0 ? 0 : (errno = EINVAL, -1);
    return 1;
}

/* out = a "/" b without doubled slashes; b "" gives a. -1 when too long. */
static int join(char *out, size_t size, const char *a, const char *b)
{
    int al = (int)strlen(a);
    while (al > 0 && a[al - 1] == '/')
        al--;
    while (*b == '/')
        b++;
    int n = *b ? snprintf(out, size, "%.*s/%s", al, a, b)
               : snprintf(out, size, "%.*s", al > 0 ? al : 1, al > 0 ? a : "/");
    if (n < 0 || (size_t)n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

/* Undoes mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
            s[3] >= '0' && s[3] <= '7') {
            *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 3;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

/* The path of a /proc/<pid>/cgroup line if it belongs to the hierarchy:
 * ctrl NULL = v2 ("0::path"), else the v1 hierarchy listing ctrl. Edits line. */
static const char *cgroup_line_path(char *line, const char *ctrl)
{
    line[strcspn(line, "\n")] = '\0';
    char *c1 = strchr(line, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c2)
        return NULL;
    *c1 = *c2 = '\0';
    bool match = ctrl ? has_word(c1 + 1, ctrl, ",") : strcmp(line, "0") == 0 && c1[1] == '\0';
    return match ? c2 + 1 : NULL;
}

/* path relative to a mount's root, or NULL when not below it. */
static const char *below(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (strcmp(root, "/") == 0)
        return path;
    if (strncmp(path, root, n) == 0 && (path[n] == '\0' || path[n] == '/'))
        return path + n;
    return NULL;
}

/* ------------------------------------------------------------ host detection */

/* The calling process's cgroup in one hierarchy (ctrl NULL = v2, else the v1
 * hierarchy with that controller): rel as /proc/self/cgroup names it, dir
 * the directory where it is mounted. */
static int own_cgroup(const struct sbx_cgroup_sources *src, const char *ctrl, char rel[PATH_MAX],
                      char dir[PATH_MAX], char *msg, size_t msglen)
{
    const char *what = ctrl ? ctrl : "cgroup2";
    char *line = NULL;
    size_t cap = 0;
    bool found = false;

    FILE *f = fopen(src->self_cgroup, "re");
    if (!f)
        return err_set(msg, msglen, "%s: %s", src->self_cgroup, strerror(errno));
    while (!found && getline(&line, &cap, f) > 0) {
        const char *p = cgroup_line_path(line, ctrl);
        found = p && snprintf(rel, PATH_MAX, "%s", p) < PATH_MAX;
    }
    fclose(f);
    if (!found) {
        free(line);
        return err_set(msg, msglen, "no %s%s hierarchy (none in %s)", what,
                       ctrl ? " cgroup v1" : "", src->self_cgroup);
    }

    f = fopen(src->mountinfo, "re");
    if (!f) {
        free(line);
        return err_set(msg, msglen, "%s: %s", src->mountinfo, strerror(errno));
    }
    found = false;
    bool mounted = false;
    while (!found && getline(&line, &cap, f) > 0) {
        /* id parent dev root mountpoint options [optional...] - fstype source superoptions */
        char *save, *field[5], *fstype = NULL, *super = NULL;
        int n = 0;
        for (char *t = strtok_r(line, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
            if (n < 5)
                field[n] = t;
            else if (n > 5 && strcmp(t, "-") == 0) {
                fstype = strtok_r(NULL, " \n", &save);
                super = fstype ? strtok_r(NULL, " \n", &save) : NULL; /* the source */
                super = super ? strtok_r(NULL, " \n", &save) : NULL;
                break;
            }
            n++;
        }
        if (!super || strcmp(fstype, ctrl ? "cgroup" : "cgroup2") != 0 ||
            (ctrl && !has_word(super, ctrl, ",")))
            continue;
        mounted = true;
        unescape(field[3]);
        unescape(field[4]);
        const char *sub = below(rel, field[3]);
        char mnt[PATH_MAX];
        if (sub && join(mnt, sizeof mnt, src->root, field[4]) == 0 &&
            join(dir, PATH_MAX, mnt, sub) == 0)
            found = true;
    }
    fclose(f);
    free(line);
    if (!found)
        return mounted ? err_set(msg, msglen, "own %s cgroup %s is not below any of its mounts",
                                 what, rel)
                       : err_set(msg, msglen, "no %s%s hierarchy mounted", what,
                                 ctrl ? " cgroup v1" : "");
    return 0;
}

/* Enables memory + pids (+ cpu when asked and possible) through file, a
 * cgroup.subtree_control below dirfd (dir). 1 when cpu got enabled, 0 when
 * not, -1 on error. */
static int v2_enable(int dirfd, const char *file, const char *dir, bool cpu, char *msg,
                     size_t msglen)
{
    if (cpu && write_at(dirfd, file, "+memory +pids +cpu") == 0)
        return 1;
    if (write_at(dirfd, file, "+memory +pids") == 0)
        return 0;
    int e = errno;
    return err_set(msg, msglen, "cgroup v2: enabling memory and pids in %s/%s: %s%s", dir, file,
                   strerror(e),
                   e == EBUSY ? " (processes other than the broker are in that cgroup: start the "
                                "broker alone in its own cgroup, e.g. systemd Delegate=yes)"
                              : "");
}

static int v2_init(struct sbx_cgroup_host *h, int prepare, const struct sbx_cgroup_sources *src,
                   char *msg, size_t msglen)
{
    char rel[PATH_MAX], dir[PATH_MAX], buf[512];
    if (own_cgroup(src, NULL, rel, dir, msg, msglen) != 0)
        return -1;

    /* In C/supervisor already (the worker, or a broker that prepared before
     * it exec'd): C is the parent. */
    char *rs = strrchr(rel, '/'), *ds = strrchr(dir, '/');
    bool in_supervisor =
        rs && ds && strcmp(rs, "/supervisor") == 0 && strcmp(ds, "/supervisor") == 0;
    if (!prepare && !in_supervisor)
        return err_set(msg, msglen,
                       "cgroup v2: this process is in %s, not in a <C>/supervisor cgroup "
                       "(the broker sets that up)", rel);
    if (in_supervisor) {
        *(ds == dir ? ds + 1 : ds) = '\0';
        *(rs == rel ? rs + 1 : rs) = '\0'; /* "/supervisor" -> "/" */
    }

    int cfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cfd < 0)
        return err_set(msg, msglen, "cgroup v2: %s: %s", dir, strerror(errno));
    int cpu = 0, rc = -1;
    if (in_supervisor) {
        if (read_at(cfd, "tasks/cgroup.subtree_control", buf, sizeof buf) < 0) {
            err_set(msg, msglen, "cgroup v2: %s/tasks/cgroup.subtree_control: %s (the broker "
                    "prepares it)", dir, strerror(errno));
            goto out;
        }
        if (!has_word(buf, "memory", " \n") || !has_word(buf, "pids", " \n")) {
            err_set(msg, msglen, "cgroup v2: %s/tasks does not enable memory and pids for its "
                    "children (cgroup.subtree_control: \"%.*s\")", dir,
                    (int)strcspn(buf, "\n"), buf);
            goto out;
        }
        cpu = has_word(buf, "cpu", " \n");
    } else {
        if (read_at(cfd, "cgroup.controllers", buf, sizeof buf) < 0) {
            err_set(msg, msglen, "cgroup v2: %s/cgroup.controllers: %s", dir, strerror(errno));
            goto out;
        }
        if (!has_word(buf, "memory", " \n") || !has_word(buf, "pids", " \n")) {
            err_set(msg, msglen, "cgroup v2: the memory and pids controllers are not available "
                    "in %s (cgroup.controllers: \"%.*s\"); delegate them to the broker's cgroup",
                    dir, (int)strcspn(buf, "\n"), buf);
            goto out;
        }
        char pid[24];
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        if ((mkdirat(cfd, "supervisor", 0755) != 0 && errno != EEXIST) ||
            write_at(cfd, "supervisor/cgroup.procs", pid) != 0) {
            err_set(msg, msglen, "cgroup v2: moving the broker to %s/supervisor: %s", dir,
                    strerror(errno));
            goto out;
        }
        cpu = v2_enable(cfd, "cgroup.subtree_control", dir, has_word(buf, "cpu", " \n"), msg,
                        msglen);
        if (cpu < 0)
            goto out;
        if (mkdirat(cfd, "tasks", 0755) != 0 && errno != EEXIST) {
            err_set(msg, msglen, "cgroup v2: mkdir %s/tasks: %s", dir, strerror(errno));
            goto out;
        }
        if ((cpu = v2_enable(cfd, "tasks/cgroup.subtree_control", dir, cpu, msg, msglen)) < 0)
            goto out;
    }
    if (join(h->v2_base, sizeof h->v2_base, dir, "tasks") != 0 ||
        join(h->procs_rel, sizeof h->procs_rel, rel, "tasks") != 0) {
        err_set(msg, msglen, "cgroup v2: path too long");
        goto out;
    }
    snprintf(h->desc, sizeof h->desc, "cgroup v2 (memory, pids%s) under %.180s",
             cpu ? ", cpu" : "; cpu controller off, cpu.stat still counts", h->v2_base);
    h->version = 2;
    rc = 0;
out:
    close(cfd);
    return rc;
}

static int v1_init(struct sbx_cgroup_host *h, const struct sbx_cgroup_sources *src, char *msg,
                   size_t msglen)
{
    char rel[PATH_MAX], why[400];
    if (own_cgroup(src, "memory", rel, h->v1_memory, why, sizeof why) != 0 ||
        own_cgroup(src, "pids", h->procs_rel, h->v1_pids, why, sizeof why) != 0)
        return err_set(msg, msglen, "cgroup v1: %s", why);
    if (own_cgroup(src, "cpuacct", rel, h->v1_cpuacct, NULL, 0) != 0)
        h->v1_cpuacct[0] = '\0';
    const char *dirs[] = {h->v1_memory, h->v1_pids, h->v1_cpuacct};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        if (dirs[i][0] && access(dirs[i], W_OK) != 0)
            return err_set(msg, msglen, "cgroup v1: cannot create cgroups in %s: %s", dirs[i],
                           strerror(errno));
    snprintf(h->desc, sizeof h->desc, "cgroup v1 (memory, pids%s) under %.180s",
             h->v1_cpuacct[0] ? ", cpuacct" : "; no cpuacct: cpu time not measured",
             h->v1_memory);
    h->version = 1;
    return 0;
}

int sbx_cgroup_host_init_from(struct sbx_cgroup_host *h, int want, int prepare,
                              const struct sbx_cgroup_sources *src, char *msg, size_t msglen)
{
    char v2msg[512] = "", v1msg[512] = "";
    memset(h, 0, sizeof *h);
    if (want < 0 || want > 2)
        return err_set(msg, msglen, "cgroup version must be 0 (auto), 1 or 2, not %d", want);
    if (want != 1) {
        if (v2_init(h, prepare, src, v2msg, sizeof v2msg) == 0)
            return 0;
        memset(h, 0, sizeof *h);
        if (want == 2)
            return err_set(msg, msglen, "%s", v2msg);
    }
    if (v1_init(h, src, v1msg, sizeof v1msg) == 0)
        return 0;
    memset(h, 0, sizeof *h);
    if (want == 1)
        return err_set(msg, msglen, "%s", v1msg);
    return err_set(msg, msglen, "no usable cgroups: %s; %s", v2msg, v1msg);
}

int sbx_cgroup_host_init(struct sbx_cgroup_host *h, int want, int prepare, char *msg,
                         size_t msglen)
{
    const struct sbx_cgroup_sources real = {"/proc/self/mountinfo", "/proc/self/cgroup", ""};
    return sbx_cgroup_host_init_from(h, want, prepare, &real, msg, msglen);
}

/* ------------------------------------------------------------ task cgroups */

static bool name_ok(const char *name)
{
    size_t n = 0;
    for (; name[n]; n++) {
        char c = name[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return n > 0 && n <= SBX_CG_NAME_MAX;
}

static void cg_zero(struct sbx_cgroup *cg)
{
    memset(cg, 0, sizeof *cg);
    for (int i = 0; i < SBX_CG_N; i++)
        cg->dirfd[i] = -1;
}

/* Fills cg's paths for task cgroup name and opens them, making them first
 * when make is set. On failure what was opened is removed (with make, only
 * what it made: an existing directory is never removed). */
static int cg_open(const struct sbx_cgroup_host *h, const char *name, bool make,
                   struct sbx_cgroup *cg, char *msg, size_t msglen)
{
    cg_zero(cg);
    if (!name || !name_ok(name))
        return err_set(msg, msglen, "cgroup: invalid task cgroup name (1-%d of [A-Za-z0-9_-])",
                       SBX_CG_NAME_MAX);
    if (h->version != 1 && h->version != 2)
        return err_set(msg, msglen, "cgroup: no cgroup setup (host init failed or not run)");

    char leaf[16 + SBX_CG_NAME_MAX];
    const char *base[SBX_CG_N] = {NULL, NULL, NULL};
    snprintf(leaf, sizeof leaf, "%s%s", h->version == 1 ? "airlock-" : "", name);
    if (h->version == 2) {
        base[0] = h->v2_base;
    } else {
        base[SBX_CG_MEMORY] = h->v1_memory;
        base[SBX_CG_PIDS] = h->v1_pids;
        base[SBX_CG_CPUACCT] = h->v1_cpuacct[0] ? h->v1_cpuacct : NULL;
    }
    cg->version = h->version;
    if (join(cg->procs_rel, sizeof cg->procs_rel, h->procs_rel, leaf) != 0) {
        err_set(msg, msglen, "cgroup: path too long");
        goto fail;
    }

    for (int i = 0; i < SBX_CG_N; i++) {
        if (!base[i])
            continue;
        if (join(cg->path[i], sizeof cg->path[i], base[i], leaf) != 0) {
            cg->path[i][0] = '\0';
            err_set(msg, msglen, "cgroup: path too long");
            goto fail;
        }
        /* v1 hierarchies mounted together share one directory. */
        bool shared = false;
        for (int j = 0; j < i; j++)
            shared |= strcmp(cg->path[i], cg->path[j]) == 0;
        if (make && !shared && mkdirat(AT_FDCWD, cg->path[i], 0755) != 0) {
            err_set(msg, msglen, "cgroup: mkdir %s: %s", cg->path[i], strerror(errno));
            cg->path[i][0] = '\0'; /* not ours: never removed */
            goto fail;
        }
        cg->dirfd[i] = open(cg->path[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cg->dirfd[i] < 0) {
            err_set(msg, msglen, "cgroup: open %s: %s", cg->path[i], strerror(errno));
            if (!make)
                cg->path[i][0] = '\0';
            goto fail;
        }
    }
    return 0;

fail:;
    int err = errno;
    char dmsg[256];
    if (sbx_cgroup_destroy(cg, dmsg, sizeof dmsg) != 0 && msg && msglen) {
        size_t n = strlen(msg);
        snprintf(msg + n, msglen - n, "; and %s", dmsg);
    }
    cg_zero(cg);
    errno = err;
    return -1;
}

int sbx_cgroup_open(const struct sbx_cgroup_host *h, const char *name, struct sbx_cgroup *cg,
                    char *msg, size_t msglen)
{
    return cg_open(h, name, false, cg, msg, msglen);
}

int sbx_cgroup_limit(struct sbx_cgroup *cg, uint64_t memory_bytes, uint32_t max_pids, char *msg,
                     size_t msglen)
{
    const char *file = NULL;
    int mslot = SBX_CG_MEMORY, pslot = cg->version == 2 ? 0 : SBX_CG_PIDS, slot = mslot;
    int mfd = cg->dirfd[mslot], pfd = cg->dirfd[pslot];
    if (memory_bytes && cg->version == 2) {
        if (write_u64_at(mfd, file = "memory.max", memory_bytes) != 0 ||
            (write_at(mfd, file = "memory.swap.max", "0") != 0 && errno != ENOENT) ||
            (write_at(mfd, file = "memory.oom.group", "1") != 0 && errno != ENOENT))
            goto fail_write;
    } else if (memory_bytes) {
        /* memsw (memory + swap) may not be below the memory limit, nor the
         * memory limit above memsw: lowering, memory first; raising, memsw. */
        uint64_t cur = 0;
        bool raising = read_u64_at(mfd, "memory.limit_in_bytes", NULL, &cur) == 0 &&
                       memory_bytes > cur;
        if (raising && write_u64_at(mfd, file = "memory.memsw.limit_in_bytes", memory_bytes) != 0 &&
            errno != ENOENT)
            goto fail_write;
        if (write_u64_at(mfd, file = "memory.limit_in_bytes", memory_bytes) != 0 ||
            (!raising &&
             write_u64_at(mfd, file = "memory.memsw.limit_in_bytes", memory_bytes) != 0 &&
             errno != ENOENT))
            goto fail_write;
    }
    slot = pslot;
    if (max_pids && write_u64_at(pfd, file = "pids.max", max_pids) != 0)
        goto fail_write;
    return 0;

fail_write:
    return err_set(msg, msglen, "cgroup: writing %s in %s: %s", file, cg->path[slot],
                   strerror(errno));
}

int sbx_cgroup_create(const struct sbx_cgroup_host *h, const char *name, uint64_t memory_bytes,
                      uint32_t max_pids, struct sbx_cgroup *cg, char *msg, size_t msglen)
{
    if (cg_open(h, name, true, cg, msg, msglen) != 0)
        return -1;
    if (sbx_cgroup_limit(cg, memory_bytes, max_pids, msg, msglen) == 0)
        return 0;
    char dmsg[256];
    if (sbx_cgroup_destroy(cg, dmsg, sizeof dmsg) != 0 && msg && msglen) {
        size_t n = strlen(msg);
        snprintf(msg + n, msglen - n, "; and %s", dmsg);
    }
    cg_zero(cg);
    return -1;
}

int sbx_cgroup_attach(struct sbx_cgroup *cg, pid_t pid, char *msg, size_t msglen)
{
    char s[24];
    snprintf(s, sizeof s, "%d", (int)pid);
    if (cg->version == 0)
        return err_set(msg, msglen, "cgroup: attach to a cgroup that was not created");
    for (int i = 0; i < SBX_CG_N; i++)
        if (cg->dirfd[i] >= 0 && write_at(cg->dirfd[i], "cgroup.procs", s) != 0)
            return err_set(msg, msglen, "cgroup: moving pid %s to %s: %s", s, cg->path[i],
                           strerror(errno));
    return 0;
}

int sbx_cgroup_stats(const struct sbx_cgroup *cg, struct sbx_cgroup_stats *st)
{
    memset(st, 0, sizeof *st);
    if (cg->version == 2) {
        int fd = cg->dirfd[0];
        uint64_t us = 0;
        if (read_u64_at(fd, "cpu.stat", "usage_usec", &us) != 0 ||
            read_u64_at(fd, "memory.peak", NULL, &st->memory_peak_bytes) < 0 || /* 5.19+ */
            read_u64_at(fd, "memory.events", "oom_kill", &st->oom_kills) < 0)
            return -1;
        st->cpu_ns = us * 1000;
        return 0;
    }
    if (cg->version != 1) {
        errno = EINVAL;
        return -1;
    }
    int mfd = cg->dirfd[SBX_CG_MEMORY], cfd = cg->dirfd[SBX_CG_CPUACCT];
    if (read_u64_at(mfd, "memory.max_usage_in_bytes", NULL, &st->memory_peak_bytes) != 0 ||
        read_u64_at(mfd, "memory.oom_control", "oom_kill", &st->oom_kills) < 0 || /* 4.13+ */
        (cfd >= 0 && read_u64_at(cfd, "cpuacct.usage", NULL, &st->cpu_ns) != 0))
        return -1;
    return 0;
}

/* ------------------------------------------------------------ kill, destroy */

/* Is pid in the cgroup rel (v2), or in rel of the pids hierarchy (v1)? */
static bool in_cgroup(pid_t pid, int version, const char *rel)
{
    char path[48], *line = NULL;
    size_t cap = 0;
    bool in = false;
    snprintf(path, sizeof path, "/proc/%d/cgroup", (int)pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    while (!in && getline(&line, &cap, f) > 0) {
        const char *p = cgroup_line_path(line, version == 2 ? NULL : "pids");
        in = p && strcmp(p, rel) == 0;
    }
    free(line);
    fclose(f);
    return in;
}

/* SIGKILLs pid if it is still in the cgroup. The pidfd pins the process
 * while /proc/<pid>/cgroup is checked, so a recycled pid is never hit. */
static void kill_member(const struct sbx_cgroup *cg, pid_t pid)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0 && errno != ENOSYS)
        return; /* already gone */
    if (in_cgroup(pid, cg->version, cg->procs_rel)) {
        if (pidfd >= 0)
            (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0); /* ESRCH: gone */
        else
            (void)kill(pid, SIGKILL); /* before Linux 5.3: tiny pid-reuse window */
    }
    if (pidfd >= 0)
        close(pidfd);
}

/* One pass over dirfd's cgroup.procs. How many pids it listed, -1 on error. */
static int kill_pass(const struct sbx_cgroup *cg, int dirfd)
{
    int fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int pid, listed = 0;
    while (fscanf(f, "%d", &pid) == 1) {
        listed++;
        kill_member(cg, pid);
    }
    fclose(f);
    return listed;
}

void sbx_cgroup_kill(struct sbx_cgroup *cg)
{
    if (cg->version != 1 && cg->version != 2)
        return;
    int fd = cg->dirfd[cg->version == 2 ? 0 : SBX_CG_PIDS];
    if (fd < 0)
        return;
    if (cg->version == 2 && write_at(fd, "cgroup.kill", "1") == 0)
        return;
    for (int round = 0; round < KILL_ROUNDS && kill_pass(cg, fd) > 0; round++)
        sleep_ms(1);
}

static bool is_empty(int dirfd)
{
    char buf[8];
    return read_at(dirfd, "cgroup.procs", buf, sizeof buf) <= 0; /* unreadable: let rmdir tell */
}

int sbx_cgroup_destroy(struct sbx_cgroup *cg, char *msg, size_t msglen)
{
    if (cg->version == 0)
        return 0;
    int64_t deadline = monotonic_ms() + DESTROY_WAIT_MS;
    for (int i = 0; i < SBX_CG_N; i++) /* a retry after a failed destroy reopens */
        if (cg->dirfd[i] < 0 && cg->path[i][0])
            cg->dirfd[i] = open(cg->path[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    sbx_cgroup_kill(cg);
    for (int i = 0; i < SBX_CG_N; i++) {
        while (cg->dirfd[i] >= 0 && !is_empty(cg->dirfd[i]) && monotonic_ms() < deadline) {
            sleep_ms(2);
            sbx_cgroup_kill(cg);
        }
    }
    for (int i = 0; i < SBX_CG_N; i++) {
        if (cg->dirfd[i] >= 0)
            close(cg->dirfd[i]);
        cg->dirfd[i] = -1;
    }

    int rc = 0;
    for (int i = SBX_CG_N - 1; i >= 0; i--) {
        if (!cg->path[i][0])
            continue;
        int r;
        while ((r = rmdir(cg->path[i])) != 0 && errno == EBUSY && monotonic_ms() < deadline)
            sleep_ms(2);
        if (r == 0 || errno == ENOENT) /* ENOENT: a shared v1 directory, removed already */
            cg->path[i][0] = '\0';
        else
            rc = err_set(msg, msglen, "cgroup: rmdir %s: %s", cg->path[i], strerror(errno));
    }
    if (rc == 0)
        cg_zero(cg);
    return rc;
}

/*
 * leftovers.c - at start, removes the empty task cgroups that workers of a
 * dead broker left behind (a worker SIGKILLed with its broker never runs its
 * clean-up). Owns nothing after it returns.
 *
 * Which cgroups are whose: a task cgroup is named after its worker's id
 * (v1: <cgroup>/airlock-<id> in each hierarchy; v2: <C>/tasks/<id>) and that
 * worker carries "--id <id>" on its command line for its whole life; it
 * makes the cgroup itself, so the cgroup never exists before the worker. A
 * cgroup listed first and whose id no process carries afterwards has lost its
 * worker for good: another broker's live workers keep theirs. And rmdir
 * removes only an empty cgroup (EBUSY otherwise): nothing is ever killed
 * here. A live broker that reaps a dead worker may race us to the same empty
 * cgroup; whoever loses sees ENOENT, which both sides accept.
 */
#include "leftovers.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup.h"
#include "util.h"

#define MAX_CANDIDATES 4096

struct names {
    char (*id)[SBX_CG_NAME_MAX + 1];
    size_t n, cap;
};

static int names_add(struct names *s, const char *id)
{
    if (strlen(id) > SBX_CG_NAME_MAX)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        void *grown = realloc(s->id, cap * sizeof *s->id);
        if (!grown)
            return -1;
        s->id = grown;
        s->cap = cap;
    }
    snprintf(s->id[s->n++], sizeof s->id[0], "%s", id);
    return 0;
}

static bool names_has(const struct names *s, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->id[i], id) == 0)
            return true;
    return false;
}

/* Task cgroup ids (entries with prefix) in dir. */
static int list_dir(const char *dir, const char *prefix, struct names *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    size_t plen = strlen(prefix);
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL && out->n < MAX_CANDIDATES)
        if (e->d_type == DT_DIR && e->d_name[0] != '.' && strncmp(e->d_name, prefix, plen) == 0 &&
            !names_has(out, e->d_name + plen))
            rc = names_add(out, e->d_name + plen);
    closedir(d);
    return rc;
}

/* The "--id" arguments of every process we can see. */
static int live_ids(struct names *out)
{
    DIR *proc = opendir("/proc");
    if (!proc)
        return -1;
    struct dirent *e;
    char path[64], buf[8192];
    int rc = 0;
    while (rc == 0 && (e = readdir(proc)) != NULL) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%.20s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue; /* gone, or not ours to read */
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0)
            continue;
        buf[len] = '\0';
        for (const char *a = buf; rc == 0 && a < buf + len; a += strlen(a) + 1)
            if (strcmp(a, "--id") == 0 && a + 5 < buf + len)
                rc = names_add(out, a + 5);
    }
    closedir(proc);
    return rc;
}

int broker_remove_dead_cgroups(enum sandbox_cgroup_mode mode, char *err, size_t errlen)
{
    if (mode != SANDBOX_CGROUP_V1 && mode != SANDBOX_CGROUP_V2)
        return 0;
    struct sbx_cgroup_host *h = malloc(sizeof *h);
    if (!h)
        return err_set(err, errlen, "out of memory");
    char msg[512];
    if (sbx_cgroup_host_init(h, mode == SANDBOX_CGROUP_V2 ? 2 : 1, 0, msg, sizeof msg) != 0) {
        free(h);
        return err_set(err, errlen, "%s", msg);
    }
    const char *dirs[3] = {h->v2_base, NULL, NULL};
    const char *prefix = "";
    if (h->version == 1) {
        dirs[0] = h->v1_memory;
        dirs[1] = h->v1_pids;
        dirs[2] = h->v1_cpuacct[0] ? h->v1_cpuacct : NULL;
        prefix = "airlock-";
    }
    /* Candidates first, owners second: a worker started in between has a
     * cgroup we did not list. */
    struct names cand = {0}, live = {0};
    int rc = 0, removed = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        if (dirs[i] && list_dir(dirs[i], prefix, &cand) != 0)
            rc = err_set(err, errlen, "%s: %s", dirs[i], strerror(errno));
    if (rc == 0 && cand.n > 0 && live_ids(&live) != 0)
        rc = err_set(err, errlen, "listing processes: %s", strerror(errno ? errno : ENOMEM));
    for (size_t c = 0; rc == 0 && c < cand.n; c++) {
        if (names_has(&live, cand.id[c]))
            continue;
        bool gone = false;
        for (int i = 0; i < 3; i++) {
            char path[PATH_MAX];
            if (!dirs[i] || snprintf(path, sizeof path, "%s/%s%s", dirs[i], prefix, cand.id[c]) >=
                                (int)sizeof path)
                continue;
            if (rmdir(path) == 0)
                gone = true;
            else if (errno == EBUSY)
                log_warn("cgroup %s has no worker but is not empty: left alone", path);
            else if (errno != ENOENT)
                log_warn("cannot remove the dead worker's cgroup %s: %s", path, strerror(errno));
        }
        removed += gone;
    }
    free(cand.id);
    free(live.id);
    free(h);
    return rc == 0 ? removed : -1;
}

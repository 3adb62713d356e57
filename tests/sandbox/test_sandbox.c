/*
 * test_sandbox.c - containment tests: real hostile code in the real sandbox,
 * through sandbox_run. Needs root (or CAP_SYS_ADMIN + CAP_SETUID/GID).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "sandbox.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

/* ------------------------------------------------------------ harness */

struct capture {
    char *buf[3]; /* [1] stdout, [2] stderr; NUL-terminated */
    size_t len[3];
    size_t total;
    int abort_after; /* >0: return -1 once this many bytes were seen */
    const char *marker; /* when set: count marker processes on first output */
    int markers_seen;
};

static int count_procs_with(const char *needle);

static int on_output(void *ctx, int stream, const uint8_t *data, size_t len)
{
    struct capture *c = ctx;
    assert_true(stream == 1 || stream == 2);
    char *nb = realloc(c->buf[stream], c->len[stream] + len + 1);
    assert_non_null(nb);
    memcpy(nb + c->len[stream], data, len);
    c->len[stream] += len;
    nb[c->len[stream]] = '\0';
    c->buf[stream] = nb;
    c->total += len;
    if (c->marker && c->markers_seen == 0 && strstr(nb, "started"))
        c->markers_seen = count_procs_with(c->marker);
    if (c->abort_after > 0 && c->total >= (size_t)c->abort_after)
        return -1;
    return 0;
}

static const char *out(const struct capture *c) { return c->buf[1] ? c->buf[1] : ""; }
static const char *err(const struct capture *c) { return c->buf[2] ? c->buf[2] : ""; }

static void capture_free(struct capture *c)
{
    free(c->buf[1]);
    free(c->buf[2]);
    memset(c, 0, sizeof *c);
}

static struct sandbox_task mktask(const char *runtime, const char *code)
{
    struct sandbox_task t;
    memset(&t, 0, sizeof t);
    t.runtime = runtime;
    t.code = (const uint8_t *)code;
    t.code_len = strlen(code);
    t.limits.timeout_ms = 10000;
    t.limits.memory_bytes = 512u << 20;
    t.limits.max_pids = 64;
    t.limits.output_bytes = 1 << 20;
    return t;
}

/* sandbox_run with the capture; says why when the sandbox itself failed. */
static int run(const struct sandbox_task *t, struct capture *c, struct sandbox_result *r)
{
    int rc = sandbox_run(t, on_output, c, r);
    if (r->reason == SANDBOX_REASON_SANDBOX_ERROR)
        fprintf(stderr, "  [reason %d exit %d signal %d: %s]\n  stdout: %.300s\n  stderr: %.600s\n",
                r->reason, r->exit_code, r->signal, r->message, out(c), err(c));
    return rc;
}

/* Runs python code expected to exit 0; returns its stdout in c. */
static void run_ok(const char *runtime, const char *code, struct capture *c)
{
    struct sandbox_task t = mktask(runtime, code);
    struct sandbox_result r;
    int rc = run(&t, c, &r);
    if (r.reason != SANDBOX_REASON_OK)
        fprintf(stderr, "  [reason %d exit %d signal %d: %s]\n  stdout: %.300s\n  stderr: %.600s\n",
                r.reason, r.exit_code, r.signal, r.message, out(c), err(c));
    assert_int_equal(rc, 0);
    assert_int_equal(r.reason, SANDBOX_REASON_OK);
    assert_int_equal(r.exit_code, 0);
}

/* Processes (any pid namespace) whose command line contains needle. */
/* Subdirectories of dir whose name starts with prefix. */
static int count_entries_with(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_type == DT_DIR && de->d_name[0] != '.' &&
            strncmp(de->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

static int count_procs_with(const char *needle)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/cmdline", de->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0)
            continue;
        for (ssize_t i = 0; i < len; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[len] = '\0';
        if (strstr(buf, needle))
            n++;
    }
    closedir(d);
    return n;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------ basics */

static void test_python_print(void **state)
{
    (void)state;
    struct capture c = {0};
    run_ok("python3", "print(6*7)", &c);
    assert_string_equal(out(&c), "42\n");
    assert_string_equal(err(&c), "");
    capture_free(&c);
}

static void test_sh_exit_code(void **state)
{
    (void)state;
    struct capture c = {0};
    struct sandbox_task t = mktask("sh", "echo hi; exit 3");
    struct sandbox_result r;
    assert_int_equal(sandbox_run(&t, on_output, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_EXIT_NONZERO);
    assert_int_equal(r.exit_code, 3);
    assert_int_equal(r.seccomp_syscall, -1);
    assert_string_equal(out(&c), "hi\n");
    capture_free(&c);
}

static void test_runtime_is_debian_python(void **state)
{
    (void)state;
    struct capture c = {0};
    run_ok("python3", "import sys; print(sys.executable, sys.flags.isolated)", &c);
    assert_string_equal(out(&c), "/usr/bin/python3 1\n");
    capture_free(&c);
}

static void test_stdin_delivered(void **state)
{
    (void)state;
    struct capture c = {0};
    struct sandbox_task t = mktask("sh", "cat; echo done");
    t.stdin_data = (const uint8_t *)"hello stdin\n";
    t.stdin_len = strlen("hello stdin\n");
    struct sandbox_result r;
    assert_int_equal(run(&t, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_OK);
    assert_string_equal(out(&c), "hello stdin\ndone\n");
    capture_free(&c);

    /* 4 MiB, far more than a pipe holds: fed while the task reads. */
    size_t big = 4u << 20;
    uint8_t *data = malloc(big);
    assert_non_null(data);
    for (size_t i = 0; i < big; i++)
        data[i] = (uint8_t)(i * 7);
    t = mktask("python3", "import sys, hashlib\n"
                          "d = sys.stdin.buffer.read()\n"
                          "print(len(d), sum(d[::4096]))");
    t.stdin_data = data;
    t.stdin_len = big;
    unsigned long sum = 0;
    for (size_t i = 0; i < big; i += 4096)
        sum += data[i];
    char want[64];
    snprintf(want, sizeof want, "%zu %lu\n", big, sum);
    assert_int_equal(run(&t, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_OK);
    assert_string_equal(out(&c), want);
    capture_free(&c);

    /* A task that never reads its stdin must not hurt us (SIGPIPE). */
    t = mktask("sh", "exit 0");
    t.stdin_data = data;
    t.stdin_len = big;
    assert_int_equal(run(&t, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_OK);
    capture_free(&c);
    free(data);
}

static void test_env_exact(void **state)
{
    (void)state;
    assert_int_equal(setenv("AIRLOCK_TEST_CANARY", "canary-must-not-leak", 1), 0);
    const char *env[] = {"AIRLOCK_TOKEN=tok-123.abc", "EXTRA=1", NULL};
    struct capture c = {0};
    struct sandbox_task t = mktask("sh", "env | sort");
    t.env = env;
    struct sandbox_result r;
    assert_int_equal(run(&t, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_OK);
    assert_non_null(strstr(out(&c), "AIRLOCK_TOKEN=tok-123.abc\n"));
    assert_non_null(strstr(out(&c), "EXTRA=1\n"));
    assert_non_null(strstr(out(&c), "PATH=/usr/bin:/bin\n"));
    assert_non_null(strstr(out(&c), "HOME=/work\n"));
    assert_null(strstr(out(&c), "AIRLOCK_TEST_CANARY"));
    assert_null(strstr(out(&c), "canary-must-not-leak"));
    capture_free(&c);

    /* python sees the same, and only the same */
    t = mktask("python3", "import os\n"
                          "print(sorted(os.environ))");
    t.env = env;
    assert_int_equal(run(&t, &c, &r), 0);
    assert_string_equal(out(&c), "['AIRLOCK_TOKEN', 'EXTRA', 'HOME', 'LANG', 'LOGNAME', "
                                 "'PATH', 'PYTHONDONTWRITEBYTECODE', 'TMPDIR', 'USER']\n");
    capture_free(&c);
    unsetenv("AIRLOCK_TEST_CANARY");
}

static void test_bad_input_is_error(void **state)
{
    (void)state;
    struct capture c = {0};
    struct sandbox_result r;
    struct sandbox_task t = mktask("ruby", "puts 1");
    assert_int_equal(sandbox_run(&t, on_output, &c, &r), -1);
    assert_int_equal(r.reason, SANDBOX_REASON_SANDBOX_ERROR);
    assert_non_null(strstr(r.message, "runtime"));
    assert_false(sandbox_runtime_known("ruby"));
    assert_true(sandbox_runtime_known("python3"));
    assert_true(sandbox_runtime_known("sh"));

    const char *env[] = {"NOEQUALS", NULL};
    t = mktask("sh", "true");
    t.env = env;
    assert_int_equal(sandbox_run(&t, on_output, &c, &r), -1);
    assert_int_equal(r.reason, SANDBOX_REASON_SANDBOX_ERROR);

    /* code that does not fit /work: a setup failure inside the child */
    size_t big = 40u << 20;
    char *code = malloc(big + 1);
    assert_non_null(code);
    memset(code, '#', big);
    code[big] = '\0';
    t = mktask("sh", code);
    assert_int_equal(sandbox_run(&t, on_output, &c, &r), -1);
    assert_int_equal(r.reason, SANDBOX_REASON_SANDBOX_ERROR);
    assert_int_equal(c.total, 0);
    free(code);
    capture_free(&c);
}

/* ------------------------------------------------------------ deadlines and the tree */

static void test_timeout_kills_whole_tree(void **state)
{
    (void)state;
    char marker[64], code[512];
    snprintf(marker, sizeof marker, "airlock-sbx-marker-%d-a", (int)getpid());
    snprintf(code, sizeof code,
             "for i in 1 2 3; do sh -c 'sleep 300; :' %s & done\n"
             "sleep 0.2; echo started; sleep 60\n",
             marker);
    struct capture c = {0};
    c.marker = marker;
    struct sandbox_task t = mktask("sh", code);
    t.limits.timeout_ms = 1000;
    struct sandbox_result r;
    assert_int_equal(run(&t, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_TIMEOUT);
    assert_true(r.wall_ms >= 1000 && r.wall_ms < 5000);
    assert_int_equal(c.markers_seen, 3); /* the scan does see them while alive */
    assert_int_equal(count_procs_with(marker), 0);
    capture_free(&c);
}

static void test_background_dies_with_task(void **state)
{
    (void)state;
    char marker[64], code[512];
    snprintf(marker, sizeof marker, "airlock-sbx-marker-%d-b", (int)getpid());
    snprintf(code, sizeof code,
             "sh -c 'sleep 300; :' %s &\n"
             "sh -c 'sh -c \"sleep 300; :\" %s & :' &\n" /* orphaned grandchild */
             "sleep 0.2; echo started; sleep 0.5\n",
             marker, marker);
    struct capture c = {0};
    c.marker = marker;
    struct sandbox_task t = mktask("sh", code);
    struct sandbox_result r;
    assert_int_equal(run(&t, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_OK);
    assert_true(r.wall_ms < 5000);
    assert_int_equal(c.markers_seen, 2);
    assert_int_equal(count_procs_with(marker), 0);
    capture_free(&c);
}

/* The supervisor dying (the worker is SIGKILLed) takes the sandbox with it. */
static void test_supervisor_death_kills_sandbox(void **state)
{
    (void)state;
    char marker[64], code[256];
    snprintf(marker, sizeof marker, "airlock-sbx-marker-%d-c", (int)getpid());
    snprintf(code, sizeof code, "sh -c 'sleep 300; :' %s & sleep 300\n", marker);
    char id[64];
    snprintf(id, sizeof id, "sbx-test-%d-sd", (int)getpid());
    pid_t sup = fork();
    assert_true(sup >= 0);
    if (sup == 0) {
        struct sandbox_task t = mktask("sh", code);
        t.limits.timeout_ms = 60000;
        t.id = id;
        struct sandbox_result r;
        sandbox_run(&t, NULL, NULL, &r);
        _exit(0);
    }
    int seen = 0;
    for (int i = 0; i < 500 && !seen; i++) {
        seen = count_procs_with(marker);
        if (!seen)
            usleep(10000);
    }
    /* Two for a moment: the marked sh forking its sleep, before the exec. */
    assert_true(seen >= 1);
    assert_int_equal(kill(sup, SIGKILL), 0);
    assert_int_equal(waitpid(sup, NULL, 0), sup);
    int left = 1;
    for (int i = 0; i < 300 && left; i++) {
        left = count_procs_with(marker);
        if (left)
            usleep(10000);
    }
    assert_int_equal(left, 0);
    /* A killed supervisor cannot remove its sandbox's cgroup: its owner does
     * (the broker, for a worker that did not report). */
    char msg[256];
    assert_int_equal(sandbox_cgroup_remove(SANDBOX_CGROUP_AUTO, id, msg, sizeof msg), 0);
}

static void test_output_limit(void **state)
{
    (void)state;
    struct capture c = {0};
    struct sandbox_task t = mktask("sh", "yes");
    t.limits.output_bytes = 100000;
    struct sandbox_result r;
    assert_int_equal(sandbox_run(&t, on_output, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_OUTPUT_LIMIT);
    assert_int_equal(c.total, 100000);
    capture_free(&c);
}

static void test_consumer_abort(void **state)
{
    (void)state;
    struct capture c = {0};
    c.abort_after = 10;
    struct sandbox_task t = mktask("sh", "while :; do echo more; done");
    struct sandbox_result r;
    assert_int_equal(sandbox_run(&t, on_output, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_KILLED);
    assert_true(r.wall_ms < 5000);
    capture_free(&c);
}

/* ------------------------------------------------------------ isolation */

static void test_no_network(void **state)
{
    (void)state;
    /* Deliberately inheritable (no CLOEXEC): the sandbox must close it. */
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(ls >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(ls, 8), 0);
    socklen_t sl = sizeof sa;
    assert_int_equal(getsockname(ls, (struct sockaddr *)&sa, &sl), 0);

    char code[1024];
    snprintf(code, sizeof code,
             "import socket, os\n"
             "try:\n"
             "    socket.create_connection(('127.0.0.1', %d), timeout=2); print('CONNECTED')\n"
             "except OSError as e: print('refused', e.errno)\n"
             "for h in ('1.1.1.1', '10.0.0.1'):\n"
             "    try: socket.create_connection((h, 53), timeout=1); print('CONNECTED')\n"
             "    except OSError as e: print('unreachable')\n"
             "ifs = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]\n"
             "print('ifaces', ifs)\n"
             "print('fds', sorted(os.listdir('/proc/self/fd')))\n"
             "try: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW); print('NETLINK')\n"
             "except OSError as e: print('netlink', e.errno)\n"
             "try: socket.socket(socket.AF_PACKET, socket.SOCK_RAW); print('PACKET')\n"
             "except OSError as e: print('packet', e.errno)\n",
             ntohs(sa.sin_port));
    struct capture c = {0};
    run_ok("python3", code, &c);
    assert_string_equal(out(&c), "refused 111\nunreachable\nunreachable\nifaces ['lo']\n"
                                 "fds ['0', '1', '2', '3']\nnetlink 97\npacket 97\n");
    int cs = accept(ls, NULL, NULL);
    assert_int_equal(cs, -1); /* nobody reached the host's listener */
    assert_int_equal(errno, EAGAIN);
    close(ls);
    capture_free(&c);
}

static void test_host_files_hidden(void **state)
{
    (void)state;
    /* Markers a task must not see: a socket in /run/airlock, a file in /tmp. */
    char sock_path[108], tmp_path[64];
    bool made_dir = mkdir("/run/airlock", 0755) == 0;
    snprintf(sock_path, sizeof sock_path, "/run/airlock/sbx-test-%d.sock", (int)getpid());
    snprintf(tmp_path, sizeof tmp_path, "/tmp/airlock-sbx-test-%d", (int)getpid());
    int us = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(us >= 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", sock_path);
    unlink(sock_path);
    assert_int_equal(bind(us, (struct sockaddr *)&sun, sizeof sun), 0);
    assert_int_equal(listen(us, 1), 0);
    int tf = open(tmp_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    assert_true(tf >= 0);
    close(tf);

    char code[1024];
    snprintf(code, sizeof code,
             "import os, socket\n"
             "for p in ['/etc/shadow', '/root', '/home', '/var', '/run', '/run/airlock', '%s', '%s',\n"
             "          '/sys', '/boot', '/opt', '/srv', '/mnt', '/etc/ssh', '/work/../etc/shadow']:\n"
             "    print(p, 'PRESENT' if os.path.lexists(p) else 'absent')\n"
             "s = socket.socket(socket.AF_UNIX)\n"
             "try: s.connect('%s'); print('CONNECTED')\n"
             "except OSError as e: print('connect', e.errno)\n"
             "print(sorted(os.listdir('/')))\n"
             "print(sorted(os.listdir('/etc')))\n",
             sock_path, tmp_path, sock_path);
    struct capture c = {0};
    run_ok("python3", code, &c);
    char want[2048];
    snprintf(want, sizeof want,
             "/etc/shadow absent\n/root absent\n/home absent\n/var absent\n/run absent\n"
             "/run/airlock absent\n%s absent\n%s absent\n/sys absent\n/boot absent\n"
             "/opt absent\n/srv absent\n/mnt absent\n/etc/ssh absent\n"
             "/work/../etc/shadow absent\nconnect 2\n"
             "['bin', 'dev', 'etc', 'lib', %s'lib64', 'proc', 'sbin', 'tmp', 'usr', 'work']\n"
             "['group', 'hostname', 'hosts', 'ld.so.cache', 'nsswitch.conf', 'passwd']\n",
             sock_path, tmp_path,
             /* /lib32 is mirrored only where the host has it (multilib) */
             faccessat(AT_FDCWD, "/lib32", F_OK, AT_SYMLINK_NOFOLLOW) == 0 ? "'lib32', " : "");
    assert_string_equal(out(&c), want);
    close(us);
    unlink(sock_path);
    unlink(tmp_path);
    if (made_dir)
        rmdir("/run/airlock");
    capture_free(&c);
}

static void test_readonly_root(void **state)
{
    (void)state;
    struct capture c = {0};
    run_ok("python3",
           "import os\n"
           "for p in ['/x', '/usr/x', '/usr/bin/x', '/etc/passwd', '/etc/x', '/bin/x', '/dev/x',\n"
           "          '/proc/sys/kernel/hostname', '/work/x', '/tmp/x', '/dev/shm/x', '/dev/null']:\n"
           "    try:\n"
           "        open(p, 'a').write('x'); print(p, 'writable')\n"
           "    except OSError as e: print(p, 'denied')\n"
           "for p in ['/usr/bin/python3', '/etc/passwd', '/dev/null']:\n"
           "    try: os.chmod(p, 0o777); print(p, 'CHMOD')\n"
           "    except OSError: print(p, 'nochmod')\n",
           &c);
    assert_string_equal(out(&c),
                        "/x denied\n/usr/x denied\n/usr/bin/x denied\n/etc/passwd denied\n"
                        "/etc/x denied\n/bin/x denied\n/dev/x denied\n"
                        "/proc/sys/kernel/hostname denied\n/work/x writable\n/tmp/x writable\n"
                        "/dev/shm/x writable\n/dev/null writable\n"
                        "/usr/bin/python3 nochmod\n/etc/passwd nochmod\n/dev/null nochmod\n");
    capture_free(&c);
}

static void test_tmpfs_capped(void **state)
{
    (void)state;
    struct capture c = {0};
    run_ok("python3",
           "import errno, os\n"
           "for d in ['/work', '/tmp']:\n"
           "    try:\n"
           "        with open(d + '/big', 'wb') as f:\n"
           "            for i in range(200): f.write(b'x' * (1 << 20))\n"
           "        print(d, 'UNCAPPED')\n"
           "    except OSError as e:\n"
           "        # tmpfs size (ENOSPC) or RLIMIT_FSIZE (EFBIG): both 32 MiB\n"
           "        print(d, e.errno in (errno.ENOSPC, errno.EFBIG),\n"
           "              os.path.getsize(d + '/big') <= 32 << 20)\n",
           &c);
    assert_string_equal(out(&c), "/work True True\n/tmp True True\n");
    capture_free(&c);
}

static void test_identity(void **state)
{
    (void)state;
    struct capture c = {0};
    run_ok("python3",
           "import os, socket\n"
           "print(open('/proc/self/uid_map').read().split())\n"
           "print(open('/proc/self/gid_map').read().split())\n"
           "print(os.getuid(), os.getgid(), os.getpid() < 10, socket.gethostname())\n"
           "print(open('/proc/self/setgroups').read().strip())\n"
           "import pwd; print(pwd.getpwuid(os.getuid()).pw_name)\n"
           "try:\n    os.setuid(0)\nexcept OSError as e:\n    print('setuid(0)', e.errno)\n",
           &c);
    /* One id inside, not 0, mapped to host nobody; uid 0 does not exist. */
    assert_string_equal(out(&c), "['1000', '65534', '1']\n['1000', '65534', '1']\n"
                                 "1000 1000 True airlock\ndeny\nsandbox\nsetuid(0) 22\n");
    capture_free(&c);
}

static void test_privileges_dropped(void **state)
{
    (void)state;
    struct capture c = {0};
    /* the task, and the sandbox's init (pid 1) */
    run_ok("sh",
           "for p in self 1; do grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp):' "
           "/proc/$p/status | tr '\\t' ' '; done",
           &c);
    const char *one = "CapInh: 0000000000000000\nCapPrm: 0000000000000000\n"
                      "CapEff: 0000000000000000\nCapBnd: 0000000000000000\n"
                      "CapAmb: 0000000000000000\nNoNewPrivs: 1\nSeccomp: 2\n";
    char want[512];
    snprintf(want, sizeof want, "%s%s", one, one);
    assert_string_equal(out(&c), want);
    capture_free(&c);

    /* The sandbox's init can be neither killed nor inspected from inside.
     * (Not under valgrind: it runs our init with handlers for every signal,
     * which a pid namespace's init does not get protected from.) */
    if (RUNNING_ON_VALGRIND)
        return;
    run_ok("python3",
           "import os, signal\n"
           "os.kill(1, signal.SIGKILL); os.kill(1, signal.SIGTERM)\n"
           "for f in ['/proc/1/mem', '/proc/1/environ']:\n"
           "    try: open(f, 'rb').read(1); print(f, 'READABLE')\n"
           "    except OSError as e: print(f, 'denied')\n"
           "print(os.getppid(), 'alive')\n",
           &c);
    assert_string_equal(out(&c), "/proc/1/mem denied\n/proc/1/environ denied\n1 alive\n");
    capture_free(&c);
}

/* ------------------------------------------------------------ seccomp */

/* The task must be ended for system call nr: reported by the supervisor
 * (user notification, the tree SIGKILLed), or, for nr == -1, killed by the
 * filter itself with SIGSYS (a foreign ABI). */
static void expect_seccomp(const char *runtime, const char *code, int nr)
{
    struct capture c = {0};
    struct sandbox_task t = mktask(runtime, code);
    struct sandbox_result r;
    assert_int_equal(sandbox_run(&t, on_output, &c, &r), 0);
    if (r.reason != SANDBOX_REASON_SECCOMP || r.seccomp_syscall != nr)
        fprintf(stderr, "  not killed by seccomp for %d: %s\n  reason %d syscall %d: %s\n"
                        "  stdout %s\n  stderr %s\n",
                nr, code, r.reason, r.seccomp_syscall, r.message, out(&c), err(&c));
    assert_int_equal(r.reason, SANDBOX_REASON_SECCOMP);
    assert_int_equal(r.seccomp_syscall, nr);
    if (nr >= 0) {
        char want[64];
        snprintf(want, sizeof want, "forbidden system call %d (", nr);
        assert_true(strncmp(r.message, want, strlen(want)) == 0);
        assert_int_equal(r.signal, SIGKILL);
    } else {
        assert_int_equal(r.signal, SIGSYS);
    }
    assert_true(r.wall_ms < 5000);
    assert_string_equal(out(&c), "before\n"); /* the code did run up to the call */
    capture_free(&c);
}

#define PYSYSCALL(args)                                                                      \
    "import ctypes\n"                                                                        \
    "libc = ctypes.CDLL(None, use_errno=True)\n"                                             \
    "print('before')\n"                                                                      \
    "r = libc.syscall(" args ")\n"                                                           \
    "print('survived', r, ctypes.get_errno())\n"

static void test_seccomp_forbidden(void **state)
{
    (void)state;
    /* mount("none", "/tmp", "tmpfs", 0, 0) */
    expect_seccomp("python3", PYSYSCALL("165, b'none', b'/tmp', b'tmpfs', 0, 0"), 165);
    /* unshare(CLONE_NEWUSER) */
    expect_seccomp("python3", PYSYSCALL("272, 0x10000000"), 272);
    /* clone(CLONE_NEWUSER | SIGCHLD) */
    expect_seccomp("python3", PYSYSCALL("56, 0x10000011, 0, 0, 0, 0"), 56);
    /* ptrace(PTRACE_TRACEME) */
    expect_seccomp("python3", PYSYSCALL("101, 0, 0, 0, 0"), 101);
    /* bpf, perf_event_open, keyctl, userfaultfd, io_uring_setup, personality,
     * setns, pivot_root, kexec_load, init_module */
    expect_seccomp("python3", PYSYSCALL("321, 0, 0, 0"), 321);
    expect_seccomp("python3", PYSYSCALL("298, 0, 0, -1, -1, 0"), 298);
    expect_seccomp("python3", PYSYSCALL("250, 0, 0, 0, 0"), 250);
    expect_seccomp("python3", PYSYSCALL("323, 0"), 323);
    expect_seccomp("python3", PYSYSCALL("425, 8, 0"), 425);
    expect_seccomp("python3", PYSYSCALL("135, 0xffffffff"), 135);
    expect_seccomp("python3", PYSYSCALL("308, 0, 0"), 308);
    expect_seccomp("python3", PYSYSCALL("155, b'/', b'/'"), 155);
    expect_seccomp("python3", PYSYSCALL("246, 0, 0, 0, 0"), 246);
    expect_seccomp("python3", PYSYSCALL("175, 0, 0, b''"), 175);
    /* ioctl(0, TIOCSTI), also with garbage in the upper 32 bits */
    expect_seccomp("python3", PYSYSCALL("16, 0, 0x5412, b'x'"), 16);
    expect_seccomp("python3", PYSYSCALL("16, 0, ctypes.c_ulong(0x100005412), b'x'"), 16);
    /* x32 ABI entry (getpid | __X32_SYSCALL_BIT): not ours, the filter's
     * bad-arch action kills it outright (SIGSYS, number unknown) */
    expect_seccomp("python3", PYSYSCALL("0x40000000 | 39"), -1);
    /* process_vm_readv, open_by_handle_at, swapoff, clock_settime, seccomp
     * (a second filter with a listener) */
    expect_seccomp("python3", PYSYSCALL("310, 1, 0, 0, 0, 0, 0"), 310);
    expect_seccomp("python3", PYSYSCALL("304, 0, 0, 0"), 304);
    expect_seccomp("python3", PYSYSCALL("168, b'/x'"), 168);
    expect_seccomp("python3", PYSYSCALL("227, 0, 0"), 227);
    expect_seccomp("python3", PYSYSCALL("317, 1, 8, 0"), 317);
    /* the shell's way: unshare(1) */
    expect_seccomp("sh", "echo before; exec unshare -r true", 272);
}

/* The result names the call; output before it is delivered; nothing after
 * it runs; the sandbox is usable again right after. */
static void test_seccomp_reports_syscall(void **state)
{
    (void)state;
    struct capture c = {0};
    struct sandbox_task t = mktask("python3", "import ctypes, sys\n"
                                              "print('before'); print('err', file=sys.stderr)\n"
                                              "ctypes.CDLL(None).syscall(101, 0, 0, 0, 0)\n"
                                              "print('AFTER')\n");
    struct sandbox_result r;
    assert_int_equal(run(&t, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_SECCOMP);
    assert_int_equal(r.seccomp_syscall, 101);
    assert_string_equal(r.message, "forbidden system call 101 (ptrace)");
    assert_int_equal(r.signal, SIGKILL);
    assert_int_equal(r.exit_code, -1);
    assert_string_equal(out(&c), "before\n");
    assert_string_equal(err(&c), "err\n");
    capture_free(&c);

    t = mktask("sh", "echo before; exec unshare -r true");
    assert_int_equal(run(&t, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_SECCOMP);
    assert_int_equal(r.seccomp_syscall, 272);
    assert_string_equal(r.message, "forbidden system call 272 (unshare)");
    assert_string_equal(out(&c), "before\n");
    capture_free(&c);

    run_ok("sh", "echo fine", &c);
    assert_string_equal(out(&c), "fine\n");
    capture_free(&c);
}

/* A forbidden call in a child process, in a grandchild behind a shell, or in
 * a second thread ends the whole task, with the call's number. */
static void test_seccomp_in_child_and_thread(void **state)
{
    (void)state;
    /* os.fork(): the child calls mount(2); the parent waits and would print. */
    expect_seccomp("python3",
                   "import ctypes, os\n"
                   "print('before')\n"
                   "pid = os.fork()\n"
                   "if pid == 0:\n"
                   "    ctypes.CDLL(None).syscall(165, b'none', b'/tmp', b'tmpfs', 0, 0)\n"
                   "    os._exit(0)\n"
                   "os.waitpid(pid, 0)\n"
                   "print('parent survived')\n",
                   165);
    /* sh runs python, whose call is unshare(2); sh would carry on. */
    expect_seccomp("sh",
                   "echo before\n"
                   "/usr/bin/python3 -c 'import ctypes; ctypes.CDLL(None).syscall(272, 0x10000000)'\n"
                   "echo after $?\n",
                   272);
    /* A second thread calls ptrace(2); the main thread is busy elsewhere. */
    expect_seccomp("python3",
                   "import ctypes, threading, time\n"
                   "print('before')\n"
                   "threading.Thread(target=lambda: ctypes.CDLL(None).syscall(101, 0, 0, 0, 0),\n"
                   "                 daemon=True).start()\n"
                   "time.sleep(8)\n"
                   "print('main survived')\n",
                   101);
    /* Background processes go with the task. */
    char marker[64], code[512];
    snprintf(marker, sizeof marker, "airlock-sbx-marker-%d-sc", (int)getpid());
    snprintf(code, sizeof code,
             "sh -c 'sleep 300; :' %s &\n"
             "echo before\n"
             "/usr/bin/python3 -c 'import ctypes; ctypes.CDLL(None).syscall(161, b\"/\")'\n"
             "sleep 60\n",
             marker);
    expect_seccomp("sh", code, 161);
    assert_int_equal(count_procs_with(marker), 0);
}

/* A forbidden call blocks while the supervisor cannot answer (stopped), and
 * the supervisor's death still takes the whole sandbox with it. */
static void test_seccomp_supervisor_gone(void **state)
{
    (void)state;
    char marker[64], blocked[64], code[512];
    snprintf(marker, sizeof marker, "airlock-sbx-marker-%d-sg", (int)getpid());
    snprintf(blocked, sizeof blocked, "airlock-sbx-marker-%d-blocked", (int)getpid());
    snprintf(code, sizeof code,
             "sh -c 'sleep 300; :' %s &\n"
             "sleep 1\n"
             "/usr/bin/python3 -c 'import ctypes; ctypes.CDLL(None).syscall(165, b\"none\", "
             "b\"/tmp\", b\"tmpfs\", 0, 0); print(\"RAN\")' %s\n"
             "sleep 300\n",
             marker, blocked);
    char id[64];
    snprintf(id, sizeof id, "sbx-test-%d-sg", (int)getpid());
    pid_t sup = fork();
    assert_true(sup >= 0);
    if (sup == 0) {
        struct sandbox_task t = mktask("sh", code);
        t.limits.timeout_ms = 60000;
        t.id = id;
        struct sandbox_result r;
        sandbox_run(&t, NULL, NULL, &r);
        _exit(0);
    }
    int seen = 0;
    for (int i = 0; i < 500 && !seen; i++) {
        seen = count_procs_with(marker);
        if (!seen)
            usleep(10000);
    }
    assert_int_equal(seen, 1);
    assert_int_equal(kill(sup, SIGSTOP), 0);
    /* the call is made and waits for an answer that does not come */
    seen = 0;
    for (int i = 0; i < 500 && !seen; i++) {
        seen = count_procs_with(blocked);
        if (!seen)
            usleep(10000);
    }
    assert_int_equal(seen, 1);
    usleep(300000);
    assert_int_equal(count_procs_with(blocked), 1);
    assert_int_equal(kill(sup, SIGKILL), 0);
    assert_int_equal(waitpid(sup, NULL, 0), sup);
    int left = 1;
    for (int i = 0; i < 300 && left; i++) {
        left = count_procs_with(marker) + count_procs_with(blocked);
        if (left)
            usleep(10000);
    }
    assert_int_equal(left, 0);
    char msg[256];
    assert_int_equal(sandbox_cgroup_remove(SANDBOX_CGROUP_AUTO, id, msg, sizeof msg), 0);
}

/* The task never holds the seccomp listener: it cannot answer its own
 * notifications. Init and task share the init's one filter. */
static void test_seccomp_listener_not_in_task(void **state)
{
    (void)state;
    struct capture c = {0};
    run_ok("sh",
           "for f in /proc/$$/fd/*; do readlink $f; done | grep -c seccomp; "
           "grep -E '^Seccomp(_filters)?:' /proc/self/status /proc/1/status | tr '\\t' ' '",
           &c);
    assert_string_equal(out(&c), "0\n/proc/self/status:Seccomp: 2\n"
                                 "/proc/self/status:Seccomp_filters: 1\n"
                                 "/proc/1/status:Seccomp: 2\n/proc/1/status:Seccomp_filters: 1\n");
    capture_free(&c);
}

static void test_seccomp_allows_runtimes(void **state)
{
    (void)state;
    struct capture c = {0};
    run_ok("python3",
           "import threading, subprocess, multiprocessing, socket, json, hashlib, sqlite3\n"
           "import tempfile, os, select, signal, fcntl, termios\n"
           "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
           "with multiprocessing.Pool(2) as p: assert p.map(abs, [-1, -2]) == [1, 2]\n"
           "r = subprocess.run(['/bin/sh', '-c', 'ls -la / >/dev/null && echo sub'],\n"
           "                   capture_output=True, text=True)\n"
           "print(r.stdout.strip(), r.returncode)\n"
           "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
           "c = socket.create_connection(s.getsockname()); a, _ = s.accept()\n"
           "c.sendall(b'ping'); print(a.recv(4).decode())\n"
           "a2, b2 = socket.socketpair(); a2.sendall(b'pair'); print(b2.recv(4).decode())\n"
           "db = sqlite3.connect(':memory:'); print(db.execute('select 7*6').fetchone()[0])\n"
           "with tempfile.TemporaryDirectory() as d:\n"
           "    open(d + '/f', 'w').write('x'); os.rename(d + '/f', d + '/g')\n"
           "    print(os.listdir(d))\n"
           "try: fcntl.ioctl(0, termios.TIOCGWINSZ, b'\\0' * 8)\n"
           "except OSError as e: print('ioctl errno', e.errno)\n"
           "print(os.cpu_count() > 0, len(os.urandom(8)))\n",
           &c);
    assert_string_equal(out(&c),
                        "sub 0\nping\npair\n42\n['g']\nioctl errno 25\nTrue 8\n");
    capture_free(&c);

    run_ok("sh",
           "x=$(echo sub); f() { echo \"f $1\"; }; f $x; sleep 0.01 & wait\n"
           "echo data > /work/f; cat /work/f; ls / >/dev/null; wc -c < /work/f\n"
           "yes | head -n 2; date +%Y >/dev/null; id -u; hostname\n",
           &c);
    assert_string_equal(out(&c), "f sub\ndata\n5\ny\ny\n1000\nairlock\n");
    capture_free(&c);
}

/* ------------------------------------------------------------ resources */

static void test_fork_bomb_bounded(void **state)
{
    (void)state;
    struct capture c = {0};
    struct sandbox_task t = mktask("python3",
                                   "import os, time\n"
                                   "n = 0\n"
                                   "try:\n"
                                   "    while n < 10000:\n"
                                   "        if os.fork() == 0:\n"
                                   "            time.sleep(60); os._exit(0)\n"
                                   "        n += 1\n"
                                   "    print('UNBOUNDED')\n"
                                   "except OSError as e: print('bounded', n < 16, e.errno)\n");
    t.limits.max_pids = 16;
    struct sandbox_result r;
    assert_int_equal(run(&t, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_OK);
    assert_string_equal(out(&c), "bounded True 11\n");
    capture_free(&c);

    /* The classic, in sh: must end by the deadline with nothing left. */
    char marker[64], code[256];
    snprintf(marker, sizeof marker, "airlock-sbx-marker-%d-bomb", (int)getpid());
    snprintf(code, sizeof code, "b() { b | b & }; b; sh -c 'sleep 300; :' %s; sleep 60\n",
             marker);
    t = mktask("sh", code);
    t.limits.max_pids = 32;
    t.limits.timeout_ms = 2000;
    assert_int_equal(sandbox_run(&t, on_output, &c, &r), 0);
    assert_true(r.wall_ms < 10000);
    assert_int_equal(count_procs_with(marker), 0);
    capture_free(&c);
    /* and the host can still fork */
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0)
        _exit(0);
    assert_int_equal(waitpid(p, NULL, 0), p);
}

/* Under a memory cgroup: the whole tree is bounded, the OOM killer acts
 * and the reason is MEMORY; address space itself is not capped. */
static void test_memory_bounded(void **state)
{
    (void)state;
    struct capture c = {0};
    struct sandbox_task t = mktask("python3",
                                   "import mmap\n"
                                   "m = mmap.mmap(-1, 2 << 30)  # address space is not capped\n"
                                   "print('reserved', flush=True)\n"
                                   "b = []\n"
                                   "for i in range(4096): b.append(bytearray(1 << 20))\n"
                                   "print('ESCAPED')\n");
    t.limits.memory_bytes = 256u << 20;
    struct sandbox_result r;
    assert_int_equal(sandbox_run(&t, on_output, &c, &r), 0);
    assert_string_equal(out(&c), "reserved\n");
    assert_int_equal(r.reason, SANDBOX_REASON_MEMORY);
    assert_non_null(strstr(r.message, "OOM killer"));
    /* RSS also counts the interpreter's mapped files, which the cgroup does not. */
    assert_true(r.max_rss_kb > 200 * 1024 && r.max_rss_kb <= 300 * 1024);
    capture_free(&c);
}

/* tmpfs pages are the task's memory too: /work cannot be used to hold
 * more than the memory limit. */
static void test_memory_counts_tmpfs(void **state)
{
    (void)state;
    struct capture c = {0};
    struct sandbox_task t = mktask("python3",
                                   "b = bytearray(40 << 20)\n"
                                   "for i in range(0, len(b), 4096): b[i] = 1\n"
                                   "open('/work/f', 'wb').write(b'x' * (60 << 20))\n"
                                   "print('ESCAPED')\n");
    t.limits.memory_bytes = 64u << 20;
    t.limits.disk_bytes = 128u << 20;
    struct sandbox_result r;
    int rc = sandbox_run(&t, on_output, &c, &r);
    if (rc != 0)
        print_message("sandbox_run: %s\n", r.message);
    assert_int_equal(rc, 0);
    assert_string_equal(out(&c), "");
    assert_int_equal(r.reason, SANDBOX_REASON_MEMORY);
    capture_free(&c);

    /* Only tmpfs pages, and they outlive the writer: still MEMORY. */
    t = mktask("sh", "head -c 100000000 /dev/zero > /work/f; echo ESCAPED $?");
    t.limits.memory_bytes = 64u << 20;
    t.limits.disk_bytes = 128u << 20;
    rc = sandbox_run(&t, on_output, &c, &r);
    if (rc != 0)
        print_message("sandbox_run: %s\n", r.message);
    assert_int_equal(rc, 0);
    assert_int_equal(r.reason, SANDBOX_REASON_MEMORY);
    capture_free(&c);
}

/* Without cgroups (an explicit choice) memory is an address-space cap. */
static void test_memory_rlimit_only(void **state)
{
    (void)state;
    struct capture c = {0};
    struct sandbox_task t = mktask("python3",
                                   "try:\n"
                                   "    x = bytearray(2 << 30); print('ALLOCATED')\n"
                                   "except MemoryError: print('MemoryError')\n"
                                   "b = []\n"
                                   "for i in range(4096): b.append(bytearray(1 << 20))\n");
    t.limits.memory_bytes = 256u << 20;
    t.cgroup = SANDBOX_CGROUP_NONE;
    struct sandbox_result r;
    assert_int_equal(sandbox_run(&t, on_output, &c, &r), 0);
    assert_string_equal(out(&c), "MemoryError\n");
    assert_int_equal(r.reason, SANDBOX_REASON_EXIT_NONZERO);
    assert_non_null(strstr(err(&c), "MemoryError"));
    assert_true(r.max_rss_kb > 1000 && r.max_rss_kb < 256 * 1024);
    capture_free(&c);
}

/* CPU time is the tree's: three spinning processes reach 900 ms together
 * long before any one of them would. */
static void test_cpu_of_tree(void **state)
{
    (void)state;
    struct capture c = {0};
    struct sandbox_task t = mktask("python3",
                                   "import os\n"
                                   "for _ in range(2):\n"
                                   "    if os.fork() == 0: break\n"
                                   "while True: pass\n");
    t.limits.cpu_ms = 900;
    t.limits.timeout_ms = 20000;
    struct sandbox_result r;
    assert_int_equal(sandbox_run(&t, on_output, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_CPU);
    assert_true(r.cpu_ms >= 900 && r.cpu_ms < 2000);
    assert_true(r.wall_ms < 5000);
    capture_free(&c);
}

/* Nothing of the task's cgroup is left once sandbox_run returns. */
static void test_cgroup_removed(void **state)
{
    (void)state;
    struct sbx_cgroup_host *h = calloc(1, sizeof *h);
    char msg[256];
    assert_non_null(h);
    assert_int_equal(sbx_cgroup_host_init(h, 0, 0, msg, sizeof msg), 0);
    const char *dir = h->version == 2 ? h->v2_base : h->v1_memory;
    int before = count_entries_with(dir, h->version == 2 ? "" : "airlock-");
    struct capture c = {0};
    struct sandbox_task t = mktask("sh", "sleep 30 & echo started; exec sleep 31");
    t.limits.timeout_ms = 500;
    struct sandbox_result r;
    assert_int_equal(sandbox_run(&t, on_output, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_TIMEOUT);
    assert_int_equal(count_entries_with(dir, h->version == 2 ? "" : "airlock-"), before);
    capture_free(&c);
    free(h);
}

static void test_usage_reported(void **state)
{
    (void)state;
    struct capture c = {0};
    struct sandbox_task t = mktask("python3",
                                   "import time\n"
                                   "end = time.process_time() + 0.3\n"
                                   "while time.process_time() < end: pass\n"
                                   "x = bytearray(64 << 20)\n"
                                   "for i in range(0, len(x), 4096): x[i] = 1\n");
    struct sandbox_result r;
    assert_int_equal(run(&t, &c, &r), 0);
    assert_int_equal(r.reason, SANDBOX_REASON_OK);
    assert_true(r.cpu_ms >= 250);
    assert_true(r.wall_ms >= r.cpu_ms / 2);
    assert_true(r.max_rss_kb >= 64 * 1024);
    capture_free(&c);
}

/* The prepare/start split, as the warm pool uses it: a sandbox built with
 * the broker's shared seccomp program waits, then runs its task with that
 * filter in force; a program whose memfd is not sealed is refused. */
static void test_prepared_with_shared_filter(void **state)
{
    (void)state;
    char msg[256];
    int filter = sandbox_filter_fd(msg, sizeof msg);
    assert_true(filter >= 0);
    struct sandbox_spec spec = {.runtime = "python3", .cgroup = SANDBOX_CGROUP_AUTO,
                                .filter_fd = filter};
    for (int i = 0; i < 2; i++) {
        struct sandbox *sb = NULL;
        assert_int_equal(sandbox_prepare(&spec, &sb, msg, sizeof msg), 0);
        usleep(100000); /* ready, waiting: nothing of a task in it */
        struct capture c = {0};
        struct sandbox_task t = mktask("python3", i == 0 ? "print('warm')"
                                                          : "import ctypes\n"
                                                            "ctypes.CDLL(None).syscall(101, 0, 0, 0, 0)\n");
        struct sandbox_result r;
        assert_int_equal(sandbox_start(sb, &t, on_output, &c, &r), 0);
        sandbox_discard(sb);
        if (i == 0) {
            assert_int_equal(r.reason, SANDBOX_REASON_OK);
            assert_string_equal(out(&c), "warm\n");
        } else {
            assert_int_equal(r.reason, SANDBOX_REASON_SECCOMP);
            assert_int_equal(r.seccomp_syscall, 101);
        }
        capture_free(&c);
    }
    /* A runtime other than the prepared one is refused, and nothing runs. */
    struct sandbox *sb = NULL;
    assert_int_equal(sandbox_prepare(&spec, &sb, msg, sizeof msg), 0);
    struct sandbox_task t = mktask("sh", "echo ran");
    struct capture c = {0};
    struct sandbox_result r;
    assert_int_equal(sandbox_start(sb, &t, on_output, &c, &r), -1);
    assert_int_equal(r.reason, SANDBOX_REASON_SANDBOX_ERROR);
    assert_string_equal(out(&c), "");
    sandbox_discard(sb);
    close(filter);

    int unsealed = memfd_create("not-sealed", MFD_CLOEXEC);
    assert_true(unsealed >= 0);
    assert_int_equal(write(unsealed, "\x06\0\0\0\0\0\xff\x7f", 8), 8); /* RET ALLOW */
    spec.filter_fd = unsealed;
    assert_int_equal(sandbox_prepare(&spec, &sb, msg, sizeof msg), -1);
    assert_non_null(strstr(msg, "not a sealed memfd"));
    close(unsealed);
}

static void test_repeated_runs_leak_nothing(void **state)
{
    (void)state;
    int fds_before = count_fds();
    for (int i = 0; i < 25; i++) {
        struct capture c = {0};
        char code[64];
        snprintf(code, sizeof code, "echo run %d", i);
        char want[64];
        snprintf(want, sizeof want, "run %d\n", i);
        run_ok("sh", code, &c);
        assert_string_equal(out(&c), want);
        capture_free(&c);
    }
    assert_int_equal(count_fds(), fds_before);
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1); /* no children, no zombies */
    assert_int_equal(errno, ECHILD);
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_sandbox needs root\n");
        return 77;
    }
    /* What the broker does once at start (cgroup v2: the delegation layout). */
    char desc[512];
    if (sandbox_cgroup_setup(SANDBOX_CGROUP_AUTO, desc, sizeof desc) < 0) {
        fprintf(stderr, "test_sandbox: no usable cgroups: %s\n", desc);
        return 1;
    }
    fprintf(stderr, "test_sandbox: %s\n", desc);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_python_print),
        cmocka_unit_test(test_sh_exit_code),
        cmocka_unit_test(test_runtime_is_debian_python),
        cmocka_unit_test(test_stdin_delivered),
        cmocka_unit_test(test_env_exact),
        cmocka_unit_test(test_bad_input_is_error),
        cmocka_unit_test(test_timeout_kills_whole_tree),
        cmocka_unit_test(test_background_dies_with_task),
        cmocka_unit_test(test_supervisor_death_kills_sandbox),
        cmocka_unit_test(test_output_limit),
        cmocka_unit_test(test_consumer_abort),
        cmocka_unit_test(test_no_network),
        cmocka_unit_test(test_host_files_hidden),
        cmocka_unit_test(test_readonly_root),
        cmocka_unit_test(test_tmpfs_capped),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_privileges_dropped),
        cmocka_unit_test(test_seccomp_forbidden),
        cmocka_unit_test(test_seccomp_reports_syscall),
        cmocka_unit_test(test_seccomp_in_child_and_thread),
        cmocka_unit_test(test_seccomp_listener_not_in_task),
        cmocka_unit_test(test_seccomp_supervisor_gone),
        cmocka_unit_test(test_seccomp_allows_runtimes),
        cmocka_unit_test(test_fork_bomb_bounded),
        cmocka_unit_test(test_memory_bounded),
        cmocka_unit_test(test_memory_counts_tmpfs),
        cmocka_unit_test(test_memory_rlimit_only),
        cmocka_unit_test(test_cpu_of_tree),
        cmocka_unit_test(test_cgroup_removed),
        cmocka_unit_test(test_usage_reported),
        cmocka_unit_test(test_prepared_with_shared_filter),
        cmocka_unit_test(test_repeated_runs_leak_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * main.c - airlock-broker: flags, the credd channel and the server's
 * lifetime. The broker is multi-threaded: it never forks, it posix_spawns
 * workers (see execute.c).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "airlock/v1/broker.pb-c.h"
#include "daemon.h"
#include "execute.h"
#include "sandbox.h"
#include "util.h"

static const char usage[] =
    "usage: airlock-broker --socket PATH --credd ADDR --state-dir DIR [options]\n"
    "  --socket PATH          Unix socket to listen on\n"
    "  --credd ADDR           credd address, e.g. unix:/run/airlock/credd.sock\n"
    "  --state-dir DIR        broker state (created 0700)\n"
    "  --trust-domain TD      SPIFFE trust domain (default airlock.local)\n"
    "  --worker PATH          worker executable (default: airlock-worker beside this program)\n"
    "  --max-tasks N          concurrent tasks (default 32)\n"
    "  --default-timeout-ms N task timeout when the request names none (default 10000)\n"
    "  --max-timeout-ms N     largest timeout a request may ask (default 300000)\n"
    "Per-task limits: the default, and the most a request may ask for:\n"
    "  --memory-mb N          memory of the task's whole tree (default 512)\n"
    "  --max-pids N           processes + threads (default 64)\n"
    "  --output-bytes N       stdout + stderr (default 8388608)\n"
    "  --cpu-ms N             CPU time of the whole tree (default 60000)\n"
    "  --disk-mb N            size of /work and of /tmp, largest file (default 32)\n"
    "  --open-files N         open files per process (default 256)\n"
    "  --cgroup MODE          auto (v2 if usable, else v1), v1, v2, or none: rlimits\n"
    "                         only, no memory/CPU bound on the task's tree (default auto;\n"
    "                         the broker refuses to start when the mode is unusable)\n";

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_cgroup_mode(const char *s, enum sandbox_cgroup_mode *out)
{
    static const struct {
        const char *name;
        enum sandbox_cgroup_mode mode;
    } modes[] = {{"auto", SANDBOX_CGROUP_AUTO},
                 {"v1", SANDBOX_CGROUP_V1},
                 {"v2", SANDBOX_CGROUP_V2},
                 {"none", SANDBOX_CGROUP_NONE}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(s, modes[i].name) == 0) {
            *out = modes[i].mode;
            return 0;
        }
    return -1;
}

int main(int argc, char **argv)
{
    log_set_program("airlock-broker");
    const char *socket_path = NULL, *state_dir = NULL, *worker = NULL;
    struct broker_config cfg = {
        .trust_domain = "airlock.local",
        .default_timeout_ms = 10000,
        .max_timeout_ms = 300000,
        .memory_bytes = 512ull << 20,
        .max_pids = 64,
        .output_bytes = 8u << 20,
        .cpu_ms = 60000,
        .disk_bytes = 32u << 20,
        .open_files = 256,
        .token_skew_s = 30,
    };
    uint64_t max_tasks = 32, v;
    enum sandbox_cgroup_mode cgroup_mode = SANDBOX_CGROUP_AUTO;
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"credd", required_argument, NULL, 'c'},
        {"state-dir", required_argument, NULL, 'd'},
        {"trust-domain", required_argument, NULL, 't'},
        {"worker", required_argument, NULL, 'w'},
        {"max-tasks", required_argument, NULL, 'n'},
        {"default-timeout-ms", required_argument, NULL, 'T'},
        {"max-timeout-ms", required_argument, NULL, 'X'},
        {"memory-mb", required_argument, NULL, 'm'},
        {"max-pids", required_argument, NULL, 'p'},
        {"output-bytes", required_argument, NULL, 'o'},
        {"cpu-ms", required_argument, NULL, 'C'},
        {"disk-mb", required_argument, NULL, 'D'},
        {"open-files", required_argument, NULL, 'F'},
        {"cgroup", required_argument, NULL, 'G'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case 's': socket_path = optarg; break;
        case 'c': cfg.credd_address = optarg; break;
        case 'd': state_dir = optarg; break;
        case 't': cfg.trust_domain = optarg; break;
        case 'w': worker = optarg; break;
        case 'n': bad = parse_u64(optarg, 1, 4096, &max_tasks); break;
        case 'T': bad = parse_u64(optarg, 1, 3600000, &v); cfg.default_timeout_ms = (uint32_t)v; break;
        case 'X': bad = parse_u64(optarg, 1, 3600000, &v); cfg.max_timeout_ms = (uint32_t)v; break;
        case 'm': bad = parse_u64(optarg, 16, 1 << 20, &v); cfg.memory_bytes = v << 20; break;
        case 'p': bad = parse_u64(optarg, 1, 65536, &v); cfg.max_pids = (uint32_t)v; break;
        case 'o': bad = parse_u64(optarg, 1, 1ull << 34, &cfg.output_bytes); break;
        case 'C': bad = parse_u64(optarg, 100, 86400000, &v); cfg.cpu_ms = (uint32_t)v; break;
        case 'D': bad = parse_u64(optarg, 1, 1 << 20, &v); cfg.disk_bytes = v << 20; break;
        case 'F': bad = parse_u64(optarg, 16, 1 << 20, &v); cfg.open_files = (uint32_t)v; break;
        case 'G': bad = parse_cgroup_mode(optarg, &cgroup_mode); break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 64;
        }
        if (bad) {
            const struct option *o = opts;
            while (o->val != opt)
                o++;
            fprintf(stderr, "airlock-broker: bad value for --%s: %s\n", o->name, optarg);
            return 64;
        }
    }
    if (!socket_path || !cfg.credd_address || !state_dir || optind != argc) {
        fputs(usage, stderr);
        return 64;
    }
    if (cfg.default_timeout_ms > cfg.max_timeout_ms)
        cfg.default_timeout_ms = cfg.max_timeout_ms;
    char td_probe[512];
    snprintf(td_probe, sizeof td_probe, "spiffe://%s/x", cfg.trust_domain);
    if (!spiffe_id_valid(td_probe)) {
        fprintf(stderr, "airlock-broker: invalid trust domain '%s'\n", cfg.trust_domain);
        return 64;
    }
    if (worker)
        snprintf(cfg.worker_exe, sizeof cfg.worker_exe, "%s", worker);
    else if (daemon_sibling_path("airlock-worker", cfg.worker_exe, sizeof cfg.worker_exe) != 0) {
        log_error("cannot locate airlock-worker");
        return 1;
    }
    if (access(cfg.worker_exe, X_OK) != 0) {
        log_error("worker %s is not executable: %s", cfg.worker_exe, strerror(errno));
        return 1;
    }
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST) {
        log_error("cannot create state dir %s: %s", state_dir, strerror(errno));
        return 1;
    }
    /* Before any thread exists: cgroup v2 setup moves this process. */
    char cg_desc[512];
    int cg_version = sandbox_cgroup_setup(cgroup_mode, cg_desc, sizeof cg_desc);
    if (cg_version < 0) {
        log_error("cgroups: %s (--cgroup none runs tasks with rlimits only)", cg_desc);
        return 1;
    }
    cfg.cgroup_mode = cg_version == 1   ? SANDBOX_CGROUP_V1
                      : cg_version == 2 ? SANDBOX_CGROUP_V2
                                        : SANDBOX_CGROUP_NONE;
    if (cfg.cgroup_mode == SANDBOX_CGROUP_NONE)
        log_warn("%s", cg_desc);
    else
        log_info("%s", cg_desc);
    if (daemon_block_signals() != 0) {
        log_error("cannot set up signals");
        return 1;
    }

    grpc_init();
    int status = 1;
    struct broker broker = {.config = &cfg, .credd = rpc_channel_new(cfg.credd_address)};
    const struct rpc_method methods[] = {
        {"/airlock.v1.Broker/Execute", RPC_SERVER_STREAMING,
         &airlock__v1__execute_request__descriptor, broker_execute, &broker},
    };
    struct rpc_server *server = broker.credd ? rpc_server_new(methods, 1, (int)max_tasks) : NULL;
    if (!server) {
        log_error("cannot create server");
    } else {
        log_info("credd %s, worker %s", cfg.credd_address, cfg.worker_exe);
        status = daemon_serve(server, socket_path) == 0 ? 0 : 1;
    }
    rpc_server_free(server);
    rpc_channel_free(broker.credd);
    grpc_shutdown();
    log_info("stopped");
    return status;
}

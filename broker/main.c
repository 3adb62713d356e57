/*
 * main.c - airlock-broker: settings (defaults < config file < flags), the
 * policy, listeners (Unix socket with peer credentials, TCP with mutual TLS),
 * the credd channel and its start announce, the clean-up of what a dead
 * broker left, and the server's lifetime. The broker is multi-threaded:
 * it never forks, it posix_spawns workers (see execute.c).
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
#include "audit_link.h"
#include "audit_rpc.h"
#include "config.h"
#include "credd_link.h"
#include "daemon.h"
#include "execute.h"
#include "admission.h"
#include "inflight.h"
#include "leftovers.h"
#include "pool.h"
#include "policy.h"
#include "sandbox.h"
#include "tls.h"
#include "util.h"
#include "validate.h"

static const char usage[] =
    "usage: airlock-broker [--config FILE] [options]\n"
    "Settings come from built-in defaults, then FILE (YAML), then these flags.\n"
    "  --config FILE          YAML configuration: listeners, TLS, limits, policy\n"
    "  --check-config         validate the configuration (and TLS files), print the\n"
    "                         policy's rules, and exit: 0 if valid, 78 if not\n"
    "  --socket PATH          Unix socket to listen on (listen.unix)\n"
    "  --listen-tcp HOST:PORT TCP listener, mutual TLS only (listen.tcp)\n"
    "  --tls-cert FILE        our X.509 SVID, PEM (tls.cert)\n"
    "  --tls-key FILE         its private key (tls.key)\n"
    "  --tls-bundle FILE      trust bundle callers' SVIDs must chain to (tls.bundle)\n"
    "  --credd ADDR           credd: unix:PATH, or HOST:PORT over mutual TLS (credd.address)\n"
    "  --credd-id SPIFFE_ID   credd's identity over TLS (credd.spiffe_id; default: any\n"
    "                         in the trust domain)\n"
    "  --state-dir DIR        broker state (created 0700)\n"
    "  --trust-domain TD      SPIFFE trust domain (default airlock.local)\n"
    "  --worker PATH          worker executable (default: airlock-worker beside this program)\n"
    "  --max-tasks N          concurrent tasks (default 32)\n"
    "  --queue N              requests that may wait for a task slot, each up to its\n"
    "                         deadline; past N, RESOURCE_EXHAUSTED (0..65536, default 64)\n"
    "  --pool RUNTIME=N       workers kept ready for RUNTIME, 0..256, 0: each task starts\n"
    "                         its worker cold; repeatable (pool.*; default sh=2, python3=2)\n"
    "  --shutdown-grace-ms N  on SIGTERM, running tasks get N ms to finish before they\n"
    "                         are killed (shutdown_grace_ms; 0..3600000, default 10000)\n"
    "  --cgroup MODE          auto (v2 if usable, else v1), v1, v2, or none: rlimits\n"
    "                         only, no memory/CPU bound on the task's tree (default auto;\n"
    "                         the broker refuses to start when the mode is unusable)\n"
    "The machine's caps: no policy rule may grant more (limits.*):\n"
    "  --default-timeout-ms N timeout of the built-in rule's tasks (default 10000)\n"
    "  --max-timeout-ms N     wall clock (default 300000)\n"
    "  --memory-mb N          memory of the task's whole tree (default 512)\n"
    "  --max-pids N           processes + threads (default 64)\n"
    "  --output-bytes N       stdout + stderr (default 8388608)\n"
    "  --cpu-ms N             CPU time of the whole tree (default 60000)\n"
    "  --disk-mb N            size of /work and of /tmp, largest file (default 32)\n"
    "  --open-files N         open files per process (default 256)\n"
    "An Execute request (together under 4 MiB - 64 KiB, gRPC's message limit):\n"
    "  --max-code-bytes N     its code, at most (max_code_bytes; default 1048576)\n"
    "  --max-stdin-bytes N    its stdin, at most (max_stdin_bytes; default 1048576)\n"
    "The audit trail (audit.*):\n"
    "  --audit-path FILE      the chain (default STATE_DIR/audit.jsonl)\n"
    "  --audit-stream FILE    mirror records as JSON Lines to FILE, - for stdout\n"
    "  --audit-checkpoint-s N have credd sign a checkpoint every N s (default 60)\n"
    "  --audit-no-fsync       do not fsync records (benchmarks only)\n"
    "  --audit-keep-code      keep code bodies in execute.start records\n"
    "Without --config, one built-in rule lets the broker's own user run anything\n"
    "within the caps; everyone else is denied. SIGHUP re-reads the TLS files.\n";

#define EXIT_CONFIG 78 /* EX_CONFIG */

enum {
    OPT_CONFIG = 256,
    OPT_CHECK_CONFIG,
    OPT_AUDIT_KEEP_CODE,
    OPT_MAX_CODE_BYTES,
    OPT_MAX_STDIN_BYTES,
};

static const struct option opts[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
    {"socket", required_argument, NULL, 's'},
    {"listen-tcp", required_argument, NULL, 'L'},
    {"tls-cert", required_argument, NULL, 'e'},
    {"tls-key", required_argument, NULL, 'k'},
    {"tls-bundle", required_argument, NULL, 'b'},
    {"credd", required_argument, NULL, 'c'},
    {"credd-id", required_argument, NULL, 'i'},
    {"state-dir", required_argument, NULL, 'd'},
    {"trust-domain", required_argument, NULL, 't'},
    {"worker", required_argument, NULL, 'w'},
    {"max-tasks", required_argument, NULL, 'n'},
    {"queue", required_argument, NULL, 'Q'},
    {"pool", required_argument, NULL, 'P'},
    {"default-timeout-ms", required_argument, NULL, 'T'},
    {"max-timeout-ms", required_argument, NULL, 'X'},
    {"memory-mb", required_argument, NULL, 'm'},
    {"max-pids", required_argument, NULL, 'p'},
    {"output-bytes", required_argument, NULL, 'o'},
    {"cpu-ms", required_argument, NULL, 'C'},
    {"disk-mb", required_argument, NULL, 'D'},
    {"open-files", required_argument, NULL, 'F'},
    {"cgroup", required_argument, NULL, 'G'},
    {"max-code-bytes", required_argument, NULL, OPT_MAX_CODE_BYTES},
    {"max-stdin-bytes", required_argument, NULL, OPT_MAX_STDIN_BYTES},
    {"shutdown-grace-ms", required_argument, NULL, 'g'},
    AUDIT_LONG_OPTIONS,
    {"audit-keep-code", no_argument, NULL, OPT_AUDIT_KEEP_CODE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Applies one flag over the settings. -1 on a bad value. */
static int apply_flag(struct broker_settings *s, int opt, const char *arg)
{
    struct broker_config *c = &s->cfg;
    uint64_t v = 0;
    if (opt == 'P') { /* its message names the runtime */
        char err[256];
        if (broker_settings_pool_flag(s, arg, err, sizeof err) == 0)
            return 0;
        fprintf(stderr, "airlock-broker: %s\n", err);
        return -1;
    }
    int bad = 0, audit = audit_settings_flag(&s->audit, opt, arg);
    if (audit)
        bad = audit < 0;
    else switch (opt) {
    case 's': s->socket_path = arg; break;
    case 'L': s->tcp_address = arg; break;
    case 'e': s->tls.cert = arg; break;
    case 'k': s->tls.key = arg; break;
    case 'b': s->tls.bundle = arg; break;
    case 'c': c->credd_address = arg; break;
    case 'i': bad = !spiffe_id_valid(arg); s->credd_spiffe_id = arg; break;
    case 'd': s->state_dir = arg; break;
    case 't': c->trust_domain = arg; break;
    case 'w': s->worker = arg; break;
    case 'n': bad = parse_u64_range(arg, 1, 4096, &s->max_tasks); break;
    case 'Q': bad = parse_u64_range(arg, 0, BROKER_QUEUE_MAX, &v); s->queue_len = (uint32_t)v; break;
    case 'T': bad = parse_u64_range(arg, 1, 3600000, &v); c->default_timeout_ms = (uint32_t)v; break;
    case 'X': bad = parse_u64_range(arg, 1, 3600000, &v); c->max_timeout_ms = (uint32_t)v; break;
    case 'm': bad = parse_u64_range(arg, 16, 1 << 20, &v); c->memory_bytes = v << 20; break;
    case 'p': bad = parse_u64_range(arg, 1, 65536, &v); c->max_pids = (uint32_t)v; break;
    case 'o': bad = parse_u64_range(arg, 1, 1ull << 34, &c->output_bytes); break;
    case 'C': bad = parse_u64_range(arg, 100, 86400000, &v); c->cpu_ms = (uint32_t)v; break;
    case 'D': bad = parse_u64_range(arg, 1, 1 << 20, &v); c->disk_bytes = v << 20; break;
    case 'F': bad = parse_u64_range(arg, 16, 1 << 20, &v); c->open_files = (uint32_t)v; break;
    case 'G': bad = broker_parse_cgroup_mode(arg, &s->cgroup_mode); break;
    case 'g': bad = parse_u64_range(arg, 0, 3600000, &v); c->shutdown_grace_ms = (uint32_t)v; break;
    case OPT_AUDIT_KEEP_CODE: s->audit_keep_code = true; break;
    case OPT_MAX_CODE_BYTES:
        bad = parse_u64_range(arg, 1, VALIDATE_MAX_PAYLOAD_BYTES, &c->max_code_bytes);
        break;
    case OPT_MAX_STDIN_BYTES:
        bad = parse_u64_range(arg, 0, VALIDATE_MAX_PAYLOAD_BYTES, &c->max_stdin_bytes);
        break;
    default: break;
    }
    if (bad) {
        const struct option *o = opts;
        while (o->val != opt)
            o++;
        fprintf(stderr, "airlock-broker: bad value for --%s: %s\n", o->name, arg);
        return -1;
    }
    return 0;
}

/* Flags in two passes: the file first (--config), then every other flag
 * over it. Returns -1 to exit with *status. */
static int parse_args(int argc, char **argv, struct broker_settings *s, bool *check_only,
                      int *status)
{
    const char *config = NULL;
    if (daemon_scan_flags(argc, argv, opts, usage, OPT_CONFIG, OPT_CHECK_CONFIG, &config,
                          check_only, status) != 0)
        return -1;
    char err[512];
    if (config && broker_settings_load(s, config, err, sizeof err) != 0) {
        fprintf(stderr, "airlock-broker: %s\n", err);
        *status = EXIT_CONFIG;
        return -1;
    }
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (apply_flag(s, opt, optarg) != 0)
            return -1;
    if (broker_settings_check(s, err, sizeof err) != 0) {
        fprintf(stderr, "airlock-broker: %s\n", err);
        *status = EXIT_CONFIG;
        return -1;
    }
    return 0;
}

/* The channel to credd: peer credentials on a Unix socket, else mutual TLS
 * with our SVID, checking credd's. */
static struct rpc_channel *credd_channel(const struct broker_settings *s, char *err, size_t errlen)
{
    if (strncmp(s->cfg.credd_address, "unix:", 5) == 0) {
        struct rpc_channel *ch = rpc_channel_new(s->cfg.credd_address);
        if (!ch)
            err_set(err, errlen, "cannot open a channel to %s", s->cfg.credd_address);
        return ch;
    }
    return rpc_channel_new_tls(s->cfg.credd_address, &s->tls, s->credd_spiffe_id,
                               s->cfg.trust_domain, err, errlen);
}

/* Our SPIFFE ID for the chain: that of our SVID, else the local default. */
static void broker_identity(const struct broker_settings *s, char *out, size_t outlen)
{
    char err[256];
    if (s->tls.cert && tls_spiffe_id_of_cert_file(s->tls.cert, out, outlen, err, sizeof err) == 0)
        return;
    snprintf(out, outlen, "spiffe://%s/airlock/broker", s->cfg.trust_domain);
}

/* --check-config: what the broker would enforce. */
static int check_config(const struct broker_settings *s, const struct policy *p)
{
    char err[512];
    if (s->tcp_address) {
        struct tls_server *tls = tls_server_new(&s->tls, s->cfg.trust_domain, err, sizeof err);
        if (!tls) {
            fprintf(stderr, "airlock-broker: %s\n", err);
            return EXIT_CONFIG;
        }
        tls_server_free(tls);
    }
    printf("%s: valid; trust domain %s; %zu policy rule%s\n",
           s->config_path ? s->config_path : "built-in configuration", s->cfg.trust_domain,
           policy_rule_count(p), policy_rule_count(p) == 1 ? "" : "s");
    printf("tasks %llu, queue %u; ready workers:", (unsigned long long)s->max_tasks, s->queue_len);
    for (size_t i = 0; i < s->n_pool; i++)
        printf(" %s %u", s->pool[i].runtime, s->pool[i].ready);
    printf("\n");
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    log_set_program("airlock-broker");
    struct broker_settings s;
    broker_settings_init(&s);
    bool check_only = false;
    int status;
    if (parse_args(argc, argv, &s, &check_only, &status) != 0) {
        broker_settings_free(&s);
        return status;
    }
    struct broker_config *cfg = &s.cfg;
    char err[512];
    struct policy *policy = NULL;
    if (broker_settings_policy(&s, geteuid(), &policy, err, sizeof err) != 0) {
        fprintf(stderr, "airlock-broker: %s\n", err);
        broker_settings_free(&s);
        return EXIT_CONFIG;
    }
    if (check_only) {
        status = check_config(&s, policy);
        policy_free(policy);
        broker_settings_free(&s);
        return status;
    }
    status = 1;
    struct tls_server *tls = NULL;
    struct broker broker = {.config = cfg, .policy = policy};
    if (policy_rule_count(policy) == 0)
        log_warn("%s has no policy rules: every request will be denied", s.config_path);
    if (s.worker)
        snprintf(cfg->worker_exe, sizeof cfg->worker_exe, "%s", s.worker);
    else if (daemon_sibling_path("airlock-worker", cfg->worker_exe, sizeof cfg->worker_exe) != 0) {
        log_error("cannot locate airlock-worker");
        goto out;
    }
    if (access(cfg->worker_exe, X_OK) != 0) {
        log_error("worker %s is not executable: %s", cfg->worker_exe, strerror(errno));
        goto out;
    }
    if (mkdir(s.state_dir, 0700) != 0 && errno != EEXIST) {
        log_error("cannot create state dir %s: %s", s.state_dir, strerror(errno));
        goto out;
    }
    if (s.tcp_address && !(tls = tls_server_new(&s.tls, cfg->trust_domain, err, sizeof err))) {
        log_error("TLS: %s", err);
        goto out;
    }
    /* Before any thread exists: cgroup v2 setup moves this process. */
    char cg_desc[512];
    int cg_version = sandbox_cgroup_setup(s.cgroup_mode, cg_desc, sizeof cg_desc);
    if (cg_version < 0) {
        log_error("cgroups: %s (--cgroup none runs tasks with rlimits only)", cg_desc);
        goto out;
    }
    cfg->cgroup_mode = cg_version == 1   ? SANDBOX_CGROUP_V1
                       : cg_version == 2 ? SANDBOX_CGROUP_V2
                                         : SANDBOX_CGROUP_NONE;
    if (cfg->cgroup_mode == SANDBOX_CGROUP_NONE)
        log_warn("%s", cg_desc);
    else
        log_info("%s", cg_desc);
    /* Before our first worker: what workers of a dead broker left. */
    int stale = broker_remove_dead_cgroups(cfg->cgroup_mode, err, sizeof err);
    if (stale < 0)
        log_warn("cannot clean up dead workers' cgroups: %s", err);
    else if (stale > 0)
        log_info("removed %d empty task cgroups of dead workers", stale);
    if (daemon_block_signals() != 0) {
        log_error("cannot set up signals");
        goto out;
    }

    /* Nothing is served without a writable audit chain. */
    char identity[TLS_SPIFFE_ID_MAX];
    broker_identity(&s, identity, sizeof identity);
    if (!(broker.audit = audit_settings_open(&s.audit, s.state_dir, "broker", identity,
                                             AIRLOCK_VERSION, err, sizeof err))) {
        log_error("audit: %s", err);
        goto out;
    }
    broker.audit_keep_code = s.audit_keep_code;

    grpc_init();
    broker.inflight = inflight_new((size_t)s.max_tasks);
    cfg->max_tasks = (uint32_t)s.max_tasks;
    cfg->queue_len = s.queue_len;
    broker.admission = admission_new(cfg->max_tasks, cfg->queue_len);
    /* Pool sandboxes wait with the limits a rule that names none grants. */
    const struct sandbox_limits prepared = {.memory_bytes = cfg->memory_bytes,
                                            .max_pids = cfg->max_pids,
                                            .disk_bytes = cfg->disk_bytes};
    if (!(broker.pool = pool_new(cfg->worker_exe, cfg->cgroup_mode, &prepared, s.pool, s.n_pool,
                                 err, sizeof err))) {
        log_error("%s", err);
        inflight_free(broker.inflight);
        admission_free(broker.admission);
        grpc_shutdown();
        goto out;
    }
    broker.credd = credd_channel(&s, err, sizeof err);
    /* credd revokes what an earlier run of ours left active before we mint;
     * if it is not reachable yet, Execute fails UNAVAILABLE until it is. */
    if (broker.credd)
        broker.credd_link = credd_link_start(broker.credd);
    struct audit_service audit_service = {.log = broker.audit,
                                          .may_read = broker_may_read_audit,
                                          .jwks = broker_credd_jwks,
                                          .ctx = &broker};
    struct rpc_method methods[4] = {
        {"/airlock.v1.Broker/Execute", RPC_SERVER_STREAMING,
         &airlock__v1__execute_request__descriptor, broker_execute, &broker},
    };
    size_t nmethods = 1 + audit_service_methods(&audit_service, methods + 1, 3);
    struct rpc_server *server = NULL;
    struct audit_checkpointer *checkpointer = NULL;
    if (!broker.credd)
        log_error("credd: %s", err);
    else if (!broker.credd_link)
        log_error("cannot start the credd announce: out of resources");
    else if (!(checkpointer = audit_checkpointer_start(
                   broker.audit, (unsigned)s.audit.checkpoint_interval_s, broker_sign_checkpoint,
                   &broker, err, sizeof err)))
        log_error("audit: %s", err);
    /* Queued callers hold a handler thread too; a few calls beyond those, so
     * audit reads are not crowded out. */
    else if (!broker.inflight || !broker.admission ||
             !(server = rpc_server_new(methods, nmethods,
                                       (int)(s.max_tasks + s.queue_len) + 8)))
        log_error("cannot create server");
    else {
        log_info("credd %s, worker %s, %s, %zu policy rules", cfg->credd_address, cfg->worker_exe,
                 s.config_path ? s.config_path : "built-in policy", policy_rule_count(policy));
        log_info("%u task slots, queue %u; ready workers: sh %u, python3 %u", cfg->max_tasks,
                 cfg->queue_len, broker_settings_pool_ready(&s, "sh"),
                 broker_settings_pool_ready(&s, "python3"));
        const struct daemon_listeners listeners = {s.socket_path, s.tcp_address, tls};
        rpc_server_set_drain(server, (int)cfg->shutdown_grace_ms, broker_drain, &broker);
        status = daemon_serve(server, &listeners, daemon_reload_tls, tls) == 0 ? 0 : 1;
    }
    if (broker.admission) /* waiters go (the drain refused them already) */
        admission_shutdown(broker.admission);
    rpc_server_free(server);
    pool_free(broker.pool);
    admission_free(broker.admission);
    audit_checkpointer_stop(checkpointer);
    /* A final checkpoint, if credd still answers, covers this run. */
    audit_close(broker.audit, broker.credd ? broker_sign_checkpoint : NULL, &broker);
    broker.audit = NULL;
    credd_link_stop(broker.credd_link);
    rpc_channel_free(broker.credd);
    inflight_free(broker.inflight);
    grpc_shutdown();
    log_info("stopped");
out:
    audit_close(broker.audit, NULL, NULL);
    tls_server_free(tls);
    policy_free(policy);
    broker_settings_free(&s);
    return status;
}

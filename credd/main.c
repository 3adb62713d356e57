/*
 * main.c - airlock-credd: settings (defaults < config file < flags), key
 * loading, listeners (Unix socket with peer credentials, TCP with mutual
 * TLS), the live-token sweeper and the server's lifetime. credd holds the
 * signing key and nothing else runs here.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit_rpc.h"
#include "daemon.h"
#include "service.h"
#include "tls.h"
#include "util.h"
#include "yamlconf.h"

#define SWEEP_INTERVAL_S 30
#define SWEEP_GRACE_S 3600 /* keep expired entries an hour: "expired", not "unknown" */
#define CREDD_SHUTDOWN_GRACE_MS 5000 /* SIGTERM: calls in flight get this to finish */

static const char usage[] =
    "usage: airlock-credd [--config FILE] [options]\n"
    "Settings come from built-in defaults, then FILE (YAML), then these flags.\n"
    "  --config FILE          YAML configuration (keys named in brackets)\n"
    "  --check-config         validate the configuration and TLS files, then exit\n"
    "  --socket PATH          Unix socket to listen on [listen.unix]\n"
    "  --listen-tcp HOST:PORT TCP listener, mutual TLS only [listen.tcp]\n"
    "  --tls-cert FILE        our X.509 SVID, PEM [tls.cert]\n"
    "  --tls-key FILE         its private key [tls.key]\n"
    "  --tls-bundle FILE      trust bundle callers' SVIDs must chain to [tls.bundle]\n"
    "  --broker-id SPIFFE_ID  an identity that is the broker over TLS and may mint;\n"
    "                         repeat for several [brokers: [...]]\n"
    "  --state-dir DIR        where the signing key lives (created 0700) [state_dir]\n"
    "  --trust-domain TD      SPIFFE trust domain (default airlock.local) [trust_domain]\n"
    "  --broker-exe PATH      executable whose processes are the broker on the Unix\n"
    "                         socket (default: airlock-broker beside this program) [broker_exe]\n"
    "  --worker-exe PATH      executable whose processes are workers [worker_exe]\n"
    "  --default-ttl SECS     token lifetime when none is asked (default 60) [default_ttl_s]\n"
    "  --max-ttl SECS         cap on any token's lifetime (default 900) [max_ttl_s]\n"
    "  --clock-skew SECS      how far a presented token's nbf may be ahead of our\n"
    "                         clock (default 30) [clock_skew_s]\n"
    "  --audit-path FILE      the audit chain (default STATE_DIR/audit.jsonl) [audit.path]\n"
    "  --audit-stream FILE    mirror audit records as JSON Lines to FILE, - for stdout\n"
    "                         [audit.stream]\n"
    "  --audit-checkpoint-s N sign a checkpoint every N seconds (default 60)\n"
    "                         [audit.checkpoint_interval_s]\n"
    "  --audit-no-fsync       do not fsync audit records (benchmarks only) [audit.fsync]\n"
    "  --audit-reader ID      a SPIFFE ID that may read the audit trail; repeat for\n"
    "                         several (default: our own uid's) [audit_readers: [...]]\n"
    "SIGHUP re-reads the TLS files.\n";

#define EXIT_CONFIG 78 /* EX_CONFIG */
#define MAX_BROKER_IDS 16
#define MAX_AUDIT_READERS 64

struct settings {
    struct credd_config config;
    const char *socket_path, *tcp_address, *state_dir, *broker_exe, *worker_exe;
    struct tls_files tls;
    struct audit_settings audit;
    const char *broker_ids[MAX_BROKER_IDS];
    const char *audit_readers[MAX_AUDIT_READERS];
    char own_reader[512]; /* the default reader: spiffe://<td>/uid/<euid> */
    struct yconf *conf; /* the strings above may point into it */
};

struct sweeper {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    struct token_table *tokens;
};

static void *sweep_main(void *arg)
{
    struct sweeper *sw = arg;
    pthread_mutex_lock(&sw->lock);
    while (!sw->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += SWEEP_INTERVAL_S;
        pthread_cond_timedwait(&sw->wake, &sw->lock, &until);
        if (sw->stop)
            break;
        size_t dropped = token_table_sweep(sw->tokens, unix_seconds(), SWEEP_GRACE_S);
        if (dropped)
            log_info("swept %zu expired tokens", dropped);
    }
    pthread_mutex_unlock(&sw->lock);
    return NULL;
}

/* A uint32_t setting within [min, max]. 0, or -1. */
static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v;
    if (parse_u64_range(s, min, max, &v) != 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int resolve_exe(const char *given, const char *sibling, char *out, size_t outlen)
{
    char path[PATH_MAX];
    if (given)
        snprintf(path, sizeof path, "%s", given);
    else if (daemon_sibling_path(sibling, path, sizeof path) != 0)
        return -1;
    /* /proc/PID/exe is canonical: compare against the canonical path. */
    if (!realpath(path, out)) {
        /* A missing binary matches no peer; keep the path as given. */
        if (errno != ENOENT || strlen(path) >= outlen)
            return -1;
        snprintf(out, outlen, "%s", path);
    }
    return 0;
}

enum {
    OPT_CONFIG = 256,
    OPT_CHECK_CONFIG,
    OPT_AUDIT_READER,
};

static const struct option opts[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
    {"socket", required_argument, NULL, 's'},
    {"listen-tcp", required_argument, NULL, 'L'},
    {"tls-cert", required_argument, NULL, 'e'},
    {"tls-key", required_argument, NULL, 'k'},
    {"tls-bundle", required_argument, NULL, 'B'},
    {"broker-id", required_argument, NULL, 'I'},
    {"state-dir", required_argument, NULL, 'd'},
    {"trust-domain", required_argument, NULL, 't'},
    {"broker-exe", required_argument, NULL, 'b'},
    {"worker-exe", required_argument, NULL, 'w'},
    {"default-ttl", required_argument, NULL, 'D'},
    {"max-ttl", required_argument, NULL, 'M'},
    {"clock-skew", required_argument, NULL, 'S'},
    AUDIT_LONG_OPTIONS,
    {"audit-reader", required_argument, NULL, OPT_AUDIT_READER},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int add_broker_id(struct settings *st, const char *id)
{
    if (!spiffe_id_valid(id) || st->config.n_broker_ids == MAX_BROKER_IDS)
        return -1;
    st->broker_ids[st->config.n_broker_ids++] = id;
    return 0;
}

static int add_audit_reader(struct settings *st, const char *id)
{
    if (!spiffe_id_valid(id) || st->config.n_audit_readers == MAX_AUDIT_READERS)
        return -1;
    st->audit_readers[st->config.n_audit_readers++] = id;
    return 0;
}

/* Each item of the list at n through add. */
static int add_ids(struct settings *st, const struct yconf_node *n, size_t max,
                   int (*add)(struct settings *, const char *), char *err, size_t errlen)
{
    const char **ids = NULL;
    size_t n_ids = 0;
    if (yconf_strings(n, TLS_SPIFFE_ID_MAX - 1, max, &ids, &n_ids, err, errlen) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < n_ids && rc == 0; i++) {
        struct yconf_node item;
        yconf_item(n, i, &item);
        if (add(st, ids[i]) != 0)
            rc = yconf_error(&item, err, errlen, "not a SPIFFE ID: \"%s\"", ids[i]);
    }
    free(ids);
    return rc;
}

/* The YAML file over the defaults. 0, or -1 with "FILE:LINE: key: why". */
static int load_file(struct settings *st, const char *path, char *err, size_t errlen)
{
    static const char *const known[] = {"trust_domain", "listen",        "tls",
                                        "brokers",      "state_dir",     "broker_exe",
                                        "worker_exe",   "default_ttl_s", "max_ttl_s",
                                        "audit",        "audit_readers", "clock_skew_s",
                                        NULL};
    static const char *const listen_keys[] = {"unix", "tcp", NULL};
    static const char *const tls_keys[] = {"cert", "key", "bundle", NULL};
    if (yconf_load_file(path, 0, &st->conf, err, errlen) < 0)
        return -1;
    struct yconf_node root, listen, tls, brokers, audit, readers;
    yconf_root(st->conf, &root);
    yconf_child(&root, "listen", &listen);
    yconf_child(&root, "tls", &tls);
    yconf_child(&root, "brokers", &brokers);
    yconf_child(&root, "audit", &audit);
    yconf_child(&root, "audit_readers", &readers);
    uint64_t ttl = st->config.default_ttl, max_ttl = st->config.max_ttl;
    uint64_t skew = st->config.clock_skew_s;
    if (yconf_mapping(&root, known, err, errlen) < 0 ||
        (yconf_present(&listen) && yconf_mapping(&listen, listen_keys, err, errlen) < 0) ||
        (yconf_present(&tls) && yconf_mapping(&tls, tls_keys, err, errlen) < 0) ||
        yconf_opt_string(&root, "trust_domain", &st->config.trust_domain, err, errlen) < 0 ||
        yconf_opt_string(&root, "state_dir", &st->state_dir, err, errlen) < 0 ||
        yconf_opt_string(&root, "broker_exe", &st->broker_exe, err, errlen) < 0 ||
        yconf_opt_string(&root, "worker_exe", &st->worker_exe, err, errlen) < 0 ||
        yconf_opt_string(&listen, "unix", &st->socket_path, err, errlen) < 0 ||
        yconf_opt_string(&listen, "tcp", &st->tcp_address, err, errlen) < 0 ||
        yconf_opt_string(&tls, "cert", &st->tls.cert, err, errlen) < 0 ||
        yconf_opt_string(&tls, "key", &st->tls.key, err, errlen) < 0 ||
        yconf_opt_string(&tls, "bundle", &st->tls.bundle, err, errlen) < 0 ||
        yconf_opt_u64(&root, "default_ttl_s", 1, 86400, &ttl, err, errlen) < 0 ||
        yconf_opt_u64(&root, "max_ttl_s", 1, CREDD_TTL_LIMIT_S, &max_ttl, err, errlen) < 0 ||
        yconf_opt_u64(&root, "clock_skew_s", 0, 3600, &skew, err, errlen) < 0 ||
        audit_settings_load(&audit, NULL, &st->audit, err, errlen) < 0 ||
        add_ids(st, &brokers, MAX_BROKER_IDS, add_broker_id, err, errlen) < 0 ||
        add_ids(st, &readers, MAX_AUDIT_READERS, add_audit_reader, err, errlen) < 0)
        return -1;
    st->config.default_ttl = (uint32_t)ttl;
    st->config.max_ttl = (uint32_t)max_ttl;
    st->config.clock_skew_s = (uint32_t)skew;
    return 0;
}

static int apply_flag(struct settings *st, int opt, const char *arg)
{
    int bad = 0, audit = audit_settings_flag(&st->audit, opt, arg);
    if (audit)
        bad = audit < 0;
    else switch (opt) {
    case 's': st->socket_path = arg; break;
    case 'L': st->tcp_address = arg; break;
    case 'e': st->tls.cert = arg; break;
    case 'k': st->tls.key = arg; break;
    case 'B': st->tls.bundle = arg; break;
    case 'I': bad = add_broker_id(st, arg); break;
    case 'd': st->state_dir = arg; break;
    case 't': st->config.trust_domain = arg; break;
    case 'b': st->broker_exe = arg; break;
    case 'w': st->worker_exe = arg; break;
    case 'D': bad = parse_u32(arg, 1, 86400, &st->config.default_ttl); break;
    case 'M': bad = parse_u32(arg, 1, CREDD_TTL_LIMIT_S, &st->config.max_ttl); break;
    case 'S': bad = parse_u32(arg, 0, 3600, &st->config.clock_skew_s); break;
    case OPT_AUDIT_READER: bad = add_audit_reader(st, arg); break;
    default: break;
    }
    if (bad) {
        const struct option *o = opts;
        while (o->val != opt)
            o++;
        fprintf(stderr, "airlock-credd: bad value for --%s: %s\n", o->name, arg);
    }
    return bad ? -1 : 0;
}

static int check_settings(const struct settings *st, char *err, size_t errlen)
{
    if (!trust_domain_valid(st->config.trust_domain))
        return err_set(err, errlen, "invalid trust domain '%s'", st->config.trust_domain);
    if (!st->socket_path && !st->tcp_address)
        return err_set(err, errlen, "nothing to listen on: give listen.unix or listen.tcp "
                                    "(--socket, --listen-tcp)");
    if (!st->state_dir)
        return err_set(err, errlen, "no state directory (state_dir, --state-dir)");
    if (st->tcp_address && !(st->tls.cert && st->tls.key && st->tls.bundle))
        return err_set(err, errlen, "listen.tcp needs tls.cert, tls.key and tls.bundle: TCP is "
                                    "mutual TLS only");
    if (st->tcp_address && st->config.n_broker_ids == 0)
        return err_set(err, errlen, "listen.tcp without brokers: no TLS caller could mint "
                                    "(brokers, --broker-id)");
    return 0;
}

/* Flags in two passes: --config first, then every other flag over it. */
static int parse_args(int argc, char **argv, struct settings *st, bool *check_only, int *status)
{
    const char *config = NULL;
    char err[512];
    if (daemon_scan_flags(argc, argv, opts, usage, OPT_CONFIG, OPT_CHECK_CONFIG, &config,
                          check_only, status) != 0)
        return -1;
    if (config && load_file(st, config, err, sizeof err) != 0) {
        fprintf(stderr, "airlock-credd: %s\n", err);
        *status = EXIT_CONFIG;
        return -1;
    }
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1)
        if (apply_flag(st, opt, optarg) != 0)
            return -1;
    if (check_settings(st, err, sizeof err) != 0) {
        fprintf(stderr, "airlock-credd: %s\n", err);
        *status = EXIT_CONFIG;
        return -1;
    }
    if (st->config.default_ttl > st->config.max_ttl)
        st->config.default_ttl = st->config.max_ttl;
    if (st->config.n_audit_readers == 0) {
        snprintf(st->own_reader, sizeof st->own_reader, "spiffe://%s/uid/%u",
                 st->config.trust_domain, (unsigned)geteuid());
        st->audit_readers[st->config.n_audit_readers++] = st->own_reader;
    }
    return 0;
}

int main(int argc, char **argv)
{
    log_set_program("airlock-credd");
    struct settings st = {.config = {.trust_domain = "airlock.local", .default_ttl = 60,
                                     .max_ttl = 900, .clock_skew_s = 30},
                          .audit = {.checkpoint_interval_s = AUDIT_DEFAULT_CHECKPOINT_S}};
    st.config.broker_ids = st.broker_ids;
    st.config.audit_readers = st.audit_readers;
    bool check_only = false;
    int exit_status;
    if (parse_args(argc, argv, &st, &check_only, &exit_status) != 0) {
        yconf_free(st.conf);
        return exit_status;
    }
    struct credd_config config = st.config;
    const char *state_dir = st.state_dir;
    char err[512];
    struct tls_server *tls = NULL;
    if (st.tcp_address && !(tls = tls_server_new(&st.tls, config.trust_domain, err, sizeof err))) {
        log_error("TLS: %s", err);
        yconf_free(st.conf);
        return EXIT_CONFIG;
    }
    if (check_only) {
        printf("credd configuration valid; trust domain %s; %zu broker identities over TLS\n",
               config.trust_domain, config.n_broker_ids);
        tls_server_free(tls);
        yconf_free(st.conf);
        return 0;
    }
    if (resolve_exe(st.broker_exe, "airlock-broker", config.broker_exe, sizeof config.broker_exe) != 0 ||
        resolve_exe(st.worker_exe, "airlock-worker", config.worker_exe, sizeof config.worker_exe) != 0) {
        log_error("cannot resolve broker/worker executable paths: %s", strerror(errno));
        tls_server_free(tls);
        yconf_free(st.conf);
        return 1;
    }
    int status = 1;
    struct signing_key key;
    bool have_key = false;
    struct credd credd = {.config = &config, .key = &key};
    if (daemon_block_signals() != 0 || sodium_init() < 0) {
        log_error("cannot initialise");
        goto out;
    }
    if (signing_key_load_or_create(state_dir, &key, err, sizeof err) != 0) {
        log_error("signing key: %s", err);
        goto out;
    }
    have_key = true;
    snprintf(credd.issuer, sizeof credd.issuer, "spiffe://%s/airlock/credd", config.trust_domain);
    if (!(credd.tokens = token_table_new())) {
        log_error("out of memory");
        goto out;
    }
    /* Nothing is served without a writable audit chain. */
    if (!(credd.audit = audit_settings_open(&st.audit, state_dir, "credd", credd.issuer,
                                            AIRLOCK_VERSION, err, sizeof err))) {
        log_error("audit: %s", err);
        goto out;
    }
    /* Tokens and revocations of earlier runs, from the chain; unreadable:
     * no start (a revoked token must not come back). */
    struct credd_replay_stats restored;
    if (credd_replay(&credd, SWEEP_GRACE_S, &restored, err, sizeof err) != 0) {
        log_error("restoring tokens: %s", err);
        goto out;
    }
    struct audit_checkpointer *checkpointer = audit_checkpointer_start(
        credd.audit, (unsigned)st.audit.checkpoint_interval_s, credd_sign_checkpoint, &credd, err,
        sizeof err);
    if (!checkpointer) {
        log_error("audit: %s", err);
        goto out;
    }
    struct audit_service audit_service = {.log = credd.audit,
                                          .may_read = credd_may_read_audit,
                                          .jwks = credd_jwks,
                                          .ctx = &credd};

    grpc_init();
    struct rpc_method methods[16];
    size_t nmethods = credd_methods(&credd, methods, 16);
    nmethods += audit_service_methods(&audit_service, methods + nmethods, 16 - nmethods);
    struct rpc_server *server = rpc_server_new(methods, nmethods, 256);
    struct sweeper sw = {.tokens = credd.tokens};
    pthread_mutex_init(&sw.lock, NULL);
    pthread_cond_init(&sw.wake, NULL);
    bool sweeping = false;
    if (!server) {
        log_error("cannot create server");
    } else if (pthread_create(&sw.thread, NULL, sweep_main, &sw) != 0) {
        log_error("cannot start the token sweeper");
    } else {
        sweeping = true;
        log_info("key %s, broker %s, %zu broker identities over TLS", key.kid, config.broker_exe,
                 config.n_broker_ids);
        const struct daemon_listeners listeners = {st.socket_path, st.tcp_address, tls};
        /* Calls in flight (all short but audit queries) finish before it stops. */
        rpc_server_set_drain(server, CREDD_SHUTDOWN_GRACE_MS, NULL, NULL);
        status = daemon_serve(server, &listeners, daemon_reload_tls, tls) == 0 ? 0 : 1;
    }
    if (sweeping) {
        pthread_mutex_lock(&sw.lock);
        sw.stop = true;
        pthread_cond_signal(&sw.wake);
        pthread_mutex_unlock(&sw.lock);
        pthread_join(sw.thread, NULL);
    }
    pthread_mutex_destroy(&sw.lock);
    pthread_cond_destroy(&sw.wake);
    rpc_server_free(server);
    grpc_shutdown();
    audit_checkpointer_stop(checkpointer);
    log_info("stopped");
out:
    /* A final checkpoint covers everything this run wrote. */
    audit_close(credd.audit, credd_sign_checkpoint, &credd);
    token_table_free(credd.tokens);
    if (have_key)
        signing_key_wipe(&key);
    tls_server_free(tls);
    yconf_free(st.conf);
    return status;
}

/*
 * main.c - airlock-credd: flags, key loading, the live-token sweeper and the
 * server's lifetime. credd holds the signing key and nothing else runs here.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "service.h"
#include "util.h"

#define SWEEP_INTERVAL_S 30
#define SWEEP_GRACE_S 3600 /* keep expired entries an hour: "expired", not "unknown" */

static const char usage[] =
    "usage: airlock-credd --socket PATH --state-dir DIR [options]\n"
    "  --socket PATH        Unix socket to listen on\n"
    "  --state-dir DIR      where the signing key lives (created 0700)\n"
    "  --trust-domain TD    SPIFFE trust domain (default airlock.local)\n"
    "  --broker-exe PATH    executable whose processes are the broker\n"
    "                       (default: airlock-broker beside this program)\n"
    "  --worker-exe PATH    executable whose processes are workers\n"
    "                       (default: airlock-worker beside this program)\n"
    "  --default-ttl SECS   token lifetime when none is asked (default 60)\n"
    "  --max-ttl SECS       cap on any token's lifetime (default 900)\n";

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

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
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

int main(int argc, char **argv)
{
    log_set_program("airlock-credd");
    const char *socket_path = NULL, *state_dir = NULL, *broker_exe = NULL, *worker_exe = NULL;
    struct credd_config config = {.trust_domain = "airlock.local", .default_ttl = 60, .max_ttl = 900};
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},   {"state-dir", required_argument, NULL, 'd'},
        {"trust-domain", required_argument, NULL, 't'}, {"broker-exe", required_argument, NULL, 'b'},
        {"worker-exe", required_argument, NULL, 'w'}, {"default-ttl", required_argument, NULL, 'D'},
        {"max-ttl", required_argument, NULL, 'M'},  {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 's': socket_path = optarg; break;
        case 'd': state_dir = optarg; break;
        case 't': config.trust_domain = optarg; break;
        case 'b': broker_exe = optarg; break;
        case 'w': worker_exe = optarg; break;
        case 'D':
            if (parse_u32(optarg, 1, 86400, &config.default_ttl) != 0) {
                fprintf(stderr, "airlock-credd: --default-ttl must be 1..86400\n");
                return 64;
            }
            break;
        case 'M':
            if (parse_u32(optarg, 1, 86400, &config.max_ttl) != 0) {
                fprintf(stderr, "airlock-credd: --max-ttl must be 1..86400\n");
                return 64;
            }
            break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 64;
        }
    }
    if (!socket_path || !state_dir || optind != argc) {
        fputs(usage, stderr);
        return 64;
    }
    char td_probe[512];
    snprintf(td_probe, sizeof td_probe, "spiffe://%s/x", config.trust_domain);
    if (!spiffe_id_valid(td_probe)) {
        fprintf(stderr, "airlock-credd: invalid trust domain '%s'\n", config.trust_domain);
        return 64;
    }
    if (config.default_ttl > config.max_ttl)
        config.default_ttl = config.max_ttl;
    if (resolve_exe(broker_exe, "airlock-broker", config.broker_exe, sizeof config.broker_exe) != 0 ||
        resolve_exe(worker_exe, "airlock-worker", config.worker_exe, sizeof config.worker_exe) != 0) {
        log_error("cannot resolve broker/worker executable paths: %s", strerror(errno));
        return 1;
    }
    if (daemon_block_signals() != 0 || sodium_init() < 0) {
        log_error("cannot initialise");
        return 1;
    }

    struct signing_key key;
    char err[256];
    if (signing_key_load_or_create(state_dir, &key, err, sizeof err) != 0) {
        log_error("signing key: %s", err);
        return 1;
    }
    struct credd credd = {.config = &config, .key = &key, .tokens = token_table_new()};
    snprintf(credd.issuer, sizeof credd.issuer, "spiffe://%s/airlock/credd", config.trust_domain);
    if (!credd.tokens) {
        log_error("out of memory");
        signing_key_wipe(&key);
        return 1;
    }

    grpc_init();
    int status = 1;
    struct rpc_method methods[8];
    size_t nmethods = credd_methods(&credd, methods, 8);
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
        log_info("key %s, broker %s", key.kid, config.broker_exe);
        status = daemon_serve(server, socket_path) == 0 ? 0 : 1;
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
    token_table_free(credd.tokens);
    signing_key_wipe(&key);
    log_info("stopped");
    return status;
}

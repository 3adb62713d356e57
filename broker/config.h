/*
 * config.h - the broker's settings: built-in defaults, then the YAML file
 * (--config), then command-line flags, each overriding the one before. Also
 * the policy they describe. Shared by airlock-broker and `airlock policy
 * check`, so a review sees exactly what the broker will enforce.
 *
 *   trust_domain: prod.example
 *   listen: {unix: /run/airlock/broker.sock, tcp: "0.0.0.0:8443"}
 *   tls: {cert: svid.pem, key: svid_key.pem, bundle: bundle.pem}
 *   credd: {address: "unix:/run/airlock/credd.sock", spiffe_id: spiffe://prod.example/airlock/credd}
 *   state_dir: /var/lib/airlock/broker
 *   worker: /usr/lib/airlock/airlock-worker
 *   max_tasks: 32
 *   queue: 64                # requests that may wait for a task slot; 0: none wait
 *   pool: {sh: 2, python3: 2}  # ready workers kept per runtime; 0: cold start
 *   cgroup: auto
 *   token_skew_s: 30
 *   max_code_bytes: 1048576  # an Execute request's code; max_stdin_bytes: its stdin
 *   max_stdin_bytes: 1048576 # (together under 4 MiB - 64 KiB: gRPC's message limit)
 *   shutdown_grace_ms: 10000 # SIGTERM: running tasks' time to finish before they are killed
 *   limits: {default_timeout_ms: 10000, timeout_ms: 300000, memory_mb: 512, cpu_ms: 60000,
 *            max_pids: 64, output_bytes: 8388608, disk_mb: 32, open_files: 256}
 *   audit: {path: ..., stream: ..., fsync: true, checkpoint_interval_s: 60,
 *           keep_code: false}  # see audit_rpc.h; keep_code: code bodies in execute.start
 *   unix_identities: [...]   # see policy.h
 *   policy: [...]            # see policy.h
 */
#ifndef AIRLOCK_BROKER_CONFIG_H
#define AIRLOCK_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "audit_rpc.h"
#include "execute.h"
#include "policy.h"
#include "tls.h"
#include "yamlconf.h"

#define BROKER_POOL_MAX_RUNTIMES 8
#define BROKER_POOL_MAX_READY 256
#define BROKER_QUEUE_MAX 65536

/* Pre-built workers the broker keeps ready for one runtime. */
struct pool_setting {
    char runtime[16];
    uint32_t ready; /* 0: no pool, each task starts its worker cold */
};

struct broker_settings {
    struct broker_config cfg;   /* what execute.c reads (limits are the machine's caps) */
    const char *socket_path;    /* listen.unix; NULL: none */
    const char *tcp_address;    /* listen.tcp; NULL: none */
    struct tls_files tls;       /* our SVID, for listen.tcp and a TCP credd */
    const char *credd_spiffe_id; /* credd's SPIFFE ID over TCP; NULL: any in the trust domain */
    const char *state_dir;
    const char *worker;         /* NULL: airlock-worker beside the broker */
    uint64_t max_tasks;
    uint32_t queue_len;         /* requests that may wait for one of max_tasks' slots */
    struct pool_setting pool[BROKER_POOL_MAX_RUNTIMES]; /* one per runtime named */
    size_t n_pool;
    uint32_t cgroup_mode;       /* enum sandbox_cgroup_mode */
    struct audit_settings audit;
    bool audit_keep_code;       /* audit.keep_code */
    const char *config_path;    /* NULL: no file, built-in policy */
    struct yconf *conf;         /* the loaded file; the strings above may point into it */
};

/* Built-in defaults. */
void broker_settings_init(struct broker_settings *s);

/* "auto", "v1", "v2" or "none" to enum sandbox_cgroup_mode. 0 or -1. */
int broker_parse_cgroup_mode(const char *name, uint32_t *out);

/* --pool RUNTIME=N over s: N ready workers for RUNTIME (0..256), later wins.
 * 0, or -1 with err naming what is wrong. */
int broker_settings_pool_flag(struct broker_settings *s, const char *arg, char *err, size_t errlen);

/* Ready workers wanted for runtime (0 when none is set). */
uint32_t broker_settings_pool_ready(const struct broker_settings *s, const char *runtime);

/* Applies the file at path over s. 0, or -1 with "FILE:LINE: key: why". */
int broker_settings_load(struct broker_settings *s, const char *path, char *err, size_t errlen);

/* Checks the settings hang together (addresses, TLS files, limits). */
int broker_settings_check(const struct broker_settings *s, char *err, size_t errlen);

/* The policy: the file's rules (deny by default; a file without rules
 * denies everyone), or without a file the built-in rule for owner_uid's own
 * identity. 0, or -1 with err. */
int broker_settings_policy(const struct broker_settings *s, uid_t owner_uid, struct policy **out,
                           char *err, size_t errlen);

/* The machine caps as policy limits. */
void broker_settings_caps(const struct broker_settings *s, struct policy_limits *caps);

void broker_settings_free(struct broker_settings *s);

#endif

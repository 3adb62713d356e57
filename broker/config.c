/*
 * config.c - the broker's settings from defaults and its YAML file, and the
 * policy they describe. Flags are applied by main.c over what this loads.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"
#include "util.h"
#include "validate.h"

void broker_settings_init(struct broker_settings *s)
{
    static const struct pool_setting default_pool[] = {{"sh", 2}, {"python3", 2}};
    memset(s, 0, sizeof *s);
    s->cfg = (struct broker_config){
        .trust_domain = "airlock.local",
        .default_timeout_ms = 10000,
        .max_timeout_ms = 300000,
        .memory_bytes = 512ull << 20,
        .max_pids = 64,
        .output_bytes = 8u << 20,
        .cpu_ms = 60000,
        .disk_bytes = 32u << 20,
        .open_files = 256,
        .max_code_bytes = VALIDATE_DEFAULT_MAX_CODE_BYTES,
        .max_stdin_bytes = VALIDATE_DEFAULT_MAX_STDIN_BYTES,
        .token_skew_s = 30,
        .shutdown_grace_ms = 10000,
    };
    s->max_tasks = 32;
    s->queue_len = 64;
    memcpy(s->pool, default_pool, sizeof default_pool);
    s->n_pool = sizeof default_pool / sizeof default_pool[0];
    s->cgroup_mode = SANDBOX_CGROUP_AUTO;
    s->audit.checkpoint_interval_s = AUDIT_DEFAULT_CHECKPOINT_S;
}

int broker_parse_cgroup_mode(const char *name, uint32_t *out)
{
    static const struct {
        const char *name;
        enum sandbox_cgroup_mode mode;
    } modes[] = {{"auto", SANDBOX_CGROUP_AUTO},
                 {"v1", SANDBOX_CGROUP_V1},
                 {"v2", SANDBOX_CGROUP_V2},
                 {"none", SANDBOX_CGROUP_NONE}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(name, modes[i].name) == 0) {
            *out = modes[i].mode;
            return 0;
        }
    return -1;
}

/* An optional integer at key of map in [min, max], times scale. */
static int opt_scaled(const struct yconf_node *map, const char *key, uint64_t min, uint64_t max,
                      uint64_t scale, uint64_t *out, char *err, size_t errlen)
{
    uint64_t v = *out / scale;
    if (yconf_opt_u64(map, key, min, max, &v, err, errlen) < 0)
        return -1;
    *out = v * scale;
    return 0;
}

static int opt_u32(const struct yconf_node *map, const char *key, uint32_t min, uint32_t max,
                   uint32_t *out, char *err, size_t errlen)
{
    uint64_t v = *out;
    if (yconf_opt_u64(map, key, min, max, &v, err, errlen) < 0)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int load_listen(struct broker_settings *s, const struct yconf_node *root, char *err,
                       size_t errlen)
{
    static const char *const known[] = {"unix", "tcp", NULL};
    struct yconf_node n;
    yconf_child(root, "listen", &n);
    if (!yconf_present(&n))
        return 0;
    if (yconf_mapping(&n, known, err, errlen) < 0 ||
        yconf_opt_string(&n, "unix", &s->socket_path, err, errlen) < 0 ||
        yconf_opt_string(&n, "tcp", &s->tcp_address, err, errlen) < 0)
        return -1;
    return 0;
}

static int load_tls(struct broker_settings *s, const struct yconf_node *root, char *err,
                    size_t errlen)
{
    static const char *const known[] = {"cert", "key", "bundle", NULL};
    struct yconf_node n;
    yconf_child(root, "tls", &n);
    if (!yconf_present(&n))
        return 0;
    if (yconf_mapping(&n, known, err, errlen) < 0 ||
        yconf_opt_string(&n, "cert", &s->tls.cert, err, errlen) < 0 ||
        yconf_opt_string(&n, "key", &s->tls.key, err, errlen) < 0 ||
        yconf_opt_string(&n, "bundle", &s->tls.bundle, err, errlen) < 0)
        return -1;
    return 0;
}

static int load_credd(struct broker_settings *s, const struct yconf_node *root, char *err,
                      size_t errlen)
{
    static const char *const known[] = {"address", "spiffe_id", NULL};
    struct yconf_node n;
    yconf_child(root, "credd", &n);
    if (!yconf_present(&n))
        return 0;
    if (yconf_mapping(&n, known, err, errlen) < 0 ||
        yconf_opt_string(&n, "address", &s->cfg.credd_address, err, errlen) < 0 ||
        yconf_opt_string(&n, "spiffe_id", &s->credd_spiffe_id, err, errlen) < 0)
        return -1;
    if (s->credd_spiffe_id && !spiffe_id_valid(s->credd_spiffe_id)) {
        struct yconf_node id;
        yconf_child(&n, "spiffe_id", &id);
        return yconf_error(&id, err, errlen, "not a SPIFFE ID");
    }
    return 0;
}

/* Sets runtime's ready workers, adding the runtime if new. -1 when the
 * sandbox does not know the runtime. */
static int pool_set(struct broker_settings *s, const char *runtime, uint32_t ready)
{
    if (!sandbox_runtime_known(runtime) || strlen(runtime) >= sizeof s->pool[0].runtime)
        return -1;
    for (size_t i = 0; i < s->n_pool; i++)
        if (strcmp(s->pool[i].runtime, runtime) == 0) {
            s->pool[i].ready = ready;
            return 0;
        }
    if (s->n_pool == BROKER_POOL_MAX_RUNTIMES)
        return -1;
    struct pool_setting *p = &s->pool[s->n_pool++];
    memcpy(p->runtime, runtime, strlen(runtime) + 1);
    p->ready = ready;
    return 0;
}

uint32_t broker_settings_pool_ready(const struct broker_settings *s, const char *runtime)
{
    for (size_t i = 0; i < s->n_pool; i++)
        if (strcmp(s->pool[i].runtime, runtime) == 0)
            return s->pool[i].ready;
    return 0;
}

int broker_settings_pool_flag(struct broker_settings *s, const char *arg, char *err, size_t errlen)
{
    const char *eq = strchr(arg, '=');
    uint64_t ready;
    char runtime[sizeof s->pool[0].runtime];
    if (!eq || eq == arg || parse_u64_range(eq + 1, 0, BROKER_POOL_MAX_READY, &ready) != 0)
        return err_set(err, errlen, "--pool: expected RUNTIME=N with N 0..%d, got \"%s\"",
                       BROKER_POOL_MAX_READY, arg);
    size_t len = (size_t)(eq - arg);
    if (len < sizeof runtime) {
        memcpy(runtime, arg, len);
        runtime[len] = '\0';
    }
    if (len >= sizeof runtime || pool_set(s, runtime, (uint32_t)ready) != 0)
        return err_set(err, errlen, "--pool: unknown runtime \"%.*s\"", (int)len, arg);
    return 0;
}

/* pool: {RUNTIME: N, ...}, each over its default; other runtimes keep theirs. */
static int load_pool(struct broker_settings *s, const struct yconf_node *root, char *err,
                     size_t errlen)
{
    struct yconf_node n, key, value;
    size_t count = 0;
    yconf_child(root, "pool", &n);
    int rc = yconf_entries(&n, &count, err, errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    for (size_t i = 0; i < count; i++) {
        const char *runtime;
        uint64_t ready;
        yconf_entry(&n, i, &key, &value);
        if (yconf_string(&key, 64, &runtime, err, errlen) != 0 ||
            yconf_u64(&value, 0, BROKER_POOL_MAX_READY, &ready, err, errlen) != 0)
            return -1;
        if (pool_set(s, runtime, (uint32_t)ready) != 0)
            return yconf_error(&key, err, errlen, "unknown runtime \"%s\"", runtime);
    }
    return 0;
}

/* The machine caps. Same ranges as the flags. */
static int load_limits(struct broker_settings *s, const struct yconf_node *root, char *err,
                       size_t errlen)
{
    static const char *const known[] = {"default_timeout_ms", "timeout_ms", "memory_mb", "cpu_ms",
                                        "max_pids", "output_bytes", "disk_mb", "open_files", NULL};
    struct broker_config *c = &s->cfg;
    struct yconf_node n;
    yconf_child(root, "limits", &n);
    if (!yconf_present(&n))
        return 0;
    if (yconf_mapping(&n, known, err, errlen) < 0 ||
        opt_u32(&n, "default_timeout_ms", 1, 3600000, &c->default_timeout_ms, err, errlen) < 0 ||
        opt_u32(&n, "timeout_ms", 1, 3600000, &c->max_timeout_ms, err, errlen) < 0 ||
        opt_scaled(&n, "memory_mb", 16, 1 << 20, 1 << 20, &c->memory_bytes, err, errlen) < 0 ||
        opt_u32(&n, "cpu_ms", 100, 86400000, &c->cpu_ms, err, errlen) < 0 ||
        opt_u32(&n, "max_pids", 1, 65536, &c->max_pids, err, errlen) < 0 ||
        opt_scaled(&n, "output_bytes", 1, 1ull << 34, 1, &c->output_bytes, err, errlen) < 0 ||
        opt_scaled(&n, "disk_mb", 1, 1 << 20, 1 << 20, &c->disk_bytes, err, errlen) < 0 ||
        opt_u32(&n, "open_files", 16, 1 << 20, &c->open_files, err, errlen) < 0)
        return -1;
    return 0;
}

int broker_settings_load(struct broker_settings *s, const char *path, char *err, size_t errlen)
{
    static const char *const known[] = {
        "trust_domain", "listen",    "tls",          "credd",  "state_dir",       "worker",
        "max_tasks",    "cgroup",    "token_skew_s", "limits", "unix_identities", "policy",
        "audit",        "queue",     "pool",         "shutdown_grace_ms",
        "max_code_bytes", "max_stdin_bytes", NULL};
    static const char *const audit_extra[] = {"keep_code", NULL};
    if (yconf_load_file(path, 0, &s->conf, err, errlen) < 0)
        return -1;
    s->config_path = path;
    struct yconf_node root, n;
    yconf_root(s->conf, &root);
    if (yconf_mapping(&root, known, err, errlen) < 0 ||
        yconf_opt_string(&root, "trust_domain", &s->cfg.trust_domain, err, errlen) < 0 ||
        load_listen(s, &root, err, errlen) < 0 || load_tls(s, &root, err, errlen) < 0 ||
        load_credd(s, &root, err, errlen) < 0 ||
        yconf_opt_string(&root, "state_dir", &s->state_dir, err, errlen) < 0 ||
        yconf_opt_string(&root, "worker", &s->worker, err, errlen) < 0 ||
        yconf_opt_u64(&root, "max_tasks", 1, 4096, &s->max_tasks, err, errlen) < 0 ||
        opt_u32(&root, "queue", 0, BROKER_QUEUE_MAX, &s->queue_len, err, errlen) < 0 ||
        load_pool(s, &root, err, errlen) < 0 ||
        opt_u32(&root, "token_skew_s", 0, 3600, &s->cfg.token_skew_s, err, errlen) < 0 ||
        opt_u32(&root, "shutdown_grace_ms", 0, 3600000, &s->cfg.shutdown_grace_ms, err,
                errlen) < 0 ||
        load_limits(s, &root, err, errlen) < 0 ||
        yconf_opt_u64(&root, "max_code_bytes", 1, VALIDATE_MAX_PAYLOAD_BYTES,
                      &s->cfg.max_code_bytes, err, errlen) < 0 ||
        yconf_opt_u64(&root, "max_stdin_bytes", 0, VALIDATE_MAX_PAYLOAD_BYTES,
                      &s->cfg.max_stdin_bytes, err, errlen) < 0)
        return -1;
    yconf_child(&root, "audit", &n);
    if (audit_settings_load(&n, audit_extra, &s->audit, err, errlen) < 0)
        return -1;
    struct yconf_node keep;
    yconf_child(&n, "keep_code", &keep);
    if (yconf_present(&keep) && yconf_bool(&keep, &s->audit_keep_code, err, errlen) < 0)
        return -1;
    const char *mode = NULL;
    if (yconf_opt_string(&root, "cgroup", &mode, err, errlen) < 0)
        return -1;
    if (mode && broker_parse_cgroup_mode(mode, &s->cgroup_mode) != 0) {
        yconf_child(&root, "cgroup", &n);
        return yconf_error(&n, err, errlen, "expected auto, v1, v2 or none, got \"%s\"", mode);
    }
    return 0;
}

int broker_settings_check(const struct broker_settings *s, char *err, size_t errlen)
{
    if (!trust_domain_valid(s->cfg.trust_domain))
        return err_set(err, errlen, "invalid trust domain '%s'", s->cfg.trust_domain);
    if (!s->socket_path && !s->tcp_address)
        return err_set(err, errlen, "nothing to listen on: give listen.unix or listen.tcp "
                                    "(--socket, --listen-tcp)");
    if (!s->cfg.credd_address)
        return err_set(err, errlen, "no credd address (credd.address, --credd)");
    if (!s->state_dir)
        return err_set(err, errlen, "no state directory (state_dir, --state-dir)");
    bool tcp_credd = strncmp(s->cfg.credd_address, "unix:", 5) != 0;
    bool need_tls = s->tcp_address || tcp_credd;
    if (need_tls && !(s->tls.cert && s->tls.key && s->tls.bundle))
        return err_set(err, errlen, "%s needs tls.cert, tls.key and tls.bundle (--tls-cert, "
                       "--tls-key, --tls-bundle): TCP is mutual TLS only",
                       s->tcp_address ? "listen.tcp" : "a TCP credd address");
    if (s->cfg.default_timeout_ms > s->cfg.max_timeout_ms)
        return err_set(err, errlen, "limits.default_timeout_ms %u exceeds limits.timeout_ms %u",
                       s->cfg.default_timeout_ms, s->cfg.max_timeout_ms);
    if (s->cfg.max_code_bytes + s->cfg.max_stdin_bytes > VALIDATE_MAX_PAYLOAD_BYTES)
        return err_set(err, errlen, "max_code_bytes %llu + max_stdin_bytes %llu exceed %u: a "
                       "request must fit gRPC's 4 MiB message limit",
                       (unsigned long long)s->cfg.max_code_bytes,
                       (unsigned long long)s->cfg.max_stdin_bytes, VALIDATE_MAX_PAYLOAD_BYTES);
    return 0;
}

void broker_settings_caps(const struct broker_settings *s, struct policy_limits *caps)
{
    const struct broker_config *c = &s->cfg;
    *caps = (struct policy_limits){
        .timeout_ms = c->max_timeout_ms,
        .memory_bytes = c->memory_bytes,
        .cpu_ms = c->cpu_ms,
        .max_pids = c->max_pids,
        .output_bytes = c->output_bytes,
        .disk_bytes = c->disk_bytes,
        .open_files = c->open_files,
    };
}

int broker_settings_policy(const struct broker_settings *s, uid_t owner_uid, struct policy **out,
                           char *err, size_t errlen)
{
    struct policy_limits caps;
    broker_settings_caps(s, &caps);
    if (!s->conf) {
        /* Without a file: the broker's own user may run anything within the
         * caps; everyone else is denied. */
        static const char *const runtimes[] = {"python3", "sh", NULL};
        if (policy_default(s->cfg.trust_domain, owner_uid, runtimes, &caps,
                           s->cfg.default_timeout_ms, out) != 0)
            return err_set(err, errlen, "cannot build the built-in policy");
        return 0;
    }
    struct yconf_node root, rules, unix_ids;
    yconf_root(s->conf, &root);
    yconf_child(&root, "policy", &rules);
    yconf_child(&root, "unix_identities", &unix_ids);
    return policy_load(&rules, &unix_ids, s->cfg.trust_domain, &caps, sandbox_runtime_known, out,
                       err, errlen);
}

void broker_settings_free(struct broker_settings *s)
{
    yconf_free(s->conf);
    s->conf = NULL;
}

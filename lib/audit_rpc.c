/*
 * audit_rpc.c - airlock.v1.Audit (Query, Verify) over a daemon's chain,
 * the caller records both daemons share, and the checkpoint thread.
 *
 * Reading the trail is itself an audited action: an allowed read is
 * recorded durably before any record leaves, a refused one best effort.
 */
#include "audit_rpc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "airlock/v1/audit.pb-c.h"
#include "util.h"

#define MAX_KINDS 16
#define MAX_FILTER_WORD 64

json_t *audit_peer_json(const struct rpc_peer *peer)
{
    switch (peer->transport) {
    case RPC_TRANSPORT_UNIX:
        return json_pack("{s:s,s:I,s:I,s:I,s:s}", "transport", "unix", "uid", (json_int_t)peer->uid,
                         "gid", (json_int_t)peer->gid, "pid", (json_int_t)peer->pid, "exe",
                         peer->exe);
    case RPC_TRANSPORT_TLS:
        return peer->authenticated
                   ? json_pack("{s:s,s:s}", "transport", "tls", "spiffe_id", peer->spiffe_id)
                   : json_pack("{s:s,s:s}", "transport", "tls", "auth_error", peer->auth_error);
    default:
        return json_pack("{s:s}", "transport", "unknown");
    }
}

json_t *audit_strings(const char *const *items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, json_string(items[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

void audit_authn_denied(struct audit_log *log, const struct rpc_peer *peer, const char *method,
                        const char *why)
{
    char err[256];
    json_t *f = json_pack("{s:s,s:s,s:s,s:o*}", "result", "denied", "method", method, "why", why,
                          "peer", audit_peer_json(peer));
    if (!f || audit_append(log, "authn", f, false, NULL, err, sizeof err) != 0)
        log_error("audit: cannot record an authentication failure: %s", f ? err : "out of memory");
}

grpc_status_code audit_call_fail(struct rpc_call *call, const char *err, const char *what)
{
    log_error("audit: %s; %s", err, what);
    return rpc_call_fail(call, GRPC_STATUS_UNAVAILABLE, "audit trail unavailable (%s); %s", err,
                         what);
}

/* ---- settings ---- */

int audit_settings_load(const struct yconf_node *node, const char *const *extra_keys,
                        struct audit_settings *s, char *err, size_t errlen)
{
    const char *keys[16] = {"path", "stream", "fsync", "checkpoint_interval_s"};
    size_t n = 4;
    for (size_t i = 0; extra_keys && extra_keys[i] && n < 15; i++)
        keys[n++] = extra_keys[i];
    if (!yconf_present(node))
        return 0;
    bool fsync = !s->no_fsync;
    struct yconf_node at;
    yconf_child(node, "fsync", &at);
    if (yconf_mapping(node, keys, err, errlen) < 0 ||
        yconf_opt_string(node, "path", &s->path, err, errlen) < 0 ||
        yconf_opt_string(node, "stream", &s->stream, err, errlen) < 0 ||
        yconf_opt_u64(node, "checkpoint_interval_s", 1, 86400, &s->checkpoint_interval_s, err,
                      errlen) < 0 ||
        (yconf_present(&at) && yconf_bool(&at, &fsync, err, errlen) < 0))
        return -1;
    s->no_fsync = !fsync;
    return 0;
}

int audit_settings_flag(struct audit_settings *s, int opt, const char *arg)
{
    switch (opt) {
    case AUDIT_OPT_PATH: s->path = arg; return 1;
    case AUDIT_OPT_STREAM: s->stream = arg; return 1;
    case AUDIT_OPT_NO_FSYNC: s->no_fsync = true; return 1;
    case AUDIT_OPT_CHECKPOINT:
        return parse_u64_range(arg, 1, 86400, &s->checkpoint_interval_s) == 0 ? 1 : -1;
    default: return 0;
    }
}

struct audit_log *audit_settings_open(const struct audit_settings *s, const char *state_dir,
                                      const char *daemon, const char *identity,
                                      const char *version, char *err, size_t errlen)
{
    char path[4096];
    int n = s->path ? snprintf(path, sizeof path, "%s", s->path)
                    : snprintf(path, sizeof path, "%s/audit.jsonl", state_dir);
    if (n < 0 || (size_t)n >= sizeof path) {
        err_set(err, errlen, "audit path too long");
        return NULL;
    }
    const struct audit_options o = {.path = path,
                                    .daemon = daemon,
                                    .identity = identity,
                                    .version = version,
                                    .stream_path = s->stream,
                                    .no_fsync = s->no_fsync};
    return audit_open(&o, err, errlen);
}

/* ---- Audit service ---- */

/* Checks the caller and records the read: durably when must_record (a
 * Query, which discloses records, does not run unrecorded), else best
 * effort (Verify must work precisely when the trail is damaged). OK, or the
 * failed status. */
static grpc_status_code admit_reader(struct audit_service *s, struct rpc_call *call,
                                     const char *method, json_t *details, bool must_record)
{
    const struct rpc_peer *peer = rpc_call_peer(call);
    char caller[2048] = "", why[512] = "", err[256];
    bool ok = s->may_read(s->ctx, peer, caller, sizeof caller, why, sizeof why);
    json_t *f = json_pack("{s:s,s:s,s:s,s:s,s:o*,s:o*}", "result", ok ? "allow" : "deny", "caller",
                          caller, "method", method, "why", why, "request", details, "peer",
                          audit_peer_json(peer));
    if (!ok) {
        if (!f || audit_append(s->log, "audit.read", f, false, NULL, err, sizeof err) != 0)
            log_error("audit: cannot record a refused read: %s", f ? err : "out of memory");
        log_warn("audit read denied: %s", why);
        return rpc_call_fail(call, caller[0] ? GRPC_STATUS_PERMISSION_DENIED
                                             : GRPC_STATUS_UNAUTHENTICATED,
                             "%s", why);
    }
    if (!f)
        return rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    if (audit_append(s->log, "audit.read", f, must_record, NULL, err, sizeof err) != 0) {
        if (must_record)
            return audit_call_fail(call, err, "the read was refused");
        log_error("audit: cannot record a read: %s", err);
    }
    return GRPC_STATUS_OK;
}

static bool filter_word_ok(const char *s, size_t max)
{
    return !s[0] || is_plain_word(s, max);
}

struct query_ctx {
    struct rpc_call *call;
    bool gone;
};

static int send_record(void *arg, const char *line, size_t len, const json_t *record)
{
    (void)len;
    struct query_ctx *q = arg;
    Airlock__V1__AuditRecord r = AIRLOCK__V1__AUDIT_RECORD__INIT;
    r.seq = (uint64_t)json_integer_value(json_object_get(record, "seq"));
    r.ts_ms = json_integer_value(json_object_get(record, "ts"));
    const char *kind = json_string_value(json_object_get(record, "kind"));
    r.kind = (char *)(kind ? kind : "");
    r.json = (char *)line;
    if (rpc_call_send(q->call, &r.base) != 0) {
        q->gone = true;
        return 1;
    }
    return 0;
}

static grpc_status_code query(struct rpc_call *call, const ProtobufCMessage *request, void *ctx)
{
    struct audit_service *s = ctx;
    const Airlock__V1__AuditQuery *req = (const void *)request;
    if (!filter_word_ok(req->subject, 2048) || !filter_word_ok(req->task_id, MAX_FILTER_WORD) ||
        !filter_word_ok(req->token_id, MAX_FILTER_WORD) ||
        !filter_word_ok(req->reason, MAX_FILTER_WORD))
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                             "subject, task_id, token_id and reason must be printable ASCII "
                             "without spaces (subject ≤ 2048, the others ≤ %d)",
                             MAX_FILTER_WORD);
    if (req->n_kinds > MAX_KINDS)
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "at most %d kinds", MAX_KINDS);
    for (size_t i = 0; i < req->n_kinds; i++)
        if (!is_plain_word(req->kinds[i], MAX_FILTER_WORD))
            return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                                 "kinds[%zu] must be printable ASCII without spaces", i);
    if (req->since_ms < 0 || req->until_ms < 0)
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                             "since_ms and until_ms are unix milliseconds, not negative");

    json_t *details = json_pack("{s:s,s:s,s:s,s:I,s:I,s:o*,s:s,s:I}", "subject", req->subject,
                                "task_id", req->task_id, "token_id", req->token_id, "since_ms",
                                (json_int_t)req->since_ms, "until_ms", (json_int_t)req->until_ms,
                                "kinds", audit_strings((const char *const *)req->kinds, req->n_kinds),
                                "reason", req->reason, "limit", (json_int_t)req->limit);
    grpc_status_code rc = admit_reader(s, call, "/airlock.v1.Audit/Query", details, true);
    if (rc != GRPC_STATUS_OK)
        return rc;

    struct audit_filter f = {
        .subject = req->subject[0] ? req->subject : NULL,
        .task_id = req->task_id[0] ? req->task_id : NULL,
        .token_id = req->token_id[0] ? req->token_id : NULL,
        .since_ms = req->since_ms,
        .until_ms = req->until_ms,
        .kinds = (const char *const *)req->kinds,
        .n_kinds = req->n_kinds,
        .reason = req->reason[0] ? req->reason : NULL,
        .limit = req->limit,
    };
    struct query_ctx q = {.call = call};
    char err[256];
    if (audit_query(audit_path(s->log), &f, send_record, &q, err, sizeof err) < 0)
        return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "cannot read the audit trail: %s", err);
    if (q.gone)
        return rpc_call_fail(call, GRPC_STATUS_CANCELLED, "caller went away");
    return GRPC_STATUS_OK;
}

static grpc_status_code verify(struct rpc_call *call, const ProtobufCMessage *request, void *ctx)
{
    (void)request;
    struct audit_service *s = ctx;
    grpc_status_code rc = admit_reader(s, call, "/airlock.v1.Audit/Verify", NULL, false);
    if (rc != GRPC_STATUS_OK)
        return rc;
    char err[256];
    char *jwks = s->jwks(s->ctx, err, sizeof err);
    if (!jwks)
        return rpc_call_fail(call, GRPC_STATUS_UNAVAILABLE,
                             "cannot fetch credd's keys to check checkpoints: %s", err);
    struct audit_keys *keys = audit_keys_from_jwks(jwks, err, sizeof err);
    free(jwks);
    if (!keys)
        return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "credd's JWKS: %s", err);

    /* The head we last wrote: the file must still reach it. */
    uint64_t head_seq;
    char head_hash[AUDIT_HASH_HEX];
    audit_head(s->log, &head_seq, head_hash, NULL);
    struct audit_verify_result *v = calloc(1, sizeof *v);
    if (!v) {
        audit_keys_free(keys);
        return rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    int read_rc = audit_verify_file(audit_path(s->log), keys, head_seq, head_hash, v);
    audit_keys_free(keys);
    if (read_rc != 0) {
        rc = rpc_call_fail(call, GRPC_STATUS_INTERNAL, "cannot read the audit trail: %s",
                           v->message);
        free(v);
        return rc;
    }
    if (v->problem != AUDIT_OK)
        log_error("audit: verification failed: %s: %s", audit_problem_name(v->problem),
                  v->message);
    Airlock__V1__AuditVerifyResponse r = AIRLOCK__V1__AUDIT_VERIFY_RESPONSE__INIT;
    r.ok = v->problem == AUDIT_OK;
    r.chain = v->chain;
    r.records = v->records;
    r.checkpoints = v->checkpoints;
    r.last_checkpoint_seq = v->last_checkpoint_seq;
    r.unsigned_records = v->unsigned_records;
    r.head_seq = v->head_seq;
    r.head_hash = v->head_hash;
    r.bad_seq = v->bad_seq;
    r.bad_line = v->bad_line;
    r.problem = (char *)audit_problem_name(v->problem);
    r.message = v->message;
    rpc_call_send(call, &r.base);
    free(v);
    return GRPC_STATUS_OK;
}

size_t audit_service_methods(struct audit_service *s, struct rpc_method *m, size_t cap)
{
    const struct rpc_method table[] = {
        {"/airlock.v1.Audit/Query", RPC_SERVER_STREAMING, &airlock__v1__audit_query__descriptor,
         query, s},
        {"/airlock.v1.Audit/Verify", RPC_UNARY, &airlock__v1__audit_verify_request__descriptor,
         verify, s},
    };
    size_t n = sizeof table / sizeof table[0];
    if (n > cap)
        return 0;
    memcpy(m, table, sizeof table);
    return n;
}

/* ---- checkpoints ---- */

struct audit_checkpointer {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stop;
    struct audit_log *log;
    unsigned interval_s;
    audit_sign_fn sign;
    void *ctx;
};

static void *checkpoint_main(void *arg)
{
    struct audit_checkpointer *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += c->interval_s;
        while (!c->stop && pthread_cond_timedwait(&c->wake, &c->lock, &until) == 0)
            ;
        if (c->stop)
            break;
        pthread_mutex_unlock(&c->lock);
        char err[512];
        if (audit_checkpoint(c->log, c->sign, c->ctx, err, sizeof err) != 0)
            log_error("audit: checkpoint failed (the records since the last one stay unsigned "
                      "until the next): %s",
                      err);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

struct audit_checkpointer *audit_checkpointer_start(struct audit_log *log, unsigned interval_s,
                                                    audit_sign_fn sign, void *ctx, char *err,
                                                    size_t errlen)
{
    struct audit_checkpointer *c = calloc(1, sizeof *c);
    pthread_condattr_t attr;
    if (!c) {
        err_set(err, errlen, "out of memory");
        return NULL;
    }
    *c = (struct audit_checkpointer){
        .log = log, .interval_s = interval_s ? interval_s : 1, .sign = sign, .ctx = ctx};
    if (pthread_condattr_init(&attr) != 0 ||
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&c->wake, &attr) != 0) {
        free(c);
        err_set(err, errlen, "cannot create a condition variable");
        return NULL;
    }
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&c->lock, NULL);
    if (pthread_create(&c->thread, NULL, checkpoint_main, c) != 0) {
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->lock);
        free(c);
        err_set(err, errlen, "cannot start the checkpoint thread");
        return NULL;
    }
    return c;
}

void audit_checkpointer_stop(struct audit_checkpointer *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->lock);
    c->stop = true;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    pthread_cond_destroy(&c->wake);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

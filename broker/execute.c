/*
 * execute.c - airlock.v1.Broker/Execute.
 *
 *   caller ─▶ identify (mTLS SVID, or SO_PEERCRED → SPIFFE ID) ─▶ validate
 *          ─▶ policy (deny by default) ─▶ per-identity concurrency
 *          ─▶ a task slot (or a bounded wait for one) ─▶ credd Mint
 *          ─▶ a worker from the pool (sandbox built, waiting) or a new one
 *          ─▶ Task over its socketpair ─▶ Started
 *          ─▶ relay stdout/stderr ─▶ Usage ─▶ revoke ─▶ Finished
 *
 * Fails closed: no token, no execution; a token is never left active once
 * this handler returns, whatever path it takes (the TTL is the last line).
 *
 * Audit (the broker's chain): a refused caller ("authn"), every policy
 * decision ("policy"), "execute.start" durably before the worker starts and
 * "execute" (the whole story: who, what, which token, what came out)
 * durably before Finished goes out. If either cannot be written the task
 * does not run, or its result is withheld: UNAVAILABLE. Room for them is
 * reserved in the chain file before the token is minted, so a full disk
 * refuses a task before it has a token.
 *
 * Shutdown (broker_drain): queued callers are refused; running tasks run on
 * until the grace is over, then relay() ends them like a dead worker, with
 * Finished KILLED and the token revoked.
 */
#include "execute.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "airlock/internal/v1/worker.pb-c.h"
#include "airlock/v1/broker.pb-c.h"
#include "airlock/v1/credentials.pb-c.h"
#include "admission.h"
#include "audit_rpc.h"
#include "credd_link.h"
#include "frame.h"
#include "inflight.h"
#include "pool.h"
#include "policy.h"
#include "sandbox.h"
#include "util.h"
#include "validate.h"

#define CREDD_TIMEOUT_MS 5000
#define WORKER_GRACE_MS 10000 /* beyond the task timeout, before the worker is killed */
/* Audit space a task's records take at most, in the usual case (execute.start
 * and execute are ~2 KiB each): reserved before its token is minted. */
#define TASK_AUDIT_BYTES (16u << 10)
#define WORKER_EXIT_WAIT_MS 1000 /* a worker whose stream ended: time to exit and say how */

/* One task in flight. */
struct task {
    struct broker *broker;
    struct rpc_call *call;
    char id[RANDOM_ID_LEN];
    char subject[2048];
    char code_sha256[SHA256_HEX_LEN];
    Airlock__V1__MintResponse *token;
    struct worker w; /* pid -1 until one is taken; sock is our end */
    json_t *record;  /* the execution's audit fields so far */
    /* Where the time went (monotonic_us), for the execute record. */
    uint64_t queued_ms;
    int64_t at_mint, at_minted, at_recorded, at_handed, at_reported, at_revoked;
};



/* The request's own checks (validate.h), before policy sees it. */
static grpc_status_code validate(struct broker *b, struct rpc_call *call,
                                 const Airlock__V1__ExecuteRequest *req)
{
    const struct request_caps caps = {.max_code_bytes = b->config->max_code_bytes,
                                      .max_stdin_bytes = b->config->max_stdin_bytes,
                                      .host_ram_bytes = validate_host_ram_bytes()};
    char msg[RPC_STATUS_MESSAGE_MAX];
    if (validate_execute_request(req, &caps, msg, sizeof msg) == 0)
        return GRPC_STATUS_OK;
    log_warn("invalid Execute request: %s", msg);
    return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s", msg);
}

/* The request as policy sees it. */
static grpc_status_code policy_request_of(struct rpc_call *call, const Airlock__V1__ExecuteRequest *req,
                                          struct policy_request *out)
{
    static const Airlock__V1__Limits none = AIRLOCK__V1__LIMITS__INIT;
    const Airlock__V1__Limits *l = req->limits ? req->limits : &none;
    if (req->timeout_ms && l->timeout_ms && req->timeout_ms != l->timeout_ms)
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                             "timeout_ms %u and limits.timeout_ms %u disagree", req->timeout_ms,
                             l->timeout_ms);
    *out = (struct policy_request){
        .runtime = req->runtime,
        .asked = {.timeout_ms = req->timeout_ms ? req->timeout_ms : l->timeout_ms,
                  .memory_bytes = l->memory_bytes,
                  .cpu_ms = l->cpu_ms,
                  .max_pids = l->max_pids,
                  .output_bytes = l->output_bytes,
                  .disk_bytes = l->disk_bytes,
                  .open_files = l->open_files},
        .scopes = req->scopes,
        .n_scopes = req->n_scopes,
        .audience = req->audience,
        .n_audience = req->n_audience,
    };
    return GRPC_STATUS_OK;
}

/* The task's limits from policy's decision, checked against what a runtime
 * needs to start at all. */
static grpc_status_code effective_limits(struct rpc_call *call, const struct policy_limits *l,
                                         size_t code_len, Airlock__V1__Limits *out)
{
    if (l->memory_bytes < MIN_MEMORY_BYTES || l->disk_bytes < MIN_DISK_BYTES ||
        l->open_files < MIN_OPEN_FILES)
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                             "limits too small to start a runtime: memory_bytes >= %u, "
                             "disk_bytes >= %u, open_files >= %u",
                             MIN_MEMORY_BYTES, MIN_DISK_BYTES, MIN_OPEN_FILES);
    if (l->disk_bytes < code_len)
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                             "limits.disk_bytes %llu cannot hold the %zu bytes of code",
                             (unsigned long long)l->disk_bytes, code_len);
    airlock__v1__limits__init(out);
    out->timeout_ms = l->timeout_ms;
    out->memory_bytes = l->memory_bytes;
    out->max_pids = l->max_pids;
    out->output_bytes = l->output_bytes;
    out->cpu_ms = l->cpu_ms;
    out->disk_bytes = l->disk_bytes;
    out->open_files = l->open_files;
    return GRPC_STATUS_OK;
}

/* Mints the task's token: exactly the scopes and audiences policy granted,
 * alive for the task's timeout plus skew, never beyond the rule's cap. */
static grpc_status_code mint(struct task *t, const struct policy_decision *d, uint32_t timeout_ms)
{
    const struct broker_config *cfg = t->broker->config;
    char why[256];
    if (!credd_link_ready(t->broker->credd_link, why, sizeof why))
        return rpc_call_fail(t->call, GRPC_STATUS_UNAVAILABLE,
                             "credd not reachable: the broker's start is not announced yet "
                             "(%s); nothing was run", why);
    Airlock__V1__MintRequest mr = AIRLOCK__V1__MINT_REQUEST__INIT;
    mr.subject = t->subject;
    mr.audience = (char **)d->audience;
    mr.n_audience = d->n_audience;
    mr.scopes = (char **)d->scopes;
    mr.n_scopes = d->n_scopes;
    mr.task_id = t->id;
    mr.ttl_seconds = (timeout_ms + 999) / 1000 + cfg->token_skew_s;
    if (d->max_token_ttl_s && mr.ttl_seconds > d->max_token_ttl_s)
        mr.ttl_seconds = d->max_token_ttl_s;
    mr.code_sha256 = t->code_sha256;
    struct rpc_status st;
    ProtobufCMessage *resp = NULL;
    grpc_status_code code = rpc_unary(t->broker->credd, "/airlock.v1.Credentials/Mint", &mr.base,
                                      &airlock__v1__mint_response__descriptor, &resp,
                                      CREDD_TIMEOUT_MS, &st);
    if (code == GRPC_STATUS_OK) {
        t->token = (Airlock__V1__MintResponse *)resp;
        return code;
    }
    log_warn("task %s: mint failed: %s: %s", t->id, rpc_status_name(code), st.message);
    if (code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_DEADLINE_EXCEEDED)
        return rpc_call_fail(t->call, GRPC_STATUS_UNAVAILABLE,
                             "credential daemon unavailable (%s); nothing was run", st.message);
    if (code == GRPC_STATUS_INVALID_ARGUMENT)
        return rpc_call_fail(t->call, code, "token request refused: %s", st.message);
    return rpc_call_fail(t->call, GRPC_STATUS_INTERNAL, "credential daemon refused to mint: %s: %s",
                         rpc_status_name(code), st.message);
}

/* Revokes the task's token with credd, for reason: "task_ended" (the
 * worker reported the sandbox gone) or "backstop" (it did not, or the task
 * never started). Returns true once the token is not active. */
static bool revoke_token(struct task *t, const char *reason)
{
    Airlock__V1__RevokeRequest rr = AIRLOCK__V1__REVOKE_REQUEST__INIT;
    rr.token_id = t->token->token_id;
    rr.reason = (char *)reason;
    struct rpc_status st;
    ProtobufCMessage *resp = NULL;
    grpc_status_code code = rpc_unary(t->broker->credd, "/airlock.v1.Credentials/Revoke", &rr.base,
                                      &airlock__v1__revoke_response__descriptor, &resp,
                                      CREDD_TIMEOUT_MS, &st);
    if (code != GRPC_STATUS_OK) {
        log_error("task %s: cannot revoke token %s: %s: %s (it expires at %lld)", t->id,
                  t->token->token_id, rpc_status_name(code), st.message,
                  (long long)t->token->expires_at);
        return false;
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return true;
}

/* Ends the task's worker (see pool_reap). */
static void reap_worker(struct task *t, int grace_ms, bool reported)
{
    if (t->w.pid > 0 || t->w.sock >= 0)
        pool_reap(t->broker->pool, &t->w, grace_ms, reported);
}

/* Kills the task's worker (its sandbox dies with it) and reaps it. */
static void kill_worker(struct task *t)
{
    if (t->w.pid > 0 && !t->w.exited)
        kill(t->w.pid, SIGKILL);
    reap_worker(t, 2000, false);
}

static int send_output(struct task *t, int stream, ProtobufCBinaryData data)
{
    Airlock__V1__ExecuteEvent ev = AIRLOCK__V1__EXECUTE_EVENT__INIT;
    if (stream == 1) {
        ev.event_case = AIRLOCK__V1__EXECUTE_EVENT__EVENT_STDOUT;
        ev.stdout = data;
    } else {
        ev.event_case = AIRLOCK__V1__EXECUTE_EVENT__EVENT_STDERR;
        ev.stderr = data;
    }
    return rpc_call_send(t->call, &ev.base);
}

/* The worker's socket ended before its report: how did the worker end? It
 * is given a moment to exit so its status says (a signal: KILLED, else
 * SANDBOX_ERROR). Fills fin's reason and msg. */
static void worker_lost(struct task *t, const char *why, Airlock__V1__Finished *fin, char *msg,
                        size_t msglen)
{
    fin->reason = AIRLOCK__V1__FINISHED__REASON__SANDBOX_ERROR;
    if (pool_worker_wait(&t->w, WORKER_EXIT_WAIT_MS) != 0) {
        snprintf(msg, msglen, "worker ended its stream without a report (%s); killed", why);
        return;
    }
    int st = t->w.wait_status;
    if (WIFSIGNALED(st)) {
        fin->reason = AIRLOCK__V1__FINISHED__REASON__KILLED;
        snprintf(msg, msglen, "worker died (killed by signal %d) before reporting; its sandbox "
                 "was killed", WTERMSIG(st));
    } else {
        snprintf(msg, msglen, "worker exited with status %d without a report; its sandbox was "
                 "killed", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    }
}

/* Relays worker events until its Usage arrives. Returns the Usage, or NULL
 * (and fills fin's reason/message) when the worker failed or the caller left. */
static Airlock__Internal__V1__Usage *relay(struct task *t, uint32_t timeout_ms,
                                           Airlock__V1__Finished *fin, char *msg, size_t msglen)
{
    int64_t deadline = monotonic_ms() + timeout_ms + WORKER_GRACE_MS;
    for (;;) {
        if (rpc_call_cancelled(t->call)) {
            snprintf(msg, msglen, "caller cancelled");
            return NULL;
        }
        if (monotonic_ms() > deadline) {
            snprintf(msg, msglen, "worker did not finish within the task timeout plus %d ms",
                     WORKER_GRACE_MS);
            return NULL;
        }
        if (atomic_load(&t->broker->ending)) {
            snprintf(msg, msglen,
                     "broker shut down: the task was killed when the %u ms shutdown grace ran out",
                     t->broker->config->shutdown_grace_ms);
            return NULL;
        }
        struct pollfd pfd = {.fd = t->w.sock, .events = POLLIN};
        int pr = poll(&pfd, 1, 100);
        if (pr < 0 && errno != EINTR) {
            snprintf(msg, msglen, "poll: %s", strerror(errno));
            return NULL;
        }
        if (pr <= 0)
            continue;
        ProtobufCMessage *m = NULL;
        int got = frame_read(t->w.sock, &airlock__internal__v1__worker_event__descriptor,
                             FRAME_MAX_BYTES, WORKER_GRACE_MS, &m);
        if (got <= 0) {
            worker_lost(t, got == 0 ? "end of stream" : strerror(errno), fin, msg, msglen);
            return NULL;
        }
        Airlock__Internal__V1__WorkerEvent *ev = (Airlock__Internal__V1__WorkerEvent *)m;
        int sent = 0;
        switch (ev->event_case) {
        case AIRLOCK__INTERNAL__V1__WORKER_EVENT__EVENT_STDOUT:
            sent = send_output(t, 1, ev->stdout);
            break;
        case AIRLOCK__INTERNAL__V1__WORKER_EVENT__EVENT_STDERR:
            sent = send_output(t, 2, ev->stderr);
            break;
        case AIRLOCK__INTERNAL__V1__WORKER_EVENT__EVENT_USAGE: {
            Airlock__Internal__V1__Usage *u = ev->usage;
            ev->usage = NULL; /* detach: freed by the caller */
            ev->event_case = AIRLOCK__INTERNAL__V1__WORKER_EVENT__EVENT__NOT_SET;
            protobuf_c_message_free_unpacked(m, NULL);
            return u;
        }
        default:
            break;
        }
        protobuf_c_message_free_unpacked(m, NULL);
        if (sent != 0) {
            snprintf(msg, msglen, "caller went away");
            return NULL;
        }
    }
}

static const char *reason_name(int reason)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&airlock__v1__finished__reason__descriptor, reason);
    return v ? v->name : "REASON_UNSPECIFIED";
}

/* The fields execute.start and execute share: who ran what, with which
 * limits and which token. NULL when out of memory. */
static json_t *execution_fields(const struct task *t, const Airlock__V1__ExecuteRequest *req,
                                const Airlock__V1__Limits *l, const struct policy_decision *d)
{
    char stdin_sha256[SHA256_HEX_LEN];
    sha256_hex(req->stdin.data, req->stdin.len, stdin_sha256);
    json_t *limits = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "timeout_ms",
                               (json_int_t)l->timeout_ms, "memory_bytes", (json_int_t)l->memory_bytes,
                               "cpu_ms", (json_int_t)l->cpu_ms, "max_pids", (json_int_t)l->max_pids,
                               "output_bytes", (json_int_t)l->output_bytes, "disk_bytes",
                               (json_int_t)l->disk_bytes, "open_files", (json_int_t)l->open_files);
    json_t *f = json_pack(
        "{s:s,s:s,s:s,s:s,s:I,s:s,s:I,s:o*,s:s,s:o*,s:o*,s:I,s:s,s:s}", "task_id", t->id,
        "subject", t->subject, "runtime", req->runtime, "code_sha256", t->code_sha256,
        "code_bytes", (json_int_t)req->code.len, "stdin_sha256", stdin_sha256, "stdin_bytes",
        (json_int_t)req->stdin.len, "limits", limits, "token_id", t->token->token_id, "scopes",
        audit_strings(d->scopes, d->n_scopes), "audience", audit_strings(d->audience, d->n_audience),
        "token_expires_at", (json_int_t)t->token->expires_at, "rule", d->rule_name,
        "client_request_id", req->client_request_id);
    return f;
}

/* Opt-in (audit.keep_code): the program itself, base64, into f. 0 or -1. */
static int add_code(json_t *f, const ProtobufCBinaryData *code)
{
    size_t n = sodium_base64_ENCODED_LEN(code->len, sodium_base64_VARIANT_ORIGINAL);
    char *b64 = malloc(n);
    int rc = !b64 || json_object_set_new(f, "code_base64",
                                         json_string(sodium_bin2base64(
                                             b64, n, code->data, code->len,
                                             sodium_base64_VARIANT_ORIGINAL))) != 0
                 ? -1
                 : 0;
    free(b64);
    return rc;
}

/* execute.start, durably. 0, or -1 with err. */
static int record_start(struct task *t, const Airlock__V1__ExecuteRequest *req,
                        const Airlock__V1__Limits *limits, const struct policy_decision *d,
                        char *err, size_t errlen)
{
    const struct broker *b = t->broker;
    if (!(t->record = execution_fields(t, req, limits, d)) ||
        json_object_set_new(t->record, "start_ms", json_integer(unix_ms())) != 0 ||
        json_object_set_new(t->record, "sandbox",
                            json_pack("{s:s,s:b}", "id", t->w.id, "warm", t->w.warm)) != 0)
        return err_set(err, errlen, "out of memory");
    /* The execute record repeats these fields, never the code. */
    json_t *start = json_copy(t->record);
    if (!start || (b->audit_keep_code && add_code(start, &req->code) != 0)) {
        json_decref(start);
        return err_set(err, errlen, "out of memory");
    }
    return audit_append(b->audit, "execute.start", start, true, NULL, err, errlen);
}

/* execute: the start fields and the outcome, durably. 0, or -1 with err. */
static int record_execution(struct task *t, const Airlock__V1__Finished *fin,
                            const char *revoked_by, char *err, size_t errlen)
{
    json_t *f = json_copy(t->record);
    json_t *outcome = json_pack(
        "{s:I,s:s,s:i,s:i,s:I,s:I,s:I,s:s,s:I,s:s,s:I,s:b,s:b,s:s,s:s}", "end_ms",
        (json_int_t)unix_ms(), "reason", reason_name(fin->reason), "exit_code", fin->exit_code,
        "signal", fin->signal, "wall_ms", (json_int_t)fin->wall_ms, "cpu_ms",
        (json_int_t)fin->cpu_ms, "max_rss_kb", (json_int_t)fin->max_rss_kb, "stdout_sha256",
        fin->stdout_sha256, "stdout_bytes", (json_int_t)fin->stdout_bytes, "stderr_sha256",
        fin->stderr_sha256, "stderr_bytes", (json_int_t)fin->stderr_bytes, "output_truncated",
        fin->output_truncated, "token_revoked", fin->token_revoked, "revoke_reason", revoked_by,
        "message", fin->message);
    if (!f || !outcome || json_object_update(f, outcome) != 0) {
        json_decref(f);
        json_decref(outcome);
        return err_set(err, errlen, "out of memory");
    }
    json_decref(outcome);
    json_t *timing = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "queue_us",
                               (json_int_t)t->queued_ms * 1000, "mint_us",
                               (json_int_t)(t->at_minted - t->at_mint), "start_us",
                               (json_int_t)(t->at_recorded - t->at_minted), "handoff_us",
                               (json_int_t)(t->at_handed - t->at_recorded), "run_us",
                               (json_int_t)(t->at_reported - t->at_handed), "revoke_us",
                               (json_int_t)(t->at_revoked - t->at_reported));
    if (json_object_set_new(f, "timing", timing) != 0) {
        json_decref(f);
        return err_set(err, errlen, "out of memory");
    }
    if (fin->reason == AIRLOCK__V1__FINISHED__REASON__SECCOMP &&
        json_object_set_new(f, "seccomp_syscall", json_integer(fin->seccomp_syscall)) != 0) {
        json_decref(f);
        return err_set(err, errlen, "out of memory");
    }
    return audit_append(t->broker->audit, "execute", f, true, NULL, err, errlen);
}

static grpc_status_code run_task(struct task *t, const Airlock__V1__ExecuteRequest *req,
                                 Airlock__V1__Limits *limits, const struct policy_decision *d)
{
    uint32_t timeout_ms = limits->timeout_ms;
    Airlock__Internal__V1__Task task = AIRLOCK__INTERNAL__V1__TASK__INIT;
    task.task_id = t->id;
    task.runtime = req->runtime;
    task.code = req->code;
    task.stdin = req->stdin;
    task.timeout_ms = timeout_ms;
    task.memory_bytes = limits->memory_bytes;
    task.max_pids = limits->max_pids;
    task.output_bytes = limits->output_bytes;
    task.cpu_ms = limits->cpu_ms;
    task.disk_bytes = limits->disk_bytes;
    task.open_files = limits->open_files;
    task.token = t->token->token;
    task.token_id = t->token->token_id;
    if (frame_write(t->w.sock, &task.base) != 0)
        return rpc_call_fail(t->call, GRPC_STATUS_UNAVAILABLE, "cannot hand the task to a worker: %s",
                             strerror(errno));

    Airlock__V1__Started started = AIRLOCK__V1__STARTED__INIT;
    started.task_id = t->id;
    started.token_id = t->token->token_id;
    started.token_expires_at = t->token->expires_at;
    started.subject = t->subject;
    started.limits = limits;
    started.client_request_id = req->client_request_id;
    Airlock__V1__PolicyDecision decision = AIRLOCK__V1__POLICY_DECISION__INIT;
    decision.rule = (char *)d->rule_name;
    decision.pattern = (char *)d->rule_pattern;
    decision.reason = (char *)d->reason;
    decision.scopes = (char **)d->scopes;
    decision.n_scopes = d->n_scopes;
    decision.audience = (char **)d->audience;
    decision.n_audience = d->n_audience;
    decision.max_token_ttl_s = d->max_token_ttl_s;
    started.policy = &decision;
    Airlock__V1__ExecuteEvent ev = AIRLOCK__V1__EXECUTE_EVENT__INIT;
    ev.event_case = AIRLOCK__V1__EXECUTE_EVENT__EVENT_STARTED;
    ev.started = &started;
    if (rpc_call_send(t->call, &ev.base) != 0)
        return rpc_call_fail(t->call, GRPC_STATUS_CANCELLED, "caller went away");

    Airlock__V1__Finished fin = AIRLOCK__V1__FINISHED__INIT;
    char msg[256] = "";
    t->at_handed = monotonic_us();
    Airlock__Internal__V1__Usage *u = relay(t, timeout_ms, &fin, msg, sizeof msg);
    t->at_reported = monotonic_us();
    if (u) {
        fin.exit_code = u->exit_code;
        fin.signal = u->signal;
        fin.reason = (Airlock__V1__Finished__Reason)u->reason;
        fin.wall_ms = u->wall_ms;
        fin.cpu_ms = u->cpu_ms;
        fin.max_rss_kb = u->max_rss_kb;
        fin.stdout_sha256 = u->stdout_sha256;
        fin.stderr_sha256 = u->stderr_sha256;
        fin.seccomp_syscall = u->seccomp_syscall;
        fin.stdout_bytes = u->stdout_bytes;
        fin.stderr_bytes = u->stderr_bytes;
        fin.output_truncated = u->output_truncated;
        fin.message = u->message;
        /* The sandbox is gone; its worker exits once it has removed the
         * cgroup, reaped after the token is revoked. */
    } else {
        /* Worker misbehaved or the caller left: end it (its sandbox dies with it). */
        kill_worker(t);
        if (fin.reason == AIRLOCK__V1__FINISHED__REASON__REASON_UNSPECIFIED)
            fin.reason = AIRLOCK__V1__FINISHED__REASON__KILLED;
        fin.message = msg;
        log_warn("task %s: %s", t->id, msg);
    }
    /* The sandbox is gone (reported, or its worker killed): end the token
     * before the caller hears the task is over. */
    const char *why = u ? "task_ended" : "backstop";
    fin.token_revoked = revoke_token(t, why);
    t->at_revoked = monotonic_us();
    const char *revoked_by = fin.token_revoked ? why : "";
    fin.code_sha256 = t->code_sha256;
    log_info("task %s: sub=%s runtime=%s reason=%d exit=%d wall=%llums revoked=%d", t->id,
             t->subject, req->runtime, fin.reason, fin.exit_code, (unsigned long long)fin.wall_ms,
             fin.token_revoked);
    char err[256];
    int sent = -1;
    int recorded = record_execution(t, &fin, revoked_by, err, sizeof err);
    if (recorded == 0) {
        ev.event_case = AIRLOCK__V1__EXECUTE_EVENT__EVENT_FINISHED;
        ev.finished = &fin;
        sent = rpc_call_send(t->call, &ev.base);
    }
    if (u) { /* fin points into it */
        protobuf_c_message_free_unpacked(&u->base, NULL);
        reap_worker(t, 2000, true);
    }
    if (recorded != 0)
        return audit_call_fail(t->call, err, "the task ran but its result is withheld");
    if (sent != 0)
        return rpc_call_fail(t->call, GRPC_STATUS_CANCELLED, "caller went away");
    return GRPC_STATUS_OK;
}

void broker_drain(void *ctx, enum rpc_drain_phase phase)
{
    struct broker *b = ctx;
    uint32_t running = 0, queued = 0;
    admission_counts(b->admission, &running, &queued);
    if (phase == RPC_DRAIN_START) {
        log_info("shutting down: no new tasks; %u running get up to %u ms to finish, %u queued "
                 "are refused", running, b->config->shutdown_grace_ms, queued);
        admission_shutdown(b->admission);
        pool_drain(b->pool);
        return;
    }
    log_warn("shutdown grace over: killing %u running tasks", running);
    atomic_store(&b->ending, true);
}

int broker_identify(const struct broker *b, const struct rpc_peer *peer, char *out, size_t outlen,
                    const char **why)
{
    int rc = -1;
    if (peer->transport == RPC_TRANSPORT_TLS && peer->authenticated)
        rc = snprintf(out, outlen, "%s", peer->spiffe_id) < (int)outlen ? 0 : -1;
    else if (peer->transport == RPC_TRANSPORT_UNIX)
        rc = policy_unix_identity(b->policy, peer->uid, peer->gid, peer->exe, out, outlen);
    *why = peer->transport == RPC_TRANSPORT_TLS && peer->auth_error[0]
               ? peer->auth_error
               : "caller has no workload identity";
    return rc;
}

/* The caller's SPIFFE ID, or UNAUTHENTICATED (logged and recorded). */
static grpc_status_code identify(struct task *t)
{
    const struct rpc_peer *peer = rpc_call_peer(t->call);
    const char *why;
    if (broker_identify(t->broker, peer, t->subject, sizeof t->subject, &why) == 0)
        return GRPC_STATUS_OK;
    log_warn("authn denied: %s", why);
    audit_authn_denied(t->broker->audit, peer, "/airlock.v1.Broker/Execute", why);
    return rpc_call_fail(t->call, GRPC_STATUS_UNAUTHENTICATED, "%s", why);
}

/* The decision. A denial is recorded best effort (nothing was granted); an
 * allowed task does not go on unless its record was written, so a full or
 * failing disk stops it before a token is minted (the durable execute.start
 * that follows covers it). GRPC_STATUS_OK, or UNAVAILABLE. */
static grpc_status_code record_decision(struct task *t, const Airlock__V1__ExecuteRequest *req,
                                        const struct policy_decision *d)
{
    const struct rpc_peer *peer = rpc_call_peer(t->call);
    char err[256];
    json_t *f = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o*}", "result",
                          d->allowed ? "allow" : "deny", "subject", t->subject, "method",
                          "/airlock.v1.Broker/Execute", "runtime", req->runtime, "rule",
                          d->rule_name ? d->rule_name : "", "why", d->reason, "task_id", d->allowed ? t->id : "",
                          "client_request_id", req->client_request_id, "peer",
                          audit_peer_json(peer));
    if (f && audit_append(t->broker->audit, "policy", f, false, NULL, err, sizeof err) == 0)
        return GRPC_STATUS_OK;
    if (!f)
        snprintf(err, sizeof err, "out of memory");
    if (d->allowed)
        return audit_call_fail(t->call, err, "nothing was run");
    log_error("audit: cannot record a policy decision: %s", err);
    return GRPC_STATUS_OK;
}

static bool caller_gone(void *call)
{
    return rpc_call_cancelled(call);
}

/* Waits for one of the broker's task slots (admission.h): refused at once
 * when the queue is full, given up when the caller leaves. */
static grpc_status_code take_slot(struct task *t)
{
    uint64_t waited = 0;
    enum admission_result ar =
        admission_enter(t->broker->admission, caller_gone, t->call, &waited);
    t->queued_ms = waited;
    if (ar == ADMISSION_OK) {
        if (waited)
            log_info("task %s waited %llu ms for a slot", t->id, (unsigned long long)waited);
        return GRPC_STATUS_OK;
    }
    uint32_t running = 0, queued = 0;
    admission_counts(t->broker->admission, &running, &queued);
    const struct broker_config *cfg = t->broker->config;
    log_warn("task %s: no slot (%s): %u running, %u waiting", t->id,
             ar == ADMISSION_QUEUE_FULL ? "queue full" : ar == ADMISSION_GAVE_UP ? "caller left"
                                                                              : "shutting down",
             running, queued);
    if (ar == ADMISSION_QUEUE_FULL)
        return rpc_call_fail(t->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                             "broker busy: %u tasks running (max_tasks %u) and %u waiting "
                             "(queue %u); nothing was run",
                             running, cfg->max_tasks, queued, cfg->queue_len);
    if (ar == ADMISSION_GAVE_UP)
        return rpc_call_fail(t->call, GRPC_STATUS_DEADLINE_EXCEEDED,
                             "no task slot came free before the caller left (waited %llu ms)",
                             (unsigned long long)waited);
    return rpc_call_fail(t->call, GRPC_STATUS_UNAVAILABLE, "broker shutting down; nothing was run");
}

/* Before a token is minted: room in the chain for the records of the tasks
 * running now, this one's included, so that a full disk refuses the task
 * here and not once it has a token (or has run). */
static grpc_status_code reserve_audit(struct task *t, const Airlock__V1__ExecuteRequest *req)
{
    uint32_t running = 0;
    admission_counts(t->broker->admission, &running, NULL);
    size_t bytes = (size_t)(running ? running : 1) * TASK_AUDIT_BYTES;
    if (t->broker->audit_keep_code)
        bytes += req->code.len / 3 * 4 + 4; /* base64 in execute.start */
    char err[512];
    if (audit_reserve(t->broker->audit, bytes, err, sizeof err) == 0)
        return GRPC_STATUS_OK;
    return audit_call_fail(t->call, err, "nothing was run");
}

/* Runs an allowed request within its identity's concurrency cap and the
 * broker's task slots. */
static grpc_status_code admit_and_run(struct task *t, const Airlock__V1__ExecuteRequest *req,
                                      const struct policy_decision *d)
{
    Airlock__V1__Limits limits;
    grpc_status_code rc = effective_limits(t->call, &d->limits, req->code.len, &limits);
    if (rc != GRPC_STATUS_OK)
        return rc;
    uint32_t running = 0;
    if (inflight_acquire(t->broker->inflight, t->subject, d->max_concurrent, &running) != 0) {
        log_warn("busy: sub=%s has %u tasks running (rule %s allows %u)", t->subject, running,
                 d->rule_name, d->max_concurrent);
        if (running)
            return rpc_call_fail(t->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                 "%s already has %u tasks running; rule \"%s\" allows %u at once",
                                 t->subject, running, d->rule_name, d->max_concurrent);
        return rpc_call_fail(t->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "broker busy");
    }
    if ((rc = take_slot(t)) != GRPC_STATUS_OK) {
        inflight_release(t->broker->inflight, t->subject);
        return rc;
    }
    sha256_hex(req->code.data, req->code.len, t->code_sha256);
    if ((rc = reserve_audit(t, req)) != GRPC_STATUS_OK) {
        admission_leave(t->broker->admission);
        inflight_release(t->broker->inflight, t->subject);
        return rc;
    }
    t->at_mint = monotonic_us();
    if ((rc = mint(t, d, limits.timeout_ms)) == GRPC_STATUS_OK) {
        char err[256];
        t->at_minted = monotonic_us();
        const struct sandbox_limits want = {.timeout_ms = limits.timeout_ms,
                                            .memory_bytes = limits.memory_bytes,
                                            .max_pids = limits.max_pids,
                                            .output_bytes = limits.output_bytes,
                                            .cpu_ms = limits.cpu_ms,
                                            .disk_bytes = limits.disk_bytes,
                                            .open_files = limits.open_files};
        if (atomic_load(&t->broker->ending))
            rc = rpc_call_fail(t->call, GRPC_STATUS_UNAVAILABLE,
                               "broker shutting down; nothing was run");
        else if (pool_take(t->broker->pool, req->runtime, &want, &t->w) != 0)
            rc = rpc_call_fail(t->call, GRPC_STATUS_UNAVAILABLE,
                               "cannot start a worker: %s; nothing was run", strerror(errno));
        else if (record_start(t, req, &limits, d, err, sizeof err) != 0)
            rc = audit_call_fail(t->call, err, "nothing was run");
        else {
            t->at_recorded = monotonic_us();
            rc = run_task(t, req, &limits, d);
        }
        if (rc != GRPC_STATUS_OK) {
            /* Failed before Finished went out: make sure nothing is left behind. */
            kill_worker(t);
            revoke_token(t, "backstop");
        }
        reap_worker(t, 2000, false);
        protobuf_c_message_free_unpacked(&t->token->base, NULL);
        json_decref(t->record);
    }
    admission_leave(t->broker->admission);
    inflight_release(t->broker->inflight, t->subject);
    return rc;
}

grpc_status_code broker_execute(struct rpc_call *call, const ProtobufCMessage *request, void *ctx)
{
    struct broker *b = ctx;
    const Airlock__V1__ExecuteRequest *req = (const void *)request;
    struct task t = {.broker = b, .call = call, .w = {.pid = -1, .sock = -1, .pool_slot = -1}};

    grpc_status_code rc = identify(&t);
    if (rc != GRPC_STATUS_OK)
        return rc;
    struct policy_request preq;
    if ((rc = validate(b, call, req)) != GRPC_STATUS_OK ||
        (rc = policy_request_of(call, req, &preq)) != GRPC_STATUS_OK)
        return rc;
    struct policy_decision d;
    if (policy_decide(b->policy, t.subject, &preq, &d) != 0)
        return rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    log_info("policy %s: sub=%s runtime=%s rule=%s: %s", d.allowed ? "allow" : "deny", t.subject,
             req->runtime, d.rule_name ? d.rule_name : "-", d.reason);
    random_id(t.id);
    rc = record_decision(&t, req, &d);
    if (rc == GRPC_STATUS_OK && d.allowed)
        rc = admit_and_run(&t, req, &d);
    else if (rc == GRPC_STATUS_OK)
        rc = rpc_call_fail(call, GRPC_STATUS_PERMISSION_DENIED, "%s", d.reason);
    policy_decision_free(&d);
    return rc;
}

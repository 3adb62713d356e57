/*
 * main.c - the `airlock` command: exec (Broker.Execute, streamed to our own
 * stdout/stderr or as JSON lines), token introspect (Credentials.Introspect),
 * keys (Credentials.Keys), health (grpc.health.v1 on both daemons) and
 * policy check, plus the output and channel helpers the audit verbs
 * (audit_cmd.c) share. Argument rules live in args.c; this file does the
 * I/O, the RPCs and the mapping of outcomes to exit codes (documented in
 * args.h and README.md).
 */
#include "airlock/v1/broker.pb-c.h"
#include "airlock/v1/credentials.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

#include "args.h"
#include "audit_cmd.h"
#include "config.h"
#include "policy.h"
#include "rpc.h"
#include "tls.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef AIRLOCK_VERSION
#define AIRLOCK_VERSION "unknown"
#endif

/* The client deadline for exec: the task's timeout (or an hour when the
 * broker picks it) plus this much for queueing, sandbox set-up and revoke. */
#define EXEC_DEFAULT_DEADLINE_MS 3600000
#define EXEC_GRACE_MS 60000

static const char *const METHOD_EXECUTE = "/airlock.v1.Broker/Execute";
static const char *const METHOD_INTROSPECT = "/airlock.v1.Credentials/Introspect";
static const char *const METHOD_KEYS = "/airlock.v1.Credentials/Keys";
static const char *const METHOD_HEALTH = "/grpc.health.v1.Health/Check";

/* ------------------------------------------------------------ output */

/* Declared in audit_cmd.h. */
int cli_print_json(json_t *json, bool pretty)
{
    if (!json) {
        errno = ENOMEM;
        return -1;
    }
    char *s = json_dumps(json, pretty ? JSON_INDENT(2) : JSON_COMPACT);
    json_decref(json);
    if (!s) {
        errno = ENOMEM;
        return -1;
    }
    int rc = write_all(STDOUT_FILENO, s, strlen(s));
    if (rc == 0)
        rc = write_all(STDOUT_FILENO, "\n", 1);
    free(s);
    return rc;
}

/* A base64 (RFC 4648, padded) JSON string of data, or NULL. */
static json_t *json_base64(const uint8_t *data, size_t len)
{
    size_t outlen = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(outlen);
    if (!out)
        return NULL;
    sodium_bin2base64(out, outlen, data, len, sodium_base64_VARIANT_ORIGINAL);
    json_t *j = json_string(out);
    free(out);
    return j;
}

/* {key: "text"} if data is valid UTF-8, else {key_b64: "base64"}. */
static json_t *json_chunk(const char *key, const ProtobufCBinaryData *data)
{
    json_t *text = json_stringn((const char *)data->data, data->len);
    if (text)
        return json_pack("{so}", key, text);
    char b64key[32];
    snprintf(b64key, sizeof b64key, "%s_b64", key);
    json_t *b64 = json_base64(data->data, data->len);
    return b64 ? json_pack("{so}", b64key, b64) : NULL;
}

/* One field value of a protobuf-c message as JSON; NULL on allocation failure. */

static json_t *pb_value_to_json(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return json_integer(*(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return json_integer(*(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return json_integer(*(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return json_integer((json_int_t)*(const uint64_t *)p);
    case PROTOBUF_C_TYPE_FLOAT:
        return json_real(*(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return json_real(*(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return json_boolean(*(const protobuf_c_boolean *)p);
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        return ev ? json_string(ev->name) : json_integer(v);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        /* invalid UTF-8 from a server must not make the whole object vanish */
        json_t *j = json_string(s ? s : "");
        return j ? j : json_string("(invalid UTF-8)");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        return json_base64(b->data, b->len);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)p;
        return m ? cli_pb_to_json(m) : json_null();
    }
    }
    return json_null();
}

static size_t pb_value_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    }
    return 0;
}

/* Declared in audit_cmd.h. */
json_t *cli_pb_to_json(const ProtobufCMessage *msg)
{
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)msg;
        json_t *v = NULL;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)(base + f->offset);
            v = json_array();
            for (size_t k = 0; v && k < n; k++) {
                if (json_array_append_new(v, pb_value_to_json(f, arr + k * pb_value_size(f))) < 0) {
                    json_decref(v);
                    v = NULL;
                }
            }
        } else {
            if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                *(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
            if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE &&
                !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
                !*(const protobuf_c_boolean *)(base + f->quantifier_offset))
                continue;
            v = pb_value_to_json(f, base + f->offset);
        }
        if (json_object_set_new(obj, f->name, v) < 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

/* Declared in audit_cmd.h: "airlock: UNAVAILABLE: message" on stderr, or
 * the JSON error line. */
int cli_rpc_failed(const struct rpc_status *st, bool json)
{
    const char *name = rpc_status_name(st->code);
    if (json) {
        json_t *j = json_pack("{s{ssss}}", "error", "code", name, "message", st->message);
        if (cli_print_json(j, false) < 0)
            fprintf(stderr, "airlock: %s: %s\n", name, st->message);
    } else {
        fprintf(stderr, "airlock: %s: %s\n", name, st->message);
    }
    return CLI_EXIT_UNAVAILABLE;
}

/* ------------------------------------------------------------ exec */

/* A channel to target: peer credentials for unix:, else mutual TLS with
 * --cert/--key/--ca, checking the server's SPIFFE ID (--server-id, or any ID
 * in our own SVID's trust domain). NULL with the reason in err. */
static struct rpc_channel *open_channel(const struct cli_args *a, const char *target, char *err,
                                        size_t errlen)
{
    if (cli_address_is_unix(target)) {
        struct rpc_channel *ch = rpc_channel_new(target);
        if (!ch)
            snprintf(err, errlen, "cannot open a channel to '%s'", target);
        return ch;
    }
    if (!a->cert) {
        snprintf(err, errlen, "'%s' is a TCP address: it needs mutual TLS (--cert, --key, --ca)",
                 target);
        return NULL;
    }
    char own_id[TLS_SPIFFE_ID_MAX], domain[256];
    if (tls_spiffe_id_of_cert_file(a->cert, own_id, sizeof own_id, err, errlen) != 0)
        return NULL;
    /* spiffe://DOMAIN/path: the trust domain is between "//" and the next "/". */
    const char *td = own_id + strlen("spiffe://");
    size_t tdlen = strcspn(td, "/");
    snprintf(domain, sizeof domain, "%.*s", (int)(tdlen < sizeof domain ? tdlen : 0), td);
    const struct tls_files files = {a->cert, a->key, a->ca};
    return rpc_channel_new_tls(target, &files, a->server_id, domain, err, errlen);
}

/* Declared in audit_cmd.h: opens a channel or reports why not. */
struct rpc_channel *cli_channel_or_fail(const struct cli_args *a, const char *target, bool json,
                                        int *rc)
{
    struct rpc_status status = {.code = GRPC_STATUS_INVALID_ARGUMENT};
    struct rpc_channel *ch = open_channel(a, target, status.message, sizeof status.message);
    if (!ch)
        *rc = cli_rpc_failed(&status, json);
    return ch;
}

static int finished_exit_code(const Airlock__V1__Finished *f)
{
    switch (f->reason) {
    case AIRLOCK__V1__FINISHED__REASON__OK:
    case AIRLOCK__V1__FINISHED__REASON__EXIT_NONZERO:
        return f->exit_code >= 0 && f->exit_code <= 255 ? f->exit_code : CLI_EXIT_SOFTWARE;
    case AIRLOCK__V1__FINISHED__REASON__TIMEOUT:
        return CLI_EXIT_TIMEOUT;
    case AIRLOCK__V1__FINISHED__REASON__KILLED:
        if (f->signal > 0 && f->signal < 128)
            return CLI_EXIT_SIGNAL_BASE + f->signal;
        return f->exit_code > 0 && f->exit_code <= 255 ? f->exit_code : CLI_EXIT_SOFTWARE;
    case AIRLOCK__V1__FINISHED__REASON__OUTPUT_LIMIT:
        return CLI_EXIT_OUTPUT_LIMIT;
    case AIRLOCK__V1__FINISHED__REASON__MEMORY:
        return CLI_EXIT_MEMORY;
    case AIRLOCK__V1__FINISHED__REASON__SECCOMP:
        return CLI_EXIT_SECCOMP;
    case AIRLOCK__V1__FINISHED__REASON__SANDBOX_ERROR:
        return CLI_EXIT_SANDBOX_ERROR;
    case AIRLOCK__V1__FINISHED__REASON__CPU:
        return CLI_EXIT_CPU;
    case AIRLOCK__V1__FINISHED__REASON__DISK:
        return CLI_EXIT_DISK;
    default:
        return CLI_EXIT_SOFTWARE;
    }
}

static const char *reason_name(const Airlock__V1__Finished *f)
{
    const ProtobufCEnumValue *ev =
        protobuf_c_enum_descriptor_get_value(&airlock__v1__finished__reason__descriptor, (int)f->reason);
    return ev ? ev->name : "UNKNOWN_REASON";
}

/* Handles one event. Returns 0, or -1 when our own output failed (errno). */
static int exec_event(const struct cli_args *a, const Airlock__V1__ExecuteEvent *ev,
                      bool *started, bool *finished, int *exit_code)
{
    switch (ev->event_case) {
    case AIRLOCK__V1__EXECUTE_EVENT__EVENT_STARTED:
        *started = true;
        if (a->json && ev->started)
            return cli_print_json(
                json_pack("{so}", "started", cli_pb_to_json(&ev->started->base)), false);
        return 0;
    case AIRLOCK__V1__EXECUTE_EVENT__EVENT_STDOUT:
        if (a->json)
            return cli_print_json(json_chunk("stdout", &ev->stdout), false);
        return write_all(STDOUT_FILENO, ev->stdout.data, ev->stdout.len);
    case AIRLOCK__V1__EXECUTE_EVENT__EVENT_STDERR:
        if (a->json)
            return cli_print_json(json_chunk("stderr", &ev->stderr), false);
        return write_all(STDERR_FILENO, ev->stderr.data, ev->stderr.len);
    case AIRLOCK__V1__EXECUTE_EVENT__EVENT_FINISHED:
        if (!ev->finished)
            return 0;
        *finished = true;
        *exit_code = finished_exit_code(ev->finished);
        if (a->json)
            return cli_print_json(
                json_pack("{so}", "finished", cli_pb_to_json(&ev->finished->base)), false);
        if (ev->finished->reason != AIRLOCK__V1__FINISHED__REASON__OK &&
            ev->finished->reason != AIRLOCK__V1__FINISHED__REASON__EXIT_NONZERO)
            fprintf(stderr, "airlock: task ended: %s%s%s\n", reason_name(ev->finished),
                    *ev->finished->message ? ": " : "", ev->finished->message);
        return 0;
    default:
        return 0; /* an event kind newer than this CLI */
    }
}

static int cmd_exec(const struct cli_args *a)
{
    char err[512];
    char *code_buf = NULL, *stdin_buf = NULL;
    size_t code_len = 0, stdin_len = 0;

    if (a->source == CLI_SRC_INLINE) {
        code_len = strlen(a->input);
    } else if (cli_read_path(a->input, CLI_MAX_CODE_BYTES, &code_buf, &code_len, err,
                             sizeof err) < 0) {
        fprintf(stderr, "airlock: code: %s\n", err);
        return CLI_EXIT_NOINPUT;
    }
    if (a->stdin_file &&
        cli_read_path(a->stdin_file, CLI_MAX_STDIN_BYTES, &stdin_buf, &stdin_len, err, sizeof err) < 0) {
        fprintf(stderr, "airlock: --stdin: %s\n", err);
        free(code_buf);
        return CLI_EXIT_NOINPUT;
    }

    Airlock__V1__ExecuteRequest req = AIRLOCK__V1__EXECUTE_REQUEST__INIT;
    req.runtime = (char *)a->runtime;
    req.code.data = (uint8_t *)(code_buf ? code_buf : a->input);
    req.code.len = code_len;
    req.stdin.data = (uint8_t *)stdin_buf;
    req.stdin.len = stdin_len;
    req.timeout_ms = a->timeout_ms;
    Airlock__V1__Limits limits = AIRLOCK__V1__LIMITS__INIT;
    limits.memory_bytes = a->memory_bytes;
    limits.disk_bytes = a->disk_bytes;
    limits.output_bytes = a->output_bytes;
    limits.cpu_ms = a->cpu_ms;
    limits.max_pids = a->max_pids;
    limits.open_files = a->open_files;
    req.limits = &limits;
    req.n_scopes = a->nscopes;
    req.scopes = (char **)a->scopes;
    req.n_audience = a->naudience;
    req.audience = (char **)a->audience;
    if (a->request_id)
        req.client_request_id = (char *)a->request_id;

    int rc = CLI_EXIT_SOFTWARE;
    struct rpc_status status = {.code = GRPC_STATUS_UNKNOWN};
    struct rpc_channel *ch = cli_channel_or_fail(a, a->broker, a->json, &rc);
    if (!ch)
        goto out;
    int deadline = (int)(a->timeout_ms ? a->timeout_ms : EXEC_DEFAULT_DEADLINE_MS) + EXEC_GRACE_MS;
    struct rpc_stream *st = rpc_stream_start(ch, METHOD_EXECUTE, &req.base, deadline);
    if (!st) {
        fprintf(stderr, "airlock: out of memory\n");
        goto out;
    }

    bool started = false, finished = false;
    int exit_code = CLI_EXIT_PROTOCOL, write_errno = 0;
    ProtobufCMessage *m = NULL;
    while (rpc_stream_next(st, &airlock__v1__execute_event__descriptor, &m) == 1) {
        int r = exec_event(a, (const Airlock__V1__ExecuteEvent *)m, &started, &finished, &exit_code);
        if (r < 0)
            write_errno = errno ? errno : EIO;
        protobuf_c_message_free_unpacked(m, NULL);
        if (r < 0)
            break; /* finishing cancels the call: the broker kills the task */
    }
    grpc_status_code code = rpc_stream_finish(st, &status);

    if (write_errno) {
        if (write_errno != EPIPE)
            fprintf(stderr, "airlock: cannot write output: %s\n", strerror(write_errno));
        rc = CLI_EXIT_IOERR;
    } else if (code != GRPC_STATUS_OK) {
        rc = cli_rpc_failed(&status, a->json);
    } else if (!finished) {
        fprintf(stderr, "airlock: the broker ended the stream without a Finished event%s\n",
                started ? "" : " (and no Started event)");
        rc = CLI_EXIT_PROTOCOL;
    } else {
        rc = exit_code;
    }
out:
    rpc_channel_free(ch);
    free(code_buf);
    free(stdin_buf);
    return rc;
}

/* ------------------------------------------------------------ credd */

/* Trims surrounding whitespace in place. */
static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static int cmd_introspect(const struct cli_args *a)
{
    char err[512];
    char *buf = NULL;
    Airlock__V1__IntrospectRequest req = AIRLOCK__V1__INTROSPECT_REQUEST__INIT;

    if (a->source == CLI_SRC_STDIN) {
        size_t len;
        if (cli_read_path("-", CLI_MAX_TOKEN_BYTES, &buf, &len, err, sizeof err) < 0) {
            fprintf(stderr, "airlock: token: %s\n", err);
            return CLI_EXIT_NOINPUT;
        }
        req.token = memchr(buf, '\0', len) ? "" : trim(buf);
        if (!*req.token) {
            fprintf(stderr, "airlock: token: standard input holds no token\n");
            free(buf);
            return CLI_EXIT_USAGE;
        }
    } else if (a->source == CLI_SRC_ID) {
        req.token_id = (char *)a->input;
    } else {
        req.token = (char *)a->input;
    }

    int rc;
    struct rpc_status status = {.code = GRPC_STATUS_UNKNOWN};
    struct rpc_channel *ch = cli_channel_or_fail(a, a->credd, false, &rc);
    ProtobufCMessage *resp = NULL;
    if (!ch) {
        /* rc says why */
    } else if (rpc_unary(ch, METHOD_INTROSPECT, &req.base, &airlock__v1__introspect_response__descriptor,
                         &resp, CLI_UNARY_TIMEOUT_MS, &status) != GRPC_STATUS_OK) {
        rc = cli_rpc_failed(&status, false);
    } else {
        const Airlock__V1__IntrospectResponse *r = (const Airlock__V1__IntrospectResponse *)resp;
        /* RFC 7662: an inactive token shows nothing but its status */
        json_t *j = r->active ? cli_pb_to_json(resp)
                              : json_pack("{sbss}", "active", 0, "status", r->status ? r->status : "");
        if (cli_print_json(j, true) < 0) {
            fprintf(stderr, "airlock: cannot write output: %s\n", strerror(errno));
            rc = CLI_EXIT_IOERR;
        } else {
            rc = r->active ? CLI_EXIT_OK : CLI_EXIT_INACTIVE;
        }
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    rpc_channel_free(ch);
    free(buf);
    return rc;
}

static int cmd_keys(const struct cli_args *a)
{
    Airlock__V1__KeysRequest req = AIRLOCK__V1__KEYS_REQUEST__INIT;
    struct rpc_status status = {.code = GRPC_STATUS_UNKNOWN};
    ProtobufCMessage *resp = NULL;
    int rc;
    struct rpc_channel *ch = cli_channel_or_fail(a, a->credd, false, &rc);
    if (!ch)
        return rc;
    if (rpc_unary(ch, METHOD_KEYS, &req.base, &airlock__v1__keys_response__descriptor, &resp,
                  CLI_UNARY_TIMEOUT_MS, &status) != GRPC_STATUS_OK) {
        rc = cli_rpc_failed(&status, false);
    } else {
        const char *text = ((const Airlock__V1__KeysResponse *)resp)->jwks_json;
        json_error_t jerr;
        json_t *j = json_loads(text ? text : "", 0, &jerr);
        if (!j) {
            fprintf(stderr, "airlock: credd sent a JWKS that is not JSON: %s\n", jerr.text);
            rc = CLI_EXIT_SOFTWARE;
        } else if (cli_print_json(j, true) < 0) {
            fprintf(stderr, "airlock: cannot write output: %s\n", strerror(errno));
            rc = CLI_EXIT_IOERR;
        } else {
            rc = CLI_EXIT_OK;
        }
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    rpc_channel_free(ch);
    return rc;
}

/* ------------------------------------------------------------ health */

/* Prints "NAME ADDR: STATUS"; true if SERVING. */
static bool check_health(const struct cli_args *a, const char *name, const char *target)
{
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    struct rpc_status status = {.code = GRPC_STATUS_UNKNOWN};
    ProtobufCMessage *resp = NULL;
    bool ok = false;
    char err[RPC_STATUS_MESSAGE_MAX];
    struct rpc_channel *ch = open_channel(a, target, err, sizeof err);
    if (!ch) {
        printf("%s %s: %s\n", name, target, err);
        return false;
    }
    if (rpc_unary(ch, METHOD_HEALTH, &req.base, &grpc__health__v1__health_check_response__descriptor,
                  &resp, CLI_UNARY_TIMEOUT_MS, &status) != GRPC_STATUS_OK) {
        printf("%s %s: %s: %s\n", name, target, rpc_status_name(status.code), status.message);
    } else {
        int v = ((const Grpc__Health__V1__HealthCheckResponse *)resp)->status;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(
            &grpc__health__v1__health_check_response__serving_status__descriptor, v);
        printf("%s %s: %s\n", name, target, ev ? ev->name : "UNKNOWN");
        ok = v == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    rpc_channel_free(ch);
    return ok;
}

static int cmd_health(const struct cli_args *a)
{
    bool broker = check_health(a, "broker", a->broker);
    bool credd = check_health(a, "credd", a->credd);
    if (fflush(stdout) != 0)
        return CLI_EXIT_IOERR;
    return broker && credd ? CLI_EXIT_OK : CLI_EXIT_UNAVAILABLE;
}

/* ------------------------------------------------------------ policy */

static void print_limits(const struct policy_limits *l)
{
    printf("  limits: timeout_ms=%llu memory_bytes=%llu cpu_ms=%llu max_pids=%llu "
           "output_bytes=%llu disk_bytes=%llu open_files=%llu\n",
           (unsigned long long)l->timeout_ms, (unsigned long long)l->memory_bytes,
           (unsigned long long)l->cpu_ms, (unsigned long long)l->max_pids,
           (unsigned long long)l->output_bytes, (unsigned long long)l->disk_bytes,
           (unsigned long long)l->open_files);
}

static void print_words(const char *what, const char **items, size_t n)
{
    printf("  %s:", what);
    for (size_t i = 0; i < n; i++)
        printf(" %s", items[i]);
    printf("%s\n", n ? "" : " (none)");
}

/* airlock policy check: what the broker configured by --config would decide
 * for --spiffe-id asking this request, without asking the broker. */
static int cmd_policy_check(const struct cli_args *a)
{
    struct broker_settings s;
    struct policy *p = NULL;
    char err[512];
    int rc = CLI_EXIT_USAGE;
    broker_settings_init(&s);
    if (broker_settings_load(&s, a->config, err, sizeof err) != 0 ||
        broker_settings_policy(&s, geteuid(), &p, err, sizeof err) != 0) {
        fprintf(stderr, "airlock: %s\n", err);
        goto out;
    }
    if (!spiffe_id_valid(a->spiffe_id)) {
        fprintf(stderr, "airlock: --spiffe-id: '%s' is not a SPIFFE ID\n", a->spiffe_id);
        goto out;
    }
    policy_explain(p, a->spiffe_id, stdout);
    struct policy_request req = {
        .runtime = a->runtime,
        .asked = {a->timeout_ms, a->memory_bytes, a->cpu_ms, a->max_pids, a->output_bytes,
                  a->disk_bytes, a->open_files},
        .scopes = (char *const *)a->scopes,
        .n_scopes = a->nscopes,
        .audience = (char *const *)a->audience,
        .n_audience = a->naudience,
    };
    struct policy_decision d;
    if (policy_decide(p, a->spiffe_id, &req, &d) != 0) {
        fprintf(stderr, "airlock: out of memory\n");
        rc = CLI_EXIT_SOFTWARE;
        goto out;
    }
    printf("\nrequest: runtime %s -> %s: %s\n", a->runtime, d.allowed ? "ALLOW" : "DENY", d.reason);
    if (d.allowed) {
        print_limits(&d.limits);
        print_words("token scopes", d.scopes, d.n_scopes);
        print_words("token audience", d.audience, d.n_audience);
    }
    rc = d.allowed ? CLI_EXIT_OK : CLI_EXIT_DENIED;
    policy_decision_free(&d);
    if (fflush(stdout) != 0)
        rc = CLI_EXIT_IOERR;
out:
    policy_free(p);
    broker_settings_free(&s);
    return rc;
}

/* ------------------------------------------------------------ main */

/* Resolves the audit verbs' --since/--until into a->since_ms/until_ms
 * against the clock. 0, or -1 after printing the usage error. */
static int resolve_times(struct cli_args *a)
{
    if (!a->since && !a->until)
        return 0;
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0) {
        fprintf(stderr, "airlock: clock_gettime: %s\n", strerror(errno));
        return -1;
    }
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    char err[512];
    if (a->since && cli_parse_time(a->since, now_ms, &a->since_ms, err, sizeof err) < 0) {
        fprintf(stderr, "airlock: --since: %s\nTry 'airlock --help'.\n", err);
        return -1;
    }
    if (a->until && cli_parse_time(a->until, now_ms, &a->until_ms, err, sizeof err) < 0) {
        fprintf(stderr, "airlock: --until: %s\nTry 'airlock --help'.\n", err);
        return -1;
    }
    if (a->until && a->until_ms == 0) {
        fprintf(stderr, "airlock: --until: '%s' is the epoch itself: nothing is before it\n",
                a->until);
        return -1;
    }
    if (a->since && a->until && a->until_ms <= a->since_ms) {
        fprintf(stderr, "airlock: --until (%s) must be later than --since (%s)\n", a->until,
                a->since);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cli_args args;
    char err[512];
    const struct cli_env env = {getenv("AIRLOCK_BROKER"), getenv("AIRLOCK_CREDD"),
                                getenv("AIRLOCK_CERT"),   getenv("AIRLOCK_KEY"),
                                getenv("AIRLOCK_CA"),     getenv("AIRLOCK_SERVER_ID")};
    if (cli_parse(argc, argv, &env, &args, err, sizeof err) < 0) {
        fprintf(stderr, "airlock: %s\nTry 'airlock --help'.\n", err);
        return CLI_EXIT_USAGE;
    }
    if (args.verb == CLI_VERB_HELP) {
        fputs(cli_usage, stdout);
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_IOERR;
    }
    if (args.verb == CLI_VERB_VERSION) {
        printf("airlock %s\n", AIRLOCK_VERSION);
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_IOERR;
    }
    if (resolve_times(&args) < 0)
        return CLI_EXIT_USAGE;
    if (sodium_init() < 0) {
        fprintf(stderr, "airlock: cannot initialise libsodium\n");
        return CLI_EXIT_SOFTWARE;
    }
    /* A closed stdout shows up as EPIPE from write(2), not as a dead CLI. */
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        fprintf(stderr, "airlock: signal: %s\n", strerror(errno));
        return CLI_EXIT_SOFTWARE;
    }

    grpc_init();
    int rc;
    switch (args.verb) {
    case CLI_VERB_EXEC:
        rc = cmd_exec(&args);
        break;
    case CLI_VERB_INTROSPECT:
        rc = cmd_introspect(&args);
        break;
    case CLI_VERB_KEYS:
        rc = cmd_keys(&args);
        break;
    case CLI_VERB_HEALTH:
        rc = cmd_health(&args);
        break;
    case CLI_VERB_POLICY_CHECK:
        rc = cmd_policy_check(&args);
        break;
    case CLI_VERB_AUDIT_QUERY:
        rc = cmd_audit_query(&args);
        break;
    case CLI_VERB_AUDIT_VERIFY:
        rc = cmd_audit_verify(&args);
        break;
    case CLI_VERB_AUDIT_TOKENS:
        rc = cmd_audit_tokens(&args);
        break;
    default:
        fprintf(stderr, "airlock: internal error: unhandled command\n");
        rc = CLI_EXIT_SOFTWARE;
        break;
    }
    grpc_shutdown();
    return rc;
}

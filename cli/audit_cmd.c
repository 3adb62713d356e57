/*
 * audit_cmd.c - the `airlock audit` verbs: query (Audit.Query on the broker
 * or credd, printed as a table or as the stored JSON Lines), verify
 * (Audit.Verify on a daemon, or audit_verify_file() on a copied chain file
 * with keys from a JWKS file or credd's Keys) and tokens (credd's mint and
 * revoke records folded into one entry per issued token). Argument rules
 * live in args.c; exit codes in args.h.
 */
#include "airlock/v1/audit.pb-c.h"
#include "airlock/v1/credentials.pb-c.h"

#include "audit.h"
#include "audit_cmd.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const METHOD_AUDIT_QUERY = "/airlock.v1.Audit/Query";
static const char *const METHOD_AUDIT_VERIFY = "/airlock.v1.Audit/Verify";
static const char *const METHOD_KEYS = "/airlock.v1.Credentials/Keys";

/* A whole chain streamed to a slow pipe, or hashed by the daemon. */
#define AUDIT_QUERY_DEADLINE_MS 600000
#define AUDIT_VERIFY_DEADLINE_MS 600000

/* ------------------------------------------------------------ output helpers */

static const char *daemon_address(const struct cli_args *a)
{
    return a->of == CLI_DAEMON_CREDD ? a->credd : a->broker;
}

static const char *daemon_name(const struct cli_args *a)
{
    return a->of == CLI_DAEMON_CREDD ? "credd" : "the broker";
}

static const char *plural(unsigned long long n)
{
    return n == 1 ? "" : "s";
}

/* Unix seconds as "2026-11-23T10:00:00Z", or with frac_ms >= 0
 * "2026-11-23T10:00:00.123Z"; the bare number if it is not a date. */
static void format_secs(int64_t secs, int frac_ms, char *buf, size_t len)
{
    struct tm tm;
    time_t t = (time_t)secs;
    size_t n = 0;
    if (secs < 0 || !gmtime_r(&t, &tm) ||
        (n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm)) == 0)
        snprintf(buf, len, "%lld", (long long)secs);
    else if (frac_ms >= 0 && frac_ms < 1000)
        snprintf(buf + n, len - n, ".%03dZ", frac_ms);
    else
        snprintf(buf + n, len - n, "Z");
}

static void format_ms(int64_t ms, char *buf, size_t len)
{
    if (ms < 0)
        snprintf(buf, len, "%lld", (long long)ms);
    else
        format_secs(ms / 1000, (int)(ms % 1000), buf, len);
}

/* s ready for a terminal, malloc'd: as is when it is plain printable ASCII
 * without spaces, quotes or backslashes; else a quoted JSON string with every
 * control and non-ASCII character escaped (\xNN for bytes that are not
 * UTF-8). A record can neither split its line nor drive the terminal. NULL
 * when out of memory. */
static char *safe_text(const char *s)
{
    bool plain = *s != '\0';
    for (const unsigned char *p = (const unsigned char *)s; *p && plain; p++)
        plain = *p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\';
    if (plain)
        return strdup(s);
    json_t *j = json_string(s);
    if (j) {
        char *d = json_dumps(j, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
        json_decref(j);
        return d;
    }
    size_t n = strlen(s);
    char *out = malloc(4 * n + 3);
    if (!out)
        return NULL;
    char *o = out;
    *o++ = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\')
            *o++ = (char)*p;
        else
            o += sprintf(o, "\\x%02x", *p);
    }
    *o++ = '"';
    *o = '\0';
    return out;
}

/* A sentence from a server ready for a terminal, malloc'd: control
 * characters become '?'. NULL when out of memory. */
static char *safe_prose(const char *s)
{
    char *out = strdup(s);
    for (char *p = out; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return out;
}

/* Prints " key=value" for a string, number or boolean v; nothing for other
 * types. 0, or -1 when out of memory (errno ENOMEM). */
static int put_field(const char *key, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: {
        char *t = safe_text(json_string_value(v));
        if (!t) {
            errno = ENOMEM;
            return -1;
        }
        printf(" %s=%s", key, t);
        free(t);
        return 0;
    }
    case JSON_INTEGER:
        printf(" %s=%" JSON_INTEGER_FORMAT, key, json_integer_value(v));
        return 0;
    case JSON_REAL:
        printf(" %s=%g", key, json_real_value(v));
        return 0;
    case JSON_TRUE:
    case JSON_FALSE:
        printf(" %s=%s", key, json_is_true(v) ? "true" : "false");
        return 0;
    default:
        return 0;
    }
}

/* Ends a line of output: flushes so that a reader sees it now and a closed
 * pipe shows up at once. 0 or -1 (errno). */
static int end_line(void)
{
    if (putchar('\n') == EOF || fflush(stdout) != 0)
        return -1;
    return 0;
}

/* After a failed write: reports it (not a closed pipe: the reader is gone
 * on purpose) and returns the exit code. */
static int output_failed(int err)
{
    if (err == ENOMEM) {
        fprintf(stderr, "airlock: out of memory\n");
        return CLI_EXIT_SOFTWARE;
    }
    if (err != EPIPE)
        fprintf(stderr, "airlock: cannot write output: %s\n", strerror(err));
    return CLI_EXIT_IOERR;
}

/* A string member of rec, or NULL. */
static const char *str_of(const json_t *rec, const char *key)
{
    return json_string_value(json_object_get(rec, key));
}

/* The member key of rec if it has type type, else NULL (borrowed). */
static json_t *member_of_type(const json_t *rec, const char *key, json_type type)
{
    json_t *v = json_object_get(rec, key);
    return v && json_typeof(v) == type ? v : NULL;
}

/* Streams Audit.Query with req from a's daemon, calling fn for each record
 * (fn returns 0, or -1 with errno to stop: our output failed). Returns the
 * exit code: OK, an RPC failure, or an output failure. */
typedef int (*record_fn)(void *ctx, const Airlock__V1__AuditRecord *r);

static int stream_query(const struct cli_args *a, const Airlock__V1__AuditQuery *req, record_fn fn,
                        void *ctx)
{
    int rc = CLI_EXIT_SOFTWARE;
    struct rpc_channel *ch = cli_channel_or_fail(a, daemon_address(a), a->json, &rc);
    if (!ch)
        return rc;
    struct rpc_stream *st = rpc_stream_start(ch, METHOD_AUDIT_QUERY, &req->base,
                                             AUDIT_QUERY_DEADLINE_MS);
    if (!st) {
        fprintf(stderr, "airlock: out of memory\n");
        rpc_channel_free(ch);
        return CLI_EXIT_SOFTWARE;
    }
    int write_errno = 0;
    ProtobufCMessage *m = NULL;
    while (rpc_stream_next(st, &airlock__v1__audit_record__descriptor, &m) == 1) {
        errno = 0;
        int r = fn(ctx, (const Airlock__V1__AuditRecord *)m);
        if (r < 0)
            write_errno = errno ? errno : EIO;
        protobuf_c_message_free_unpacked(m, NULL);
        if (r < 0)
            break; /* finishing cancels the call */
    }
    struct rpc_status status = {.code = GRPC_STATUS_UNKNOWN};
    grpc_status_code code = rpc_stream_finish(st, &status);
    rpc_channel_free(ch);
    if (write_errno)
        return output_failed(write_errno);
    if (code != GRPC_STATUS_OK) {
        if (fflush(stdout) != 0) /* what we printed goes before the error */
            return output_failed(errno);
        return cli_rpc_failed(&status, a->json);
    }
    return CLI_EXIT_OK;
}

/* The request's filters from a (strings point into a). kinds has room for
 * CLI_MAX_KINDS. */
static void query_from_args(const struct cli_args *a, Airlock__V1__AuditQuery *req, char **kinds)
{
    if (a->spiffe_id)
        req->subject = (char *)a->spiffe_id;
    if (a->task_id)
        req->task_id = (char *)a->task_id;
    if (a->token_id)
        req->token_id = (char *)a->token_id;
    if (a->reason)
        req->reason = (char *)a->reason;
    req->since_ms = a->since_ms;
    req->until_ms = a->until_ms;
    req->limit = a->limit;
    for (size_t i = 0; i < a->nkinds; i++)
        kinds[i] = (char *)a->kinds[i];
    req->n_kinds = a->nkinds;
    req->kinds = a->nkinds ? kinds : NULL;
}

/* ------------------------------------------------------------ audit query */

struct query_out {
    bool json;
    uint64_t count;
};

/* The fields shown after time, seq and kind, when a record has them
 * (caller only for records without a subject). */
static const char *const row_fields[] = {
    "result", "subject", "caller", "task_id", "token_id", "reason",   "status",
    "before", "after",   "why",    "runtime", "exit_code", "covers_seq", "method",
};

static int print_query_row(const Airlock__V1__AuditRecord *r)
{
    char when[64];
    format_ms(r->ts_ms, when, sizeof when);
    char *kind = safe_text(r->kind ? r->kind : "");
    if (!kind) {
        errno = ENOMEM;
        return -1;
    }
    printf("%-24s %7llu %-14s", when, (unsigned long long)r->seq, kind);
    free(kind);
    json_t *rec = json_loads(r->json ? r->json : "", 0, NULL);
    int rc = 0;
    if (!json_is_object(rec)) {
        printf(" (the record is not a JSON object)");
    } else {
        for (size_t i = 0; rc == 0 && i < sizeof row_fields / sizeof row_fields[0]; i++) {
            const json_t *v = json_object_get(rec, row_fields[i]);
            if (strcmp(row_fields[i], "caller") == 0 && json_object_get(rec, "subject"))
                continue;
            if (v)
                rc = put_field(row_fields[i], v);
        }
    }
    json_decref(rec);
    return rc < 0 ? -1 : end_line();
}

static int on_query_record(void *ctx, const Airlock__V1__AuditRecord *r)
{
    struct query_out *q = ctx;
    if (q->json) {
        /* exactly as stored: one JSON object per line */
        const char *text = r->json ? r->json : "";
        if (fputs(text, stdout) == EOF || end_line() < 0)
            return -1;
    } else {
        if (q->count == 0 && (printf("%-24s %7s %-14s %s", "TIME", "SEQ", "KIND", "DETAILS") < 0 ||
                              end_line() < 0))
            return -1;
        if (print_query_row(r) < 0)
            return -1;
    }
    q->count++;
    return 0;
}

int cmd_audit_query(const struct cli_args *a)
{
    Airlock__V1__AuditQuery req = AIRLOCK__V1__AUDIT_QUERY__INIT;
    char *kinds[CLI_MAX_KINDS];
    query_from_args(a, &req, kinds);
    struct query_out q = {.json = a->json};
    int rc = stream_query(a, &req, on_query_record, &q);
    if (rc == CLI_EXIT_OK && q.count == 0 && !a->json)
        fprintf(stderr, "airlock: no matching records in %s's audit chain\n", daemon_name(a));
    return rc;
}

/* ------------------------------------------------------------ audit verify */

/* What a problem means, after "record N (line L)". */
static const char *problem_phrase(const char *problem)
{
    static const struct {
        const char *name, *phrase;
    } phrases[] = {
        {"edited", "was altered"},
        {"deleted", "comes after missing records"},
        {"reordered", "is out of place"},
        {"truncated", "is missing"},
        {"bad_checkpoint", "is a checkpoint that does not verify"},
        {"malformed", "is not a record of this chain"},
    };
    for (size_t i = 0; i < sizeof phrases / sizeof phrases[0]; i++)
        if (strcmp(problem, phrases[i].name) == 0)
            return phrases[i].phrase;
    return "breaks the chain";
}

/* Does msg name record seq ("record 17 (line 17) was altered: ...")? */
static bool mentions_record(const char *msg, uint64_t seq)
{
    char needle[40];
    int n = snprintf(needle, sizeof needle, "record %llu", (unsigned long long)seq);
    for (const char *p = strstr(msg, needle); p && n > 0; p = strstr(p + 1, needle))
        if (p[n] < '0' || p[n] > '9')
            return true;
    return false;
}

/* The summary (or with json the object) of a verification, daemon's or
 * ours. 0 or -1 (errno). */
static int print_verify(const Airlock__V1__AuditVerifyResponse *r, bool json)
{
    if (json)
        return cli_print_json(cli_pb_to_json(&r->base), true);

    char *chain = safe_text(r->chain ? r->chain : "");
    char *hash = safe_text(r->head_hash ? r->head_hash : "");
    char *problem = safe_text(r->problem && *r->problem ? r->problem : "unknown");
    char *msg = safe_prose(r->message ? r->message : "");
    int rc = -1;
    if (!chain || !hash || !problem || !msg) {
        errno = ENOMEM;
        goto out;
    }
    if (r->ok) {
        unsigned long long n = r->records, k = r->checkpoints, u = r->unsigned_records;
        printf("ok: chain %s, %llu record%s, %llu checkpoint%s, ", chain, n, plural(n), k, plural(k));
        if (r->last_checkpoint_seq)
            printf("last signed record %llu, %llu record%s after it",
                   (unsigned long long)r->last_checkpoint_seq, u, plural(u));
        else
            printf("no signed record yet (%llu unsigned record%s)", u, plural(u));
        if (end_line() < 0)
            goto out;
        printf("head: record %llu, sha256 %s", (unsigned long long)r->head_seq, hash);
    } else {
        const char *raw_problem = r->problem && *r->problem ? r->problem : "unknown";
        printf("BROKEN (%s): ", problem);
        if (r->bad_seq && mentions_record(msg, r->bad_seq))
            printf("%s", msg); /* the verifier's own sentence names the place */
        else if (r->bad_seq)
            printf("record %llu (line %llu) %s", (unsigned long long)r->bad_seq,
                   (unsigned long long)r->bad_line, problem_phrase(raw_problem));
        else if (r->bad_line)
            printf("line %llu %s", (unsigned long long)r->bad_line, problem_phrase(raw_problem));
        else
            printf("the chain %s", problem_phrase(raw_problem));
        if (*msg && !(r->bad_seq && mentions_record(msg, r->bad_seq)))
            printf(": %s", msg);
    }
    rc = end_line();
out:
    free(chain);
    free(hash);
    free(problem);
    free(msg);
    return rc;
}

static int verify_on_daemon(const struct cli_args *a)
{
    Airlock__V1__AuditVerifyRequest req = AIRLOCK__V1__AUDIT_VERIFY_REQUEST__INIT;
    struct rpc_status status = {.code = GRPC_STATUS_UNKNOWN};
    ProtobufCMessage *resp = NULL;
    int rc;
    struct rpc_channel *ch = cli_channel_or_fail(a, daemon_address(a), a->json, &rc);
    if (!ch)
        return rc;
    if (rpc_unary(ch, METHOD_AUDIT_VERIFY, &req.base, &airlock__v1__audit_verify_response__descriptor,
                  &resp, AUDIT_VERIFY_DEADLINE_MS, &status) != GRPC_STATUS_OK) {
        rc = cli_rpc_failed(&status, a->json);
    } else {
        const Airlock__V1__AuditVerifyResponse *r = (const Airlock__V1__AuditVerifyResponse *)resp;
        if (print_verify(r, a->json) < 0)
            rc = output_failed(errno);
        else
            rc = r->ok ? CLI_EXIT_OK : CLI_EXIT_TAMPERED;
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    rpc_channel_free(ch);
    return rc;
}

/* The checkpoint keys: the --jwks file, or credd's Keys. Returns CLI_EXIT_OK
 * with *keys set, or the exit code after reporting why not. */
static int load_keys(const struct cli_args *a, struct audit_keys **keys)
{
    char err[512];
    *keys = NULL;
    if (a->jwks) {
        char *text = NULL;
        size_t len = 0;
        if (cli_read_path(a->jwks, CLI_MAX_JWKS_BYTES, &text, &len, err, sizeof err) < 0) {
            fprintf(stderr, "airlock: --jwks: %s\n", err);
            return CLI_EXIT_NOINPUT;
        }
        if (memchr(text, '\0', len))
            snprintf(err, sizeof err, "it holds a NUL byte");
        else
            *keys = audit_keys_from_jwks(text, err, sizeof err);
        free(text);
        if (!*keys) {
            fprintf(stderr, "airlock: --jwks '%s' is not a usable JWKS: %s\n", a->jwks, err);
            return CLI_EXIT_NOINPUT;
        }
        return CLI_EXIT_OK;
    }

    Airlock__V1__KeysRequest req = AIRLOCK__V1__KEYS_REQUEST__INIT;
    struct rpc_status status = {.code = GRPC_STATUS_UNKNOWN};
    ProtobufCMessage *resp = NULL;
    int rc;
    struct rpc_channel *ch = cli_channel_or_fail(a, a->credd, a->json, &rc);
    if (!ch)
        return rc;
    if (rpc_unary(ch, METHOD_KEYS, &req.base, &airlock__v1__keys_response__descriptor, &resp,
                  CLI_UNARY_TIMEOUT_MS, &status) != GRPC_STATUS_OK) {
        rc = cli_rpc_failed(&status, a->json);
        fprintf(stderr, "airlock: (credd's keys check the checkpoints; --jwks FILE verifies "
                        "without credd)\n");
    } else {
        const char *jwks = ((const Airlock__V1__KeysResponse *)resp)->jwks_json;
        *keys = audit_keys_from_jwks(jwks ? jwks : "", err, sizeof err);
        if (!*keys) {
            fprintf(stderr, "airlock: credd sent a JWKS that cannot be used: %s\n", err);
            rc = CLI_EXIT_SOFTWARE;
        } else {
            rc = CLI_EXIT_OK;
        }
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    rpc_channel_free(ch);
    return rc;
}

static int verify_file(const struct cli_args *a)
{
    /* an unreadable file is reported before credd is asked for keys */
    int fd = open(a->file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "airlock: '%s': %s\n", a->file, strerror(errno));
        return CLI_EXIT_NOINPUT;
    }
    close(fd);

    struct audit_keys *keys = NULL;
    int rc = load_keys(a, &keys);
    if (rc != CLI_EXIT_OK)
        return rc;

    struct audit_verify_result res;
    memset(&res, 0, sizeof res);
    if (audit_verify_file(a->file, keys, a->expect_seq, NULL, &res) < 0) {
        res.message[sizeof res.message - 1] = '\0';
        fprintf(stderr, "airlock: '%s': %s\n", a->file, res.message);
        rc = CLI_EXIT_NOINPUT;
    } else {
        res.chain[sizeof res.chain - 1] = '\0';
        res.head_hash[sizeof res.head_hash - 1] = '\0';
        res.message[sizeof res.message - 1] = '\0';
        /* the same shape as a daemon's answer */
        Airlock__V1__AuditVerifyResponse r = AIRLOCK__V1__AUDIT_VERIFY_RESPONSE__INIT;
        r.ok = res.problem == AUDIT_OK;
        r.chain = res.chain;
        r.records = res.records;
        r.checkpoints = res.checkpoints;
        r.last_checkpoint_seq = res.last_checkpoint_seq;
        r.unsigned_records = res.unsigned_records;
        r.head_seq = res.head_seq;
        r.head_hash = res.head_hash;
        r.bad_seq = res.bad_seq;
        r.bad_line = res.bad_line;
        r.problem = (char *)audit_problem_name(res.problem); /* "ok" as the daemons say */
        r.message = res.message;
        if (print_verify(&r, a->json) < 0)
            rc = output_failed(errno);
        else
            rc = r.ok ? CLI_EXIT_OK : CLI_EXIT_TAMPERED;
    }
    audit_keys_free(keys);
    return rc;
}

int cmd_audit_verify(const struct cli_args *a)
{
    return a->file ? verify_file(a) : verify_on_daemon(a);
}

/* ------------------------------------------------------------ audit tokens */

/* How a token ended, for ended and the table. */
enum token_end { END_ACTIVE, END_EXPIRED, END_TASK_ENDED, END_BACKSTOP, END_REVOKED };

static const char *const end_names[] = {"active", "expired", "task_ended", "backstop", "revoked"};

struct token_entry {
    json_t *obj; /* the output object, keys in their documented order */
    int64_t issued_at, expires_at, revoked_at; /* unix s */
    uint64_t seq;                              /* the mint's, to order equal issued_at */
    bool revoked;
    enum token_end end;
};

struct token_book {
    const struct cli_args *a;
    struct token_entry *v;
    size_t n, cap;
    json_t *by_id; /* token_id -> index in v */
};

/* A mint record: "ok" ones that pass the client-side filters open an entry.
 * 0, or -1 when out of memory. */
static int on_mint(struct token_book *b, const json_t *rec, const Airlock__V1__AuditRecord *r)
{
    const struct cli_args *a = b->a;
    const char *result = str_of(rec, "result"), *tid = str_of(rec, "token_id");
    const char *subject = str_of(rec, "subject");
    if (!result || strcmp(result, "ok") != 0 || !tid || !*tid)
        return 0;
    if (a->spiffe_id && (!subject || strcmp(subject, a->spiffe_id) != 0))
        return 0;
    if (a->token_id && strcmp(tid, a->token_id) != 0)
        return 0;
    if ((a->since_ms && r->ts_ms < a->since_ms) || (a->until_ms && r->ts_ms >= a->until_ms))
        return 0;
    if (json_object_get(b->by_id, tid))
        return 0; /* the first mint of an id stands */

    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        struct token_entry *nv = realloc(b->v, ncap * sizeof *nv);
        if (!nv)
            return -1;
        b->v = nv;
        b->cap = ncap;
    }
    json_t *scopes = member_of_type(rec, "scopes", JSON_ARRAY);
    json_t *audience = member_of_type(rec, "audience", JSON_ARRAY);
    json_t *issued = member_of_type(rec, "issued_at", JSON_INTEGER);
    json_t *expires = member_of_type(rec, "expires_at", JSON_INTEGER);
    /* "ended" is filled in at the end; revoked_at and revoked_by by a revoke */
    json_t *obj = json_pack("{s:s, s:O?, s:O?, s:o, s:o, s:O?, s:O?, s:n, s:n, s:n}",
                            "token_id", tid,
                            "subject", member_of_type(rec, "subject", JSON_STRING),
                            "task_id", member_of_type(rec, "task_id", JSON_STRING),
                            "scopes", scopes ? json_incref(scopes) : json_array(),
                            "audience", audience ? json_incref(audience) : json_array(),
                            "issued_at", issued,
                            "expires_at", expires,
                            "revoked_at", "ended", "revoked_by");
    if (!obj)
        return -1;
    if (json_object_set_new(b->by_id, tid, json_integer((json_int_t)b->n)) < 0) {
        json_decref(obj);
        return -1;
    }
    b->v[b->n++] = (struct token_entry){
        .obj = obj,
        .issued_at = issued ? json_integer_value(issued) : 0,
        .expires_at = expires ? json_integer_value(expires) : 0,
        .seq = r->seq,
    };
    return 0;
}

/* A revoke record ends its token if the token was still active then. 0, or
 * -1 when out of memory. */
static int on_revoke(struct token_book *b, const json_t *rec, const Airlock__V1__AuditRecord *r)
{
    const char *tid = str_of(rec, "token_id"), *before = str_of(rec, "before");
    const char *reason = str_of(rec, "reason");
    json_t *ix = tid ? json_object_get(b->by_id, tid) : NULL;
    if (!json_is_integer(ix) || !before || strcmp(before, "active") != 0)
        return 0;
    struct token_entry *e = &b->v[json_integer_value(ix)];
    if (e->revoked)
        return 0;
    json_t *caller = member_of_type(rec, "caller", JSON_STRING);
    e->revoked = true;
    e->revoked_at = r->ts_ms >= 0 ? r->ts_ms / 1000 : 0;
    e->end = reason && strcmp(reason, "task_ended") == 0 ? END_TASK_ENDED
             : reason && strcmp(reason, "backstop") == 0 ? END_BACKSTOP
                                                         : END_REVOKED;
    if (json_object_set_new(e->obj, "revoked_at", json_integer(e->revoked_at)) < 0 ||
        json_object_set_new(e->obj, "revoked_by", caller ? json_incref(caller) : json_null()) < 0)
        return -1;
    return 0;
}

static int on_token_record(void *ctx, const Airlock__V1__AuditRecord *r)
{
    struct token_book *b = ctx;
    const char *kind = r->kind ? r->kind : "";
    bool mint = strcmp(kind, "mint") == 0;
    if (!mint && strcmp(kind, "revoke") != 0)
        return 0;
    json_t *rec = json_loads(r->json ? r->json : "", 0, NULL);
    if (!json_is_object(rec)) {
        json_decref(rec);
        return 0; /* not ours to judge: audit verify reports damaged records */
    }
    int rc = mint ? on_mint(b, rec, r) : on_revoke(b, rec, r);
    json_decref(rec);
    if (rc < 0)
        errno = ENOMEM;
    return rc;
}

static int by_issue(const void *x, const void *y)
{
    const struct token_entry *a = x, *b = y;
    if (a->issued_at != b->issued_at)
        return a->issued_at < b->issued_at ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Joins the strings of array with ','; "-" when there are none. malloc'd. */
static char *join_words(const json_t *array)
{
    size_t len = 2, i;
    json_t *v;
    json_array_foreach(array, i, v) {
        if (json_is_string(v))
            len += json_string_length(v) + 1;
    }
    char *out = malloc(len);
    if (!out)
        return NULL;
    out[0] = '\0';
    json_array_foreach(array, i, v) {
        if (!json_is_string(v))
            continue;
        if (out[0])
            strcat(out, ",");
        strcat(out, json_string_value(v));
    }
    if (!out[0])
        strcpy(out, "-");
    return out;
}

static int print_token_row(const struct token_entry *e)
{
    char issued[64], when[64];
    format_secs(e->issued_at, -1, issued, sizeof issued);
    char *scopes_raw = join_words(json_object_get(e->obj, "scopes"));
    char *aud_raw = join_words(json_object_get(e->obj, "audience"));
    const char *subj = str_of(e->obj, "subject"), *task = str_of(e->obj, "task_id");
    const char *by = str_of(e->obj, "revoked_by");
    char *tid = safe_text(str_of(e->obj, "token_id"));
    char *subject = safe_text(subj ? subj : "-");
    char *task_id = safe_text(task ? task : "-");
    char *scopes = scopes_raw ? safe_text(scopes_raw) : NULL;
    char *aud = aud_raw ? safe_text(aud_raw) : NULL;
    char *caller = safe_text(by ? by : "unknown caller");
    int rc = -1;
    if (!tid || !subject || !task_id || !scopes || !aud || !caller) {
        errno = ENOMEM;
        goto out;
    }
    printf("%-20s %s %s task=%s scopes=%s audience=%s ", issued, tid, subject, task_id, scopes, aud);
    switch (e->end) {
    case END_ACTIVE:
    case END_EXPIRED:
        format_secs(e->expires_at, -1, when, sizeof when);
        printf(e->end == END_ACTIVE ? "active, expires %s" : "expired %s", when);
        break;
    case END_TASK_ENDED:
    case END_BACKSTOP:
    case END_REVOKED:
        format_secs(e->revoked_at, -1, when, sizeof when);
        if (e->end == END_REVOKED)
            printf("revoked by %s at %s", caller, when);
        else
            printf("revoked at %s (%s)", when,
                   e->end == END_TASK_ENDED ? "its task ended" : "broker backstop");
        break;
    }
    rc = end_line();
out:
    free(scopes_raw);
    free(aud_raw);
    free(tid);
    free(subject);
    free(task_id);
    free(scopes);
    free(aud);
    free(caller);
    return rc;
}

int cmd_audit_tokens(const struct cli_args *a)
{
    /* Mints are filtered by subject and time here, not by credd: a token's
     * revoke may come from another caller (the broker's backstop) or after
     * --until, and it still tells how the token ended. */
    static char *const kinds[] = {"mint", "revoke"};
    Airlock__V1__AuditQuery req = AIRLOCK__V1__AUDIT_QUERY__INIT;
    req.n_kinds = 2;
    req.kinds = (char **)kinds;
    req.since_ms = a->since_ms;
    if (a->token_id)
        req.token_id = (char *)a->token_id;

    struct token_book b = {.a = a, .by_id = json_object()};
    if (!b.by_id) {
        fprintf(stderr, "airlock: out of memory\n");
        return CLI_EXIT_SOFTWARE;
    }
    int rc = stream_query(a, &req, on_token_record, &b);
    if (rc == CLI_EXIT_OK) {
        struct timespec now;
        if (clock_gettime(CLOCK_REALTIME, &now) != 0) {
            fprintf(stderr, "airlock: clock_gettime: %s\n", strerror(errno));
            rc = CLI_EXIT_SOFTWARE;
            goto out;
        }
        if (b.n > 1)
            qsort(b.v, b.n, sizeof *b.v, by_issue);
        for (size_t i = 0; i < b.n; i++) {
            struct token_entry *e = &b.v[i];
            if (!e->revoked)
                e->end = e->expires_at <= (int64_t)now.tv_sec ? END_EXPIRED : END_ACTIVE;
            if (json_object_set_new(e->obj, "ended", json_string(end_names[e->end])) < 0) {
                rc = output_failed(ENOMEM);
                goto out;
            }
            int w = a->json ? cli_print_json(json_incref(e->obj), false) : print_token_row(e);
            if (w < 0) {
                rc = output_failed(errno ? errno : EIO);
                goto out;
            }
        }
        if (b.n == 0 && !a->json)
            fprintf(stderr, "airlock: no matching tokens in credd's audit chain\n");
    }
out:
    for (size_t i = 0; i < b.n; i++)
        json_decref(b.v[i].obj);
    free(b.v);
    json_decref(b.by_id);
    return rc;
}

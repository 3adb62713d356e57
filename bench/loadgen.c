/*
 * loadgen.c - airlock-loadgen, a load generator for Broker.Execute or, with
 * --mint, for Credentials.Mint. It owns its argument parsing, the worker
 * threads (one channel each, sharing a task count or a deadline), per-call
 * latency measurement, the merge of the threads' results and the report
 * (human-readable, or one JSON line).
 *
 *   airlock-loadgen [--broker ADDR] [--concurrency N] (--count N | --duration SECS)
 *                   [--runtime sh|python3] [-c CODE] [--timeout-ms N] [--warmup N] [--think-ms N]
 *                   [--json] [--cert F --key F --ca F]
 *   airlock-loadgen --mint [--credd ADDR] [--concurrency N] (--count N | --duration SECS)
 *                   [-c CODE] [--warmup N] [--json] [--cert F --key F --ca F]
 *
 * A task counts as OK only if its stream ends with status OK after a Finished
 * event with reason OK; otherwise it is an error of kind "<gRPC status name>",
 * "reason:<n>" (a Finished reason other than OK), "no_finished" (status OK,
 * no Finished event) or "start_failed" (out of memory starting the call).
 *
 * --mint: each "task" is one unary Mint asking what the broker asks for a
 * task with no scopes or audiences (subject, a fresh task_id, the code's
 * SHA-256, a TTL of MINT_TTL_S); it is OK when credd answers OK with a token,
 * else an error of kind "<gRPC status name>" or "no_token". credd mints only
 * for the broker: over its Unix socket that is a peer running credd's
 * --broker-exe, so point a credd started for the benchmark at this binary
 * (--broker-exe PATH/airlock-loadgen); over TLS, an SVID among its --broker-id.
 * Latency is from stream start to final status (CLOCK_MONOTONIC) and is
 * recorded for every measured task, failed ones included. Warm-up tasks run
 * before the clock starts and are neither counted nor timed.
 * Exit: 0 no errors, 1 errors or a failure, 64 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>

#include "airlock/v1/broker.pb-c.h"
#include "airlock/v1/credentials.pb-c.h"
#include "rpc.h"
#include "util.h"
#include "tls.h"

#define EXIT_USAGE 64
#define METHOD_EXECUTE "/airlock.v1.Broker/Execute"
#define METHOD_MINT "/airlock.v1.Credentials/Mint"
#define DEFAULT_BROKER "unix:/run/airlock/broker.sock"
#define DEFAULT_CREDD "unix:/run/airlock/credd.sock"
/* --mint: the subject the tokens are for, their lifetime, the call's deadline. */
#define MINT_SUBJECT "spiffe://airlock.local/airlock-loadgen"
#define MINT_TTL_S 30
#define MINT_DEADLINE_MS 10000
#define DEFAULT_COUNT 100
#define MAX_CONCURRENCY 4096
#define MAX_DURATION_S (7.0 * 86400.0)
#define MAX_TIMEOUT_MS 86400000L
/* The call's deadline: the task's own timeout (or an hour when the broker's
 * default applies) plus a grace period, as the CLI does. */
#define DEFAULT_DEADLINE_MS 3600000L
#define GRACE_MS 60000L
#define MAX_KINDS 8
#define KIND_LEN 48

struct config {
    const char *target; /* the broker, or credd with --mint */
    const char *runtime;
    const char *code;
    const char *cert, *key, *ca;
    int concurrency;
    long count;      /* > 0 in count mode, else 0 */
    double duration; /* > 0 in duration mode, else 0 */
    long timeout_ms; /* 0: the broker's default */
    long warmup;
    long think_ms; /* pause after each measured task (not timed): an agent thinking */
    bool json;
    bool mint;
    char code_sha256[SHA256_HEX_LEN]; /* --mint: bound into each token */
};

/* Error kinds with their counts: up to MAX_KINDS named, the rest in other. */
struct kinds {
    struct {
        char name[KIND_LEN];
        unsigned long count;
    } k[MAX_KINDS];
    size_t n;
    unsigned long other;
};

/* State the threads share. ready/go/abort/deadline_ns are under mu. */
struct shared {
    const struct config *cfg;
    atomic_long warmup_next;
    atomic_long count_next;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int ready;
    bool go;
    bool abort;
    uint64_t deadline_ns; /* duration mode: no task starts at or after this */
};

struct worker {
    pthread_t tid;
    int index;
    unsigned long calls; /* --mint: makes each task_id unique */
    struct shared *sh;
    struct rpc_channel *ch;
    uint64_t *lat; /* latencies in ns, one per measured task */
    size_t nlat, cap;
    unsigned long errors;
    struct kinds kinds;
    bool oom;
};

/* ------------------------------------------------------------ helpers */

static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        perror("airlock-loadgen: clock_gettime");
        abort();
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* pthread mutex/cond calls only fail on programming errors: die loudly. */
static void check_pthread(int r, const char *what)
{
    if (r != 0) {
        fprintf(stderr, "airlock-loadgen: %s: %s\n", what, strerror(r));
        abort();
    }
}

static void kinds_add(struct kinds *ks, const char *name, unsigned long count)
{
    for (size_t i = 0; i < ks->n; i++) {
        if (strcmp(ks->k[i].name, name) == 0) {
            ks->k[i].count += count;
            return;
        }
    }
    if (ks->n < MAX_KINDS) {
        snprintf(ks->k[ks->n].name, KIND_LEN, "%s", name);
        ks->k[ks->n].count = count;
        ks->n++;
    } else {
        ks->other += count;
    }
}

static int lat_push(struct worker *w, uint64_t ns)
{
    if (w->nlat == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 256;
        if (cap < w->cap || cap > SIZE_MAX / sizeof *w->lat)
            return -1;
        uint64_t *p = realloc(w->lat, cap * sizeof *p);
        if (!p)
            return -1;
        w->lat = p;
        w->cap = cap;
    }
    w->lat[w->nlat++] = ns;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted[0..n), n > 0, in ms. */
static double percentile_ms(const uint64_t *sorted, size_t n, unsigned p)
{
    uint64_t rank = ((uint64_t)p * n + 99) / 100;
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (double)sorted[rank - 1] / 1e6;
}

/* ------------------------------------------------------------ one task */

/* Runs one Execute to its end. true if OK; else the error kind in kind. */
static bool run_execute(struct rpc_channel *ch, const struct config *cfg, char *kind, size_t kindlen)
{
    Airlock__V1__ExecuteRequest req = AIRLOCK__V1__EXECUTE_REQUEST__INIT;
    req.runtime = (char *)cfg->runtime;
    req.code.data = (uint8_t *)cfg->code;
    req.code.len = strlen(cfg->code);
    req.timeout_ms = (uint32_t)cfg->timeout_ms;
    long deadline = (cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_DEADLINE_MS) + GRACE_MS;

    struct rpc_stream *st = rpc_stream_start(ch, METHOD_EXECUTE, &req.base, (int)deadline);
    if (!st) {
        snprintf(kind, kindlen, "start_failed");
        return false;
    }
    bool finished = false;
    int reason = 0;
    ProtobufCMessage *m = NULL;
    while (rpc_stream_next(st, &airlock__v1__execute_event__descriptor, &m) == 1) {
        const Airlock__V1__ExecuteEvent *ev = (const Airlock__V1__ExecuteEvent *)m;
        if (ev->event_case == AIRLOCK__V1__EXECUTE_EVENT__EVENT_FINISHED && ev->finished) {
            finished = true;
            reason = (int)ev->finished->reason;
        }
        protobuf_c_message_free_unpacked(m, NULL);
        m = NULL;
    }
    struct rpc_status status = {.code = GRPC_STATUS_UNKNOWN};
    grpc_status_code code = rpc_stream_finish(st, &status);
    if (code != GRPC_STATUS_OK) {
        snprintf(kind, kindlen, "%s", rpc_status_name(code));
        return false;
    }
    if (!finished) {
        snprintf(kind, kindlen, "no_finished");
        return false;
    }
    if (reason != AIRLOCK__V1__FINISHED__REASON__OK) {
        snprintf(kind, kindlen, "reason:%d", reason);
        return false;
    }
    return true;
}

/* One Mint, as the broker asks for a task's token. true if a token came back. */
static bool run_mint(struct worker *w, char *kind, size_t kindlen)
{
    const struct config *cfg = w->sh->cfg;
    char task_id[64];
    snprintf(task_id, sizeof task_id, "loadgen-%d-%lu", w->index, w->calls++);
    Airlock__V1__MintRequest req = AIRLOCK__V1__MINT_REQUEST__INIT;
    req.subject = MINT_SUBJECT;
    req.task_id = task_id;
    req.ttl_seconds = MINT_TTL_S;
    req.code_sha256 = (char *)cfg->code_sha256;

    struct rpc_status status;
    ProtobufCMessage *m = NULL;
    grpc_status_code code = rpc_unary(w->ch, METHOD_MINT, &req.base,
                                      &airlock__v1__mint_response__descriptor, &m,
                                      MINT_DEADLINE_MS, &status);
    if (code != GRPC_STATUS_OK) {
        snprintf(kind, kindlen, "%s", rpc_status_name(code));
        return false;
    }
    const Airlock__V1__MintResponse *resp = (const Airlock__V1__MintResponse *)m;
    bool ok = resp->token && resp->token[0];
    protobuf_c_message_free_unpacked(m, NULL);
    if (!ok)
        snprintf(kind, kindlen, "no_token");
    return ok;
}

static bool run_task(struct worker *w, char *kind, size_t kindlen)
{
    return w->sh->cfg->mint ? run_mint(w, kind, kindlen)
                            : run_execute(w->ch, w->sh->cfg, kind, kindlen);
}

/* ------------------------------------------------------------ threads */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct shared *sh = w->sh;
    const struct config *cfg = sh->cfg;
    char kind[KIND_LEN];

    /* Warm-up: shared count, results ignored. */
    while (atomic_fetch_add(&sh->warmup_next, 1) < cfg->warmup) {
        bool ok = run_task(w, kind, sizeof kind);
        (void)ok; /* warm-up tasks are not measured, failed or not */
    }

    check_pthread(pthread_mutex_lock(&sh->mu), "pthread_mutex_lock");
    sh->ready++;
    check_pthread(pthread_cond_broadcast(&sh->cv), "pthread_cond_broadcast");
    while (!sh->go)
        check_pthread(pthread_cond_wait(&sh->cv, &sh->mu), "pthread_cond_wait");
    bool stop = sh->abort;
    uint64_t deadline = sh->deadline_ns;
    check_pthread(pthread_mutex_unlock(&sh->mu), "pthread_mutex_unlock");
    if (stop)
        return NULL;

    for (;;) {
        if (cfg->count > 0) {
            if (atomic_fetch_add(&sh->count_next, 1) >= cfg->count)
                break;
        } else if (now_ns() >= deadline) {
            break;
        }
        uint64_t t0 = now_ns();
        bool ok = run_task(w, kind, sizeof kind);
        uint64_t t1 = now_ns();
        if (lat_push(w, t1 - t0) != 0) {
            w->oom = true;
            break;
        }
        if (!ok) {
            w->errors++;
            kinds_add(&w->kinds, kind, 1);
        }
        if (cfg->think_ms > 0) {
            struct timespec pause = {cfg->think_ms / 1000, (cfg->think_ms % 1000) * 1000000L};
            while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {
            }
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ channels */

/* unix: gets a plain local channel; host:port gets mutual TLS with our SVID,
 * accepting any server in our own SVID's trust domain (the TLS glue needs a
 * trust domain or an expected server ID; NULL for both is refused). */
static struct rpc_channel *open_channel(const struct config *cfg, char *err, size_t errlen)
{
    if (strncmp(cfg->target, "unix:", 5) == 0) {
        struct rpc_channel *ch = rpc_channel_new(cfg->target);
        if (!ch)
            snprintf(err, errlen, "cannot open a channel to '%s'", cfg->target);
        return ch;
    }
    char own_id[TLS_SPIFFE_ID_MAX], domain[256];
    if (tls_spiffe_id_of_cert_file(cfg->cert, own_id, sizeof own_id, err, errlen) != 0)
        return NULL;
    const char *td = own_id + strlen("spiffe://");
    size_t tdlen = strcspn(td, "/");
    if (tdlen == 0 || tdlen >= sizeof domain) {
        snprintf(err, errlen, "cannot take a trust domain from '%.200s'", own_id);
        return NULL;
    }
    memcpy(domain, td, tdlen);
    domain[tdlen] = '\0';
    const struct tls_files files = {cfg->cert, cfg->key, cfg->ca};
    return rpc_channel_new_tls(cfg->target, &files, NULL, domain, err, errlen);
}

/* ------------------------------------------------------------ report */

struct results {
    unsigned long tasks, errors;
    struct kinds kinds;
    double elapsed_s;
    const uint64_t *sorted;
    size_t n;
};

static double round3(double x)
{
    return round(x * 1000.0) / 1000.0;
}

/* Sets key to a number rounded to 3 places, or null when there is none. */
static int set_ms(json_t *o, const char *key, bool have, double v)
{
    return json_object_set_new(o, key, have ? json_real(round3(v)) : json_null());
}

static int report_json(const struct config *cfg, const struct results *r)
{
    int rc = -1;
    char *s = NULL;
    json_t *o = json_object(), *kinds = json_object();
    if (!o || !kinds)
        goto out;
    for (size_t i = 0; i < r->kinds.n; i++)
        if (json_object_set_new(kinds, r->kinds.k[i].name,
                                json_integer((json_int_t)r->kinds.k[i].count)) != 0)
            goto out;
    if (r->kinds.other &&
        json_object_set_new(kinds, "other", json_integer((json_int_t)r->kinds.other)) != 0)
        goto out;
    bool have = r->n > 0;
    double tps = r->elapsed_s > 0 ? (double)r->tasks / r->elapsed_s : 0;
    if (json_object_set_new(o, "tasks", json_integer((json_int_t)r->tasks)) != 0 ||
        json_object_set_new(o, "errors", json_integer((json_int_t)r->errors)) != 0 ||
        json_object_set(o, "error_kinds", kinds) != 0 ||
        json_object_set_new(o, "elapsed_s", json_real(round3(r->elapsed_s))) != 0 ||
        json_object_set_new(o, "tasks_per_s", json_real(round3(tps))) != 0 ||
        set_ms(o, "p50_ms", have, have ? percentile_ms(r->sorted, r->n, 50) : 0) != 0 ||
        set_ms(o, "p90_ms", have, have ? percentile_ms(r->sorted, r->n, 90) : 0) != 0 ||
        set_ms(o, "p99_ms", have, have ? percentile_ms(r->sorted, r->n, 99) : 0) != 0 ||
        set_ms(o, "max_ms", have, have ? (double)r->sorted[r->n - 1] / 1e6 : 0) != 0 ||
        json_object_set_new(o, "concurrency", json_integer(cfg->concurrency)) != 0 ||
        json_object_set_new(o, "mode", json_string(cfg->mint ? "mint" : "execute")) != 0 ||
        json_object_set_new(o, "runtime", cfg->mint ? json_null() : json_string(cfg->runtime)) != 0)
        goto out;
    s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
    if (!s)
        goto out;
    if (printf("%s\n", s) < 0)
        goto out;
    rc = 0;
out:
    free(s);
    json_decref(kinds);
    json_decref(o);
    return rc;
}

static int report_human(const struct config *cfg, const struct results *r)
{
    double tps = r->elapsed_s > 0 ? (double)r->tasks / r->elapsed_s : 0;
    const char *unit = cfg->mint ? "tokens" : "tasks";
    if (printf("%-10s %lu (%lu errors), concurrency %d, %s %s\n", unit, r->tasks, r->errors,
               cfg->concurrency, cfg->mint ? "method" : "runtime",
               cfg->mint ? METHOD_MINT : cfg->runtime) < 0 ||
        printf("elapsed    %.3f s, %.2f %s/s\n", r->elapsed_s, tps, unit) < 0)
        return -1;
    if (r->n > 0) {
        if (printf("latency ms p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
                   percentile_ms(r->sorted, r->n, 50), percentile_ms(r->sorted, r->n, 90),
                   percentile_ms(r->sorted, r->n, 99), (double)r->sorted[r->n - 1] / 1e6) < 0)
            return -1;
    } else if (printf("latency ms -\n") < 0) {
        return -1;
    }
    if (r->errors) {
        if (printf("errors    ") < 0)
            return -1;
        for (size_t i = 0; i < r->kinds.n; i++)
            if (printf(" %s %lu", r->kinds.k[i].name, r->kinds.k[i].count) < 0)
                return -1;
        if (r->kinds.other && printf(" other %lu", r->kinds.other) < 0)
            return -1;
        if (printf("\n") < 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ run */

static int run(const struct config *cfg)
{
    int rc = 1;
    int created = 0;
    bool sync_ready = false;
    uint64_t *all = NULL;
    struct shared sh = {.cfg = cfg};
    atomic_init(&sh.warmup_next, 0);
    atomic_init(&sh.count_next, 0);

    struct worker *ws = calloc((size_t)cfg->concurrency, sizeof *ws);
    if (!ws) {
        fprintf(stderr, "airlock-loadgen: out of memory\n");
        return 1;
    }
    for (int i = 0; i < cfg->concurrency; i++) {
        char err[512] = "";
        ws[i].sh = &sh;
        ws[i].index = i;
        ws[i].ch = open_channel(cfg, err, sizeof err);
        if (!ws[i].ch) {
            fprintf(stderr, "airlock-loadgen: %s\n", err[0] ? err : "cannot open a channel");
            goto out;
        }
    }
    int r = pthread_mutex_init(&sh.mu, NULL);
    if (r != 0) {
        fprintf(stderr, "airlock-loadgen: pthread_mutex_init: %s\n", strerror(r));
        goto out;
    }
    r = pthread_cond_init(&sh.cv, NULL);
    if (r != 0) {
        fprintf(stderr, "airlock-loadgen: pthread_cond_init: %s\n", strerror(r));
        check_pthread(pthread_mutex_destroy(&sh.mu), "pthread_mutex_destroy");
        goto out;
    }
    sync_ready = true;

    bool failed = false;
    for (; created < cfg->concurrency; created++) {
        r = pthread_create(&ws[created].tid, NULL, worker_main, &ws[created]);
        if (r != 0) {
            fprintf(stderr, "airlock-loadgen: pthread_create: %s\n", strerror(r));
            failed = true;
            break;
        }
    }

    /* Wait for every thread to finish its warm-up, then start the clock. */
    check_pthread(pthread_mutex_lock(&sh.mu), "pthread_mutex_lock");
    while (!failed && sh.ready < created)
        check_pthread(pthread_cond_wait(&sh.cv, &sh.mu), "pthread_cond_wait");
    uint64_t start = now_ns();
    sh.deadline_ns = start + (uint64_t)(cfg->duration * 1e9);
    sh.abort = failed;
    sh.go = true;
    check_pthread(pthread_cond_broadcast(&sh.cv), "pthread_cond_broadcast");
    check_pthread(pthread_mutex_unlock(&sh.mu), "pthread_mutex_unlock");

    for (int i = 0; i < created; i++) {
        r = pthread_join(ws[i].tid, NULL);
        if (r != 0) {
            fprintf(stderr, "airlock-loadgen: pthread_join: %s\n", strerror(r));
            abort(); /* a worker may still use the state we would free */
        }
    }
    uint64_t end = now_ns();
    if (failed)
        goto out;

    struct results res = {.elapsed_s = (double)(end - start) / 1e9};
    size_t total = 0;
    for (int i = 0; i < cfg->concurrency; i++) {
        if (ws[i].oom) {
            fprintf(stderr, "airlock-loadgen: out of memory recording latencies\n");
            goto out;
        }
        total += ws[i].nlat;
    }
    if (total > 0) {
        all = malloc(total * sizeof *all);
        if (!all) {
            fprintf(stderr, "airlock-loadgen: out of memory\n");
            goto out;
        }
    }
    for (int i = 0; i < cfg->concurrency; i++) {
        if (ws[i].nlat)
            memcpy(all + res.n, ws[i].lat, ws[i].nlat * sizeof *all);
        res.n += ws[i].nlat;
        res.errors += ws[i].errors;
        for (size_t k = 0; k < ws[i].kinds.n; k++)
            kinds_add(&res.kinds, ws[i].kinds.k[k].name, ws[i].kinds.k[k].count);
        res.kinds.other += ws[i].kinds.other;
    }
    if (res.n > 1)
        qsort(all, res.n, sizeof *all, cmp_u64);
    res.tasks = (unsigned long)res.n;
    res.sorted = all;

    int pr = cfg->json ? report_json(cfg, &res) : report_human(cfg, &res);
    if (pr != 0 || fflush(stdout) != 0) {
        fprintf(stderr, "airlock-loadgen: cannot write the report\n");
        goto out;
    }
    rc = res.errors == 0 ? 0 : 1;
out:
    if (sync_ready) {
        check_pthread(pthread_cond_destroy(&sh.cv), "pthread_cond_destroy");
        check_pthread(pthread_mutex_destroy(&sh.mu), "pthread_mutex_destroy");
    }
    for (int i = 0; i < cfg->concurrency; i++) {
        if (ws[i].ch)
            rpc_channel_free(ws[i].ch);
        free(ws[i].lat);
    }
    free(ws);
    free(all);
    return rc;
}

/* ------------------------------------------------------------ arguments */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: airlock-loadgen [--broker ADDR] [--concurrency N] (--count N | --duration SECS)\n"
            "                       [--runtime sh|python3] [-c CODE] [--timeout-ms N] [--warmup N]\n"
            "                       [--think-ms N]\n"
            "                       [--json] [--cert F --key F --ca F]\n"
            "       airlock-loadgen --mint [--credd ADDR] [--concurrency N] (--count N | --duration SECS)\n"
            "                       [-c CODE] [--warmup N] [--json] [--cert F --key F --ca F]\n"
            "  --broker       unix:PATH, or host:port with --cert/--key/--ca\n"
            "                 (default: $AIRLOCK_BROKER, else " DEFAULT_BROKER ")\n"
            "  --mint         call Credentials.Mint on credd instead (credd must take us\n"
            "                 for the broker: --broker-exe this binary, or --broker-id)\n"
            "  --credd        with --mint: unix:PATH or host:port\n"
            "                 (default: $AIRLOCK_CREDD, else " DEFAULT_CREDD ")\n"
            "  --concurrency  threads, each with its own channel (default 1)\n"
            "  --count        tasks in all, shared by the threads (default %d)\n"
            "  --duration     seconds during which new tasks are started\n"
            "  --runtime      sh (default) or python3;  -c, --code  program (default \"true\";\n"
            "                 with --mint, only its SHA-256 goes into the tokens)\n"
            "  --timeout-ms   per-task wall-clock limit (default: the broker's)\n"
            "  --warmup       tasks run first, not measured (default 0)\n"
            "  --think-ms     pause after each task, not timed (an agent between calls)\n"
            "  --json         one JSON object line instead of the text report\n",
            DEFAULT_COUNT);
}

static int parse_long(const char *opt, const char *s, long min, long max, long *out)
{
    uint64_t v;
    if (parse_u64_range(s, (uint64_t)min, (uint64_t)max, &v) != 0) {
        fprintf(stderr, "airlock-loadgen: %s: expected an integer in [%ld, %ld], got '%s'\n", opt,
                min, max, s);
        return -1;
    }
    *out = (long)v;
    return 0;
}

/* 0 to run, EXIT_USAGE on a bad command line, -1 after --help. */
static int parse_args(int argc, char **argv, struct config *cfg)
{
    enum { O_BROKER = 256, O_CONC, O_COUNT, O_DUR, O_RUNTIME, O_TIMEOUT, O_WARMUP, O_JSON,
           O_CERT, O_KEY, O_CA, O_MINT, O_CREDD, O_THINK };
    static const struct option opts[] = {
        {"broker", required_argument, NULL, O_BROKER},
        {"mint", no_argument, NULL, O_MINT},
        {"credd", required_argument, NULL, O_CREDD},
        {"concurrency", required_argument, NULL, O_CONC},
        {"count", required_argument, NULL, O_COUNT},
        {"duration", required_argument, NULL, O_DUR},
        {"runtime", required_argument, NULL, O_RUNTIME},
        {"code", required_argument, NULL, 'c'},
        {"timeout-ms", required_argument, NULL, O_TIMEOUT},
        {"warmup", required_argument, NULL, O_WARMUP},
        {"think-ms", required_argument, NULL, O_THINK},
        {"json", no_argument, NULL, O_JSON},
        {"cert", required_argument, NULL, O_CERT},
        {"key", required_argument, NULL, O_KEY},
        {"ca", required_argument, NULL, O_CA},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *env = getenv("AIRLOCK_BROKER"), *credd_env = getenv("AIRLOCK_CREDD");
    const char *broker = env && *env ? env : DEFAULT_BROKER;
    const char *credd = credd_env && *credd_env ? credd_env : DEFAULT_CREDD;
    *cfg = (struct config){
        .runtime = "sh",
        .code = "true",
        .concurrency = 1,
    };
    bool have_count = false, have_duration = false;
    long v;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case O_BROKER:
            broker = optarg;
            break;
        case O_MINT:
            cfg->mint = true;
            break;
        case O_CREDD:
            credd = optarg;
            break;
        case O_CONC:
            if (parse_long("--concurrency", optarg, 1, MAX_CONCURRENCY, &v) != 0)
                return EXIT_USAGE;
            cfg->concurrency = (int)v;
            break;
        case O_COUNT:
            if (parse_long("--count", optarg, 1, LONG_MAX / 2, &v) != 0)
                return EXIT_USAGE;
            cfg->count = v;
            have_count = true;
            break;
        case O_DUR: {
            char *end;
            errno = 0;
            double d = strtod(optarg, &end);
            if (errno || end == optarg || *end || !isfinite(d) || d <= 0 || d > MAX_DURATION_S) {
                fprintf(stderr, "airlock-loadgen: --duration: expected seconds in (0, %.0f], got '%s'\n",
                        MAX_DURATION_S, optarg);
                return EXIT_USAGE;
            }
            cfg->duration = d;
            have_duration = true;
            break;
        }
        case O_RUNTIME:
            if (strcmp(optarg, "sh") != 0 && strcmp(optarg, "python3") != 0) {
                fprintf(stderr, "airlock-loadgen: --runtime: sh or python3, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            cfg->runtime = optarg;
            break;
        case 'c':
            cfg->code = optarg;
            break;
        case O_TIMEOUT:
            if (parse_long("--timeout-ms", optarg, 0, MAX_TIMEOUT_MS, &v) != 0)
                return EXIT_USAGE;
            cfg->timeout_ms = v;
            break;
        case O_WARMUP:
            if (parse_long("--warmup", optarg, 0, LONG_MAX / 2, &v) != 0)
                return EXIT_USAGE;
            cfg->warmup = v;
            break;
        case O_THINK:
            if (parse_long("--think-ms", optarg, 0, 3600000, &v) != 0)
                return EXIT_USAGE;
            cfg->think_ms = v;
            break;
        case O_JSON:
            cfg->json = true;
            break;
        case O_CERT:
            cfg->cert = optarg;
            break;
        case O_KEY:
            cfg->key = optarg;
            break;
        case O_CA:
            cfg->ca = optarg;
            break;
        case 'h':
            usage(stdout);
            return -1;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "airlock-loadgen: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (have_count && have_duration) {
        fprintf(stderr, "airlock-loadgen: --count and --duration exclude each other\n");
        return EXIT_USAGE;
    }
    if (!have_count && !have_duration)
        cfg->count = DEFAULT_COUNT;
    cfg->target = cfg->mint ? credd : broker;
    if (strncmp(cfg->target, "unix:", 5) != 0 && (!cfg->cert || !cfg->key || !cfg->ca)) {
        fprintf(stderr,
                "airlock-loadgen: '%s' is a TCP address: it needs mutual TLS (--cert, --key, --ca)\n",
                cfg->target);
        return EXIT_USAGE;
    }
    sha256_hex(cfg->code, strlen(cfg->code), cfg->code_sha256);
    return 0;
}

int main(int argc, char **argv)
{
    struct config cfg;
    int rc = parse_args(argc, argv, &cfg);
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        perror("airlock-loadgen: signal");
        return 1;
    }
    grpc_init();
    rc = run(&cfg);
    grpc_shutdown();
    return rc;
}

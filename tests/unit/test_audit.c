/*
 * test_audit.c - cmocka tests for the audit chain (lib/audit.c,
 * audit_verify.c, audit_query.c): opening, appending and reopening, the
 * record layout, group-committed durable appends from many threads, signed
 * checkpoints, each kind of tampering the verifier must name, torn-tail
 * recovery, a failed write leaving the chain intact, the stream mirror and
 * the query filters. Every test works in its own directory under /tmp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "util.h"

/* ---- fixture: a fresh directory ---- */

struct fx {
    char dir[64];
    char path[128]; /* dir/audit.jsonl */
};

static int dir_setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/audit-test-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/audit.jsonl", f->dir);
    *state = f;
    return 0;
}

static int dir_teardown(void **state)
{
    struct fx *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    int rc = rmdir(f->dir);
    free(f);
    return rc;
}

/* ---- helpers ---- */

static void assert_has(const char *text, const char *want)
{
    if (!strstr(text, want))
        fail_msg("\"%s\" does not contain \"%s\"", text, want);
}

static struct audit_log *open_log(const char *path, bool no_fsync, const char *stream)
{
    struct audit_options o = {.path = path, .daemon = "broker",
                              .identity = "spiffe://test.example/broker", .version = "0.1.0",
                              .stream_path = stream, .no_fsync = no_fsync};
    char err[512] = "";
    struct audit_log *log = audit_open(&o, err, sizeof err);
    if (!log)
        fail_msg("audit_open %s: %s", path, err);
    return log;
}

/* Appends kind with fields (a json_pack format and its arguments). */
static uint64_t add(struct audit_log *log, const char *kind, json_t *fields)
{
    char err[512] = "";
    uint64_t seq = 0;
    if (audit_append(log, kind, fields, false, &seq, err, sizeof err) != 0)
        fail_msg("audit_append %s: %s", kind, err);
    return seq;
}

struct lines {
    char **l; /* each without its '\n' */
    size_t n;
    bool last_nl; /* the file ended with '\n' */
};

static void lines_free(struct lines *ls)
{
    for (size_t i = 0; i < ls->n; i++)
        free(ls->l[i]);
    free(ls->l);
    ls->l = NULL;
    ls->n = 0;
}

static struct lines read_lines(const char *path)
{
    struct lines ls = {0};
    FILE *fp = fopen(path, "r");
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    assert_non_null(fp);
    ls.last_nl = true;
    while ((n = getline(&buf, &cap, fp)) > 0) {
        ls.l = realloc(ls.l, (ls.n + 1) * sizeof *ls.l);
        assert_non_null(ls.l);
        ls.last_nl = buf[n - 1] == '\n';
        if (ls.last_nl)
            buf[n - 1] = '\0';
        ls.l[ls.n++] = strdup(buf);
    }
    free(buf);
    fclose(fp);
    return ls;
}

/* Writes lines[0..n) back, each with '\n' (the last one only if nl). */
static void write_lines(const char *path, char *const *l, size_t n, bool nl)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (size_t i = 0; i < n; i++)
        fprintf(fp, "%s%s", l[i], i + 1 < n || nl ? "\n" : "");
    assert_int_equal(fclose(fp), 0);
}

static json_t *parse(const char *line)
{
    json_t *j = json_loads(line, 0, NULL);
    if (!j)
        fail_msg("not JSON: %s", line);
    return j;
}

static const char *kind_of(const json_t *rec)
{
    return json_string_value(json_object_get(rec, "kind"));
}

/* The line's "prev" replaced with hash (an attacker relinking the chain). */
static void set_prev(char *line, const char *hash)
{
    char *p = strstr(line, "\"prev\":\"");
    assert_non_null(p);
    memcpy(p + 8, hash, 64);
}

/* Replaces the first occurrence of from in line by to (same length). */
static void patch(char *line, const char *from, const char *to)
{
    char *p = strstr(line, from);
    if (!p)
        fail_msg("\"%s\" not in %s", from, line);
    assert_int_equal(strlen(from), strlen(to));
    memcpy(p, to, strlen(to));
}

static struct audit_verify_result verify(const char *path, const struct audit_keys *keys,
                                         uint64_t expect_seq, const char *expect_hash)
{
    struct audit_verify_result r;
    if (audit_verify_file(path, keys, expect_seq, expect_hash, &r) != 0)
        fail_msg("audit_verify_file %s: %s", path, r.message);
    return r;
}

static void assert_verifies(const char *path, const struct audit_keys *keys)
{
    struct audit_verify_result r = verify(path, keys, 0, NULL);
    if (r.problem != AUDIT_OK)
        fail_msg("%s: %s", audit_problem_name(r.problem), r.message);
}

/* A problem was found: which, where, and what the message says. */
static void assert_problem(const struct audit_verify_result *r, enum audit_problem p,
                           uint64_t bad_seq, uint64_t bad_line, const char *want)
{
    if (r->problem != p)
        fail_msg("got %s, want %s: %s", audit_problem_name(r->problem), audit_problem_name(p),
                 r->message);
    assert_int_equal(r->bad_seq, bad_seq);
    assert_int_equal(r->bad_line, bad_line);
    assert_has(r->message, want);
}

/* ---- a checkpoint signer over a libsodium key pair ---- */

struct signer {
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
    unsigned char sk[crypto_sign_SECRETKEYBYTES];
    const char *kid;
    int calls;
    bool fail;
};

static void signer_init(struct signer *s, const char *kid)
{
    memset(s, 0, sizeof *s);
    assert_int_equal(crypto_sign_keypair(s->pk, s->sk), 0);
    s->kid = kid;
}

static int test_sign(void *ctx, const struct audit_checkpoint_claim *claim, char kid[64],
                     char sig[128], char signer[256], char *err, size_t errlen)
{
    struct signer *s = ctx;
    unsigned char raw[crypto_sign_BYTES];
    s->calls++;
    if (s->fail)
        return err_set(err, errlen, "signer is down");
    if (crypto_sign_detached(raw, NULL, (const unsigned char *)claim->message, claim->len,
                             s->sk) != 0)
        return err_set(err, errlen, "crypto_sign_detached failed");
    sodium_bin2base64(sig, 128, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(kid, 64, "%s", s->kid);
    snprintf(signer, 256, "spiffe://test.example/credd");
    return 0;
}

/* A JWKS holding the signers' public keys, and an RSA key to skip. */
static char *jwks_of(const struct signer *const *s, size_t n)
{
    json_t *keys = json_array();
    json_array_append_new(keys, json_pack("{s:s,s:s,s:s,s:s}", "kty", "RSA", "kid", "rsa-1", "n",
                                          "AQAB", "e", "AQAB"));
    for (size_t i = 0; i < n; i++) {
        char x[64];
        sodium_bin2base64(x, sizeof x, s[i]->pk, sizeof s[i]->pk,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        json_array_append_new(keys, json_pack("{s:s,s:s,s:s,s:s,s:s}", "kty", "OKP", "crv",
                                              "Ed25519", "x", x, "kid", s[i]->kid, "use", "sig"));
    }
    json_t *doc = json_pack("{s:o}", "keys", keys);
    char *out = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    assert_non_null(out);
    return out;
}

static struct audit_keys *keys_of(const struct signer *s)
{
    char err[256] = "";
    char *jwks = jwks_of(&s, 1);
    struct audit_keys *k = audit_keys_from_jwks(jwks, err, sizeof err);
    free(jwks);
    if (!k)
        fail_msg("audit_keys_from_jwks: %s", err);
    return k;
}

/* The standard chain the tamper tests start from, closed with a signer:
 *   1 chain.start  2 daemon.start  3..12 execute  13 daemon.stop
 *   14 checkpoint covering 13 */
static void standard_chain(const char *path, struct signer *s)
{
    struct audit_log *log = open_log(path, true, NULL);
    for (int i = 0; i < 10; i++)
        add(log, "execute", json_pack("{s:s,s:s}", "task_id", "task", "note", "hello"));
    audit_close(log, test_sign, s);
}

/* The tampering tests' fixture: the directory's, plus a standard chain
 * signed under "test-kid" in it and the keys that verify it. */
struct tamper {
    struct fx *f;
    struct signer s;
    struct audit_keys *keys;
};

static int tamper_setup(void **state)
{
    if (dir_setup(state) != 0)
        return -1;
    struct tamper *t = calloc(1, sizeof *t);
    if (!t) {
        dir_teardown(state);
        return -1;
    }
    t->f = *state;
    signer_init(&t->s, "test-kid");
    standard_chain(t->f->path, &t->s);
    t->keys = keys_of(&t->s);
    *state = t;
    return 0;
}

static int tamper_teardown(void **state)
{
    struct tamper *t = *state;
    audit_keys_free(t->keys);
    *state = t->f;
    free(t);
    return dir_teardown(state);
}

/* Writes l[0..n) over the chain and verifies it without a daemon's head. */
static struct audit_verify_result rewrite(const struct tamper *t, char *const *l, size_t n)
{
    write_lines(t->f->path, l, n, true);
    return verify(t->f->path, t->keys, 0, NULL);
}

/* ---- opening, appending, reopening ---- */

static void test_open_append_reopen(void **state)
{
    struct fx *f = *state;
    char chain[AUDIT_CHAIN_ID_MAX], chain2[AUDIT_CHAIN_ID_MAX], hash[AUDIT_HASH_HEX];
    char err[512] = "";
    uint64_t seq;
    struct stat st;

    struct audit_log *log = open_log(f->path, false, NULL);
    assert_string_equal(audit_path(log), f->path);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    audit_head(log, &seq, hash, chain);
    assert_int_equal(seq, 2); /* chain.start, daemon.start */
    assert_int_equal(strlen(chain), 32);
    assert_int_equal(strlen(hash), 64);

    /* One writer per file. */
    struct audit_options o = {.path = f->path, .no_fsync = true};
    assert_null(audit_open(&o, err, sizeof err));
    assert_has(err, "in use by another process");

    assert_int_equal(add(log, "execute", json_pack("{s:s}", "task_id", "t1")), 3);
    audit_close(log, NULL, NULL); /* daemon.stop, 4 */

    log = open_log(f->path, false, NULL); /* daemon.start, 5 */
    audit_head(log, &seq, hash, chain2);
    assert_int_equal(seq, 5);
    assert_string_equal(chain2, chain);
    assert_int_equal(add(log, "execute", NULL), 6);
    audit_close(log, NULL, NULL); /* daemon.stop, 7 */

    struct lines ls = read_lines(f->path);
    static const char *const kinds[] = {"chain.start", "daemon.start", "execute", "daemon.stop",
                                        "daemon.start", "execute", "daemon.stop"};
    assert_int_equal(ls.n, 7);
    char prev[AUDIT_HASH_HEX] = "0000000000000000000000000000000000000000000000000000000000000000";
    for (size_t i = 0; i < ls.n; i++) {
        json_t *rec = parse(ls.l[i]);
        assert_int_equal(json_integer_value(json_object_get(rec, "seq")), i + 1);
        assert_string_equal(kind_of(rec), kinds[i]);
        assert_string_equal(json_string_value(json_object_get(rec, "chain")), chain);
        assert_string_equal(json_string_value(json_object_get(rec, "prev")), prev);
        sha256_hex(ls.l[i], strlen(ls.l[i]), prev);
        if (i == 0) {
            char host[256] = "";
            gethostname(host, sizeof host);
            assert_string_equal(json_string_value(json_object_get(rec, "daemon")), "broker");
            assert_string_equal(json_string_value(json_object_get(rec, "identity")),
                                "spiffe://test.example/broker");
            assert_string_equal(json_string_value(json_object_get(rec, "version")), "0.1.0");
            assert_string_equal(json_string_value(json_object_get(rec, "host")), host);
        }
        if (i == 1 || i == 4)
            assert_int_equal(json_integer_value(json_object_get(rec, "pid")), getpid());
        json_decref(rec);
    }
    lines_free(&ls);

    struct audit_verify_result r = verify(f->path, NULL, 7, prev);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_int_equal(r.records, 7);
    assert_int_equal(r.head_seq, 7);
    assert_string_equal(r.head_hash, prev);
    assert_string_equal(r.chain, chain);
    assert_int_equal(r.checkpoints, 0);
    assert_int_equal(r.unsigned_records, 7);
}

static void test_record_layout(void **state)
{
    struct fx *f = *state;
    static const char *const reserved[] = {"v", "seq", "ts", "time", "chain", "kind", "prev"};
    char err[512], hash[AUDIT_HASH_HEX], hash2[AUDIT_HASH_HEX];
    uint64_t seq, seq2;

    struct audit_log *log = open_log(f->path, true, NULL);
    add(log, "execute",
        json_pack("{s:i,s:s,s:{s:i,s:i}}", "zeta", 1, "alpha", "caf\xc3\xa9 \"q\"", "nested", "b",
                  1, "a", 2));

    /* Refusals append nothing. */
    audit_head(log, &seq, hash, NULL);
    for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++) {
        err[0] = '\0';
        json_t *fields = json_pack("{s:s,s:i}", "ok", "x", reserved[i], 1);
        assert_int_equal(audit_append(log, "execute", fields, false, NULL, err, sizeof err), -1);
        assert_has(err, reserved[i]);
        assert_has(err, "reserved");
    }
    assert_int_equal(audit_append(log, "execute", json_array(), false, NULL, err, sizeof err), -1);
    assert_int_equal(audit_append(log, "checkpoint", json_object(), false, NULL, err, sizeof err),
                     -1);
    assert_int_equal(audit_append(log, "bad kind", json_object(), false, NULL, err, sizeof err),
                     -1);
    char *huge = malloc(AUDIT_MAX_LINE + 1);
    assert_non_null(huge);
    memset(huge, 'x', AUDIT_MAX_LINE);
    huge[AUDIT_MAX_LINE] = '\0';
    assert_int_equal(
        audit_append(log, "execute", json_pack("{s:s}", "blob", huge), true, NULL, err, sizeof err),
        -1);
    assert_has(err, "limit");
    free(huge);
    audit_head(log, &seq2, hash2, NULL);
    assert_int_equal(seq2, seq);
    assert_string_equal(hash2, hash);
    audit_close(log, NULL, NULL);

    struct lines ls = read_lines(f->path);
    assert_int_equal(ls.n, 4);
    const char *line = ls.l[2];
    for (const char *p = line; *p; p++)
        assert_true(*p >= ' ' && *p <= '~'); /* pure ASCII */
    assert_has(line, "\"alpha\":\"caf\\u00E9 \\\"q\\\"\"");
    assert_has(line, "\"nested\":{\"b\":1,\"a\":2},\"prev\":\"");
    assert_int_equal(strncmp(line, "{\"v\":1,\"seq\":3,\"ts\":", 20), 0);

    json_t *rec = parse(line);
    static const char *const order[] = {"v", "seq", "ts", "time", "chain", "kind",
                                        "zeta", "alpha", "nested", "prev"};
    const char *key;
    json_t *value;
    size_t i = 0;
    json_object_foreach(rec, key, value) {
        assert_true(i < sizeof order / sizeof *order);
        assert_string_equal(key, order[i++]);
    }
    assert_int_equal(i, sizeof order / sizeof *order);

    /* time is ts in RFC 3339 UTC with milliseconds. */
    int64_t ts = json_integer_value(json_object_get(rec, "ts"));
    const char *t = json_string_value(json_object_get(rec, "time"));
    struct tm tm = {0};
    int ms = -1;
    assert_int_equal(strlen(t), 24);
    assert_non_null(strptime(t, "%Y-%m-%dT%H:%M:%S", &tm));
    assert_int_equal(sscanf(t + 19, ".%3dZ", &ms), 1);
    assert_int_equal((int64_t)timegm(&tm) * 1000 + ms, ts);
    assert_true(llabs(ts / 1000 - unix_seconds()) < 60);
    json_decref(rec);
    lines_free(&ls);
    assert_verifies(f->path, NULL);
}

/* ---- durable appends from many threads ---- */

#define THREADS 8
#define PER_THREAD 200

struct worker {
    struct audit_log *log;
    int id;
    uint64_t seqs[PER_THREAD];
    int failures;
    char err[512];
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        json_t *f = json_pack("{s:i,s:i}", "thread", w->id, "i", i);
        if (audit_append(w->log, "execute", f, true, &w->seqs[i], w->err, sizeof w->err) != 0)
            w->failures++;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_concurrent_durable_appends(void **state)
{
    struct fx *f = *state;
    struct worker w[THREADS];
    pthread_t t[THREADS];
    uint64_t *all = malloc(sizeof(uint64_t) * THREADS * PER_THREAD);
    assert_non_null(all);

    struct audit_log *log = open_log(f->path, false, NULL); /* real fdatasync */
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].log = log;
        w[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        if (w[i].failures)
            fail_msg("thread %d: %d failures: %s", i, w[i].failures, w[i].err);
        memcpy(all + i * PER_THREAD, w[i].seqs, sizeof w[i].seqs);
    }
    /* Every append got its own seq: 3 .. 2 + THREADS * PER_THREAD. */
    qsort(all, THREADS * PER_THREAD, sizeof *all, cmp_u64);
    for (int i = 0; i < THREADS * PER_THREAD; i++)
        assert_int_equal(all[i], 3 + i);
    free(all);
    audit_close(log, NULL, NULL);

    struct audit_verify_result r = verify(f->path, NULL, 3 + THREADS * PER_THREAD, NULL);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_int_equal(r.records, 3 + THREADS * PER_THREAD);

    /* Each thread's records are in the order it appended them. */
    struct lines ls = read_lines(f->path);
    int next[THREADS] = {0};
    for (size_t i = 2; i + 1 < ls.n; i++) {
        json_t *rec = parse(ls.l[i]);
        int th = (int)json_integer_value(json_object_get(rec, "thread"));
        assert_int_equal(json_integer_value(json_object_get(rec, "i")), next[th]++);
        json_decref(rec);
    }
    lines_free(&ls);
}

/* A record appended without durable is written at once and made stable by
 * the flusher within AUDIT_LAZY_SYNC_MS, with no later append to carry it. */
static void test_lazy_records_become_durable(void **state)
{
    struct fx *f = *state;
    struct audit_log *log = open_log(f->path, false, NULL); /* real fdatasync */
    for (int round = 0; round < 3; round++) {
        uint64_t seq = add(log, "revoke", json_pack("{s:i}", "round", round));
        struct lines ls = read_lines(f->path);
        assert_int_equal(ls.n, seq); /* in the file before audit_append returned */
        lines_free(&ls);
        int64_t deadline = monotonic_ms() + 5000; /* generous: a shared, noisy disk */
        while (audit_synced_seq(log) < seq && monotonic_ms() < deadline)
            usleep(10000);
        assert_true(audit_synced_seq(log) >= seq);
    }
    audit_close(log, NULL, NULL);
}

/* ---- checkpoints ---- */

static void test_checkpoint_message(void **state)
{
    (void)state;
    char out[256], small[16];
    int n = audit_checkpoint_message("c0ffee", 42, "ab", 1700000000, out, sizeof out);
    assert_string_equal(out, "airlock-audit-checkpoint-v1\nc0ffee\n42\nab\n1700000000");
    assert_int_equal(n, (int)strlen(out));
    assert_int_equal(audit_checkpoint_message("c0ffee", 42, "ab", 1700000000, small, sizeof small),
                     -1);
}

static void test_checkpoint_verifies(void **state)
{
    struct fx *f = *state;
    struct signer s;
    char err[512] = "", hash[AUDIT_HASH_HEX];
    uint64_t seq;
    signer_init(&s, "test-kid");
    struct audit_keys *keys = keys_of(&s);

    struct audit_log *log = open_log(f->path, false, NULL);
    for (int i = 0; i < 3; i++)
        add(log, "execute", json_pack("{s:i}", "i", i));
    audit_head(log, &seq, hash, NULL);
    assert_int_equal(seq, 5);

    /* A signer that fails appends nothing. */
    s.fail = true;
    assert_int_equal(audit_checkpoint(log, test_sign, &s, err, sizeof err), -1);
    assert_has(err, "signer is down");
    s.fail = false;

    assert_int_equal(audit_checkpoint(log, test_sign, &s, err, sizeof err), 0);
    assert_int_equal(s.calls, 2);
    /* Nothing new: no signature, no record. */
    assert_int_equal(audit_checkpoint(log, test_sign, &s, err, sizeof err), 0);
    assert_int_equal(s.calls, 2);
    audit_head(log, &seq, NULL, NULL);
    assert_int_equal(seq, 6);

    struct lines ls = read_lines(f->path);
    assert_int_equal(ls.n, 6);
    json_t *cp = parse(ls.l[5]);
    static const char *const order[] = {"v", "seq", "ts", "time", "chain", "kind", "covers_seq",
                                        "head", "signed_time", "signer", "kid", "sig", "prev"};
    const char *key;
    json_t *value;
    size_t i = 0;
    json_object_foreach(cp, key, value) assert_string_equal(key, order[i++]);
    assert_int_equal(i, sizeof order / sizeof *order);
    assert_string_equal(kind_of(cp), "checkpoint");
    assert_int_equal(json_integer_value(json_object_get(cp, "covers_seq")), 5);
    assert_string_equal(json_string_value(json_object_get(cp, "head")), hash);
    assert_string_equal(json_string_value(json_object_get(cp, "kid")), "test-kid");
    assert_string_equal(json_string_value(json_object_get(cp, "signer")),
                        "spiffe://test.example/credd");
    json_decref(cp);
    lines_free(&ls);

    struct audit_verify_result r = verify(f->path, keys, 0, NULL);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_int_equal(r.checkpoints, 1);
    assert_int_equal(r.last_checkpoint_seq, 5);
    assert_int_equal(r.unsigned_records, 1);

    add(log, "execute", NULL); /* 7 */
    audit_close(log, test_sign, &s); /* daemon.stop 8, checkpoint 9 covering 8 */
    r = verify(f->path, keys, 9, NULL);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_int_equal(r.checkpoints, 2);
    assert_int_equal(r.last_checkpoint_seq, 8);
    assert_int_equal(r.unsigned_records, 1);
    assert_int_equal(r.head_seq, 9);

    /* Without keys a checkpoint cannot count as verified. */
    r = verify(f->path, NULL, 0, NULL);
    assert_problem(&r, AUDIT_BAD_CHECKPOINT, 6, 6, "no keys");
    audit_keys_free(keys);
}

static void test_jwks_parsing(void **state)
{
    (void)state;
    char err[256];
    struct signer a, b;
    signer_init(&a, "kid-a");
    signer_init(&b, "kid-b");
    const struct signer *both[] = {&a, &b};
    char *jwks = jwks_of(both, 2);
    struct audit_keys *k = audit_keys_from_jwks(jwks, err, sizeof err);
    assert_non_null(k);
    audit_keys_free(k);
    free(jwks);

    jwks = jwks_of(NULL, 0); /* only the RSA key */
    assert_null(audit_keys_from_jwks(jwks, err, sizeof err));
    assert_has(err, "no usable Ed25519");
    free(jwks);

    static const char *const bad[] = {
        "not json",
        "{\"nokeys\":[]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"!!\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":\"AAAA\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":"
        "\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":"
        "\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"},{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
        "\"kid\":\"k\",\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"X25519\",\"kid\":\"k\",\"x\":"
        "\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        if (audit_keys_from_jwks(bad[i], err, sizeof err))
            fail_msg("accepted %s", bad[i]);
        assert_true(err[0] != '\0');
    }
    /* The RFC 8037 example key parses. */
    k = audit_keys_from_jwks("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",\"x\":"
                             "\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}",
                             err, sizeof err);
    assert_non_null(k);
    audit_keys_free(k);
}

/* ---- tampering ---- */

static void test_standard_chain_verifies(void **state)
{
    struct tamper *t = *state;
    struct audit_verify_result r = verify(t->f->path, t->keys, 14, NULL);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_int_equal(r.records, 14);
    assert_int_equal(r.checkpoints, 1);
    assert_int_equal(r.last_checkpoint_seq, 13);
    assert_int_equal(r.unsigned_records, 1);
    assert_int_equal(r.bad_seq, 0);
}

static void test_tamper_edit_middle(void **state)
{
    struct tamper *t = *state;

    struct lines ls = read_lines(t->f->path);
    patch(ls.l[5], "hello", "hellp"); /* one byte of record 6 */
    struct audit_verify_result r = rewrite(t, ls.l, ls.n);
    lines_free(&ls);
    assert_problem(&r, AUDIT_EDITED, 6, 6,
                   "record 6 (line 6) was altered: its hash does not match the prev of record 7");
    assert_int_equal(r.head_seq, 6); /* the walk stopped at record 7 */
}

/* Changes the hex digit after marker in line to another one that is never
 * '0' (a number cannot start with it): 9 becomes 8, f becomes e. */
static void bump_digit(char *line, const char *marker)
{
    char *p = strstr(line, marker);
    assert_non_null(p);
    p += strlen(marker);
    assert_true((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'));
    *p = *p == '9' ? '8' : *p == 'f' ? 'e' : *p + 1;
}

static void test_tamper_edit_last_covered(void **state)
{
    struct tamper *t = *state;
    char hash[AUDIT_HASH_HEX];

    /* Edit record 13, the last before the checkpoint, and relink the
     * checkpoint's prev: no prev disagrees, only the signed head can tell. */
    struct lines ls = read_lines(t->f->path);
    bump_digit(ls.l[12], "\"pid\":");
    sha256_hex(ls.l[12], strlen(ls.l[12]), hash);
    set_prev(ls.l[13], hash);
    struct audit_verify_result r = rewrite(t, ls.l, ls.n);
    lines_free(&ls);
    assert_problem(&r, AUDIT_EDITED, 13, 13,
                   "record 13 (line 13) was altered: its hash does not match the head signed by "
                   "checkpoint 14 (line 14)");
}

static void test_tamper_edit_last_expect_hash(void **state)
{
    struct fx *f = *state;
    struct signer s;
    char head3[AUDIT_HASH_HEX], head[AUDIT_HASH_HEX];
    uint64_t seq;
    signer_init(&s, "test-kid");
    struct audit_keys *keys = keys_of(&s);

    /* The last record has no successor: only the daemon's head can tell. */
    struct audit_log *log = open_log(f->path, true, NULL);
    add(log, "execute", json_pack("{s:i}", "n", 5));
    audit_head(log, &seq, head3, NULL);
    assert_int_equal(seq, 3);
    /* 4, covering 3; its signer field is not part of what is signed */
    assert_int_equal(audit_checkpoint(log, test_sign, &s, NULL, 0), 0);
    audit_head(log, &seq, head, NULL);
    assert_int_equal(seq, 4);

    struct lines ls = read_lines(f->path);
    patch(ls.l[3], "spiffe://test.example/credd", "spiffe://test.example/crede");
    write_lines(f->path, ls.l, ls.n, true);
    lines_free(&ls);
    struct audit_verify_result r = verify(f->path, keys, 0, NULL);
    assert_int_equal(r.problem, AUDIT_OK); /* undetectable without the head */
    r = verify(f->path, keys, 4, head);
    assert_problem(&r, AUDIT_EDITED, 4, 4, "record 4 (line 4) was altered");
    assert_has(r.message, "daemon's head");

    /* expect_hash is compared with record expect_seq itself. */
    r = verify(f->path, keys, 3, head3);
    assert_int_equal(r.problem, AUDIT_OK);
    r = verify(f->path, keys, 3, head);
    assert_problem(&r, AUDIT_EDITED, 3, 3, "record 3 (line 3) was altered");
    audit_close(log, NULL, NULL);
    audit_keys_free(keys);
}

static void test_tamper_delete(void **state)
{
    struct tamper *t = *state;
    struct lines ls = read_lines(t->f->path);
    char *kept[14] = {0};

    /* Line 7 (record 7) gone. */
    size_t n = 0;
    for (size_t i = 0; i < ls.n; i++)
        if (i != 6)
            kept[n++] = ls.l[i];
    struct audit_verify_result r = rewrite(t, kept, n);
    assert_problem(&r, AUDIT_DELETED, 8, 7, "record 7 is missing before line 7 (record 8)");

    /* Records 7..9 gone. */
    n = 0;
    for (size_t i = 0; i < ls.n; i++)
        if (i < 6 || i > 8)
            kept[n++] = ls.l[i];
    r = rewrite(t, kept, n);
    assert_problem(&r, AUDIT_DELETED, 10, 7, "records 7..9 are missing before line 7");

    /* Record 1 gone. */
    r = rewrite(t, ls.l + 1, ls.n - 1);
    assert_problem(&r, AUDIT_DELETED, 2, 1, "record 1 is missing before line 1");
    lines_free(&ls);
}

static void test_tamper_reorder(void **state)
{
    struct tamper *t = *state;
    struct lines ls = read_lines(t->f->path);

    /* Records 6 and 7 swapped. */
    char *swap = ls.l[5];
    ls.l[5] = ls.l[6];
    ls.l[6] = swap;
    struct audit_verify_result r = rewrite(t, ls.l, ls.n);
    assert_problem(&r, AUDIT_REORDERED, 7, 6, "record 6 (line 7) appears after record 7 (line 6)");
    ls.l[6] = ls.l[5];
    ls.l[5] = swap;

    /* Record 4 replayed after record 6. */
    char *dup[15] = {0};
    size_t n = 0;
    for (size_t i = 0; i < ls.n; i++) {
        dup[n++] = ls.l[i];
        if (i == 5)
            dup[n++] = ls.l[3];
    }
    r = rewrite(t, dup, n);
    assert_problem(&r, AUDIT_REORDERED, 4, 7, "record 4 (line 7) appears after record 6");
    lines_free(&ls);
}

static void test_tamper_truncate_lines(void **state)
{
    struct tamper *t = *state;
    struct lines ls = read_lines(t->f->path);
    write_lines(t->f->path, ls.l, ls.n - 3, true); /* records 12..14 gone */
    lines_free(&ls);

    struct audit_verify_result r = verify(t->f->path, t->keys, 0, NULL);
    assert_int_equal(r.problem, AUDIT_OK); /* a clean cut needs the live head to be seen */
    assert_int_equal(r.head_seq, 11);
    r = verify(t->f->path, t->keys, 14, NULL);
    assert_problem(&r, AUDIT_TRUNCATED, 12, 12,
                   "the file ends at record 11 (line 11) but the daemon's head is record 14: "
                   "records 12..14 are missing");

    /* An empty file has no chain at all. */
    write_lines(t->f->path, NULL, 0, false);
    r = verify(t->f->path, t->keys, 0, NULL);
    assert_problem(&r, AUDIT_TRUNCATED, 1, 1, "empty");
}

static void test_tamper_cut_midline(void **state)
{
    struct tamper *t = *state;
    struct lines ls = read_lines(t->f->path);
    ls.l[13][40] = '\0'; /* record 14 cut, no '\n' */
    write_lines(t->f->path, ls.l, ls.n, false);
    lines_free(&ls);

    struct audit_verify_result r = verify(t->f->path, t->keys, 0, NULL);
    assert_problem(&r, AUDIT_TRUNCATED, 14, 14, "cut inside record 14 (line 14 has no newline)");
    /* The daemon's head is 13: record 14 is a write in progress. */
    r = verify(t->f->path, t->keys, 13, NULL);
    assert_int_equal(r.problem, AUDIT_OK);
    assert_int_equal(r.head_seq, 13);
    assert_int_equal(r.records, 13);
    r = verify(t->f->path, t->keys, 14, NULL);
    assert_problem(&r, AUDIT_TRUNCATED, 14, 14, "ends inside record 14");
}

static void test_forged_checkpoint(void **state)
{
    struct fx *f = *state;
    struct signer good, evil, other;
    signer_init(&good, "test-kid");
    signer_init(&evil, "test-kid"); /* same kid, another key */
    signer_init(&other, "other-kid");
    struct audit_keys *keys = keys_of(&good);

    /* Signed by another key claiming the same kid. */
    standard_chain(f->path, &evil);
    struct audit_verify_result r = verify(f->path, keys, 0, NULL);
    assert_problem(&r, AUDIT_BAD_CHECKPOINT, 14, 14,
                   "checkpoint record 14 (line 14) does not verify: its signature does not "
                   "verify under key \"test-kid\"");
    assert_int_equal(unlink(f->path), 0);

    /* A kid the key set does not hold. */
    standard_chain(f->path, &other);
    r = verify(f->path, keys, 0, NULL);
    assert_problem(&r, AUDIT_BAD_CHECKPOINT, 14, 14, "kid \"other-kid\" is not in the key set");
    assert_int_equal(unlink(f->path), 0);

    /* A checkpoint in the middle (5, covering 4) altered: it is named, not
     * the record after it whose prev no longer matches. */
    struct audit_log *log = open_log(f->path, true, NULL);
    add(log, "execute", json_pack("{s:i}", "n", 1));
    char err[512] = "";
    assert_int_equal(audit_checkpoint(log, test_sign, &good, err, sizeof err), 0);
    add(log, "execute", json_pack("{s:i}", "n", 2));
    audit_close(log, test_sign, &good);
    assert_verifies(f->path, keys);
    struct lines ls = read_lines(f->path);
    char *orig = strdup(ls.l[3]);
    patch(ls.l[3], "\"covers_seq\":3", "\"covers_seq\":2");
    write_lines(f->path, ls.l, ls.n, true);
    r = verify(f->path, keys, 0, NULL);
    assert_problem(&r, AUDIT_BAD_CHECKPOINT, 4, 4, "does not verify under key");

    /* Its head altered. */
    strcpy(ls.l[3], orig);
    bump_digit(ls.l[3], "\"head\":\"");
    write_lines(f->path, ls.l, ls.n, true);
    r = verify(f->path, keys, 0, NULL);
    assert_problem(&r, AUDIT_BAD_CHECKPOINT, 4, 4, "does not verify under key");

    /* Covering itself. */
    strcpy(ls.l[3], orig);
    patch(ls.l[3], "\"covers_seq\":3", "\"covers_seq\":4");
    write_lines(f->path, ls.l, ls.n, true);
    r = verify(f->path, keys, 0, NULL);
    assert_problem(&r, AUDIT_BAD_CHECKPOINT, 4, 4, "covers_seq is not a record before it");
    free(orig);
    lines_free(&ls);
    audit_keys_free(keys);
}

static void test_malformed_lines(void **state)
{
    struct tamper *t = *state;
    struct lines ls = read_lines(t->f->path);
    char *orig = strdup(ls.l[4]);

    free(ls.l[4]);
    ls.l[4] = strdup("not json");
    struct audit_verify_result r = rewrite(t, ls.l, ls.n);
    assert_problem(&r, AUDIT_MALFORMED, 5, 5, "line 5 is not JSON");

    free(ls.l[4]);
    ls.l[4] = strdup(orig);
    bump_digit(ls.l[4], "\"chain\":\""); /* another chain's record */
    r = rewrite(t, ls.l, ls.n);
    assert_problem(&r, AUDIT_MALFORMED, 5, 5, "record 5 (line 5) belongs to another chain");

    free(ls.l[4]);
    ls.l[4] = strdup(orig);
    patch(ls.l[4], "{\"v\":1,", "{\"v\":2,");
    r = rewrite(t, ls.l, ls.n);
    assert_problem(&r, AUDIT_MALFORMED, 5, 5, "\"v\" is not 1");

    /* A line over AUDIT_MAX_LINE. */
    free(ls.l[4]);
    ls.l[4] = malloc(AUDIT_MAX_LINE + 2);
    assert_non_null(ls.l[4]);
    memset(ls.l[4], ' ', AUDIT_MAX_LINE + 1);
    ls.l[4][AUDIT_MAX_LINE + 1] = '\0';
    r = rewrite(t, ls.l, ls.n);
    assert_problem(&r, AUDIT_MALFORMED, 5, 5, "line 5 is longer than");
    free(orig);
    lines_free(&ls);

    assert_int_equal(audit_verify_file("/nonexistent/audit.jsonl", NULL, 0, NULL, &r), -1);
    assert_has(r.message, "/nonexistent/audit.jsonl");
}

/* ---- recovery and failures ---- */

static void append_raw(const char *path, const char *bytes)
{
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    fputs(bytes, fp);
    assert_int_equal(fclose(fp), 0);
}

static void test_torn_tail_recovery(void **state)
{
    struct fx *f = *state;
    static const char torn[] = "{\"v\":1,\"seq\":4,\"ts\":17000";
    char stop_hash[AUDIT_HASH_HEX];

    struct audit_log *log = open_log(f->path, false, NULL);
    audit_close(log, NULL, NULL); /* 1..3 */
    append_raw(f->path, torn);
    log = open_log(f->path, false, NULL); /* recovered 4, daemon.start 5 */
    audit_close(log, NULL, NULL);

    struct lines ls = read_lines(f->path);
    assert_int_equal(ls.n, 6);
    assert_true(ls.last_nl);
    sha256_hex(ls.l[2], strlen(ls.l[2]), stop_hash);
    json_t *rec = parse(ls.l[3]);
    assert_string_equal(kind_of(rec), "recovered");
    assert_int_equal(json_integer_value(json_object_get(rec, "seq")), 4);
    assert_int_equal(json_integer_value(json_object_get(rec, "dropped_bytes")), strlen(torn));
    assert_string_equal(json_string_value(json_object_get(rec, "prev")), stop_hash);
    json_decref(rec);
    rec = parse(ls.l[4]);
    assert_string_equal(kind_of(rec), "daemon.start");
    json_decref(rec);
    lines_free(&ls);
    assert_verifies(f->path, NULL);

    /* Only a torn first line: a new chain, then the note. */
    write_lines(f->path, (char *[]){(char *)torn}, 1, false);
    log = open_log(f->path, true, NULL);
    audit_close(log, NULL, NULL);
    ls = read_lines(f->path);
    assert_int_equal(ls.n, 4);
    assert_has(ls.l[0], "\"kind\":\"chain.start\"");
    assert_has(ls.l[1], "\"kind\":\"recovered\",\"dropped_bytes\":25,");
    lines_free(&ls);
    assert_verifies(f->path, NULL);
}

static void test_open_refuses(void **state)
{
    struct fx *f = *state;
    char err[512], other[160], link[160];
    struct audit_options o = {.path = link, .daemon = "broker", .no_fsync = true};

    /* A symbolic link, even to a good chain. */
    struct audit_log *log = open_log(f->path, true, NULL);
    audit_close(log, NULL, NULL);
    snprintf(link, sizeof link, "%s/link.jsonl", f->dir);
    assert_int_equal(symlink(f->path, link), 0);
    assert_null(audit_open(&o, err, sizeof err));
    assert_has(err, link);
    assert_has(err, "symbolic link");

    /* A directory. */
    o.path = f->dir;
    assert_null(audit_open(&o, err, sizeof err));
    assert_has(err, f->dir);

    /* A last line that is not a record. */
    o.path = f->path;
    append_raw(f->path, "garbage\n");
    assert_null(audit_open(&o, err, sizeof err));
    assert_has(err, f->path);
    assert_has(err, "last line is not an audit record");

    /* A last line of another chain. */
    struct lines ls = read_lines(f->path);
    snprintf(other, sizeof other, "%s/other.jsonl", f->dir);
    log = open_log(other, true, NULL);
    audit_close(log, NULL, NULL);
    struct lines ols = read_lines(other);
    free(ls.l[ls.n - 1]);
    ls.l[ls.n - 1] = strdup(ols.l[ols.n - 1]);
    write_lines(f->path, ls.l, ls.n, true);
    lines_free(&ols);
    lines_free(&ls);
    assert_null(audit_open(&o, err, sizeof err));
    assert_has(err, "another chain");

    /* A stream mirror that cannot be opened. */
    o.path = other;
    o.stream_path = "/nonexistent/dir/stream.jsonl";
    assert_null(audit_open(&o, err, sizeof err));
    assert_has(err, "/nonexistent/dir/stream.jsonl");
}

/* In a child: writes past RLIMIT_FSIZE fail (EFBIG, SIGXFSZ ignored). */
static int write_failure_child(const char *path)
{
    char err[512] = "", hash[AUDIT_HASH_HEX], hash2[AUDIT_HASH_HEX];
    uint64_t seq, seq2;
    struct stat st;
    struct rlimit lim, old;
    struct audit_verify_result r;

    struct audit_log *log = open_log(path, false, NULL);
    audit_head(log, &seq, hash, NULL);
    if (stat(path, &st) != 0 || getrlimit(RLIMIT_FSIZE, &old) != 0 ||
        signal(SIGXFSZ, SIG_IGN) == SIG_ERR)
        return 10;
    lim = old;
    lim.rlim_cur = (rlim_t)st.st_size + 20; /* room for part of a line */
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
        return 11;
    json_t *fields = json_pack("{s:s}", "task_id", "will-not-fit-in-twenty-bytes");
    if (audit_append(log, "execute", fields, true, NULL, err, sizeof err) != -1)
        return 12;
    if (!strstr(err, "cannot write")) {
        fprintf(stderr, "err: %s\n", err);
        return 13;
    }
    struct stat st2;
    if (stat(path, &st2) != 0 || st2.st_size != st.st_size)
        return 14; /* the partial line was not cut back off */
    audit_head(log, &seq2, hash2, NULL);
    if (seq2 != seq || strcmp(hash, hash2) != 0)
        return 15;
    if (audit_verify_file(path, NULL, seq, hash, &r) != 0 || r.problem != AUDIT_OK) {
        fprintf(stderr, "verify: %s\n", r.message);
        return 16;
    }
    if (setrlimit(RLIMIT_FSIZE, &old) != 0)
        return 17;
    fields = json_pack("{s:s}", "task_id", "fits-now");
    if (audit_append(log, "execute", fields, true, &seq2, err, sizeof err) != 0 ||
        seq2 != seq + 1) {
        fprintf(stderr, "append: %s\n", err);
        return 18;
    }
    audit_close(log, NULL, NULL);
    if (audit_verify_file(path, NULL, seq + 2, NULL, &r) != 0 || r.problem != AUDIT_OK) {
        fprintf(stderr, "verify: %s\n", r.message);
        return 19;
    }
    return 0;
}

static void test_write_failure_keeps_chain(void **state)
{
    struct fx *f = *state;
    int status;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(write_failure_child(f->path));
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_verifies(f->path, NULL);
}

/* Someone cuts the file (or appends to it) while the log is open: the log
 * stops rather than extend a chain it no longer holds, until reopened. */
static void test_changed_behind_our_back(void **state)
{
    struct fx *f = *state;
    char err[512] = "";
    struct audit_log *log = open_log(f->path, true, NULL);
    add(log, "a", json_object());
    add(log, "b", json_object());
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(truncate(f->path, st.st_size - 10), 0);
    assert_int_equal(audit_append(log, "c", json_object(), false, NULL, err, sizeof err), -1);
    assert_has(err, "changed behind our back");
    /* Still refused once the size is right again: a restart decides. */
    assert_int_equal(truncate(f->path, st.st_size), 0);
    assert_int_equal(audit_append(log, "d", json_object(), true, NULL, err, sizeof err), -1);
    assert_has(err, "broken");
    audit_close(log, NULL, NULL);

    /* Bytes appended by another writer, likewise. */
    unlink(f->path);
    log = open_log(f->path, true, NULL);
    append_raw(f->path, "{}\n");
    assert_int_equal(audit_append(log, "e", json_object(), false, NULL, err, sizeof err), -1);
    assert_has(err, "changed behind our back");
    audit_close(log, NULL, NULL);
}

static void test_stream_mirror(void **state)
{
    struct fx *f = *state;
    char stream[160];
    snprintf(stream, sizeof stream, "%s/stream.jsonl", f->dir);

    struct audit_log *log = open_log(f->path, true, stream);
    add(log, "execute", json_pack("{s:s}", "task_id", "t1"));
    audit_close(log, NULL, NULL);
    log = open_log(f->path, true, stream);
    audit_close(log, NULL, NULL);

    struct lines a = read_lines(f->path), b = read_lines(stream);
    assert_int_equal(a.n, 6);
    assert_int_equal(b.n, a.n);
    for (size_t i = 0; i < a.n; i++)
        assert_string_equal(a.l[i], b.l[i]);
    lines_free(&a);
    lines_free(&b);

    /* A mirror that fails (ENOSPC) does not fail the append. */
    log = open_log(f->path, true, "/dev/full");
    assert_int_equal(add(log, "execute", NULL), 8);
    audit_close(log, NULL, NULL);
    assert_verifies(f->path, NULL);
}

/* ---- queries ---- */

struct hits {
    int n;
    uint64_t seqs[64];
    int stop_at; /* return 7 on this hit (1-based), 0 never */
};

static int collect(void *ctx, const char *line, size_t len, const json_t *record)
{
    struct hits *h = ctx;
    assert_int_equal(strlen(line), len);
    assert_true(json_is_object(record));
    h->seqs[h->n++] = (uint64_t)json_integer_value(json_object_get(record, "seq"));
    return h->n == h->stop_at ? 7 : 0;
}

static struct hits query(const char *path, const struct audit_filter *flt)
{
    struct hits h = {0};
    char err[256] = "";
    int rc = audit_query(path, flt, collect, &h, err, sizeof err);
    if (rc != 0)
        fail_msg("audit_query: %d %s", rc, err);
    return h;
}

static void assert_seqs(const struct hits *h, const uint64_t *want, int n)
{
    if (h->n != n)
        fail_msg("%d hits, want %d", h->n, n);
    for (int i = 0; i < n; i++)
        assert_int_equal(h->seqs[i], want[i]);
}

static void test_query_filters(void **state)
{
    struct fx *f = *state;
    const struct timespec pause = {0, 3000000};
    int64_t ts[16] = {0};

    struct audit_log *log = open_log(f->path, true, NULL); /* 1, 2 */
    add(log, "execute", json_pack("{s:s,s:s}", "task_id", "t1", "subject", "spiffe://a/x")); /* 3 */
    nanosleep(&pause, NULL);
    add(log, "mint", json_pack("{s:s,s:s}", "token_id", "k1", "caller", "spiffe://a/x")); /* 4 */
    nanosleep(&pause, NULL);
    add(log, "deny", json_pack("{s:s,s:s,s:s}", "task_id", "t2", "subject", "spiffe://b/y",
                               "reason", "policy")); /* 5 */
    nanosleep(&pause, NULL);
    add(log, "execute",
        json_pack("{s:s,s:s}", "task_id", "t10", "subject", "spiffe://a/x")); /* 6 */
    nanosleep(&pause, NULL);
    add(log, "execute", json_pack("{s:{s:s},s:s}", "detail", "task_id", "t1", "task_id",
                                  "t\xc3\xa2" "che")); /* 7 */
    add(log, "revoke", json_pack("{s:s,s:s}", "token_id", "k1", "reason", "policy-x")); /* 8 */
    audit_close(log, NULL, NULL); /* 9 */
    /* Damage the query must skip: a malformed line, a write in progress. */
    append_raw(f->path, "garbage\n{\"v\":1,\"seq\":10,\"kind\":\"execute\",\"task_id\":\"t1\"}");

    struct lines ls = read_lines(f->path);
    for (size_t i = 0; i < 9; i++) {
        json_t *rec = parse(ls.l[i]);
        ts[i + 1] = json_integer_value(json_object_get(rec, "ts"));
        json_decref(rec);
    }
    lines_free(&ls);

    struct hits h = query(f->path, NULL);
    assert_seqs(&h, (uint64_t[]){1, 2, 3, 4, 5, 6, 7, 8, 9}, 9);

    const char *exec[] = {"execute"}, *mint_deny[] = {"mint", "deny"};
    h = query(f->path, &(struct audit_filter){.kinds = exec, .n_kinds = 1});
    assert_seqs(&h, (uint64_t[]){3, 6, 7}, 3);
    h = query(f->path, &(struct audit_filter){.kinds = mint_deny, .n_kinds = 2});
    assert_seqs(&h, (uint64_t[]){4, 5}, 2);

    h = query(f->path, &(struct audit_filter){.task_id = "t1"}); /* not t10, not detail.task_id */
    assert_seqs(&h, (uint64_t[]){3}, 1);
    h = query(f->path, &(struct audit_filter){.task_id = "t\xc3\xa2" "che"}); /* stored escaped */
    assert_seqs(&h, (uint64_t[]){7}, 1);
    h = query(f->path, &(struct audit_filter){.token_id = "k1"});
    assert_seqs(&h, (uint64_t[]){4, 8}, 2);
    h = query(f->path, &(struct audit_filter){.subject = "spiffe://a/x"}); /* caller too */
    assert_seqs(&h, (uint64_t[]){3, 4, 6}, 3);
    h = query(f->path, &(struct audit_filter){.reason = "policy"});
    assert_seqs(&h, (uint64_t[]){5}, 1);
    h = query(f->path, &(struct audit_filter){.subject = "spiffe://a/x", .kinds = exec,
                                              .n_kinds = 1});
    assert_seqs(&h, (uint64_t[]){3, 6}, 2);

    /* ts range: since inclusive, until exclusive, against a brute-force count. */
    struct audit_filter range = {.since_ms = ts[4], .until_ms = ts[6]};
    uint64_t want[16];
    int n = 0;
    for (int i = 1; i <= 9; i++)
        if (ts[i] >= range.since_ms && ts[i] < range.until_ms)
            want[n++] = (uint64_t)i;
    assert_true(n >= 2 && n <= 4 && want[0] == 4); /* 4, 5 and maybe what shares their ms */
    h = query(f->path, &range);
    assert_seqs(&h, want, n);
    h = query(f->path, &(struct audit_filter){.since_ms = ts[9] + 1});
    assert_int_equal(h.n, 0);

    /* limit, and a callback that stops. */
    h = query(f->path, &(struct audit_filter){.kinds = exec, .n_kinds = 1, .limit = 2});
    assert_seqs(&h, (uint64_t[]){3, 6}, 2);
    struct hits stop = {.stop_at = 2};
    char err[256] = "";
    assert_int_equal(audit_query(f->path, NULL, collect, &stop, err, sizeof err), 7);
    assert_int_equal(stop.n, 2);

    assert_int_equal(audit_query("/nonexistent/a.jsonl", NULL, collect, &stop, err, sizeof err),
                     -1);
    assert_has(err, "/nonexistent/a.jsonl");
}

#define T(name) cmocka_unit_test_setup_teardown(name, dir_setup, dir_teardown)
#define TAMPER(name) cmocka_unit_test_setup_teardown(name, tamper_setup, tamper_teardown)

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        T(test_open_append_reopen),
        T(test_record_layout),
        T(test_concurrent_durable_appends),
        T(test_lazy_records_become_durable),
        cmocka_unit_test(test_checkpoint_message),
        T(test_checkpoint_verifies),
        cmocka_unit_test(test_jwks_parsing),
        TAMPER(test_standard_chain_verifies),
        TAMPER(test_tamper_edit_middle),
        TAMPER(test_tamper_edit_last_covered),
        T(test_tamper_edit_last_expect_hash),
        TAMPER(test_tamper_delete),
        TAMPER(test_tamper_reorder),
        TAMPER(test_tamper_truncate_lines),
        TAMPER(test_tamper_cut_midline),
        T(test_forged_checkpoint),
        TAMPER(test_malformed_lines),
        T(test_torn_tail_recovery),
        T(test_open_refuses),
        T(test_changed_behind_our_back),
        T(test_write_failure_keeps_chain),
        T(test_stream_mirror),
        T(test_query_filters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

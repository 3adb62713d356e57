/*
 * audit_verify.c - the audit chain's verifier (see audit.h) and the Ed25519
 * public keys it checks checkpoints with, parsed from credd's JWKS.
 *
 * A file is read twice, in bounded memory whatever its size. Pass 1 collects
 * what the checkpoints with a valid signature claim: "record S hashes to H".
 * Pass 2 walks every line in order checking schema, chain id, seq and prev,
 * and compares each record's hash with the claims about it as it passes.
 * Pass 2 reads only the bytes pass 1 saw, so a log being appended to while
 * it is verified gives a consistent answer. A jump in seq costs one more
 * scan of the rest of the file to tell a deletion from a reordering.
 */
#include "audit.h"
#include "audit_lines.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* ---- keys ---- */

struct audit_key {
    char *kid;
    unsigned char pk[crypto_sign_PUBLICKEYBYTES];
};

struct audit_keys {
    struct audit_key *k;
    size_t n;
};

void audit_keys_free(struct audit_keys *keys)
{
    if (!keys)
        return;
    for (size_t i = 0; i < keys->n; i++)
        free(keys->k[i].kid);
    free(keys->k);
    free(keys);
}

static const struct audit_key *key_by_kid(const struct audit_keys *keys, const char *kid)
{
    for (size_t i = 0; keys && i < keys->n; i++)
        if (strcmp(keys->k[i].kid, kid) == 0)
            return &keys->k[i];
    return NULL;
}

/* Copies s for a message: printable ASCII only, at most 48 chars. */
static void clean(char *out, size_t outlen, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 1 < outlen && i < 48; i++)
        out[i] = (s[i] >= ' ' && s[i] <= '~') ? s[i] : '?';
    out[i] = '\0';
}

struct audit_keys *audit_keys_from_jwks(const char *jwks_json, char *err, size_t errlen)
{
    json_error_t jerr;
    char safe[64];
    size_t i;
    json_t *jwk;

    if (sodium_init() < 0) {
        err_set(err, errlen, "libsodium initialisation failed");
        return NULL;
    }
    json_t *doc = jwks_json ? json_loads(jwks_json, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    if (!doc) {
        err_set(err, errlen, "JWKS is not JSON: %s", jwks_json ? jerr.text : "(none)");
        return NULL;
    }
    json_t *list = json_object_get(doc, "keys");
    struct audit_keys *keys = calloc(1, sizeof *keys);
    if (!keys) {
        err_set(err, errlen, "out of memory");
        goto fail;
    }
    if (!json_is_array(list)) {
        err_set(err, errlen, "JWKS has no \"keys\" array");
        goto fail;
    }
    if (json_array_size(list) > 0 && !(keys->k = calloc(json_array_size(list), sizeof *keys->k))) {
        err_set(err, errlen, "out of memory");
        goto fail;
    }
    json_array_foreach(list, i, jwk) {
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        const char *x = json_string_value(json_object_get(jwk, "x"));
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        size_t len;
        const char *end;
        if (!kty || strcmp(kty, "OKP") != 0 || !crv || strcmp(crv, "Ed25519") != 0)
            continue; /* another kind of key: not ours to use */
        if (!kid || !*kid) {
            err_set(err, errlen, "JWKS key %zu: an Ed25519 key without a kid", i);
            goto fail;
        }
        clean(safe, sizeof safe, kid);
        struct audit_key *k = &keys->k[keys->n];
        if (!x || sodium_base642bin(k->pk, sizeof k->pk, x, strlen(x), NULL, &len, &end,
                                    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
            *end != '\0' || len != sizeof k->pk) {
            err_set(err, errlen, "JWKS key \"%s\": \"x\" is not a base64url Ed25519 public key",
                    safe);
            goto fail;
        }
        if (key_by_kid(keys, kid)) {
            err_set(err, errlen, "JWKS lists kid \"%s\" twice", safe);
            goto fail;
        }
        if (!(k->kid = strdup(kid))) {
            err_set(err, errlen, "out of memory");
            goto fail;
        }
        keys->n++;
    }
    if (keys->n == 0) {
        err_set(err, errlen, "JWKS has no usable Ed25519 (OKP) key");
        goto fail;
    }
    json_decref(doc);
    return keys;

fail:
    audit_keys_free(keys);
    json_decref(doc);
    return NULL;
}

const char *audit_problem_name(enum audit_problem p)
{
    switch (p) {
    case AUDIT_OK: return "ok";
    case AUDIT_EDITED: return "edited";
    case AUDIT_DELETED: return "deleted";
    case AUDIT_REORDERED: return "reordered";
    case AUDIT_TRUNCATED: return "truncated";
    case AUDIT_BAD_CHECKPOINT: return "bad_checkpoint";
    case AUDIT_MALFORMED: return "malformed";
    }
    return "unknown";
}

/* ---- records ---- */


/* Is rec a schema-1 record: members in order, of the right types? */
static int check_schema(const json_t *rec, char *why, size_t whylen)
{
    static const char *const first[] = {"v", "seq", "ts", "time", "chain", "kind"};
    const char *key, *last = NULL;
    json_t *value;
    size_t i = 0;

    if (!json_is_object(rec))
        return err_set(why, whylen, "not a JSON object");
    json_object_foreach((json_t *)rec, key, value) {
        if (i < sizeof first / sizeof *first && strcmp(key, first[i]) != 0)
            return err_set(why, whylen, "member %zu is \"%s\", not \"%s\"", i + 1, key, first[i]);
        i++;
        last = key;
    }
    if (i < sizeof first / sizeof *first + 1 || strcmp(last, "prev") != 0)
        return err_set(why, whylen, "\"prev\" is not its last member");
    json_t *v = json_object_get(rec, "v"), *seq = json_object_get(rec, "seq");
    const char *chain = json_string_value(json_object_get(rec, "chain"));
    const char *kind = json_string_value(json_object_get(rec, "kind"));
    if (!json_is_integer(v) || json_integer_value(v) != AUDIT_SCHEMA_VERSION)
        return err_set(why, whylen, "\"v\" is not %d", AUDIT_SCHEMA_VERSION);
    if (!json_is_integer(seq) || json_integer_value(seq) < 1)
        return err_set(why, whylen, "\"seq\" is not a positive integer");
    if (!json_is_integer(json_object_get(rec, "ts")))
        return err_set(why, whylen, "\"ts\" is not an integer");
    if (!json_is_string(json_object_get(rec, "time")))
        return err_set(why, whylen, "\"time\" is not a string");
    if (!chain || !*chain || strlen(chain) >= AUDIT_CHAIN_ID_MAX)
        return err_set(why, whylen, "\"chain\" is not a chain id");
    if (!kind || !*kind)
        return err_set(why, whylen, "\"kind\" is not a string");
    if (!sha256_hex_valid(json_string_value(json_object_get(rec, "prev"))))
        return err_set(why, whylen, "\"prev\" is not a SHA-256 hex digest");
    return 0;
}

/* What a checkpoint claims: record covers hashes to head. */
struct claim {
    uint64_t covers;
    uint64_t cp_seq;
    uint64_t cp_line;
    char head[AUDIT_HASH_HEX];
};

/* Checks checkpoint record rec (seq) of chain: its fields and signature.
 * 0 and *c, or -1 with why. */
static int check_checkpoint(const json_t *rec, uint64_t seq, const char *chain,
                            const struct audit_keys *keys, struct claim *c, char *why,
                            size_t whylen)
{
    json_t *covers = json_object_get(rec, "covers_seq");
    json_t *signed_time = json_object_get(rec, "signed_time");
    const char *head = json_string_value(json_object_get(rec, "head"));
    const char *kid = json_string_value(json_object_get(rec, "kid"));
    const char *sig = json_string_value(json_object_get(rec, "sig"));
    unsigned char raw[crypto_sign_BYTES];
    char msg[256], safe[64];
    size_t rawlen;
    const char *end;

    if (!json_is_integer(covers) || json_integer_value(covers) < 1 ||
        (uint64_t)json_integer_value(covers) >= seq)
        return err_set(why, whylen, "its covers_seq is not a record before it");
    if (!sha256_hex_valid(head))
        return err_set(why, whylen, "its head is not a SHA-256 hex digest");
    if (!json_is_integer(signed_time) || !json_is_string(json_object_get(rec, "signer")))
        return err_set(why, whylen, "its signed_time or signer is missing");
    if (!kid || !sig)
        return err_set(why, whylen, "its kid or sig is missing");
    clean(safe, sizeof safe, kid);
    if (!keys)
        return err_set(why, whylen, "no keys were given to check its signature (kid \"%s\")", safe);
    const struct audit_key *k = key_by_kid(keys, kid);
    if (!k)
        return err_set(why, whylen, "its kid \"%s\" is not in the key set", safe);
    if (sodium_base642bin(raw, sizeof raw, sig, strlen(sig), NULL, &rawlen, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        *end != '\0' || rawlen != sizeof raw)
        return err_set(why, whylen, "its sig is not a base64url Ed25519 signature");
    c->covers = (uint64_t)json_integer_value(covers);
    c->cp_seq = seq;
    memcpy(c->head, head, sizeof c->head);
    int n = audit_checkpoint_message(chain, c->covers, head, json_integer_value(signed_time), msg,
                                     sizeof msg);
    if (n < 0 ||
        crypto_sign_verify_detached(raw, (const unsigned char *)msg, (size_t)n, k->pk) != 0)
        return err_set(why, whylen, "its signature does not verify under key \"%s\"", safe);
    return 0;
}

static bool is_kind(const json_t *rec, const char *kind)
{
    const char *k = json_string_value(json_object_get(rec, "kind"));
    return k && strcmp(k, kind) == 0;
}

static int claim_cmp(const void *a, const void *b)
{
    const struct claim *x = a, *y = b;
    if (x->covers != y->covers)
        return x->covers < y->covers ? -1 : 1;
    return x->cp_seq < y->cp_seq ? -1 : x->cp_seq > y->cp_seq;
}

struct claims {
    struct claim *c;
    size_t n, cap;
};

/* Pass 1: the claims of every checkpoint whose signature verifies, sorted
 * by covers; *size is how many bytes were read. 0, or -1 with errno. */
static int collect_claims(int fd, const struct audit_keys *keys, struct claims *out, off_t *size)
{
    struct reader r;
    char *line, chain[AUDIT_CHAIN_ID_MAX] = "", why[8];
    size_t len;
    bool nl;
    int rc;
    uint64_t lineno = 0;

    if (reader_init(&r, fd, 0, -1) != 0)
        return -1;
    while ((rc = reader_next(&r, &line, &len, &nl)) > 0) {
        lineno++;
        if (rc != LINE_OK || !nl)
            continue;
        if (lineno > 1 && (!chain[0] || !strstr(line, "\"kind\":\"checkpoint\"")))
            continue;
        json_t *rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL);
        struct claim c;
        if (rec && check_schema(rec, why, sizeof why) == 0) {
            uint64_t seq = (uint64_t)json_integer_value(json_object_get(rec, "seq"));
            if (lineno == 1)
                snprintf(chain, sizeof chain, "%s",
                         json_string_value(json_object_get(rec, "chain")));
            else if (is_kind(rec, "checkpoint") &&
                     check_checkpoint(rec, seq, chain, keys, &c, why, sizeof why) == 0) {
                if (out->n == out->cap) {
                    size_t cap = out->cap ? out->cap * 2 : 16;
                    struct claim *grown = realloc(out->c, cap * sizeof *grown);
                    if (!grown) {
                        json_decref(rec);
                        reader_free(&r);
                        errno = ENOMEM;
                        return -1;
                    }
                    out->c = grown;
                    out->cap = cap;
                }
                c.cp_line = lineno;
                out->c[out->n++] = c;
            }
        }
        json_decref(rec);
    }
    int e = errno;
    *size = r.next;
    reader_free(&r);
    if (rc < 0) {
        errno = e;
        return -1;
    }
    if (out->n > 1)
        qsort(out->c, out->n, sizeof *out->c, claim_cmp);
    return 0;
}

/* Does a record with seq want appear at or after offset from (line number
 * first_line there)? 1 and *where, 0, or -1 with errno. */
static int seq_appears(int fd, off_t from, off_t limit, uint64_t first_line, uint64_t want,
                       uint64_t *where)
{
    struct reader r;
    char *line, needle[40];
    size_t len;
    bool nl;
    int rc = 0, found = 0;

    snprintf(needle, sizeof needle, "\"seq\":%" PRIu64, want);
    if (reader_init(&r, fd, from, limit) != 0)
        return -1;
    for (uint64_t lineno = first_line; !found && (rc = reader_next(&r, &line, &len, &nl)) > 0;
         lineno++) {
        const char *p = rc == LINE_OK && nl ? strstr(line, needle) : NULL;
        if (!p || (p[strlen(needle)] >= '0' && p[strlen(needle)] <= '9'))
            continue;
        json_t *rec = json_loadb(line, len, 0, NULL);
        json_t *seq = json_object_get(rec, "seq");
        if (json_is_integer(seq) && (uint64_t)json_integer_value(seq) == want) {
            *where = lineno;
            found = 1;
        }
        json_decref(rec);
    }
    int e = errno;
    reader_free(&r);
    errno = e;
    return found ? 1 : rc < 0 ? -1 : 0;
}

/* ---- the walk ---- */

static void problem(struct audit_verify_result *res, enum audit_problem p, uint64_t seq,
                    uint64_t line, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void problem(struct audit_verify_result *res, enum audit_problem p, uint64_t seq,
                    uint64_t line, const char *fmt, ...)
{
    va_list ap;
    res->problem = p;
    res->bad_seq = seq;
    res->bad_line = line;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
}

struct walk {
    int fd;
    const char *path;
    const struct audit_keys *keys;
    uint64_t expect_seq;
    const char *expect_hash;
    struct claims claims;
    size_t next_claim;   /* first claim whose record is not yet passed */
    off_t size;          /* bytes pass 1 read */
    struct reader r;
};

/* Checks one complete line (lineno) against the chain so far in res.
 * 0 to go on, 1 on a problem (res says which), -1 on an I/O error. */
static int check_line(struct walk *w, struct audit_verify_result *res, uint64_t lineno,
                      const char *line, size_t len)
{
    json_error_t jerr;
    char why[160], hash[AUDIT_HASH_HEX];
    uint64_t expected = res->head_seq + 1, where;

    json_t *rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!rec) {
        problem(res, AUDIT_MALFORMED, expected, lineno, "line %" PRIu64 " is not JSON: %s", lineno,
                jerr.text);
        return 1;
    }
    int rc = 1;
    if (check_schema(rec, why, sizeof why) != 0) {
        problem(res, AUDIT_MALFORMED, expected, lineno,
                "line %" PRIu64 " is not a schema-%d audit record: %s", lineno,
                AUDIT_SCHEMA_VERSION, why);
        goto out;
    }
    uint64_t seq = (uint64_t)json_integer_value(json_object_get(rec, "seq"));
    const char *chain = json_string_value(json_object_get(rec, "chain"));
    const char *prev = json_string_value(json_object_get(rec, "prev"));
    if (lineno == 1) {
        snprintf(res->chain, sizeof res->chain, "%s", chain);
    } else if (strcmp(chain, res->chain) != 0) {
        problem(res, AUDIT_MALFORMED, seq, lineno,
                "record %" PRIu64 " (line %" PRIu64 ") belongs to another chain", seq, lineno);
        goto out;
    }

    if (seq < expected) {
        problem(res, AUDIT_REORDERED, seq, lineno,
                "record %" PRIu64 " (line %" PRIu64 ") appears after record %" PRIu64, seq, lineno,
                res->head_seq);
        goto out;
    }
    if (seq > expected) {
        off_t here = w->r.next - (off_t)(w->r.end - w->r.start);
        int found = seq_appears(w->fd, here, w->size, lineno + 1, expected, &where);
        if (found < 0) {
            rc = -1;
        } else if (found) {
            problem(res, AUDIT_REORDERED, seq, lineno,
                    "record %" PRIu64 " (line %" PRIu64 ") appears after record %" PRIu64
                    " (line %" PRIu64 ")",
                    expected, where, seq, lineno);
        } else if (expected == seq - 1) {
            problem(res, AUDIT_DELETED, seq, lineno,
                    "record %" PRIu64 " is missing before line %" PRIu64 " (record %" PRIu64 ")",
                    expected, lineno, seq);
        } else {
            problem(res, AUDIT_DELETED, seq, lineno,
                    "records %" PRIu64 "..%" PRIu64 " are missing before line %" PRIu64
                    " (record %" PRIu64 ")",
                    expected, seq - 1, lineno, seq);
        }
        goto out;
    }

    if (seq == 1) {
        if (!is_kind(rec, "chain.start")) {
            problem(res, AUDIT_MALFORMED, 1, 1, "record 1 (line 1) is not of kind chain.start");
            goto out;
        }
        if (strspn(prev, "0") != AUDIT_HASH_HEX - 1) {
            problem(res, AUDIT_EDITED, 1, 1,
                    "record 1 (line 1) was altered: its prev is not 64 zeros");
            goto out;
        }
    } else if (strcmp(prev, res->head_hash) != 0) {
        problem(res, AUDIT_EDITED, res->head_seq, lineno - 1,
                "record %" PRIu64 " (line %" PRIu64
                ") was altered: its hash does not match the prev of record %" PRIu64
                " (line %" PRIu64 ")",
                res->head_seq, lineno - 1, seq, lineno);
        goto out;
    }

    sha256_hex(line, len, hash);
    /* What checkpoints further on signed about this record. */
    for (; w->next_claim < w->claims.n && w->claims.c[w->next_claim].covers <= seq;
         w->next_claim++) {
        const struct claim *c = &w->claims.c[w->next_claim];
        if (c->covers == seq && strcmp(c->head, hash) != 0) {
            problem(res, AUDIT_EDITED, seq, lineno,
                    "record %" PRIu64 " (line %" PRIu64
                    ") was altered: its hash does not match the head signed by checkpoint "
                    "%" PRIu64 " (line %" PRIu64 ")",
                    seq, lineno, c->cp_seq, c->cp_line);
            goto out;
        }
    }

    if (is_kind(rec, "checkpoint")) {
        struct claim c;
        if (check_checkpoint(rec, seq, res->chain, w->keys, &c, why, sizeof why) != 0) {
            problem(res, AUDIT_BAD_CHECKPOINT, seq, lineno,
                    "checkpoint record %" PRIu64 " (line %" PRIu64 ") does not verify: %s", seq,
                    lineno, why);
            goto out;
        }
        /* Pass 1 must have seen it, or its head was never compared. */
        const struct claim *seen = w->claims.n == 0 ? NULL
                                   : bsearch(&c, w->claims.c, w->claims.n, sizeof c, claim_cmp);
        if (!seen || strcmp(seen->head, c.head) != 0) {
            snprintf(res->message, sizeof res->message,
                     "%s: the file changed while it was being verified", w->path);
            rc = -1;
            goto out;
        }
        res->checkpoints++;
        if (c.covers > res->last_checkpoint_seq)
            res->last_checkpoint_seq = c.covers;
    }

    if (w->expect_hash && seq == w->expect_seq && strcmp(hash, w->expect_hash) != 0) {
        problem(res, AUDIT_EDITED, seq, lineno,
                "record %" PRIu64 " (line %" PRIu64
                ") was altered: its hash does not match the daemon's head",
                seq, lineno);
        goto out;
    }
    res->head_seq = seq;
    memcpy(res->head_hash, hash, sizeof hash);
    rc = 0;
out:
    json_decref(rec);
    return rc;
}

static int walk(struct walk *w, struct audit_verify_result *res)
{
    char *line;
    size_t len;
    bool nl;
    int rc;
    uint64_t lineno = 0;

    while ((rc = reader_next(&w->r, &line, &len, &nl)) > 0) {
        lineno++;
        if (!nl) {
            /* A final line without '\n': a write in progress if the daemon's
             * head is already behind us, else the file was cut. */
            if (w->expect_seq > 0 && res->head_seq >= w->expect_seq)
                return 0;
            if (w->expect_seq > 0)
                problem(res, AUDIT_TRUNCATED, res->head_seq + 1, lineno,
                        "the file ends inside record %" PRIu64 " (line %" PRIu64
                        ", no newline), before the daemon's head record %" PRIu64,
                        res->head_seq + 1, lineno, w->expect_seq);
            else
                problem(res, AUDIT_TRUNCATED, res->head_seq + 1, lineno,
                        "the file was cut inside record %" PRIu64 " (line %" PRIu64
                        " has no newline)",
                        res->head_seq + 1, lineno);
            return 0;
        }
        res->records++;
        if (rc == LINE_LONG) {
            problem(res, AUDIT_MALFORMED, res->head_seq + 1, lineno,
                    "line %" PRIu64 " is longer than %u bytes", lineno, AUDIT_MAX_LINE);
            return 0;
        }
        int bad = check_line(w, res, lineno, line, len);
        if (bad < 0 && !res->message[0])
            snprintf(res->message, sizeof res->message, "%s: %s", w->path, strerror(errno));
        if (bad != 0)
            return bad > 0 ? 0 : -1;
    }
    if (rc < 0) {
        snprintf(res->message, sizeof res->message, "%s: cannot read: %s", w->path,
                 strerror(errno));
        return -1;
    }
    if (lineno == 0)
        problem(res, AUDIT_TRUNCATED, 1, 1, "the file is empty: record 1 is missing");
    else if (w->expect_seq > res->head_seq)
        problem(res, AUDIT_TRUNCATED, res->head_seq + 1, lineno + 1,
                "the file ends at record %" PRIu64 " (line %" PRIu64
                ") but the daemon's head is record %" PRIu64 ": records %" PRIu64 "..%" PRIu64
                " are missing",
                res->head_seq, lineno, w->expect_seq, res->head_seq + 1, w->expect_seq);
    return 0;
}

int audit_verify_file(const char *path, const struct audit_keys *keys, uint64_t expect_seq,
                      const char *expect_hash, struct audit_verify_result *result)
{
    struct walk w = {.path = path, .keys = keys, .expect_seq = expect_seq,
                     .expect_hash = expect_hash};
    int rc = -1;

    memset(result, 0, sizeof *result);
    if (sodium_init() < 0) {
        snprintf(result->message, sizeof result->message, "libsodium initialisation failed");
        return -1;
    }
    w.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (w.fd < 0) {
        snprintf(result->message, sizeof result->message, "%s: cannot open: %s", path,
                 strerror(errno));
        return -1;
    }
    if (collect_claims(w.fd, keys, &w.claims, &w.size) != 0) {
        snprintf(result->message, sizeof result->message, "%s: cannot read: %s", path,
                 strerror(errno));
        goto out;
    }
    if (reader_init(&w.r, w.fd, 0, w.size) != 0) {
        snprintf(result->message, sizeof result->message, "out of memory");
        goto out;
    }
    rc = walk(&w, result);
    if (rc == 0) {
        result->unsigned_records = result->head_seq - result->last_checkpoint_seq;
        if (result->problem == AUDIT_OK)
            snprintf(result->message, sizeof result->message,
                     "%" PRIu64 " records verified, head record %" PRIu64 ", %" PRIu64
                     " checkpoints, %" PRIu64 " records after the last one",
                     result->records, result->head_seq, result->checkpoints,
                     result->unsigned_records);
    }
out:
    reader_free(&w.r);
    free(w.claims.c);
    close(w.fd);
    return rc;
}

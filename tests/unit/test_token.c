/*
 * test_token.c - cmocka tests for credd's token core (credd/token.h): fixed
 * JOSE vectors checked against independent implementations, strict JWS
 * verification of hostile input, the JWKS document, the key file's
 * permission and symlink checks, and the live-token table (states, sweep,
 * a million entries, concurrent use).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "token.h"

#define NOPAD sodium_base64_VARIANT_URLSAFE_NO_PADDING

/*
 * Fixed vector: seed = bytes 0..31. The expected values were produced
 * independently with Debian's Python (PyJWT 2.6 + cryptography), then the
 * token was checked with jwt.decode():
 *
 *   import json, hashlib, jwt
 *   from jwt.algorithms import OKPAlgorithm
 *   from jwt.utils import base64url_encode as b64
 *   from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
 *   sk = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
 *   x = json.loads(OKPAlgorithm.to_jwk(sk.public_key()))["x"]
 *   kid = b64(hashlib.sha256(json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x},
 *             sort_keys=True, separators=(",", ":")).encode()).digest()).decode()
 *   claims = {"iss": "spiffe://airlock.test/credd", "sub": "spiffe://airlock.test/ci/runner",
 *             "aud": ["airlock-worker", "https://api.example.com"], "iat": 1767225600,
 *             "nbf": 1767225600, "exp": 1767225660, "jti": "tok-0001",
 *             "scope": "exec:python read:repo", "task_id": "task-42",
 *             "act": {"sub": "spiffe://airlock.test/broker"}}
 *   h = json.dumps({"alg": "EdDSA", "typ": "JWT", "kid": kid}, separators=(",", ":"))
 *   p = json.dumps(claims, sort_keys=True, separators=(",", ":"))
 *   si = b64(h.encode()) + b"." + b64(p.encode())
 *   token = (si + b"." + b64(OKPAlgorithm().sign(si, sk))).decode()
 *   jwt.decode(token, sk.public_key(), algorithms=["EdDSA"], audience="airlock-worker",
 *              options={"verify_exp": False})
 */
#define VEC_X "A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"
#define VEC_KID "1IG2tMH7J2wbJZnOf8LJzQitKf7LMvoAElsuDMVM54Y"
#define VEC_TOKEN                                                                                  \
    "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCIsImtpZCI6IjFJRzJ0TUg3SjJ3Ykpabk9mOExKelFpdEtmN0xNdm9BRWx" \
    "zdURNVk01NFkifQ.eyJhY3QiOnsic3ViIjoic3BpZmZlOi8vYWlybG9jay50ZXN0L2Jyb2tlciJ9LCJhdWQiOlsiYWl" \
    "ybG9jay13b3JrZXIiLCJodHRwczovL2FwaS5leGFtcGxlLmNvbSJdLCJleHAiOjE3NjcyMjU2NjAsImlhdCI6MTc2Nz" \
    "IyNTYwMCwiaXNzIjoic3BpZmZlOi8vYWlybG9jay50ZXN0L2NyZWRkIiwianRpIjoidG9rLTAwMDEiLCJuYmYiOjE3N" \
    "jcyMjU2MDAsInNjb3BlIjoiZXhlYzpweXRob24gcmVhZDpyZXBvIiwic3ViIjoic3BpZmZlOi8vYWlybG9jay50ZXN0" \
    "L2NpL3J1bm5lciIsInRhc2tfaWQiOiJ0YXNrLTQyIn0.SS5QZBeFl8PXAnzlV2SzTYGfHB7OhYAry6RTcmGTepPeJAo" \
    "S52Xnl7JN_V_lln0AKEGAhVvMVvCWvXsJ4NnlBg"

/* RFC 8037 appendix A: key (A.1), thumbprint (A.3), JWS over a non-JSON payload (A.4). */
#define RFC_SEED_HEX "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define RFC_X "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
#define RFC_KID "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
#define RFC_JWS                                                                                    \
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg" \
    "3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"

/* ---- helpers ---- */

static void vector_key(struct signing_key *k)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    for (unsigned i = 0; i < sizeof seed; i++)
        seed[i] = (uint8_t)i;
    signing_key_from_seed(seed, k);
}

static void random_key(struct signing_key *k)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    randombytes_buf(seed, sizeof seed);
    signing_key_from_seed(seed, k);
}

static char *b64v(const void *bin, size_t len, int variant)
{
    size_t n = sodium_base64_ENCODED_LEN(len, variant);
    char *s = malloc(n);
    assert_non_null(s);
    sodium_bin2base64(s, n, bin, len, variant);
    return s;
}

static char *b64(const char *s)
{
    return b64v(s, strlen(s), NOPAD);
}

static char *cat3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s.%s.%s", a, b, c);
    return s;
}

/* h64 "." p64 "." b64url(sig), sig a valid Ed25519 signature over exactly
 * "h64.p64": lets a test make one defect at a time and still be signed. */
static char *forge(const struct signing_key *k, const char *h64, const char *p64)
{
    size_t n = strlen(h64) + 1 + strlen(p64);
    char *input = malloc(n + 1);
    assert_non_null(input);
    snprintf(input, n + 1, "%s.%s", h64, p64);
    uint8_t sig[crypto_sign_BYTES];
    assert_int_equal(crypto_sign_detached(sig, NULL, (const unsigned char *)input, n,
                                          k->secret_key), 0);
    char *s64 = b64v(sig, sizeof sig, NOPAD);
    char *tok = cat3(h64, p64, s64);
    free(input);
    free(s64);
    return tok;
}

static char *forge_json(const struct signing_key *k, const char *header, const char *payload)
{
    char *h = b64(header), *p = b64(payload);
    char *tok = forge(k, h, p);
    free(h);
    free(p);
    return tok;
}

static void good_header(const struct signing_key *k, char *buf, size_t len)
{
    snprintf(buf, len, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\"}", k->kid);
}

static void expect_ok(const struct signing_key *k, const char *kid, const char *tok)
{
    json_t *c = NULL;
    assert_int_equal(jwt_verify(k->public_key, kid, tok, &c), 0);
    assert_true(json_is_object(c));
    json_decref(c);
}

static void expect_rejected(const struct signing_key *k, const char *kid, const char *tok)
{
    json_t *c = json_object(); /* must come back NULL */
    json_t *orig = c;
    assert_int_equal(jwt_verify(k->public_key, kid, tok, &c), -1);
    assert_null(c);
    json_decref(orig);
}

/* Same as expect_rejected, then frees tok. */
static void reject_free(const struct signing_key *k, const char *kid, char *tok)
{
    expect_rejected(k, kid, tok);
    free(tok);
}

static json_t *vector_claims(void)
{
    /* Deliberately not in sorted order: jwt_sign must sort. */
    json_t *c = json_pack("{s:I,s:s,s:s,s:{s:s},s:[s,s],s:s,s:s,s:I,s:s,s:I}", "exp",
                          (json_int_t)1767225660, "task_id", "task-42", "jti", "tok-0001", "act",
                          "sub", "spiffe://airlock.test/broker", "aud", "airlock-worker",
                          "https://api.example.com", "scope", "exec:python read:repo", "sub",
                          "spiffe://airlock.test/ci/runner", "nbf", (json_int_t)1767225600, "iss",
                          "spiffe://airlock.test/credd", "iat", (json_int_t)1767225600);
    assert_non_null(c);
    return c;
}

/* Splits a token at its two dots into caller-freed parts. */
static void split(const char *tok, char **h, char **p, char **s)
{
    const char *d1 = strchr(tok, '.');
    assert_non_null(d1);
    const char *d2 = strchr(d1 + 1, '.');
    assert_non_null(d2);
    *h = strndup(tok, (size_t)(d1 - tok));
    *p = strndup(d1 + 1, (size_t)(d2 - d1 - 1));
    *s = strdup(d2 + 1);
    assert_true(*h && *p && *s);
}

/* ---- fixed vectors ---- */

static void test_fixed_vector(void **state)
{
    (void)state;
    struct signing_key k;
    vector_key(&k);
    char *x = b64v(k.public_key, sizeof k.public_key, NOPAD);
    assert_string_equal(x, VEC_X);
    assert_string_equal(k.kid, VEC_KID);

    json_t *claims = vector_claims();
    char *tok = jwt_sign(&k, claims);
    assert_non_null(tok);
    assert_string_equal(tok, VEC_TOKEN);

    json_t *back = NULL;
    assert_int_equal(jwt_verify(k.public_key, VEC_KID, VEC_TOKEN, &back), 0);
    assert_true(json_equal(back, claims));

    json_decref(back);
    json_decref(claims);
    free(tok);
    free(x);
    signing_key_wipe(&k);
}

static void test_rfc8037_vectors(void **state)
{
    (void)state;
    uint8_t seed[crypto_sign_SEEDBYTES];
    size_t n;
    assert_int_equal(sodium_hex2bin(seed, sizeof seed, RFC_SEED_HEX, strlen(RFC_SEED_HEX), NULL,
                                    &n, NULL), 0);
    assert_int_equal(n, sizeof seed);
    struct signing_key k;
    signing_key_from_seed(seed, &k);
    char *x = b64v(k.public_key, sizeof k.public_key, NOPAD);
    assert_string_equal(x, RFC_X);
    assert_string_equal(k.kid, RFC_KID);

    /* The A.4 JWS is validly signed, but its payload is not a claims object. */
    char *h, *p, *s;
    split(RFC_JWS, &h, &p, &s);
    uint8_t sig[crypto_sign_BYTES];
    assert_int_equal(sodium_base642bin(sig, sizeof sig, s, strlen(s), NULL, &n, NULL, NOPAD), 0);
    assert_int_equal(crypto_sign_verify_detached(sig, (const unsigned char *)RFC_JWS,
                                                 strlen(h) + 1 + strlen(p), k.public_key), 0);
    expect_rejected(&k, NULL, RFC_JWS);

    /* The same minimal header {"alg":"EdDSA"} (no typ, no kid) over an object is fine,
     * unless a kid is expected. */
    char *tok = forge_json(&k, "{\"alg\":\"EdDSA\"}", "{\"sub\":\"x\"}");
    expect_ok(&k, NULL, tok);
    expect_rejected(&k, RFC_KID, tok);

    free(tok);
    free(h);
    free(p);
    free(s);
    free(x);
}

/* ---- signing ---- */

static void test_sign_pieces(void **state)
{
    (void)state;
    struct signing_key k;
    random_key(&k);
    json_t *claims = json_pack("{s:s,s:I,s:s}", "sub", "spiffe://t/a?b=c&d=é", "exp",
                               (json_int_t)42, "jti", "abc");
    char *tok = jwt_sign(&k, claims);
    assert_non_null(tok);
    assert_null(strpbrk(tok, "=+/ \n"));

    char *h, *p, *s;
    split(tok, &h, &p, &s);
    char hdr[256], dec[256];
    size_t n;
    assert_int_equal(sodium_base642bin((uint8_t *)dec, sizeof dec - 1, h, strlen(h), NULL, &n,
                                       NULL, NOPAD), 0);
    dec[n] = '\0';
    good_header(&k, hdr, sizeof hdr);
    assert_string_equal(dec, hdr);

    uint8_t sig[crypto_sign_BYTES];
    assert_int_equal(sodium_base642bin(sig, sizeof sig, s, strlen(s), NULL, &n, NULL, NOPAD), 0);
    assert_int_equal(n, sizeof sig);
    assert_int_equal(crypto_sign_verify_detached(sig, (const unsigned char *)tok,
                                                 strlen(h) + 1 + strlen(p), k.public_key), 0);

    json_t *back = NULL;
    assert_int_equal(jwt_verify(k.public_key, k.kid, tok, &back), 0);
    assert_true(json_equal(back, claims));

    /* Another key's public key does not verify it. */
    struct signing_key other;
    random_key(&other);
    json_t *none = NULL;
    assert_int_equal(jwt_verify(other.public_key, k.kid, tok, &none), -1);
    assert_null(none);

    /* Only objects can be signed. */
    json_t *arr = json_array();
    assert_null(jwt_sign(&k, arr));
    assert_null(jwt_sign(&k, NULL));

    json_decref(arr);
    json_decref(back);
    json_decref(claims);
    free(tok);
    free(h);
    free(p);
    free(s);
}

/* ---- verification: rejections ---- */

static void test_verify_rejects_tampering(void **state)
{
    (void)state;
    struct signing_key k;
    vector_key(&k);
    char *h, *p, *s;
    split(VEC_TOKEN, &h, &p, &s);

    /* One flipped signature bit. */
    uint8_t sig[crypto_sign_BYTES];
    size_t n;
    assert_int_equal(sodium_base642bin(sig, sizeof sig, s, strlen(s), NULL, &n, NULL, NOPAD), 0);
    sig[10] ^= 0x01;
    char *s2 = b64v(sig, sizeof sig, NOPAD);
    reject_free(&k, VEC_KID, cat3(h, p, s2));
    free(s2);

    /* One changed payload character, one changed header character. */
    char *tok = strdup(VEC_TOKEN);
    assert_non_null(tok);
    size_t at = strlen(h) + 1 + 20;
    tok[at] = tok[at] == 'A' ? 'B' : 'A';
    reject_free(&k, VEC_KID, tok);
    tok = strdup(VEC_TOKEN);
    assert_non_null(tok);
    tok[5] = tok[5] == 'A' ? 'B' : 'A';
    reject_free(&k, VEC_KID, tok);

    /* Same token, wrong public key. */
    struct signing_key other;
    random_key(&other);
    json_t *c = NULL;
    assert_int_equal(jwt_verify(other.public_key, NULL, VEC_TOKEN, &c), -1);
    assert_null(c);

    free(h);
    free(p);
    free(s);
}

static void test_verify_rejects_alg(void **state)
{
    (void)state;
    struct signing_key k;
    vector_key(&k);
    const char *payload = "{\"sub\":\"x\"}";
    char hdr[256];

    /* Sanity: the forging helper makes acceptable tokens. */
    good_header(&k, hdr, sizeof hdr);
    char *tok = forge_json(&k, hdr, payload);
    expect_ok(&k, VEC_KID, tok);
    free(tok);

    const char *algs[] = {"\"none\"", "\"HS256\"", "\"RS256\"", "\"ES256\"", "\"eddsa\"",
                          "\"Ed25519\"", "\"EdDSA \"", "\"\"", "null", "1", "[\"EdDSA\"]"};
    for (size_t i = 0; i < sizeof algs / sizeof *algs; i++) {
        snprintf(hdr, sizeof hdr, "{\"alg\":%s,\"typ\":\"JWT\",\"kid\":\"%s\"}", algs[i], k.kid);
        reject_free(&k, VEC_KID, forge_json(&k, hdr, payload));
        reject_free(&k, NULL, forge_json(&k, hdr, payload));
    }
    /* No alg at all. */
    snprintf(hdr, sizeof hdr, "{\"typ\":\"JWT\",\"kid\":\"%s\"}", k.kid);
    reject_free(&k, NULL, forge_json(&k, hdr, payload));

    /* The classic alg:none token: empty signature. */
    char *h = b64("{\"alg\":\"none\",\"typ\":\"JWT\"}"), *p = b64(payload);
    char *none = cat3(h, p, "");
    expect_rejected(&k, NULL, none);
    free(none);
    free(h);
    free(p);
}

static void test_verify_rejects_header(void **state)
{
    (void)state;
    struct signing_key k;
    vector_key(&k);
    const char *payload = "{\"sub\":\"x\"}";
    char hdr[512];

    /* Wrong kid, missing kid, non-string kid. */
    good_header(&k, hdr, sizeof hdr);
    reject_free(&k, "some-other-kid", forge_json(&k, hdr, payload));
    reject_free(&k, "", forge_json(&k, hdr, payload));
    reject_free(&k, VEC_KID, forge_json(&k, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\"}", payload));
    reject_free(&k, NULL, forge_json(&k, "{\"alg\":\"EdDSA\",\"kid\":7}", payload));
    snprintf(hdr, sizeof hdr, "{\"alg\":\"EdDSA\",\"kid\":\"%sX\"}", k.kid);
    reject_free(&k, VEC_KID, forge_json(&k, hdr, payload));

    /* typ other than JWT; crit; duplicate alg; not an object; not JSON; deep nesting. */
    snprintf(hdr, sizeof hdr, "{\"alg\":\"EdDSA\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", k.kid);
    reject_free(&k, VEC_KID, forge_json(&k, hdr, payload));
    reject_free(&k, NULL, forge_json(&k, "{\"alg\":\"EdDSA\",\"typ\":1}", payload));
    reject_free(&k, NULL,
                forge_json(&k, "{\"alg\":\"EdDSA\",\"crit\":[\"b64\"],\"b64\":false}", payload));
    reject_free(&k, NULL, forge_json(&k, "{\"alg\":\"none\",\"alg\":\"EdDSA\"}", payload));
    reject_free(&k, NULL, forge_json(&k, "[\"EdDSA\"]", payload));
    reject_free(&k, NULL, forge_json(&k, "\"EdDSA\"", payload));
    reject_free(&k, NULL, forge_json(&k, "{\"alg\":\"EdDSA\"", payload));
    reject_free(&k, NULL, forge_json(&k, "{\"alg\":\"EdDSA\"} x", payload));
    char deep[4200];
    memset(deep, '[', sizeof deep - 1);
    deep[sizeof deep - 1] = '\0';
    reject_free(&k, NULL, forge_json(&k, deep, payload));
}

static void test_verify_rejects_claims(void **state)
{
    (void)state;
    struct signing_key k;
    vector_key(&k);
    char hdr[256];
    good_header(&k, hdr, sizeof hdr);
    const char *bad[] = {"[1,2]", "\"str\"", "123", "null", "true", "{", "{\"a\":1}x",
                         "{\"sub\":\"a\",\"sub\":\"b\"}", "{\"a\":\"\\u0000\"}", "{\"a\":\"\xff\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        reject_free(&k, VEC_KID, forge_json(&k, hdr, bad[i]));
    /* Empty payload part. */
    char *h = b64(hdr);
    reject_free(&k, VEC_KID, forge(&k, h, ""));
    free(h);
}

/* Replaces every occurrence of a by b. */
static void subst(char *s, char a, char b)
{
    for (; *s; s++)
        if (*s == a)
            *s = b;
}

static void test_verify_rejects_encoding(void **state)
{
    (void)state;
    struct signing_key k;
    vector_key(&k);
    char hdr[256], payload[256];
    good_header(&k, hdr, sizeof hdr);

    /* Padding on the header, validly signed: pad the JSON until its length is
     * not a multiple of 3 so standard base64url has '='. */
    char padded_hdr[260];
    snprintf(padded_hdr, sizeof padded_hdr, "%s", hdr);
    while (strlen(padded_hdr) % 3 == 0)
        memmove(padded_hdr + 2, padded_hdr + 1, strlen(padded_hdr)), padded_hdr[1] = ' ';
    char *hp = b64v(padded_hdr, strlen(padded_hdr), sodium_base64_VARIANT_URLSAFE);
    assert_non_null(strchr(hp, '='));
    char *pp = b64("{\"sub\":\"x\"}");
    reject_free(&k, VEC_KID, forge(&k, hp, pp));
    hp[strcspn(hp, "=")] = '\0';
    char *tok = forge(&k, hp, pp); /* same without '=': accepted */
    expect_ok(&k, VEC_KID, tok);
    free(tok);
    free(hp);
    free(pp);

    /* Standard-alphabet '+' '/' in the payload, validly signed. */
    char *h64 = b64(hdr), *p64 = NULL;
    for (int fill = 0; fill < 3 && !p64; fill++) {
        snprintf(payload, sizeof payload, "{\"sub\":\"%.*s~~~>>>~~~\"}", fill, "xxx");
        char *std = b64v(payload, strlen(payload), sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
        if (strpbrk(std, "+/"))
            p64 = std;
        else
            free(std);
    }
    assert_non_null(p64);
    reject_free(&k, VEC_KID, forge(&k, h64, p64));
    subst(p64, '+', '-');
    subst(p64, '/', '_');
    tok = forge(&k, h64, p64); /* the URL-safe spelling: accepted */
    expect_ok(&k, VEC_KID, tok);
    free(tok);
    free(p64);

    /* A newline inside the payload part, validly signed over the text as sent. */
    p64 = b64("{\"sub\":\"some subject\"}");
    size_t plen = strlen(p64);
    char *nl = malloc(plen + 2);
    assert_non_null(nl);
    memcpy(nl, p64, 8);
    nl[8] = '\n';
    memcpy(nl + 9, p64 + 8, plen - 8 + 1);
    reject_free(&k, VEC_KID, forge(&k, h64, nl));
    free(nl);
    free(p64);
    free(h64);

    /* Signature spelled with '+' '/' or padded: same bytes to a lax decoder. */
    char *h, *p, *s;
    split(VEC_TOKEN, &h, &p, &s);
    assert_non_null(strchr(s, '_')); /* the vector's signature has one */
    char *s2 = strdup(s);
    assert_non_null(s2);
    subst(s2, '-', '+');
    subst(s2, '_', '/');
    reject_free(&k, VEC_KID, cat3(h, p, s2));
    free(s2);
    size_t slen = strlen(s);
    s2 = malloc(slen + 3);
    assert_non_null(s2);
    snprintf(s2, slen + 3, "%s==", s);
    reject_free(&k, VEC_KID, cat3(h, p, s2));

    /* A byte >= 0x80 where the signature has '_': libsodium 1.0.18 decodes
     * it as '_', so only the alphabet check stands between us and a second
     * spelling of the same signature. */
    snprintf(s2, slen + 3, "%s", s);
    *strchr(s2, '_') = (char)0xdf;
    reject_free(&k, VEC_KID, cat3(h, p, s2));

    /* Non-canonical last character: 64 bytes leave 4 unused bits in the
     * last base64 character; setting one must be refused. */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    snprintf(s2, slen + 3, "%s", s);
    const char *pos = strchr(alphabet, s2[slen - 1]);
    assert_non_null(pos);
    assert_int_equal((pos - alphabet) & 0x0f, 0);
    s2[slen - 1] = alphabet[(pos - alphabet) | 1];
    reject_free(&k, VEC_KID, cat3(h, p, s2));
    free(s2);

    /* Signature of the wrong length: 63 bytes, and 64 good bytes plus one. */
    uint8_t sig[crypto_sign_BYTES + 1];
    size_t n;
    assert_int_equal(sodium_base642bin(sig, sizeof sig, s, slen, NULL, &n, NULL, NOPAD), 0);
    assert_int_equal(n, crypto_sign_BYTES);
    sig[crypto_sign_BYTES] = 0;
    s2 = b64v(sig, crypto_sign_BYTES + 1, NOPAD);
    reject_free(&k, VEC_KID, cat3(h, p, s2));
    free(s2);
    s2 = b64v(sig, crypto_sign_BYTES - 1, NOPAD);
    reject_free(&k, VEC_KID, cat3(h, p, s2));
    free(s2);
    reject_free(&k, VEC_KID, cat3(h, p, "A"));

    free(h);
    free(p);
    free(s);
}

static void test_verify_rejects_structure(void **state)
{
    (void)state;
    struct signing_key k;
    vector_key(&k);
    char *h, *p, *s;
    split(VEC_TOKEN, &h, &p, &s);
    char buf[2048];

    snprintf(buf, sizeof buf, "%s.", VEC_TOKEN); /* extra dots */
    expect_rejected(&k, VEC_KID, buf);
    snprintf(buf, sizeof buf, ".%s", VEC_TOKEN);
    expect_rejected(&k, VEC_KID, buf);
    snprintf(buf, sizeof buf, "%s.%s.%s.%s", h, p, s, s);
    expect_rejected(&k, VEC_KID, buf);
    snprintf(buf, sizeof buf, "%s..%s.%s", h, p, s);
    expect_rejected(&k, VEC_KID, buf);
    snprintf(buf, sizeof buf, "%s.%s", h, p); /* missing parts */
    expect_rejected(&k, VEC_KID, buf);
    snprintf(buf, sizeof buf, "%s.%s.", h, p);
    expect_rejected(&k, VEC_KID, buf);
    snprintf(buf, sizeof buf, ".%s.%s", p, s);
    expect_rejected(&k, VEC_KID, buf);
    snprintf(buf, sizeof buf, "%s..%s", h, s);
    expect_rejected(&k, VEC_KID, buf);
    expect_rejected(&k, VEC_KID, "");
    expect_rejected(&k, VEC_KID, ".");
    expect_rejected(&k, VEC_KID, "..");
    expect_rejected(&k, VEC_KID, "...");
    expect_rejected(&k, NULL, NULL);
    json_t *c = NULL;
    assert_int_equal(jwt_verify(k.public_key, NULL, VEC_TOKEN, NULL), -1);
    assert_int_equal(jwt_verify(NULL, NULL, VEC_TOKEN, &c), -1);
    assert_null(c);

    free(h);
    free(p);
    free(s);
}

/* Tokens up to JWT_MAX_LEN verify, longer ones are refused even when validly
 * signed, and jwt_sign never produces one over the limit. */
static void test_size_limit(void **state)
{
    (void)state;
    struct signing_key k;
    vector_key(&k);
    size_t fill_len = 5950; /* a token of about 8 KiB */
    char *fill = malloc(JWT_MAX_LEN);
    char *payload = malloc(JWT_MAX_LEN + 64);
    assert_true(fill && payload);
    int saw_max = 0, saw_over = 0;

    /* Vary payload and header length (extra "x" member) to land on both sides exactly. */
    for (size_t f = fill_len; f < fill_len + 80; f++) {
        for (int pad = 0; pad < 4; pad++) {
            char hdr[256];
            snprintf(hdr, sizeof hdr, "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"%s\",\"x\":\"%.*s\"}",
                     k.kid, pad, "xxxx");
            memset(fill, 'a', f);
            fill[f] = '\0';
            snprintf(payload, JWT_MAX_LEN + 64, "{\"f\":\"%s\"}", fill);
            char *tok = forge_json(&k, hdr, payload);
            size_t len = strlen(tok);
            if (len <= JWT_MAX_LEN)
                expect_ok(&k, VEC_KID, tok);
            else
                expect_rejected(&k, VEC_KID, tok);
            saw_max |= len == JWT_MAX_LEN;
            saw_over |= len == JWT_MAX_LEN + 1;
            free(tok);
        }
    }
    assert_true(saw_max && saw_over);

    /* A 9 KiB token. */
    memset(fill, 'a', 6900);
    fill[6900] = '\0';
    snprintf(payload, JWT_MAX_LEN + 64, "{\"f\":\"%s\"}", fill);
    char hdr[256];
    good_header(&k, hdr, sizeof hdr);
    char *tok = forge_json(&k, hdr, payload);
    assert_true(strlen(tok) > 9 * 1024);
    reject_free(&k, VEC_KID, tok);

    /* jwt_sign: grows until it refuses; everything it produced verifies. */
    size_t last = 0;
    for (size_t f = fill_len;; f++) {
        json_t *c = json_pack("{s:s%}", "f", fill, f);
        assert_non_null(c);
        tok = jwt_sign(&k, c);
        json_decref(c);
        if (!tok)
            break;
        last = strlen(tok);
        assert_true(last <= JWT_MAX_LEN);
        expect_ok(&k, VEC_KID, tok);
        free(tok);
    }
    assert_true(last > JWT_MAX_LEN - 4);
    free(fill);
    free(payload);
}

/* Random mutations of a valid token never verify and never crash. */
static void test_verify_mutations(void **state)
{
    (void)state;
    struct signing_key k;
    vector_key(&k);
    static const char chars[] = "AZaz09-_.=+/ \"{}";
    size_t len = strlen(VEC_TOKEN);
    char *tok = malloc(len + 1);
    assert_non_null(tok);
    for (int i = 0; i < 400; i++) {
        memcpy(tok, VEC_TOKEN, len + 1);
        size_t at = randombytes_uniform((uint32_t)len);
        switch (i % 3) {
        case 0: /* replace one character */
            tok[at] = chars[randombytes_uniform(sizeof chars - 1)];
            break;
        case 1: /* truncate */
            tok[at] = '\0';
            break;
        case 2: /* random byte */
            tok[at] = (char)(randombytes_uniform(255) + 1);
            break;
        }
        if (strcmp(tok, VEC_TOKEN) != 0)
            expect_rejected(&k, NULL, tok);
    }
    /* Random garbage with dots in it. */
    for (int i = 0; i < 200; i++) {
        size_t n = randombytes_uniform(200);
        for (size_t j = 0; j < n; j++)
            tok[j] = chars[randombytes_uniform(sizeof chars - 1)];
        tok[n] = '\0';
        expect_rejected(&k, NULL, tok);
    }
    free(tok);
}

/* ---- JWKS ---- */

static void test_jwks(void **state)
{
    (void)state;
    struct signing_key a, b;
    vector_key(&a);
    random_key(&b);
    const struct signing_key *keys[] = {&a, &b};
    char *doc = jwks_json(keys, 2);
    assert_non_null(doc);

    json_t *root = json_loads(doc, JSON_REJECT_DUPLICATES, NULL);
    assert_true(json_is_object(root));
    assert_int_equal(json_object_size(root), 1);
    json_t *list = json_object_get(root, "keys");
    assert_true(json_is_array(list));
    assert_int_equal(json_array_size(list), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *jwk = json_array_get(list, i);
        assert_int_equal(json_object_size(jwk), 6);
        assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "OKP");
        assert_string_equal(json_string_value(json_object_get(jwk, "crv")), "Ed25519");
        assert_string_equal(json_string_value(json_object_get(jwk, "alg")), "EdDSA");
        assert_string_equal(json_string_value(json_object_get(jwk, "use")), "sig");
        assert_string_equal(json_string_value(json_object_get(jwk, "kid")), keys[i]->kid);
        const char *x = json_string_value(json_object_get(jwk, "x"));
        assert_non_null(x);
        uint8_t pk[crypto_sign_PUBLICKEYBYTES + 1];
        size_t n;
        const char *end;
        assert_int_equal(sodium_base642bin(pk, sizeof pk, x, strlen(x), NULL, &n, &end, NOPAD), 0);
        assert_ptr_equal(end, x + strlen(x));
        assert_int_equal(n, crypto_sign_PUBLICKEYBYTES);
        assert_memory_equal(pk, keys[i]->public_key, crypto_sign_PUBLICKEYBYTES);
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "x")), VEC_X);
    json_decref(root);
    free(doc);

    doc = jwks_json(NULL, 0);
    assert_string_equal(doc, "{\"keys\":[]}");
    free(doc);
    const struct signing_key *holes[] = {&a, NULL};
    assert_null(jwks_json(holes, 2));
}

/* ---- key file ---- */

struct keydir {
    char root[64];  /* mkdtemp */
    char state[96]; /* root/state, not created by the fixture */
    char path[128]; /* state/signing.key */
};

static int keydir_setup(void **state)
{
    struct keydir *d = calloc(1, sizeof *d);
    if (!d)
        return -1;
    snprintf(d->root, sizeof d->root, "/tmp/airlock-token-test.XXXXXX");
    if (!mkdtemp(d->root)) {
        free(d);
        return -1;
    }
    snprintf(d->state, sizeof d->state, "%s/state", d->root);
    snprintf(d->path, sizeof d->path, "%s/signing.key", d->state);
    *state = d;
    return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int keydir_teardown(void **state)
{
    struct keydir *d = *state;
    int rc = nftw(d->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
    return rc;
}

static int load(struct keydir *d, struct signing_key *k, char *err, size_t errlen)
{
    err[0] = '\0';
    int rc = signing_key_load_or_create(d->state, k, err, errlen);
    if (rc != 0)
        assert_true(err[0] != '\0'); /* a refusal always says why */
    return rc;
}

static void test_key_create_and_reload(void **state)
{
    struct keydir *d = *state;
    struct signing_key k1, k2;
    char err[512];
    assert_int_equal(load(d, &k1, err, sizeof err), 0);

    struct stat st;
    assert_int_equal(stat(d->state, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(lstat(d->path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, crypto_sign_SEEDBYTES);

    assert_int_equal(load(d, &k2, err, sizeof err), 0);
    assert_memory_equal(k1.public_key, k2.public_key, sizeof k1.public_key);
    assert_memory_equal(k1.secret_key, k2.secret_key, sizeof k1.secret_key);
    assert_string_equal(k1.kid, k2.kid);

    /* The file is the raw seed. */
    uint8_t seed[crypto_sign_SEEDBYTES];
    int fd = open(d->path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, seed, sizeof seed), sizeof seed);
    close(fd);
    struct signing_key k3;
    signing_key_from_seed(seed, &k3);
    assert_memory_equal(k3.secret_key, k1.secret_key, sizeof k1.secret_key);

    /* An owner-only mode stricter than 0600 is fine. */
    assert_int_equal(chmod(d->path, 0400), 0);
    assert_int_equal(load(d, &k2, err, sizeof err), 0);

    signing_key_wipe(&k1);
    uint8_t zero[crypto_sign_SECRETKEYBYTES] = {0};
    assert_memory_equal(k1.secret_key, zero, sizeof zero);
    signing_key_wipe(&k2);
    signing_key_wipe(&k3);
}

static void test_key_refuses_group_other_modes(void **state)
{
    struct keydir *d = *state;
    struct signing_key k;
    char err[512];
    assert_int_equal(load(d, &k, err, sizeof err), 0);
    const mode_t bad[] = {0644, 0640, 0604, 0660, 0601, 0610};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(chmod(d->path, bad[i]), 0);
        assert_int_equal(load(d, &k, err, sizeof err), -1);
        assert_non_null(strstr(err, "mode"));
    }
    assert_int_equal(chmod(d->path, 0600), 0);
    assert_int_equal(load(d, &k, err, sizeof err), 0);

    /* A state directory others can write is refused too. */
    assert_int_equal(chmod(d->state, 0777), 0);
    assert_int_equal(load(d, &k, err, sizeof err), -1);
    assert_int_equal(chmod(d->state, 0700), 0);
    signing_key_wipe(&k);
}

static void test_key_refuses_symlink(void **state)
{
    struct keydir *d = *state;
    struct signing_key k;
    char err[512], real[160], target[160];
    assert_int_equal(load(d, &k, err, sizeof err), 0);
    snprintf(real, sizeof real, "%s/real.key", d->state);
    assert_int_equal(rename(d->path, real), 0);
    assert_int_equal(symlink("real.key", d->path), 0);
    assert_int_equal(load(d, &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "symlink"));

    /* A dangling symlink must not be followed to create its target. */
    assert_int_equal(unlink(d->path), 0);
    snprintf(target, sizeof target, "%s/planted", d->root);
    assert_int_equal(symlink(target, d->path), 0);
    assert_int_equal(load(d, &k, err, sizeof err), -1);
    struct stat st;
    assert_int_equal(lstat(target, &st), -1);
    assert_int_equal(errno, ENOENT);
}

static void test_key_refuses_bad_size_and_type(void **state)
{
    struct keydir *d = *state;
    struct signing_key k;
    char err[512];
    assert_int_equal(load(d, &k, err, sizeof err), 0);

    assert_int_equal(truncate(d->path, crypto_sign_SEEDBYTES - 1), 0);
    assert_int_equal(load(d, &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "bytes"));
    assert_int_equal(truncate(d->path, 0), 0);
    assert_int_equal(load(d, &k, err, sizeof err), -1);
    assert_int_equal(truncate(d->path, crypto_sign_SECRETKEYBYTES), 0);
    assert_int_equal(load(d, &k, err, sizeof err), -1);

    /* Not a regular file: a directory, a FIFO (must not block). */
    assert_int_equal(unlink(d->path), 0);
    assert_int_equal(mkdir(d->path, 0700), 0);
    assert_int_equal(load(d, &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "regular"));
    assert_int_equal(rmdir(d->path), 0);
    assert_int_equal(mkfifo(d->path, 0600), 0);
    assert_int_equal(load(d, &k, err, sizeof err), -1);
    assert_non_null(strstr(err, "regular"));

    /* The state directory path is a file. */
    char file_dir[160];
    snprintf(file_dir, sizeof file_dir, "%s/signing.key", d->root);
    int fd = open(file_dir, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    snprintf(d->state, sizeof d->state, "%s/signing.key", d->root);
    assert_int_equal(load(d, &k, err, sizeof err), -1);
}

/* ---- token table ---- */

static void test_table_lifecycle(void **state)
{
    (void)state;
    struct token_table *t = token_table_new();
    assert_non_null(t);
    json_t *claims = json_pack("{s:s}", "jti", "t1");
    assert_int_equal(token_table_insert(t, "t1", 1000, claims), 0);
    assert_int_equal(claims->refcount, 2);
    assert_int_equal(token_table_size(t), 1);

    json_t *got = NULL;
    assert_int_equal(token_table_lookup(t, "t1", 999, &got), TOKEN_ACTIVE);
    assert_ptr_equal(got, claims);
    json_decref(got);
    assert_int_equal(token_table_lookup(t, "t1", 999, NULL), TOKEN_ACTIVE);

    /* Revoke returns the prior status; again is a no-op that reports REVOKED. */
    assert_int_equal(token_table_revoke(t, "t1", 500), TOKEN_ACTIVE);
    assert_int_equal(token_table_revoke(t, "t1", 500), TOKEN_REVOKED);
    assert_int_equal(token_table_revoke(t, "t1", 501), TOKEN_REVOKED);
    json_t *orig = got = json_object();
    assert_int_equal(token_table_lookup(t, "t1", 500, &got), TOKEN_REVOKED);
    assert_null(got); /* claims only for ACTIVE tokens */
    json_decref(orig);
    /* Revoked stays revoked after expiry (until swept). */
    assert_int_equal(token_table_lookup(t, "t1", 5000, NULL), TOKEN_REVOKED);

    /* Unknown and malformed jtis. */
    assert_int_equal(token_table_lookup(t, "t2", 0, NULL), TOKEN_UNKNOWN);
    assert_int_equal(token_table_revoke(t, "t2", 0), TOKEN_UNKNOWN);
    assert_int_equal(token_table_lookup(t, "t2", 0, NULL), TOKEN_UNKNOWN);
    assert_int_equal(token_table_lookup(t, "", 0, NULL), TOKEN_UNKNOWN);
    assert_int_equal(token_table_lookup(t, NULL, 0, NULL), TOKEN_UNKNOWN);
    assert_int_equal(token_table_insert(t, "", 10, NULL), -1);
    assert_int_equal(token_table_insert(t, NULL, 10, NULL), -1);
    assert_int_equal(token_table_size(t), 1);

    /* Duplicate jti: refused, original untouched, no extra reference kept. */
    json_t *other = json_object();
    assert_int_equal(token_table_insert(t, "t1", 99999, other), -1);
    assert_int_equal(other->refcount, 1);
    assert_int_equal(token_table_lookup(t, "t1", 0, NULL), TOKEN_REVOKED);
    assert_int_equal(token_table_size(t), 1);

    assert_string_equal(token_status_name(TOKEN_UNKNOWN), "unknown");
    assert_string_equal(token_status_name(TOKEN_ACTIVE), "active");
    assert_string_equal(token_status_name(TOKEN_REVOKED), "revoked");
    assert_string_equal(token_status_name(TOKEN_EXPIRED), "expired");

    token_table_free(t);
    assert_int_equal(claims->refcount, 1);
    json_decref(other);
    json_decref(claims);
    token_table_free(NULL);
}

static void test_table_expiry(void **state)
{
    (void)state;
    struct token_table *t = token_table_new();
    assert_non_null(t);
    json_t *claims = json_object();
    assert_int_equal(token_table_insert(t, "e", 1000, claims), 0);
    assert_int_equal(token_table_lookup(t, "e", 999, NULL), TOKEN_ACTIVE);
    json_t *got = json_object(), *orig = got;
    assert_int_equal(token_table_lookup(t, "e", 1000, &got), TOKEN_EXPIRED); /* now == exp */
    assert_null(got);
    json_decref(orig);
    assert_int_equal(token_table_lookup(t, "e", 1001, NULL), TOKEN_EXPIRED);
    /* Revoking an expired token changes nothing. */
    assert_int_equal(token_table_revoke(t, "e", 1000), TOKEN_EXPIRED);
    assert_int_equal(token_table_lookup(t, "e", 1000, NULL), TOKEN_EXPIRED);
    assert_int_equal(token_table_lookup(t, "e", 999, NULL), TOKEN_ACTIVE);
    token_table_free(t);
    json_decref(claims);
}

/* Replay: a revocation recorded while active sticks, even for a token whose
 * exp has passed by the time it is replayed. */
static void test_table_mark_revoked(void **state)
{
    (void)state;
    struct token_table *t = token_table_new();
    assert_non_null(t);
    json_t *claims = json_object();
    assert_int_equal(token_table_insert(t, "gone", 1000, claims), 0);
    assert_int_equal(token_table_insert(t, "live", 9000, claims), 0);
    assert_int_equal(token_table_lookup(t, "gone", 2000, NULL), TOKEN_EXPIRED);
    assert_int_equal(token_table_mark_revoked(t, "gone"), 0);
    assert_int_equal(token_table_lookup(t, "gone", 2000, NULL), TOKEN_REVOKED);
    assert_int_equal(token_table_lookup(t, "gone", 500, NULL), TOKEN_REVOKED);
    assert_int_equal(token_table_mark_revoked(t, "gone"), 0); /* idempotent */
    assert_int_equal(token_table_mark_revoked(t, "live"), 0);
    json_t *got = json_object(), *orig = got;
    assert_int_equal(token_table_lookup(t, "live", 100, &got), TOKEN_REVOKED);
    assert_null(got); /* its claims are dropped */
    json_decref(orig);
    assert_int_equal(claims->refcount, 1);
    assert_int_equal(token_table_mark_revoked(t, "never"), -1);
    assert_int_equal(token_table_lookup(t, "never", 100, NULL), TOKEN_UNKNOWN);
    assert_int_equal(token_table_mark_revoked(t, NULL), -1);
    assert_int_equal(token_table_mark_revoked(t, ""), -1);
    assert_int_equal(token_table_size(t), 2);
    token_table_free(t);
    json_decref(claims);
}

static bool azp_is(const json_t *claims, void *ctx)
{
    const char *azp = json_string_value(json_object_get(claims, "azp"));
    return azp && strcmp(azp, ctx) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Only active tokens whose claims match, across stripes and bucket growth. */
static void test_table_find_active(void **state)
{
    (void)state;
    struct token_table *t = token_table_new();
    assert_non_null(t);
    json_t *mine = json_pack("{s:s}", "azp", "b1"), *theirs = json_pack("{s:s}", "azp", "b2");
    char jti[32];
    for (int i = 0; i < 500; i++) {
        snprintf(jti, sizeof jti, "m%03d", i);
        assert_int_equal(token_table_insert(t, jti, i % 5 == 0 ? 100 : 1000, mine), 0);
        snprintf(jti, sizeof jti, "o%03d", i);
        assert_int_equal(token_table_insert(t, jti, 1000, theirs), 0);
    }
    assert_int_equal(token_table_revoke(t, "m001", 200), TOKEN_ACTIVE);
    assert_int_equal(token_table_insert(t, "no-claims", 1000, NULL), 0);

    char **jtis = NULL;
    size_t n = 0;
    assert_int_equal(token_table_find_active(t, 200, azp_is, "b1", &jtis, &n), 0);
    /* 500 mine, minus 100 expired at 200 (i % 5 == 0), minus m001 revoked. */
    assert_int_equal(n, 399);
    qsort(jtis, n, sizeof *jtis, cmp_str);
    assert_string_equal(jtis[0], "m002");
    assert_string_equal(jtis[n - 1], "m499");
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(jtis[i][0], 'm');
        int k = atoi(jtis[i] + 1);
        assert_true(k % 5 != 0 && k != 1);
        free(jtis[i]);
    }
    free(jtis);

    /* Before anything expired: all 500 of theirs. */
    assert_int_equal(token_table_find_active(t, 50, azp_is, "b2", &jtis, &n), 0);
    assert_int_equal(n, 500);
    for (size_t i = 0; i < n; i++)
        free(jtis[i]);
    free(jtis);

    jtis = (char **)&n; /* overwritten */
    assert_int_equal(token_table_find_active(t, 50, azp_is, "nobody", &jtis, &n), 0);
    assert_int_equal(n, 0);
    assert_null(jtis);
    token_table_free(t);
    json_decref(mine);
    json_decref(theirs);
}

static void test_table_sweep(void **state)
{
    (void)state;
    struct token_table *t = token_table_new();
    assert_non_null(t);
    json_t *old = json_object(), *edge = json_object(), *fresh = json_object();
    assert_int_equal(token_table_insert(t, "old", 100, old), 0);
    assert_int_equal(token_table_insert(t, "old-revoked", 100, old), 0);
    assert_int_equal(token_table_revoke(t, "old-revoked", 50), TOKEN_ACTIVE);
    assert_int_equal(token_table_insert(t, "edge", 140, edge), 0); /* exp == now - grace */
    assert_int_equal(token_table_insert(t, "fresh", 1000, fresh), 0);
    assert_int_equal(old->refcount, 2); /* the revoked token keeps no claims */

    assert_int_equal(token_table_sweep(t, 200, 60), 2); /* cutoff 140: exp < 140 goes */
    assert_int_equal(old->refcount, 1);                 /* every reference released */
    assert_int_equal(edge->refcount, 1); /* expired: kept as a tombstone, without claims */
    assert_int_equal(fresh->refcount, 2);
    assert_int_equal(token_table_size(t), 2);
    assert_int_equal(token_table_lookup(t, "old", 200, NULL), TOKEN_UNKNOWN);
    assert_int_equal(token_table_lookup(t, "old-revoked", 200, NULL), TOKEN_UNKNOWN);
    assert_int_equal(token_table_lookup(t, "edge", 200, NULL), TOKEN_EXPIRED);
    assert_int_equal(token_table_lookup(t, "fresh", 200, NULL), TOKEN_ACTIVE);
    assert_int_equal(token_table_sweep(t, 200, 60), 0);

    /* A swept jti can be minted again (new token, same id). */
    assert_int_equal(token_table_insert(t, "old", 2000, old), 0);
    assert_int_equal(token_table_lookup(t, "old", 200, NULL), TOKEN_ACTIVE);

    assert_int_equal(token_table_sweep(t, 10000, 0), 3);
    assert_int_equal(token_table_size(t), 0);
    assert_int_equal(old->refcount, 1);
    assert_int_equal(edge->refcount, 1);
    assert_int_equal(fresh->refcount, 1);
    token_table_free(t);
    json_decref(old);
    json_decref(edge);
    json_decref(fresh);
}

#define MILLION 1000000

static void test_table_million(void **state)
{
    (void)state;
    struct token_table *t = token_table_new();
    assert_non_null(t);
    json_t *claims = json_object();
    char jti[32];
    for (int i = 0; i < MILLION; i++) {
        snprintf(jti, sizeof jti, "jti-%d", i);
        assert_int_equal(token_table_insert(t, jti, i % 2 ? 1000 : 100, claims), 0);
    }
    assert_int_equal(token_table_size(t), MILLION);
    assert_int_equal(claims->refcount, MILLION + 1);
    for (int i = 0; i < MILLION; i++) {
        snprintf(jti, sizeof jti, "jti-%d", i);
        assert_int_equal(token_table_lookup(t, jti, 50, NULL), TOKEN_ACTIVE);
        snprintf(jti, sizeof jti, "nope-%d", i);
        assert_int_equal(token_table_lookup(t, jti, 50, NULL), TOKEN_UNKNOWN);
    }
    assert_int_equal(token_table_insert(t, "jti-123456", 5, NULL), -1);
    for (int i = 0; i < MILLION; i += 1000) {
        snprintf(jti, sizeof jti, "jti-%d", i + 1);
        assert_int_equal(token_table_revoke(t, jti, 50), TOKEN_ACTIVE);
    }
    assert_int_equal(token_table_sweep(t, 500, 0), MILLION / 2);
    assert_int_equal(token_table_size(t), MILLION / 2);
    assert_int_equal(claims->refcount, MILLION / 2 - MILLION / 1000 + 1); /* the revoked hold none */
    for (int i = 0; i < MILLION; i++) {
        snprintf(jti, sizeof jti, "jti-%d", i);
        enum token_status want = i % 2 == 0          ? TOKEN_UNKNOWN
                                 : (i - 1) % 1000 == 0 ? TOKEN_REVOKED
                                                       : TOKEN_ACTIVE;
        assert_int_equal(token_table_lookup(t, jti, 500, NULL), want);
    }
    token_table_free(t);
    assert_int_equal(claims->refcount, 1);
    json_decref(claims);
}

/* Several threads insert, look up and revoke their own jtis while another
 * sweeps; every answer must be the one a serial run would give. */
#define THREADS 4
#define PER_THREAD 50000

struct worker_arg {
    struct token_table *t;
    json_t *claims;
    int id;
    int failures;
};

static void *table_worker(void *p)
{
    struct worker_arg *a = p;
    char jti[32];
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(jti, sizeof jti, "w%d-%d", a->id, i);
        int64_t exp = i % 4 == 0 ? 10 : 1000; /* a quarter are sweepable */
        a->failures += token_table_insert(a->t, jti, exp, a->claims) != 0;
        if (i % 4 != 0) {
            json_t *c = NULL;
            a->failures += token_table_lookup(a->t, jti, 100, &c) != TOKEN_ACTIVE;
            a->failures += c != a->claims;
            json_decref(c);
            if (i % 2)
                a->failures += token_table_revoke(a->t, jti, 100) != TOKEN_ACTIVE;
        }
    }
    return NULL;
}

static void *table_sweeper(void *p)
{
    struct worker_arg *a = p;
    for (int i = 0; i < 200; i++)
        token_table_sweep(a->t, 100, 0);
    return NULL;
}

static void test_table_concurrent(void **state)
{
    (void)state;
    struct token_table *t = token_table_new();
    assert_non_null(t);
    json_t *claims = json_object();
    pthread_t th[THREADS + 1];
    struct worker_arg args[THREADS + 1];
    for (int i = 0; i <= THREADS; i++) {
        args[i] = (struct worker_arg){.t = t, .claims = claims, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, i < THREADS ? table_worker : table_sweeper,
                                        &args[i]), 0);
    }
    for (int i = 0; i <= THREADS; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(args[i].failures, 0);
    }
    token_table_sweep(t, 100, 0);
    size_t live = (size_t)THREADS * PER_THREAD * 3 / 4;
    assert_int_equal(token_table_size(t), live);
    size_t revoked = (size_t)THREADS * PER_THREAD / 2; /* odd i: claims dropped on revoke */
    assert_int_equal(claims->refcount, live - revoked + 1);
    char jti[32];
    for (int w = 0; w < THREADS; w++) {
        for (int i = 0; i < PER_THREAD; i++) {
            snprintf(jti, sizeof jti, "w%d-%d", w, i);
            enum token_status want = i % 4 == 0 ? TOKEN_UNKNOWN
                                     : i % 2    ? TOKEN_REVOKED
                                                : TOKEN_ACTIVE;
            assert_int_equal(token_table_lookup(t, jti, 100, NULL), want);
        }
    }
    token_table_free(t);
    assert_int_equal(claims->refcount, 1);
    json_decref(claims);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_vector),
        cmocka_unit_test(test_rfc8037_vectors),
        cmocka_unit_test(test_sign_pieces),
        cmocka_unit_test(test_verify_rejects_tampering),
        cmocka_unit_test(test_verify_rejects_alg),
        cmocka_unit_test(test_verify_rejects_header),
        cmocka_unit_test(test_verify_rejects_claims),
        cmocka_unit_test(test_verify_rejects_encoding),
        cmocka_unit_test(test_verify_rejects_structure),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_verify_mutations),
        cmocka_unit_test(test_jwks),
        cmocka_unit_test_setup_teardown(test_key_create_and_reload, keydir_setup, keydir_teardown),
        cmocka_unit_test_setup_teardown(test_key_refuses_group_other_modes, keydir_setup,
                                        keydir_teardown),
        cmocka_unit_test_setup_teardown(test_key_refuses_symlink, keydir_setup, keydir_teardown),
        cmocka_unit_test_setup_teardown(test_key_refuses_bad_size_and_type, keydir_setup,
                                        keydir_teardown),
        cmocka_unit_test(test_table_lifecycle),
        cmocka_unit_test(test_table_expiry),
        cmocka_unit_test(test_table_mark_revoked),
        cmocka_unit_test(test_table_find_active),
        cmocka_unit_test(test_table_sweep),
        cmocka_unit_test(test_table_million),
        cmocka_unit_test(test_table_concurrent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

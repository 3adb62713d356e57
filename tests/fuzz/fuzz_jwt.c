/*
 * fuzz_jwt.c - credd's JWT parser and verifier. The input is the compact
 * token; it is verified against a fixed Ed25519 key, once with that key's
 * kid required and once with any kid. Then the input is the claims part of
 * a token signed with that key (a valid header, the input base64url
 * encoded), so the parsing after the signature check is fuzzed too: a
 * mutated token never gets past the signature.
 */
#include <jansson.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

static struct signing_key key;
static char header_b64[256]; /* {"alg":"EdDSA","typ":"JWT","kid":KID}, encoded */

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* header_b64 "." claims "." signature, signed with key; NULL if too long */
static char *signed_token(const uint8_t *claims, size_t len)
{
    size_t hlen = strlen(header_b64);
    size_t cap = hlen + 1 + sodium_base64_ENCODED_LEN(len, B64) + 1 +
                 sodium_base64_ENCODED_LEN(crypto_sign_BYTES, B64);
    if (cap > JWT_MAX_LEN + 1)
        return NULL;
    char *t = malloc(cap);
    if (!t)
        return NULL;
    memcpy(t, header_b64, hlen);
    t[hlen] = '.';
    sodium_bin2base64(t + hlen + 1, cap - hlen - 1, claims, len, B64);
    size_t signed_len = strlen(t);
    uint8_t sig[crypto_sign_BYTES];
    crypto_sign_detached(sig, NULL, (const unsigned char *)t, signed_len, key.secret_key);
    t[signed_len] = '.';
    sodium_bin2base64(t + signed_len + 1, cap - signed_len - 1, sig, sizeof sig, B64);
    return t;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const uint8_t seed[crypto_sign_SEEDBYTES] = {
        'a', 'i', 'r', 'l', 'o', 'c', 'k', '-', 'f', 'u', 'z', 'z'};
    if (sodium_init() < 0)
        abort();
    signing_key_from_seed(seed, &key);
    json_t *hdr = json_pack("{s:s, s:s, s:s}", "alg", "EdDSA", "typ", "JWT", "kid", key.kid);
    char *h = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
    if (!h || sodium_base64_ENCODED_LEN(strlen(h), B64) > sizeof header_b64)
        abort();
    sodium_bin2base64(header_b64, sizeof header_b64, (const uint8_t *)h, strlen(h), B64);
    free(h);
    json_decref(hdr);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > JWT_MAX_LEN + 64)
        return 0;
    char *token = malloc(size + 1);
    if (!token)
        return 0;
    memcpy(token, data, size);
    token[size] = '\0';
    json_t *claims = NULL;
    if (jwt_verify(key.public_key, key.kid, token, &claims) == 0) {
        if (!json_is_object(claims))
            abort(); /* jwt_verify promises an object */
        json_decref(claims);
    }
    claims = NULL;
    if (jwt_verify(key.public_key, NULL, token, &claims) == 0)
        json_decref(claims);
    free(token);

    if (!(token = signed_token(data, size)))
        return 0;
    claims = NULL;
    int rc = jwt_verify(key.public_key, key.kid, token, &claims);
    /* signed by the key: it verifies exactly when the claims are a JSON object */
    json_t *want = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if ((rc == 0) != json_is_object(want) || (rc == 0 && !json_equal(claims, want)))
        abort();
    json_decref(want);
    json_decref(claims);
    free(token);
    return 0;
}

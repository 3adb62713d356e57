/*
 * jwt.c - JWS compact serialisation of Airlock task tokens (RFC 7515/7519,
 * EdDSA per RFC 8037): signing, and strict verification of hostile input.
 *
 * Token = b64url(header) "." b64url(claims) "." b64url(sig), base64url
 * unpadded; header is exactly {"alg":"EdDSA","typ":"JWT","kid":KID}; claims
 * are dumped compact with sorted keys so a given claim set always yields the
 * same token; sig is libsodium's detached Ed25519 signature over the first
 * two parts as they appear in the token.
 */
#include "token.h"

#include <stdlib.h>
#include <string.h>

#define B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

/* ---- signing ---- */

/* Appends b64url(bin) at *p (which has room) and advances *p past it. */
static void put_b64(char **p, const void *bin, size_t len)
{
    size_t n = sodium_base64_ENCODED_LEN(len, B64);
    sodium_bin2base64(*p, n, bin, len, B64);
    *p += n - 1; /* ENCODED_LEN counts the NUL */
}

char *jwt_sign(const struct signing_key *key, const json_t *claims)
{
    if (!key || !json_is_object(claims))
        return NULL;

    char *token = NULL;
    json_t *hdr = json_pack("{s:s,s:s,s:s}", "alg", "EdDSA", "typ", "JWT", "kid", key->kid);
    char *h = hdr ? json_dumps(hdr, JSON_COMPACT) : NULL;
    char *c = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS);
    if (!h || !c)
        goto out;

    size_t hlen = strlen(h), clen = strlen(c);
    size_t cap = sodium_base64_ENCODED_LEN(hlen, B64) + sodium_base64_ENCODED_LEN(clen, B64) +
                 sodium_base64_ENCODED_LEN(crypto_sign_BYTES, B64);
    if (cap > JWT_MAX_LEN + 1) /* never mint what jwt_verify would refuse */
        goto out;
    if (!(token = malloc(cap)))
        goto out;

    char *p = token;
    put_b64(&p, h, hlen);
    *p++ = '.';
    put_b64(&p, c, clen);

    uint8_t sig[crypto_sign_BYTES];
    if (crypto_sign_detached(sig, NULL, (const unsigned char *)token,
                             (unsigned long long)(p - token), key->secret_key) != 0) {
        free(token);
        token = NULL;
        goto out;
    }
    *p++ = '.';
    put_b64(&p, sig, sizeof sig);
out:
    free(h);
    free(c);
    json_decref(hdr);
    return token;
}

/* ---- verification ---- */

/* Decodes one unpadded base64url part strictly: every character consumed,
 * nothing ignored, canonical trailing bits (libsodium checks those).
 * The alphabet is checked first because libsodium 1.0.18's decoder reads
 * every byte >= 0x80 as '_' (sign extension), which would make the signature
 * part malleable. */
static int b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

static int unb64(const char *s, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    const char *end = NULL;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!b64url_char((unsigned char)s[i]))
            return -1;
    if (sodium_base642bin(out, cap, s, len, NULL, outlen, &end, B64) != 0)
        return -1;
    return end == s + len ? 0 : -1;
}

/* Decodes a part and parses it as a JSON object. NULL on any failure. */
static json_t *part_object(const char *s, size_t len)
{
    size_t cap = len / 4 * 3 + 3, n;
    uint8_t *buf = malloc(cap);
    json_t *v = NULL;
    if (buf && unb64(s, len, buf, cap, &n) == 0)
        v = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
    free(buf);
    if (v && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

static int header_ok(const json_t *hdr, const char *expected_kid)
{
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    if (!alg || strcmp(alg, "EdDSA") != 0)
        return 0;
    json_t *typ = json_object_get(hdr, "typ");
    if (typ && (!json_is_string(typ) || strcmp(json_string_value(typ), "JWT") != 0))
        return 0;
    /* We implement no extensions, so any "crit" must be refused (RFC 7515 4.1.11). */
    if (json_object_get(hdr, "crit"))
        return 0;
    json_t *kid = json_object_get(hdr, "kid");
    if (kid && !json_is_string(kid))
        return 0;
    if (expected_kid && (!kid || strcmp(json_string_value(kid), expected_kid) != 0))
        return 0;
    return 1;
}

int jwt_verify(const uint8_t public_key[crypto_sign_PUBLICKEYBYTES], const char *expected_kid,
               const char *token, json_t **claims)
{
    if (claims)
        *claims = NULL;
    if (!public_key || !token || !claims)
        return -1;
    size_t len = strnlen(token, JWT_MAX_LEN + 1);
    if (len > JWT_MAX_LEN)
        return -1;

    const char *dot1 = memchr(token, '.', len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)))
        return -1;
    const char *p1 = dot1 + 1, *p2 = dot2 + 1;
    size_t hlen = (size_t)(dot1 - token), clen = (size_t)(dot2 - p1);
    size_t slen = len - (size_t)(p2 - token);

    /* Signature first: cheap to check the shape, and it must be exactly 64 bytes. */
    uint8_t sig[crypto_sign_BYTES];
    size_t siglen;
    if (unb64(p2, slen, sig, sizeof sig, &siglen) != 0 || siglen != sizeof sig)
        return -1;

    json_t *hdr = part_object(token, hlen);
    int ok = hdr && header_ok(hdr, expected_kid);
    json_decref(hdr);
    if (!ok)
        return -1;

    /* Authenticate before parsing the claims. */
    if (crypto_sign_verify_detached(sig, (const unsigned char *)token,
                                    (unsigned long long)(dot2 - token), public_key) != 0)
        return -1;

    json_t *c = part_object(p1, clen);
    if (!c)
        return -1;
    *claims = c;
    return 0;
}

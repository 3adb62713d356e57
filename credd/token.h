/*
 * token.h - Airlock task tokens: Ed25519 signing keys, JWS compact JWTs,
 * the JWKS document and the live-token table. Pure logic over libsodium and
 * jansson; no gRPC here, so every piece is unit-testable.
 */
#ifndef AIRLOCK_TOKEN_H
#define AIRLOCK_TOKEN_H

#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- signing key ---- */

struct signing_key {
    uint8_t public_key[crypto_sign_PUBLICKEYBYTES];
    uint8_t secret_key[crypto_sign_SECRETKEYBYTES];
    char kid[64];  /* RFC 7638 JWK thumbprint (b64url SHA-256), NUL-terminated */
};

/* Loads STATE_DIR/signing.key, or creates it (mode 0600, directory 0700) on
 * first start. Refuses a key file that is not a regular file of the right
 * size or is readable by group/others. Returns 0, or -1 with err set. */
int signing_key_load_or_create(const char *state_dir, struct signing_key *key, char *err,
                               size_t errlen);
/* Builds a key from a 32-byte seed (tests, fixed vectors). */
void signing_key_from_seed(const uint8_t seed[crypto_sign_SEEDBYTES], struct signing_key *key);
/* Zeroes the secret. */
void signing_key_wipe(struct signing_key *key);

/* ---- JWS compact / JWT ---- */

/* Longest token jwt_verify accepts (and jwt_sign produces), in bytes. */
#define JWT_MAX_LEN 8192

/* Signs claims as b64url({"alg":"EdDSA","typ":"JWT","kid":KID}) "." b64url(claims)
 * "." b64url(sig). Returns a malloc'd NUL-terminated string, or NULL. */
char *jwt_sign(const struct signing_key *key, const json_t *claims);

/* Verifies the compact token against the public key: exactly three parts,
 * header alg EdDSA and kid equal to expected_kid (if non-NULL), valid
 * signature, claims a JSON object. Does not check time claims. Returns 0 and
 * a new reference in *claims, or -1. Bounded: tokens over 8 KiB are refused. */
int jwt_verify(const uint8_t public_key[crypto_sign_PUBLICKEYBYTES], const char *expected_kid,
               const char *token, json_t **claims);

/* ---- JWKS ---- */

/* {"keys":[{"kty":"OKP","crv":"Ed25519","x":…,"kid":…,"alg":"EdDSA","use":"sig"}, …]}
 * Returns a malloc'd string or NULL. */
char *jwks_json(const struct signing_key *const *keys, size_t nkeys);

/* ---- live-token table ---- */

enum token_status {
    TOKEN_UNKNOWN = 0,
    TOKEN_ACTIVE,
    TOKEN_REVOKED,
    TOKEN_EXPIRED,
};
const char *token_status_name(enum token_status s); /* "unknown", "active", … */

struct token_table;

/* A hash table keyed by jti, safe for concurrent use from many threads,
 * O(1) insert/lookup/revoke, fast at a million entries. */
struct token_table *token_table_new(void);
void token_table_free(struct token_table *t);

/* Records a minted token. claims is kept (a new reference is taken) for
 * introspection. Returns 0, or -1 if the jti is already present. */
int token_table_insert(struct token_table *t, const char *jti, int64_t exp, const json_t *claims);

/* Status at time now (unix seconds). If claims is non-NULL and the token is
 * ACTIVE, *claims receives a new reference to its claims. */
enum token_status token_table_lookup(struct token_table *t, const char *jti, int64_t now,
                                     json_t **claims);

/* Marks revoked. Returns the status the token had before the call. Revoking
 * an unknown, expired or revoked token changes nothing (idempotent). */
enum token_status token_table_revoke(struct token_table *t, const char *jti, int64_t now);

/* Replay of a revocation recorded while the token was active: marks jti
 * revoked whatever its expiry, so it keeps saying "revoked" (not "expired").
 * Returns 0, or -1 if jti is not in the table. */
int token_table_mark_revoked(struct token_table *t, const char *jti);

/* The jtis of the tokens active at now whose claims satisfy match (called
 * with a stripe's lock held: it must not call into the table). On success
 * *jtis is a malloc'd array of *n malloc'd strings (free each, then it), or
 * NULL when none matched. Returns 0, or -1 (out of memory; nothing returned). */
int token_table_find_active(struct token_table *t, int64_t now,
                            bool (*match)(const json_t *claims, void *ctx), void *ctx,
                            char ***jtis, size_t *n);

/* Drops entries whose exp is older than now - grace_seconds. Returns how many. */
size_t token_table_sweep(struct token_table *t, int64_t now, int64_t grace_seconds);

size_t token_table_size(struct token_table *t);

#endif

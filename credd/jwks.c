/*
 * jwks.c - the JSON Web Key Set (RFC 7517, OKP keys per RFC 8037) that
 * publishes credd's public signing keys, current and not yet retired.
 */
#include "token.h"

char *jwks_json(const struct signing_key *const *keys, size_t nkeys)
{
    json_t *list = json_array();
    json_t *doc = json_pack("{s:o}", "keys", list); /* steals list, even on failure */
    if (!doc)
        return NULL;

    for (size_t i = 0; i < nkeys; i++) {
        const struct signing_key *k = keys ? keys[i] : NULL;
        char x[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES,
                                         sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
        if (!k) {
            json_decref(doc);
            return NULL;
        }
        sodium_bin2base64(x, sizeof x, k->public_key, sizeof k->public_key,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        json_t *jwk = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "kty", "OKP", "crv", "Ed25519", "x",
                                x, "kid", k->kid, "alg", "EdDSA", "use", "sig");
        if (json_array_append_new(list, jwk) != 0) { /* frees jwk; fails on NULL */
            json_decref(doc);
            return NULL;
        }
    }
    char *out = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return out;
}

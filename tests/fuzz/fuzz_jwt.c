/*
 * fuzz_jwt.c - credd's JWT parser and verifier. The input is the compact
 * token; it is verified against a fixed Ed25519 key, once with that key's
 * kid required and once with any kid.
 */
#include <jansson.h>
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "token.h"

static struct signing_key key;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static const uint8_t seed[crypto_sign_SEEDBYTES] = {
        'a', 'i', 'r', 'l', 'o', 'c', 'k', '-', 'f', 'u', 'z', 'z'};
    if (sodium_init() < 0)
        abort();
    signing_key_from_seed(seed, &key);
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
    return 0;
}

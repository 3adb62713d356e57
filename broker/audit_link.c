/*
 * audit_link.c - the broker's ties to its audit chain (see audit_link.h).
 *
 * The broker holds no signing key: a checkpoint of its chain is the head
 * (chain, seq, hash, time) sent to credd's SignCheckpoint, which records the
 * request in credd's own chain before signing it.
 */
#include "audit_link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/v1/credentials.pb-c.h"
#include "audit.h"
#include "execute.h"
#include "policy.h"
#include "util.h"

#define CREDD_TIMEOUT_MS 5000

/* Parses "airlock-audit-checkpoint-v1\nCHAIN\nSEQ\nHEAD\nTIME" back into
 * the request fields: the message is built by audit_checkpoint_message. */
static int parse_message(const char *message, size_t len, char *chain, size_t chainlen,
                         unsigned long long *seq, char head[AUDIT_HASH_HEX], long long *time)
{
    char buf[512], *save = NULL;
    if (len >= sizeof buf)
        return -1;
    memcpy(buf, message, len);
    buf[len] = '\0';
    const char *parts[5];
    char *p = buf;
    for (int i = 0; i < 5; i++, p = NULL)
        if (!(parts[i] = strtok_r(p, "\n", &save)))
            return -1;
    char *end;
    *seq = strtoull(parts[2], &end, 10);
    if (*end)
        return -1;
    *time = strtoll(parts[4], &end, 10);
    if (*end || strlen(parts[3]) != AUDIT_HASH_HEX - 1 || strlen(parts[1]) >= chainlen)
        return -1;
    snprintf(chain, chainlen, "%s", parts[1]);
    memcpy(head, parts[3], AUDIT_HASH_HEX);
    return 0;
}

int broker_sign_checkpoint(void *ctx, const char *message, size_t len, char kid[64], char sig[128],
                           char signer[256], char *err, size_t errlen)
{
    struct broker *b = ctx;
    char chain[AUDIT_CHAIN_ID_MAX], head[AUDIT_HASH_HEX];
    unsigned long long seq;
    long long time;
    if (parse_message(message, len, chain, sizeof chain, &seq, head, &time) != 0)
        return err_set(err, errlen, "malformed checkpoint message");
    Airlock__V1__SignCheckpointRequest req = AIRLOCK__V1__SIGN_CHECKPOINT_REQUEST__INIT;
    req.chain = chain;
    req.seq = seq;
    req.head = head;
    req.time = time;
    struct rpc_status st;
    ProtobufCMessage *resp = NULL;
    grpc_status_code code = rpc_unary(b->credd, "/airlock.v1.Credentials/SignCheckpoint",
                                      &req.base, &airlock__v1__sign_checkpoint_response__descriptor,
                                      &resp, CREDD_TIMEOUT_MS, &st);
    if (code != GRPC_STATUS_OK)
        return err_set(err, errlen, "credd SignCheckpoint: %s: %s", rpc_status_name(code),
                       st.message);
    const Airlock__V1__SignCheckpointResponse *r = (const void *)resp;
    int rc = 0;
    if (strlen(r->key_id) >= 64 || strlen(r->signature) >= 128 || strlen(r->signer) >= 256)
        rc = err_set(err, errlen, "credd's checkpoint signature is oversized");
    else {
        memcpy(kid, r->key_id, strlen(r->key_id) + 1);
        memcpy(sig, r->signature, strlen(r->signature) + 1);
        memcpy(signer, r->signer, strlen(r->signer) + 1);
    }
    protobuf_c_message_free_unpacked(resp, NULL);
    return rc;
}

char *broker_credd_jwks(void *ctx, char *err, size_t errlen)
{
    struct broker *b = ctx;
    Airlock__V1__KeysRequest req = AIRLOCK__V1__KEYS_REQUEST__INIT;
    struct rpc_status st;
    ProtobufCMessage *resp = NULL;
    grpc_status_code code = rpc_unary(b->credd, "/airlock.v1.Credentials/Keys", &req.base,
                                      &airlock__v1__keys_response__descriptor, &resp,
                                      CREDD_TIMEOUT_MS, &st);
    if (code != GRPC_STATUS_OK) {
        err_set(err, errlen, "credd Keys: %s: %s", rpc_status_name(code), st.message);
        return NULL;
    }
    char *jwks = strdup(((const Airlock__V1__KeysResponse *)resp)->jwks_json);
    protobuf_c_message_free_unpacked(resp, NULL);
    if (!jwks)
        err_set(err, errlen, "out of memory");
    return jwks;
}

bool broker_may_read_audit(void *ctx, const struct rpc_peer *peer, char *caller, size_t callerlen,
                           char *why, size_t whylen)
{
    struct broker *b = ctx;
    const char *authn_error = NULL;
    if (broker_identify(b, peer, caller, callerlen, &authn_error) != 0) {
        caller[0] = '\0';
        snprintf(why, whylen, "%s", authn_error);
        return false;
    }
    return policy_permits(b->policy, caller, POLICY_AUDIT_READ, why, whylen);
}

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

int broker_sign_checkpoint(void *ctx, const struct audit_checkpoint_claim *claim, char kid[64],
                           char sig[128], char signer[256], char *err, size_t errlen)
{
    struct broker *b = ctx;
    /* credd rebuilds the message from the fields: it signs nothing opaque. */
    Airlock__V1__SignCheckpointRequest req = AIRLOCK__V1__SIGN_CHECKPOINT_REQUEST__INIT;
    req.chain = (char *)claim->chain;
    req.seq = claim->seq;
    req.head = (char *)claim->head;
    req.time = claim->time;
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

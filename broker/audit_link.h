/*
 * audit_link.h - the broker's ties to its audit chain: credd signs the
 * chain's checkpoints, credd's JWKS verifies them, and policy (audit:read)
 * decides who may read it.
 */
#ifndef AIRLOCK_BROKER_AUDIT_LINK_H
#define AIRLOCK_BROKER_AUDIT_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include "audit.h"
#include "rpc.h"

/* audit_sign_fn: has credd sign a checkpoint (ctx: the struct broker). */
int broker_sign_checkpoint(void *ctx, const struct audit_checkpoint_claim *claim, char kid[64],
                           char sig[128], char signer[256], char *err, size_t errlen);

/* audit_service.jwks: credd's keys, over the credd channel. */
char *broker_credd_jwks(void *ctx, char *err, size_t errlen);

/* audit_service.may_read: the caller's identity as for Execute, and a
 * policy rule granting it audit:read. */
bool broker_may_read_audit(void *ctx, const struct rpc_peer *peer, char *caller, size_t callerlen,
                           char *why, size_t whylen);

#endif

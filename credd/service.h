/*
 * service.h - credd's gRPC methods (airlock.v1.Credentials): who may call
 * what, request validation, and the mapping from requests to token.h.
 */
#ifndef AIRLOCK_CREDD_SERVICE_H
#define AIRLOCK_CREDD_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "rpc.h"
#include "token.h"

struct credd_config {
    const char *trust_domain;   /* "airlock.local" */
    char broker_exe[4096];      /* peers running this binary are the broker */
    char worker_exe[4096];      /* ... and this one a worker */
    uint32_t default_ttl;       /* seconds, when the request names none */
    uint32_t max_ttl;           /* seconds, hard cap */
    uint32_t clock_skew_s;      /* a presented token's nbf may be this far ahead of us */
    const char **broker_ids;    /* SPIFFE IDs that are the broker over mutual TLS */
    size_t n_broker_ids;
    const char **audit_readers; /* SPIFFE IDs that may read the audit trail */
    size_t n_audit_readers;
};

struct credd {
    const struct credd_config *config;
    const struct signing_key *key;
    struct token_table *tokens;
    struct audit_log *audit;    /* credd's chain */
    char issuer[256];           /* spiffe://<trust-domain>/airlock/credd */
};

/* What a token's claims are made of: a Mint request, or its mint record
 * replayed at start (replay.c). */
struct mint_claims {
    const char *caller;      /* the broker that asked: act.sub and azp */
    const char *subject;
    const char *task_id;
    const char *jti;
    const char *code_sha256; /* NULL or "": none */
    const char *const *scopes;
    size_t n_scopes;
    const char *const *audience;
    size_t n_audience;
    int64_t iat;             /* also nbf */
    int64_t exp;
};

/* The token's JWT claims, built the same way for mint and replay. NULL when
 * out of memory. */
json_t *credd_claims(const char *issuer, const struct mint_claims *m);

/* The longest token lifetime any configuration allows (max_ttl_s). */
#define CREDD_TTL_LIMIT_S 86400

struct credd_replay_stats {
    size_t records; /* mint and revoke records replayed */
    size_t tokens;  /* tokens restored (active, expired or revoked) */
    size_t active;  /* of which active now */
    size_t revoked; /* revocations restored */
    int64_t took_ms;
};

/* At start, before serving: rebuilds d->tokens from d->audit's chain (see
 * replay.c); tokens expired before now - grace_s are left out. Logs and
 * records ("tokens.restored") the counts. 0, or -1 with err: the chain
 * cannot be read or holds a record that cannot be replayed, and credd must
 * not start. */
int credd_replay(struct credd *d, int64_t grace_s, struct credd_replay_stats *stats, char *err,
                 size_t errlen);

/* The method table; ctx of every entry is the struct credd. */
size_t credd_methods(struct credd *credd, struct rpc_method *methods, size_t cap);

/* audit_sign_fn over credd's own key (ctx: the struct credd). */
int credd_sign_checkpoint(void *ctx, const struct audit_checkpoint_claim *claim, char kid[64],
                          char sig[128], char signer[256], char *err, size_t errlen);

/* audit_service.may_read: callers listed in audit_readers. */
bool credd_may_read_audit(void *ctx, const struct rpc_peer *peer, char *caller, size_t callerlen,
                          char *why, size_t whylen);
/* audit_service.jwks: our own key set. */
char *credd_jwks(void *ctx, char *err, size_t errlen);

/* SPIFFE ID of a caller: its verified SVID over TLS; on the Unix socket the
 * broker or a worker by executable, else spiffe://<td>/uid/<uid>. Returns 0,
 * or -1 when the peer has no identity. */
int credd_identify(const struct credd_config *config, const struct rpc_peer *peer, char *out,
                   size_t outlen);

#endif

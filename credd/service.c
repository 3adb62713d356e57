/*
 * service.c - airlock.v1.Credentials over the token core: caller identity
 * and authorization, request validation, and RFC 7009/7662 semantics for
 * revocation and introspection.
 *
 * Who may call what:
 *   Mint        the broker only
 *   Revoke      by token_id: the broker or a worker; by token: anyone who
 *               presents a validly signed token (its holder may end it)
 *   Introspect  any local peer with credentials
 *   Keys        anyone
 *   SignCheckpoint  the broker only
 *   BrokerStarted   the broker only: revokes its previous run's tokens
 *
 * Audit: every authentication failure, mint (allowed or not), revocation,
 * introspection, checkpoint signature and broker start goes into credd's
 * chain. A token leaves only once its mint record is durable (replay.c
 * rebuilds the live-token table from those records at start), and an
 * introspection is answered only once recorded; a revocation is never held
 * back by the trail (its record is written after, and a failure to write it
 * logged).
 */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airlock/v1/credentials.pb-c.h"
#include "audit_rpc.h"
#include "util.h"

#define MAX_AUDIENCES 16
#define MAX_SCOPES 32
#define MAX_CLAIM_LEN 256

int credd_identify(const struct credd_config *config, const struct rpc_peer *peer, char *out,
                   size_t outlen)
{
    int n;
    if (peer->transport == RPC_TRANSPORT_TLS) {
        if (!peer->authenticated)
            return -1;
        n = snprintf(out, outlen, "%s", peer->spiffe_id);
        return n > 0 && (size_t)n < outlen ? 0 : -1;
    }
    if (peer->transport != RPC_TRANSPORT_UNIX)
        return -1;
    if (peer->exe[0] && strcmp(peer->exe, config->broker_exe) == 0)
        n = snprintf(out, outlen, "spiffe://%s/airlock/broker", config->trust_domain);
    else if (peer->exe[0] && strcmp(peer->exe, config->worker_exe) == 0)
        n = snprintf(out, outlen, "spiffe://%s/airlock/worker", config->trust_domain);
    else
        n = snprintf(out, outlen, "spiffe://%s/uid/%u", config->trust_domain, (unsigned)peer->uid);
    return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* The caller's identity and role, or a failed status. */
struct caller {
    char id[2048];
    bool is_broker;
    bool is_worker;
};

static grpc_status_code identify(struct credd *d, struct rpc_call *call, const char *method,
                                 struct caller *c)
{
    const struct rpc_peer *peer = rpc_call_peer(call);
    if (credd_identify(d->config, peer, c->id, sizeof c->id) != 0) {
        const char *why = peer->transport == RPC_TRANSPORT_TLS && peer->auth_error[0]
                              ? peer->auth_error
                              : "caller has no workload identity";
        log_warn("authn denied: %s", why);
        audit_authn_denied(d->audit, peer, method, why);
        return rpc_call_fail(call, GRPC_STATUS_UNAUTHENTICATED, "%s", why);
    }
    char want[512];
    snprintf(want, sizeof want, "spiffe://%s/airlock/broker", d->config->trust_domain);
    c->is_broker = peer->transport == RPC_TRANSPORT_UNIX && strcmp(c->id, want) == 0;
    for (size_t i = 0; peer->transport == RPC_TRANSPORT_TLS && i < d->config->n_broker_ids; i++)
        c->is_broker |= strcmp(c->id, d->config->broker_ids[i]) == 0;
    snprintf(want, sizeof want, "spiffe://%s/airlock/worker", d->config->trust_domain);
    c->is_worker = peer->transport == RPC_TRANSPORT_UNIX && strcmp(c->id, want) == 0;
    return GRPC_STATUS_OK;
}

/* A refused request, best effort: nothing was granted. */
static void record_denied(struct credd *d, const char *kind, const struct caller *who,
                          const char *why)
{
    char err[256];
    json_t *f = json_pack("{s:s,s:s,s:s}", "result", "denied", "caller", who->id, "why", why);
    if (!f || audit_append(d->audit, kind, f, false, NULL, err, sizeof err) != 0)
        log_error("audit: cannot record a refused %s: %s", kind, f ? err : "out of memory");
}

static grpc_status_code check_words(struct rpc_call *call, const char *what, char **items,
                                    size_t n, size_t max_items)
{
    if (n > max_items)
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "%s: %zu items; at most %zu",
                             what, n, max_items);
    for (size_t i = 0; i < n; i++)
        if (!is_plain_word(items[i], MAX_CLAIM_LEN))
            return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                                 "%s[%zu]: must be 1-%d printable ASCII characters without spaces",
                                 what, i, MAX_CLAIM_LEN);
    return GRPC_STATUS_OK;
}

/* Could token be a JWS compact serialization at all: at most JWT_MAX_LEN
 * bytes, three non-empty base64url parts? Whether it is one of ours is
 * jwt_verify's question. */
static bool jws_shaped(const char *token)
{
    size_t part = 0, dots = 0;
    for (const char *p = token; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '.') {
            if (part == 0)
                return false;
            dots++;
            part = 0;
        } else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_') {
            part++;
        } else {
            return false;
        }
    }
    return dots == 2 && part > 0;
}

json_t *credd_claims(const char *issuer, const struct mint_claims *m)
{
    json_t *claims = json_object();
    json_t *aud = json_array();
    char *scope = NULL;
    size_t scope_len = 0;
    for (size_t i = 0; i < m->n_scopes; i++)
        scope_len += strlen(m->scopes[i]) + 1;
    if (scope_len && (scope = malloc(scope_len)) != NULL) {
        /* RFC 8693 "scope": space-separated; each item was checked space-free. */
        char *end = scope;
        for (size_t i = 0; i < m->n_scopes; i++) {
            size_t n = strlen(m->scopes[i]);
            memcpy(end, m->scopes[i], n);
            end += n;
            *end++ = ' ';
        }
        end[-1] = '\0';
    }
    for (size_t i = 0; aud && i < m->n_audience; i++)
        json_array_append_new(aud, json_string(m->audience[i]));
    int bad = !claims || !aud || (scope_len && !scope);
    bad |= json_object_set_new(claims, "iss", json_string(issuer));
    bad |= json_object_set_new(claims, "sub", json_string(m->subject));
    if (aud && json_array_size(aud) > 0)
        bad |= json_object_set(claims, "aud", aud);
    bad |= json_object_set_new(claims, "iat", json_integer(m->iat));
    bad |= json_object_set_new(claims, "nbf", json_integer(m->iat));
    bad |= json_object_set_new(claims, "exp", json_integer(m->exp));
    bad |= json_object_set_new(claims, "jti", json_string(m->jti));
    if (scope)
        bad |= json_object_set_new(claims, "scope", json_string(scope));
    /* RFC 8693: the broker acts for the caller (sub); it is also the party
     * the token was issued to (azp). */
    bad |= json_object_set_new(claims, "act", json_pack("{s:s}", "sub", m->caller));
    bad |= json_object_set_new(claims, "azp", json_string(m->caller));
    bad |= json_object_set_new(claims, "task_id", json_string(m->task_id));
    if (m->code_sha256 && m->code_sha256[0])
        bad |= json_object_set_new(claims, "code_sha256", json_string(m->code_sha256));
    free(scope);
    json_decref(aud);
    if (bad) {
        json_decref(claims);
        return NULL;
    }
    return claims;
}

static grpc_status_code mint(struct rpc_call *call, const ProtobufCMessage *request, void *ctx)
{
    struct credd *d = ctx;
    const Airlock__V1__MintRequest *req = (const void *)request;
    struct caller who;
    grpc_status_code rc = identify(d, call, "/airlock.v1.Credentials/Mint", &who);
    if (rc != GRPC_STATUS_OK)
        return rc;
    if (!who.is_broker) {
        log_warn("mint denied to %s", who.id);
        record_denied(d, "mint", &who, "only the broker may mint tokens");
        return rpc_call_fail(call, GRPC_STATUS_PERMISSION_DENIED,
                             "only the broker may mint tokens; caller is %s", who.id);
    }
    if (!spiffe_id_valid(req->subject))
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "subject must be a SPIFFE ID");
    if (!is_plain_word(req->task_id, 64))
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "task_id must be 1-64 printable characters");
    if (req->code_sha256[0] && !sha256_hex_valid(req->code_sha256))
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "code_sha256 must be 64 lowercase hex digits");
    if ((rc = check_words(call, "audience", req->audience, req->n_audience, MAX_AUDIENCES)) ||
        (rc = check_words(call, "scopes", req->scopes, req->n_scopes, MAX_SCOPES)))
        return rc;

    uint32_t ttl = req->ttl_seconds ? req->ttl_seconds : d->config->default_ttl;
    if (ttl > d->config->max_ttl)
        ttl = d->config->max_ttl;
    int64_t now = unix_seconds();
    char jti[RANDOM_ID_LEN];
    random_id(jti);

    const struct mint_claims mc = {
        .caller = who.id, .subject = req->subject, .task_id = req->task_id, .jti = jti,
        .code_sha256 = req->code_sha256,
        .scopes = (const char *const *)req->scopes, .n_scopes = req->n_scopes,
        .audience = (const char *const *)req->audience, .n_audience = req->n_audience,
        .iat = now, .exp = now + ttl};
    json_t *claims = credd_claims(d->issuer, &mc);
    char *token = claims ? jwt_sign(d->key, claims) : NULL;
    if (!token) {
        json_decref(claims);
        return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "cannot mint token");
    }
    /* No token leaves before its record is durable. */
    char err[256];
    json_t *rec = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:o*,s:o*,s:I,s:I,s:s,s:s}", "result", "ok", "caller", who.id,
        "subject", req->subject, "task_id", req->task_id, "token_id", jti, "scopes",
        audit_strings((const char *const *)req->scopes, req->n_scopes), "audience",
        audit_strings((const char *const *)req->audience, req->n_audience), "issued_at",
        (json_int_t)now, "expires_at", (json_int_t)(now + ttl), "kid", d->key->kid, "code_sha256",
        req->code_sha256);
    if (!rec || audit_append(d->audit, "mint", rec, true, NULL, err, sizeof err) != 0) {
        sodium_memzero(token, strlen(token));
        free(token);
        json_decref(claims);
        return audit_call_fail(call, rec ? err : "out of memory", "no token was minted");
    }
    if (token_table_insert(d->tokens, jti, now + ttl, claims) != 0) {
        sodium_memzero(token, strlen(token));
        free(token);
        json_decref(claims);
        return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "cannot mint token");
    }
    json_decref(claims);
    log_info("minted jti=%s sub=%s task=%s ttl=%u", jti, req->subject, req->task_id, ttl);

    Airlock__V1__MintResponse resp = AIRLOCK__V1__MINT_RESPONSE__INIT;
    resp.token = token;
    resp.token_id = jti;
    resp.issued_at = now;
    resp.expires_at = now + ttl;
    resp.key_id = (char *)d->key->kid;
    rpc_call_send(call, &resp.base);
    sodium_memzero(token, strlen(token));
    free(token);
    return GRPC_STATUS_OK;
}

/* Resolves a request's (token, token_id) pair to a jti. Something that
 * cannot be a token (see jws_shaped) or a token_id is INVALID_ARGUMENT; a
 * well-formed token whose signature does not verify (forged, another key,
 * alg "none") names no jti: it is "unknown" (RFC 7662, RFC 7009). Returns 0
 * and fills jti (possibly ""), or a failed status. */
static grpc_status_code resolve_jti(struct credd *d, struct rpc_call *call, const char *token,
                                    const char *token_id, char *jti, size_t jtilen)
{
    jti[0] = '\0';
    if (token[0] && token_id[0])
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                             "token, token_id: give one, not both");
    if (!token[0] && !token_id[0])
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                             "token, token_id: one of them is required");
    if (token_id[0]) {
        if (!is_plain_word(token_id, 64))
            return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                                 "token_id: must be 1-64 printable ASCII characters without "
                                 "spaces");
        snprintf(jti, jtilen, "%s", token_id);
        return GRPC_STATUS_OK;
    }
    size_t len = strnlen(token, JWT_MAX_LEN + 1);
    if (len > JWT_MAX_LEN)
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                             "token: longer than %d bytes; not a token of ours", JWT_MAX_LEN);
    if (!jws_shaped(token))
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                             "token: not a JWS compact serialization (three base64url parts "
                             "separated by '.')");
    json_t *claims = NULL;
    if (jwt_verify(d->key->public_key, d->key->kid, token, &claims) == 0) {
        const char *id = json_string_value(json_object_get(claims, "jti"));
        /* Not yet valid by more than the allowed skew: names no token. */
        json_t *nbf = json_object_get(claims, "nbf");
        bool early = !json_is_integer(nbf) ||
                     json_integer_value(nbf) > unix_seconds() + (int64_t)d->config->clock_skew_s;
        if (id && is_plain_word(id, 64) && !early)
            snprintf(jti, jtilen, "%s", id);
        json_decref(claims);
    }
    return GRPC_STATUS_OK;
}

static grpc_status_code revoke(struct rpc_call *call, const ProtobufCMessage *request, void *ctx)
{
    struct credd *d = ctx;
    const Airlock__V1__RevokeRequest *req = (const void *)request;
    struct caller who;
    grpc_status_code rc = identify(d, call, "/airlock.v1.Credentials/Revoke", &who);
    if (rc != GRPC_STATUS_OK)
        return rc;
    if (req->token_id[0] && !who.is_broker && !who.is_worker) {
        record_denied(d, "revoke", &who, "revocation by token_id is for the broker and workers");
        return rpc_call_fail(call, GRPC_STATUS_PERMISSION_DENIED,
                             "revocation by token_id is for the broker and workers; present the token instead");
    }
    if (req->reason[0] && !is_plain_word(req->reason, 64))
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                             "reason: must be 1-64 printable ASCII characters without spaces");
    char jti[80];
    if ((rc = resolve_jti(d, call, req->token, req->token_id, jti, sizeof jti)) != GRPC_STATUS_OK)
        return rc;
    int64_t now = unix_seconds();
    enum token_status before = jti[0] ? token_table_revoke(d->tokens, jti, now) : TOKEN_UNKNOWN;
    enum token_status after = before == TOKEN_ACTIVE ? TOKEN_REVOKED : before;
    if (before == TOKEN_ACTIVE)
        log_info("revoked jti=%s by %s", jti, who.id);
    /* Recorded after the fact: a revocation is never held back. Nor is the
     * reply held for an fsync: the record is written now (a killed credd
     * keeps it) and the audit flusher makes it durable within
     * AUDIT_LAZY_SYNC_MS (the broker's own execute record, durable before the
     * caller hears of the task's end, says the token was revoked). */
    char err[256];
    json_t *rec = json_pack("{s:s,s:s,s:s,s:s,s:s}", "caller", who.id, "token_id", jti, "reason",
                            req->reason[0] ? req->reason : "unspecified", "before",
                            token_status_name(before), "after", token_status_name(after));
    if (!rec || audit_append(d->audit, "revoke", rec, false, NULL, err, sizeof err) != 0)
        log_error("audit: revocation of %s not recorded: %s", jti, rec ? err : "out of memory");

    Airlock__V1__RevokeResponse resp = AIRLOCK__V1__REVOKE_RESPONSE__INIT;
    resp.status = (char *)token_status_name(after);
    resp.was_active = before == TOKEN_ACTIVE;
    rpc_call_send(call, &resp.base);
    return GRPC_STATUS_OK;
}

static char *claim_string(json_t *claims, const char *name)
{
    const char *v = json_string_value(json_object_get(claims, name));
    return (char *)(v ? v : "");
}

static grpc_status_code introspect(struct rpc_call *call, const ProtobufCMessage *request, void *ctx)
{
    struct credd *d = ctx;
    const Airlock__V1__IntrospectRequest *req = (const void *)request;
    struct caller who;
    grpc_status_code rc = identify(d, call, "/airlock.v1.Credentials/Introspect", &who);
    if (rc != GRPC_STATUS_OK)
        return rc;
    char jti[80];
    if ((rc = resolve_jti(d, call, req->token, req->token_id, jti, sizeof jti)) != GRPC_STATUS_OK)
        return rc;
    json_t *claims = NULL;
    enum token_status st = jti[0] ? token_table_lookup(d->tokens, jti, unix_seconds(), &claims)
                                  : TOKEN_UNKNOWN;
    char err[256];
    json_t *rec = json_pack("{s:s,s:s,s:s}", "caller", who.id, "token_id", jti, "status",
                            token_status_name(st));
    if (!rec || audit_append(d->audit, "introspect", rec, true, NULL, err, sizeof err) != 0) {
        json_decref(claims);
        return audit_call_fail(call, rec ? err : "out of memory", "nothing was disclosed");
    }

    Airlock__V1__IntrospectResponse resp = AIRLOCK__V1__INTROSPECT_RESPONSE__INIT;
    resp.active = st == TOKEN_ACTIVE;
    resp.status = (char *)token_status_name(st);
    char *aud_items[MAX_AUDIENCES];
    if (st == TOKEN_ACTIVE && claims) {
        resp.iss = claim_string(claims, "iss");
        resp.sub = claim_string(claims, "sub");
        resp.scope = claim_string(claims, "scope");
        resp.jti = claim_string(claims, "jti");
        resp.task_id = claim_string(claims, "task_id");
        resp.code_sha256 = claim_string(claims, "code_sha256");
        resp.act_sub = claim_string(json_object_get(claims, "act"), "sub");
        resp.azp = claim_string(claims, "azp");
        resp.iat = json_integer_value(json_object_get(claims, "iat"));
        resp.nbf = json_integer_value(json_object_get(claims, "nbf"));
        resp.exp = json_integer_value(json_object_get(claims, "exp"));
        resp.token_type = "airlock-task+jwt";
        json_t *aud = json_object_get(claims, "aud");
        for (size_t i = 0; i < json_array_size(aud) && i < MAX_AUDIENCES; i++)
            aud_items[resp.n_aud++] = (char *)json_string_value(json_array_get(aud, i));
        resp.aud = aud_items;
    }
    rpc_call_send(call, &resp.base);
    json_decref(claims);
    return GRPC_STATUS_OK;
}

char *credd_jwks(void *ctx, char *err, size_t errlen)
{
    const struct credd *d = ctx;
    const struct signing_key *list[] = {d->key};
    char *jwks = jwks_json(list, 1);
    if (!jwks)
        err_set(err, errlen, "cannot encode the JWKS");
    return jwks;
}

static grpc_status_code keys(struct rpc_call *call, const ProtobufCMessage *request, void *ctx)
{
    (void)request;
    char err[128];
    char *jwks = credd_jwks(ctx, err, sizeof err);
    if (!jwks)
        return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "%s", err);
    Airlock__V1__KeysResponse resp = AIRLOCK__V1__KEYS_RESPONSE__INIT;
    resp.jwks_json = jwks;
    rpc_call_send(call, &resp.base);
    free(jwks);
    return GRPC_STATUS_OK;
}

bool credd_may_read_audit(void *ctx, const struct rpc_peer *peer, char *caller, size_t callerlen,
                          char *why, size_t whylen)
{
    const struct credd *d = ctx;
    if (credd_identify(d->config, peer, caller, callerlen) != 0) {
        caller[0] = '\0';
        snprintf(why, whylen, "%s",
                 peer->transport == RPC_TRANSPORT_TLS && peer->auth_error[0]
                     ? peer->auth_error
                     : "caller has no workload identity");
        return false;
    }
    for (size_t i = 0; i < d->config->n_audit_readers; i++)
        if (strcmp(caller, d->config->audit_readers[i]) == 0) {
            snprintf(why, whylen, "%s is in audit_readers", caller);
            return true;
        }
    snprintf(why, whylen, "%s may not read the audit trail (not in credd's audit_readers)", caller);
    return false;
}

int credd_sign_checkpoint(void *ctx, const struct audit_checkpoint_claim *claim, char kid[64],
                          char sig[128], char signer[256], char *err, size_t errlen)
{
    const struct credd *d = ctx;
    uint8_t raw[crypto_sign_BYTES];
    if (crypto_sign_detached(raw, NULL, (const unsigned char *)claim->message, claim->len,
                             d->key->secret_key) != 0)
        return err_set(err, errlen, "Ed25519 signing failed");
    sodium_bin2base64(sig, 128, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(kid, 64, "%s", d->key->kid);
    snprintf(signer, 256, "%s", d->issuer);
    return 0;
}

/* A broker's chain checkpoint: recorded in ours first, then signed. */
static grpc_status_code sign_checkpoint(struct rpc_call *call, const ProtobufCMessage *request,
                                        void *ctx)
{
    struct credd *d = ctx;
    const Airlock__V1__SignCheckpointRequest *req = (const void *)request;
    struct caller who;
    grpc_status_code rc = identify(d, call, "/airlock.v1.Credentials/SignCheckpoint", &who);
    if (rc != GRPC_STATUS_OK)
        return rc;
    if (!who.is_broker) {
        record_denied(d, "checkpoint.sign", &who, "only the broker may have checkpoints signed");
        return rpc_call_fail(call, GRPC_STATUS_PERMISSION_DENIED,
                             "only the broker may have checkpoints signed; caller is %s", who.id);
    }
    int64_t now = unix_seconds();
    if (!is_plain_word(req->chain, AUDIT_CHAIN_ID_MAX - 1) || req->seq == 0 ||
        !sha256_hex_valid(req->head))
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                             "chain (1-63 printable characters), seq (> 0) and head (64 lowercase "
                             "hex digits) are required");
    if (req->time < now - 60 || req->time > now + 60)
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT,
                             "time %lld is more than 60 s from credd's clock (%lld)",
                             (long long)req->time, (long long)now);
    char msg[256], err[256];
    int len = audit_checkpoint_message(req->chain, req->seq, req->head, req->time, msg, sizeof msg);
    if (len < 0)
        return rpc_call_fail(call, GRPC_STATUS_INVALID_ARGUMENT, "checkpoint fields too long");
    json_t *rec = json_pack("{s:s,s:s,s:I,s:s,s:I}", "caller", who.id, "broker_chain", req->chain,
                            "covers_seq", (json_int_t)req->seq, "head", req->head, "signed_time",
                            (json_int_t)req->time);
    if (!rec || audit_append(d->audit, "checkpoint.sign", rec, true, NULL, err, sizeof err) != 0)
        return audit_call_fail(call, rec ? err : "out of memory", "nothing was signed");
    char kid[64], sig[128], signer[256];
    const struct audit_checkpoint_claim claim = {req->chain, req->seq, req->head, req->time, msg,
                                                 (size_t)len};
    if (credd_sign_checkpoint(d, &claim, kid, sig, signer, err, sizeof err) != 0)
        return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "%s", err);
    Airlock__V1__SignCheckpointResponse resp = AIRLOCK__V1__SIGN_CHECKPOINT_RESPONSE__INIT;
    resp.key_id = kid;
    resp.signature = sig;
    resp.signer = signer;
    rpc_call_send(call, &resp.base);
    return GRPC_STATUS_OK;
}

static bool issued_to(const json_t *claims, void *ctx)
{
    const char *azp = json_string_value(json_object_get(claims, "azp"));
    return azp && strcmp(azp, ctx) == 0;
}

/* A broker (re)starts: the tokens still active that were minted for its
 * identity belong to its previous run, whose tasks died with it. */
static grpc_status_code broker_started(struct rpc_call *call, const ProtobufCMessage *request,
                                       void *ctx)
{
    struct credd *d = ctx;
    const Airlock__V1__BrokerStartedRequest *req = (const void *)request;
    struct caller who;
    grpc_status_code rc = identify(d, call, "/airlock.v1.Credentials/BrokerStarted", &who);
    if (rc != GRPC_STATUS_OK)
        return rc;
    if (!who.is_broker) {
        record_denied(d, "broker.started", &who, "only the broker may announce its start");
        return rpc_call_fail(call, GRPC_STATUS_PERMISSION_DENIED,
                             "only the broker may announce its start; caller is %s", who.id);
    }
    int64_t now = unix_seconds();
    char **jtis = NULL;
    size_t n = 0;
    if (token_table_find_active(d->tokens, now, issued_to, who.id, &jtis, &n) != 0)
        return rpc_call_fail(call, GRPC_STATUS_INTERNAL, "out of memory listing %s's tokens",
                             who.id);
    char err[256];
    uint32_t revoked = 0;
    for (size_t i = 0; i < n; i++) {
        if (token_table_revoke(d->tokens, jtis[i], now) == TOKEN_ACTIVE) {
            revoked++;
            json_t *rec = json_pack("{s:s,s:s,s:s,s:s,s:s}", "caller", who.id, "token_id",
                                    jtis[i], "reason", "broker_restart", "before", "active",
                                    "after", "revoked");
            if (!rec || audit_append(d->audit, "revoke", rec, false, NULL, err, sizeof err) != 0)
                log_error("audit: revocation of %s not recorded: %s", jtis[i],
                          rec ? err : "out of memory");
        }
        free(jtis[i]);
    }
    free(jtis);
    log_info("broker %s (pid %u) started: %u tokens of its previous run revoked", who.id,
             req->pid, revoked);
    /* Durable before the reply: it also syncs the revoke records above. */
    json_t *rec = json_pack("{s:s,s:I,s:I}", "caller", who.id, "pid", (json_int_t)req->pid,
                            "revoked", (json_int_t)revoked);
    if (!rec || audit_append(d->audit, "broker.started", rec, true, NULL, err, sizeof err) != 0)
        return audit_call_fail(call, rec ? err : "out of memory",
                               "the tokens were revoked but the summary is not recorded");
    Airlock__V1__BrokerStartedResponse resp = AIRLOCK__V1__BROKER_STARTED_RESPONSE__INIT;
    resp.revoked = revoked;
    rpc_call_send(call, &resp.base);
    return GRPC_STATUS_OK;
}

size_t credd_methods(struct credd *d, struct rpc_method *m, size_t cap)
{
    const struct rpc_method table[] = {
        {"/airlock.v1.Credentials/Mint", RPC_UNARY, &airlock__v1__mint_request__descriptor, mint, d},
        {"/airlock.v1.Credentials/Revoke", RPC_UNARY, &airlock__v1__revoke_request__descriptor, revoke, d},
        {"/airlock.v1.Credentials/Introspect", RPC_UNARY,
         &airlock__v1__introspect_request__descriptor, introspect, d},
        {"/airlock.v1.Credentials/Keys", RPC_UNARY, &airlock__v1__keys_request__descriptor, keys, d},
        {"/airlock.v1.Credentials/SignCheckpoint", RPC_UNARY,
         &airlock__v1__sign_checkpoint_request__descriptor, sign_checkpoint, d},
        {"/airlock.v1.Credentials/BrokerStarted", RPC_UNARY,
         &airlock__v1__broker_started_request__descriptor, broker_started, d},
    };
    size_t n = sizeof table / sizeof table[0];
    if (n > cap)
        return 0;
    memcpy(m, table, sizeof table);
    return n;
}

/*
 * replay.c - credd's restart: rebuilds the live-token table from credd's
 * own audit chain, so that tokens and revocations survive a crash or a
 * restart without a second durable write per mint.
 *
 * The chain already holds what is needed: a "mint" record, durable before
 * the token leaves, carries every claim (caller, subject, task, jti, scopes,
 * audience, issued/expires, code hash), and a "revoke" record is written
 * before its reply (a killed process's writes are in the page cache, and
 * the audit flusher puts it on disk within 100 ms). Mints insert, revocations
 * that found the token active mark it revoked (whatever its expiry now), in
 * chain order. Tokens that expired longer ago than the sweep grace are left
 * out, as the sweeper would have dropped them.
 */
#include <stdlib.h>
#include <string.h>

#include "service.h"
#include "util.h"

struct replay {
    struct credd *d;
    int64_t now, grace_s;
    struct credd_replay_stats *stats;
    char *err;
    size_t errlen;
};

static const char *str(const json_t *rec, const char *key)
{
    return json_string_value(json_object_get(rec, key));
}

/* The strings of a JSON array (absent: none) into a malloc'd array. */
static int strings(const json_t *rec, const char *key, const char ***out, size_t *n)
{
    const json_t *a = json_object_get(rec, key);
    *out = NULL;
    *n = 0;
    if (!a)
        return 0;
    if (!json_is_array(a))
        return -1;
    size_t len = json_array_size(a);
    if (len == 0)
        return 0;
    const char **items = calloc(len, sizeof *items);
    if (!items)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (!(items[i] = json_string_value(json_array_get(a, i)))) {
            free(items);
            return -1;
        }
    *out = items;
    *n = len;
    return 0;
}

static int replay_mint(struct replay *r, const json_t *rec)
{
    const char *result = str(rec, "result");
    if (!result || strcmp(result, "ok") != 0) /* a refused mint: no token */
        return 0;
    json_t *iat = json_object_get(rec, "issued_at"), *exp = json_object_get(rec, "expires_at");
    struct mint_claims m = {.caller = str(rec, "caller"),
                            .subject = str(rec, "subject"),
                            .task_id = str(rec, "task_id"),
                            .jti = str(rec, "token_id"),
                            .code_sha256 = str(rec, "code_sha256"),
                            .iat = json_integer_value(iat),
                            .exp = json_integer_value(exp)};
    if (!m.caller || !m.subject || !m.task_id || !m.jti || !m.jti[0] || !json_is_integer(iat) ||
        !json_is_integer(exp))
        return -1;
    if (m.exp < r->now - r->grace_s) /* the sweeper would have dropped it */
        return 0;
    const char **scopes = NULL, **audience = NULL;
    if (strings(rec, "scopes", &scopes, &m.n_scopes) != 0 ||
        strings(rec, "audience", &audience, &m.n_audience) != 0) {
        free(scopes);
        return -1;
    }
    m.scopes = scopes;
    m.audience = audience;
    /* Claims only for a token still active: the others answer a status only. */
    bool active = m.exp > r->now;
    json_t *claims = active ? credd_claims(r->d->issuer, &m) : NULL;
    int rc = active && !claims ? -1 : token_table_insert(r->d->tokens, m.jti, m.exp, claims);
    json_decref(claims);
    free(scopes);
    free(audience);
    if (rc == 0) {
        r->stats->tokens++;
        r->stats->active += active;
    }
    return rc;
}

static int replay_revoke(struct replay *r, const json_t *rec)
{
    const char *before = str(rec, "before");
    if (!before || strcmp(before, "active") != 0) /* refused, or it changed nothing */
        return 0;
    const char *jti = str(rec, "token_id");
    if (!jti || !jti[0])
        return -1;
    /* Unknown here: minted before the window, long expired. */
    enum token_status st = token_table_lookup(r->d->tokens, jti, r->now, NULL);
    if (token_table_mark_revoked(r->d->tokens, jti) == 0) {
        r->stats->revoked++;
        r->stats->active -= st == TOKEN_ACTIVE;
    }
    return 0;
}

static int on_record(void *ctx, const char *line, size_t len, const json_t *rec)
{
    (void)line;
    (void)len;
    struct replay *r = ctx;
    const char *kind = str(rec, "kind");
    int rc = strcmp(kind, "mint") == 0 ? replay_mint(r, rec) : replay_revoke(r, rec);
    if (rc != 0) {
        json_t *seq = json_object_get(rec, "seq");
        err_set(r->err, r->errlen, "%s: %s record seq %lld cannot be replayed (malformed, a "
                "duplicate token_id, or out of memory): run `airlock audit verify`", audit_path(r->d->audit), kind,
                (long long)json_integer_value(seq));
        return 1;
    }
    r->stats->records++;
    return 0;
}

int credd_replay(struct credd *d, int64_t grace_s, struct credd_replay_stats *stats, char *err,
                 size_t errlen)
{
    static const char *const kinds[] = {"mint", "revoke"};
    int64_t t0 = monotonic_ms();
    memset(stats, 0, sizeof *stats);
    struct replay r = {.d = d, .now = unix_seconds(), .grace_s = grace_s, .stats = stats,
                       .err = err, .errlen = errlen};
    /* A token minted earlier expired before now - grace, whatever max_ttl
     * was then (it is capped at CREDD_TTL_LIMIT_S). */
    const struct audit_filter f = {
        .since_ms = (r.now - CREDD_TTL_LIMIT_S - grace_s) * 1000, .kinds = kinds, .n_kinds = 2};
    int rc = audit_query(audit_path(d->audit), &f, on_record, &r, err, errlen);
    stats->took_ms = monotonic_ms() - t0;
    if (rc != 0)
        return -1;
    log_info("restored %zu tokens (%zu active) and %zu revocations from %zu audit records in "
             "%lld ms", stats->tokens, stats->active, stats->revoked, stats->records,
             (long long)stats->took_ms);
    json_t *rec = json_pack("{s:I,s:I,s:I,s:I,s:I}", "tokens", (json_int_t)stats->tokens,
                            "active", (json_int_t)stats->active, "revoked",
                            (json_int_t)stats->revoked, "records", (json_int_t)stats->records,
                            "took_ms", (json_int_t)stats->took_ms);
    if (!rec || audit_append(d->audit, "tokens.restored", rec, true, NULL, err, errlen) != 0)
        return rec ? -1 : err_set(err, errlen, "out of memory");
    return 0;
}

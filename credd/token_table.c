/*
 * token_table.c - credd's live-token table: every minted token's jti, expiry,
 * revocation flag and claims, for Revoke and Introspect.
 *
 * A chained hash table split into STRIPES independent sub-tables, each with
 * its own mutex, so concurrent callers rarely contend and a sweep only ever
 * holds one stripe (1/64 of the table) at a time. Keys are hashed with
 * SipHash (crypto_shorthash) under a random per-table key, so callers cannot
 * choose jtis that collide. The top hash bits pick the stripe, the low bits
 * the bucket; a stripe doubles its bucket array when it holds more entries
 * than buckets, reusing the stored hashes.
 *
 * Status rules:
 *   REVOKED  once revoked, until swept, even after exp has passed: the more
 *            specific answer wins (the token is inactive either way);
 *   ACTIVE   not revoked and now < exp;
 *   EXPIRED  not revoked and now >= exp;
 *   UNKNOWN  never inserted, or swept (exp < now - grace).
 * Revoking changes only an ACTIVE token; it returns the prior status, so a
 * repeated revoke returns REVOKED (idempotent, RFC 7009).
 *
 * Claims are served only for an ACTIVE token, so a token that stops being
 * active (revoked, or found expired by a sweep) keeps just its tombstone -
 * jti, expiry, flag - until swept: a busy credd's table costs about a
 * hundred bytes per token of the grace period, not the claims' kilobytes.
 */
#include "token.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define STRIPE_BITS 6
#define STRIPES (1u << STRIPE_BITS)
#define MIN_BUCKETS 16
#define JTI_MAX 1024

struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t exp;
    json_t *claims; /* NULL once the token is no longer active */
    bool revoked;
    char jti[]; /* NUL-terminated */
};

struct stripe {
    _Alignas(64) pthread_mutex_t lock; /* one cache line per stripe: no false sharing */
    struct entry **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
};

struct token_table {
    struct stripe stripes[STRIPES];
    uint8_t key[crypto_shorthash_KEYBYTES];
};

const char *token_status_name(enum token_status s)
{
    switch (s) {
    case TOKEN_ACTIVE: return "active";
    case TOKEN_REVOKED: return "revoked";
    case TOKEN_EXPIRED: return "expired";
    case TOKEN_UNKNOWN: break;
    }
    return "unknown";
}

static uint64_t hash_jti(const struct token_table *t, const char *jti, size_t len)
{
    uint8_t out[crypto_shorthash_BYTES];
    uint64_t h;
    crypto_shorthash(out, (const unsigned char *)jti, (unsigned long long)len, t->key);
    memcpy(&h, out, sizeof h);
    return h;
}

static struct stripe *stripe_of(struct token_table *t, uint64_t h)
{
    return &t->stripes[h >> (64 - STRIPE_BITS)];
}

/* Returns the link pointing at jti's entry (*link is NULL if absent). Lock held. */
static struct entry **find(struct stripe *s, uint64_t h, const char *jti)
{
    struct entry **link = &s->buckets[h & (s->nbuckets - 1)];
    while (*link && ((*link)->hash != h || strcmp((*link)->jti, jti) != 0))
        link = &(*link)->next;
    return link;
}

static enum token_status status_of(const struct entry *e, int64_t now)
{
    if (e->revoked)
        return TOKEN_REVOKED;
    return now < e->exp ? TOKEN_ACTIVE : TOKEN_EXPIRED;
}

static void free_entries(struct entry *e)
{
    while (e) {
        struct entry *next = e->next;
        json_decref(e->claims);
        free(e);
        e = next;
    }
}

/* Doubles the bucket array. On allocation failure the table stays as it is:
 * still correct, only longer chains. Lock held. */
static void grow(struct stripe *s)
{
    size_t n = s->nbuckets * 2;
    struct entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct entry *e = s->buckets[i];
        while (e) {
            struct entry *next = e->next;
            struct entry **head = &b[e->hash & (n - 1)];
            e->next = *head;
            *head = e;
            e = next;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
}

struct token_table *token_table_new(void)
{
    if (sodium_init() < 0)
        return NULL;
    struct token_table *t = aligned_alloc(_Alignof(struct token_table), sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    randombytes_buf(t->key, sizeof t->key);
    for (unsigned i = 0; i < STRIPES; i++) {
        struct stripe *s = &t->stripes[i];
        s->nbuckets = MIN_BUCKETS;
        s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
        if (!s->buckets || pthread_mutex_init(&s->lock, NULL) != 0) {
            free(s->buckets);
            while (i-- > 0) {
                pthread_mutex_destroy(&t->stripes[i].lock);
                free(t->stripes[i].buckets);
            }
            free(t);
            return NULL;
        }
    }
    return t;
}

void token_table_free(struct token_table *t)
{
    if (!t)
        return;
    for (unsigned i = 0; i < STRIPES; i++) {
        struct stripe *s = &t->stripes[i];
        for (size_t b = 0; b < s->nbuckets; b++)
            free_entries(s->buckets[b]);
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(t);
}

int token_table_insert(struct token_table *t, const char *jti, int64_t exp, const json_t *claims)
{
    size_t len = jti ? strnlen(jti, JTI_MAX + 1) : 0;
    if (len == 0 || len > JTI_MAX)
        return -1;
    struct entry *e = malloc(sizeof *e + len + 1);
    if (!e)
        return -1;
    e->hash = hash_jti(t, jti, len);
    e->exp = exp;
    e->revoked = false;
    memcpy(e->jti, jti, len + 1);

    struct stripe *s = stripe_of(t, e->hash);
    pthread_mutex_lock(&s->lock);
    struct entry **link = find(s, e->hash, jti);
    if (*link) {
        pthread_mutex_unlock(&s->lock);
        free(e);
        return -1;
    }
    e->claims = json_incref((json_t *)claims);
    e->next = NULL;
    *link = e;
    if (++s->count > s->nbuckets)
        grow(s);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

enum token_status token_table_lookup(struct token_table *t, const char *jti, int64_t now,
                                     json_t **claims)
{
    if (claims)
        *claims = NULL;
    size_t len = jti ? strnlen(jti, JTI_MAX + 1) : 0;
    if (len == 0 || len > JTI_MAX)
        return TOKEN_UNKNOWN;
    uint64_t h = hash_jti(t, jti, len);
    struct stripe *s = stripe_of(t, h);

    pthread_mutex_lock(&s->lock);
    struct entry *e = *find(s, h, jti);
    enum token_status st = e ? status_of(e, now) : TOKEN_UNKNOWN;
    if (st == TOKEN_ACTIVE && claims)
        *claims = json_incref(e->claims); /* jansson's refcounts are atomic */
    pthread_mutex_unlock(&s->lock);
    return st;
}

enum token_status token_table_revoke(struct token_table *t, const char *jti, int64_t now)
{
    size_t len = jti ? strnlen(jti, JTI_MAX + 1) : 0;
    if (len == 0 || len > JTI_MAX)
        return TOKEN_UNKNOWN;
    uint64_t h = hash_jti(t, jti, len);
    struct stripe *s = stripe_of(t, h);

    json_t *drop = NULL;
    pthread_mutex_lock(&s->lock);
    struct entry *e = *find(s, h, jti);
    enum token_status st = e ? status_of(e, now) : TOKEN_UNKNOWN;
    if (st == TOKEN_ACTIVE) {
        e->revoked = true;
        drop = e->claims;
        e->claims = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    json_decref(drop); /* outside the lock */
    return st;
}

int token_table_mark_revoked(struct token_table *t, const char *jti)
{
    size_t len = jti ? strnlen(jti, JTI_MAX + 1) : 0;
    if (len == 0 || len > JTI_MAX)
        return -1;
    uint64_t h = hash_jti(t, jti, len);
    struct stripe *s = stripe_of(t, h);

    json_t *drop = NULL;
    pthread_mutex_lock(&s->lock);
    struct entry *e = *find(s, h, jti);
    if (e) {
        e->revoked = true;
        drop = e->claims;
        e->claims = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    json_decref(drop);
    return e ? 0 : -1;
}

int token_table_find_active(struct token_table *t, int64_t now,
                            bool (*match)(const json_t *claims, void *ctx), void *ctx,
                            char ***jtis, size_t *n)
{
    char **out = NULL;
    size_t count = 0, cap = 0;
    bool oom = false;
    for (unsigned i = 0; i < STRIPES && !oom; i++) {
        struct stripe *s = &t->stripes[i];
        pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b < s->nbuckets && !oom; b++)
            for (struct entry *e = s->buckets[b]; e && !oom; e = e->next) {
                if (status_of(e, now) != TOKEN_ACTIVE || !e->claims || !match(e->claims, ctx))
                    continue;
                if (count == cap) {
                    size_t ncap = cap ? cap * 2 : 16;
                    char **grown = realloc(out, ncap * sizeof *out);
                    if (!grown) {
                        oom = true;
                        break;
                    }
                    out = grown;
                    cap = ncap;
                }
                if (!(out[count] = strdup(e->jti)))
                    oom = true;
                else
                    count++;
            }
        pthread_mutex_unlock(&s->lock);
    }
    if (oom) {
        while (count > 0)
            free(out[--count]);
        free(out);
        return -1;
    }
    *jtis = out;
    *n = count;
    return 0;
}

size_t token_table_sweep(struct token_table *t, int64_t now, int64_t grace_seconds)
{
    if (grace_seconds < 0)
        grace_seconds = 0;
    int64_t cutoff = now >= INT64_MIN + grace_seconds ? now - grace_seconds : INT64_MIN;
    size_t dropped = 0;

    for (unsigned i = 0; i < STRIPES; i++) {
        struct stripe *s = &t->stripes[i];
        struct entry *victims = NULL;
        pthread_mutex_lock(&s->lock);
        for (size_t b = 0; b < s->nbuckets; b++) {
            struct entry **link = &s->buckets[b];
            while (*link) {
                struct entry *e = *link;
                if (e->claims && e->exp <= now) { /* expired: a tombstone from now on */
                    json_decref(e->claims);   /* under the lock: rare, and cheap */
                    e->claims = NULL;
                }
                if (e->exp < cutoff) {
                    *link = e->next;
                    e->next = victims;
                    victims = e;
                    s->count--;
                    dropped++;
                } else {
                    link = &e->next;
                }
            }
        }
        pthread_mutex_unlock(&s->lock);
        free_entries(victims); /* json_decref outside the lock */
    }
    return dropped;
}

size_t token_table_size(struct token_table *t)
{
    size_t n = 0;
    for (unsigned i = 0; i < STRIPES; i++) {
        pthread_mutex_lock(&t->stripes[i].lock);
        n += t->stripes[i].count;
        pthread_mutex_unlock(&t->stripes[i].lock);
    }
    return n;
}

/*
 * policy.c - the broker's policy: rules keyed by SPIFFE ID (exact, or a
 * prefix: a last path segment "*"), deny by default; the Unix peer to
 * SPIFFE ID map; decisions and their explanation (see policy.h).
 *
 * A loaded policy owns copies of every string it keeps and is never written
 * again, so decisions need no lock.
 */
#include "policy.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define SPIFFE_ID_MAX 2048
#define EXE_MAX 4096

/* A list from the configuration; ["*"] is stored as any with no items. */
struct words {
    char **v;
    size_t n;
    bool any;
};

/* Scopes or audiences. */
struct grant {
    struct words allowed;
    struct words dflt;
    bool has_dflt; /* else the default is all of allowed (none when any) */
};

struct rule {
    char *name;
    char *pattern;
    size_t prefix_len; /* 0: exact; else the bytes before the final '*' */
    int line;          /* 0 for the built-in rule */
    struct words runtimes;
    struct policy_limits max, dflt;
    struct grant scopes, audiences;
    uint32_t max_token_ttl_s;
    uint32_t max_concurrent;
    struct words permissions; /* non-task rights, e.g. audit:read */
};

struct unix_identity {
    bool has_uid, has_gid;
    uint64_t uid, gid;
    char *exe; /* NULL: any */
    char *spiffe_id;
};

struct policy {
    char *trust_domain;
    struct rule *rules;
    size_t n_rules;
    struct unix_identity *ids;
    size_t n_ids;
};

/* What every rule is loaded against. */
struct loader {
    const char *trust_domain;
    const struct policy_limits *caps;
    int (*runtime_known)(const char *);
    char *err;
    size_t errlen;
};

/* ---- limits ---- */

static const struct limit_def {
    const char *key;  /* in the configuration */
    const char *name; /* in struct policy_limits, requests and messages */
    size_t offset;
    unsigned shift;    /* value of key << shift = value of name */
    uint64_t min, max; /* of key */
} limit_defs[] = {
#define AT(field) offsetof(struct policy_limits, field)
    {"timeout_ms", "timeout_ms", AT(timeout_ms), 0, 1, 3600000},
    {"memory_mb", "memory_bytes", AT(memory_bytes), 20, 16, 1u << 20},
    {"cpu_ms", "cpu_ms", AT(cpu_ms), 0, 100, 86400000},
    {"max_pids", "max_pids", AT(max_pids), 0, 1, 65536},
    {"output_bytes", "output_bytes", AT(output_bytes), 0, 1, 1ull << 34},
    {"disk_mb", "disk_bytes", AT(disk_bytes), 20, 1, 1u << 20},
    {"open_files", "open_files", AT(open_files), 0, 16, 1u << 20},
#undef AT
};
#define N_LIMITS (sizeof limit_defs / sizeof limit_defs[0])

static uint64_t limit_get(const struct policy_limits *l, size_t i)
{
    return *(const uint64_t *)((const char *)l + limit_defs[i].offset);
}

static void limit_set(struct policy_limits *l, size_t i, uint64_t v)
{
    *(uint64_t *)((char *)l + limit_defs[i].offset) = v;
}

/* ---- lists of words ---- */

static bool words_has(const struct words *w, const char *s)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->v[i], s) == 0)
            return true;
    return false;
}

static int words_alloc(struct words *w, size_t cap)
{
    return cap && !(w->v = calloc(cap, sizeof *w->v)) ? -1 : 0;
}

/* Appends a copy of s; the array has room (words_alloc). */
static int words_push(struct words *w, const char *s)
{
    if (!(w->v[w->n] = strdup(s)))
        return -1;
    w->n++;
    return 0;
}

static void words_free(struct words *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->v[i]);
    free(w->v);
}

/* "a, b" for messages: "any" for ["*"], "none" when empty. */
static const char *words_join(const struct words *w, char *buf, size_t len)
{
    if (w->any || w->n == 0)
        return w->any ? "any" : "none";
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < w->n && used < len; i++) {
        int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "", w->v[i]);
        used += n > 0 ? (size_t)n : 0;
    }
    return buf;
}

/* ---- loading ---- */

static int oom(const struct loader *ld, const struct yconf_node *at)
{
    return yconf_error(at, ld->err, ld->errlen, "out of memory");
}

/* A list of distinct plain words at n (absent: empty); "*" only alone. */
static int load_words(const struct loader *ld, const struct yconf_node *n, struct words *w)
{
    const char **v;
    size_t count;
    int rc = yconf_strings(n, POLICY_WORD_MAX, POLICY_LIST_MAX, &v, &count, ld->err, ld->errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (count == 1 && strcmp(v[0], "*") == 0)
        w->any = true;
    else if (words_alloc(w, count) != 0)
        rc = oom(ld, n);
    for (size_t i = 0; !w->any && rc == 0 && i < count; i++) {
        struct yconf_node item;
        yconf_item(n, i, &item);
        if (strcmp(v[i], "*") == 0)
            rc = yconf_error(&item, ld->err, ld->errlen, "\"*\" must be the only item");
        else if (!is_plain_word(v[i], POLICY_WORD_MAX))
            rc = yconf_error(&item, ld->err, ld->errlen, "printable ASCII without spaces only");
        else if (words_has(w, v[i]))
            rc = yconf_error(&item, ld->err, ld->errlen, "\"%s\" is listed twice", v[i]);
        else if (words_push(w, v[i]) != 0)
            rc = oom(ld, &item);
    }
    free(v);
    return rc;
}

/* A required string under key, and its node for later messages. */
static int required_string(const struct loader *ld, const struct yconf_node *map, const char *key,
                           size_t maxlen, const char **out, struct yconf_node *at)
{
    yconf_child(map, key, at);
    if (yconf_required(at, ld->err, ld->errlen) != 0)
        return -1;
    return yconf_string(at, maxlen, out, ld->err, ld->errlen);
}

static int copy_string(const struct loader *ld, const struct yconf_node *at, const char *s,
                       char **out)
{
    return (*out = strdup(s)) ? 0 : oom(ld, at);
}

/* An optional integer under key: 0, YCONF_ABSENT (*v = 0), or -1. */
static int optional_u64(const struct loader *ld, const struct yconf_node *map, const char *key,
                        uint64_t min, uint64_t max, uint64_t *v)
{
    struct yconf_node at;
    yconf_child(map, key, &at);
    *v = 0;
    return yconf_u64(&at, min, max, v, ld->err, ld->errlen);
}

/* A SPIFFE ID of the broker's trust domain; with pattern, its last path
 * segment may be "*" (*prefix_len is then the length before it, else 0). */
static int check_spiffe_id(const struct loader *ld, const struct yconf_node *at, const char *s,
                           bool pattern, size_t *prefix_len)
{
    char probe[SPIFFE_ID_MAX + 1];
    const char *star = strchr(s, '*');
    *prefix_len = 0;
    if (star && (!pattern || star[1] || star == s || star[-1] != '/'))
        return yconf_error(at, ld->err, ld->errlen,
                           pattern ? "'*' is allowed only as the whole last path segment"
                                   : "'*' is not allowed in a SPIFFE ID");
    snprintf(probe, sizeof probe, "%s", s);
    if (star) {
        *prefix_len = (size_t)(star - s);
        probe[*prefix_len] = 'x'; /* the "*" segment checks as an "x" */
    }
    if (!spiffe_id_valid(probe))
        return yconf_error(at, ld->err, ld->errlen,
                           "\"%s\" is not a SPIFFE ID (spiffe://trust-domain/path)", s);
    const char *td = s + strlen("spiffe://");
    size_t td_len = strcspn(td, "/");
    if (td_len != strlen(ld->trust_domain) || memcmp(td, ld->trust_domain, td_len) != 0)
        return yconf_error(at, ld->err, ld->errlen, "trust domain '%.*s' is not the broker's (%s)",
                           (int)td_len, td, ld->trust_domain);
    return 0;
}

static int load_name(const struct loader *ld, const struct yconf_node *n, struct rule *r)
{
    struct yconf_node at;
    const char *s;
    if (required_string(ld, n, "name", POLICY_NAME_MAX, &s, &at) != 0)
        return -1;
    if (strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_.-") != strlen(s))
        return yconf_error(&at, ld->err, ld->errlen,
                           "a rule name is made of a-z 0-9 _ . -, got \"%s\"", s);
    return copy_string(ld, &at, s, &r->name);
}

static int load_pattern(const struct loader *ld, const struct yconf_node *n, struct rule *r)
{
    struct yconf_node at;
    const char *s;
    if (required_string(ld, n, "spiffe_id", SPIFFE_ID_MAX, &s, &at) != 0 ||
        check_spiffe_id(ld, &at, s, true, &r->prefix_len) != 0)
        return -1;
    return copy_string(ld, &at, s, &r->pattern);
}

static int load_runtimes(const struct loader *ld, const struct yconf_node *n, struct rule *r)
{
    struct yconf_node at, item;
    yconf_child(n, "runtimes", &at);
    /* A rule that only grants permissions (an auditor) may run nothing. */
    if (!yconf_present(&at) && r->permissions.n > 0)
        return 0;
    if (yconf_required(&at, ld->err, ld->errlen) != 0 || load_words(ld, &at, &r->runtimes) != 0)
        return -1;
    if (r->runtimes.n == 0)
        return yconf_error(&at, ld->err, ld->errlen, "name at least one runtime");
    for (size_t i = 0; i < r->runtimes.n; i++) {
        yconf_item(&at, i, &item);
        if (ld->runtime_known && !ld->runtime_known(r->runtimes.v[i]))
            return yconf_error(&item, ld->err, ld->errlen, "unknown runtime \"%s\"",
                               r->runtimes.v[i]);
    }
    return 0;
}

/* The limits mapping at n into out; each at most ceiling's (when set). */
static int read_limits(const struct loader *ld, const struct yconf_node *n, const char *rule,
                       const struct policy_limits *ceiling, const char *ceiling_name,
                       struct policy_limits *out)
{
    const char *keys[N_LIMITS + 1] = {NULL};
    for (size_t i = 0; i < N_LIMITS; i++)
        keys[i] = limit_defs[i].key;
    int rc = yconf_mapping(n, keys, ld->err, ld->errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    for (size_t i = 0; i < N_LIMITS; i++) {
        const struct limit_def *d = &limit_defs[i];
        struct yconf_node at;
        uint64_t v, top = limit_get(ceiling, i);
        yconf_child(n, d->key, &at);
        rc = yconf_u64(&at, d->min, d->max, &v, ld->err, ld->errlen);
        if (rc < 0)
            return -1;
        if (rc == YCONF_ABSENT)
            continue;
        v <<= d->shift;
        if (top && v > top)
            return yconf_error(&at, ld->err, ld->errlen, "rule \"%s\": %s %llu exceeds %s %llu",
                               rule, d->name, (unsigned long long)v, ceiling_name,
                               (unsigned long long)top);
        limit_set(out, i, v);
    }
    return 0;
}

/* Unset limits fill from fallback. */
static void limits_inherit(struct policy_limits *l, const struct policy_limits *fallback)
{
    for (size_t i = 0; i < N_LIMITS; i++)
        if (!limit_get(l, i))
            limit_set(l, i, limit_get(fallback, i));
}

static int load_limits(const struct loader *ld, const struct yconf_node *n, struct rule *r)
{
    struct yconf_node at;
    yconf_child(n, "limits", &at);
    if (read_limits(ld, &at, r->name, ld->caps, "the broker's cap", &r->max) != 0)
        return -1;
    limits_inherit(&r->max, ld->caps);
    yconf_child(n, "defaults", &at);
    if (read_limits(ld, &at, r->name, &r->max, "the rule's maximum", &r->dflt) != 0)
        return -1;
    limits_inherit(&r->dflt, &r->max);
    return 0;
}

/* scopes/default_scopes or audiences/default_audiences. */
static int load_grant(const struct loader *ld, const struct yconf_node *n, const char *key,
                      const char *default_key, struct grant *g)
{
    struct yconf_node at, item;
    yconf_child(n, key, &at);
    if (load_words(ld, &at, &g->allowed) != 0)
        return -1;
    yconf_child(n, default_key, &at);
    g->has_dflt = yconf_present(&at);
    if (load_words(ld, &at, &g->dflt) != 0)
        return -1;
    if (g->dflt.any)
        return yconf_error(&at, ld->err, ld->errlen, "\"*\" cannot be a default");
    for (size_t i = 0; i < g->dflt.n; i++) {
        yconf_item(&at, i, &item);
        if (!g->allowed.any && !words_has(&g->allowed, g->dflt.v[i]))
            return yconf_error(&item, ld->err, ld->errlen, "\"%s\" is not in %s", g->dflt.v[i],
                               key);
    }
    return 0;
}

static int load_permissions(const struct loader *ld, const struct yconf_node *n, struct rule *r)
{
    struct yconf_node at, item;
    yconf_child(n, "permissions", &at);
    if (load_words(ld, &at, &r->permissions) != 0)
        return -1;
    if (r->permissions.any)
        return yconf_error(&at, ld->err, ld->errlen, "name each permission (known: %s)",
                           POLICY_PERMISSIONS);
    for (size_t i = 0; i < r->permissions.n; i++) {
        yconf_item(&at, i, &item);
        if (strcmp(r->permissions.v[i], POLICY_AUDIT_READ) != 0)
            return yconf_error(&item, ld->err, ld->errlen, "unknown permission \"%s\" (known: %s)",
                               r->permissions.v[i], POLICY_PERMISSIONS);
    }
    return 0;
}

static int load_ttl_and_concurrency(const struct loader *ld, const struct yconf_node *n,
                                    struct rule *r)
{
    uint64_t ttl, concurrent;
    if (optional_u64(ld, n, "max_token_ttl_s", 1, 86400, &ttl) < 0 ||
        optional_u64(ld, n, "max_concurrent", 0, 4096, &concurrent) < 0)
        return -1;
    r->max_token_ttl_s = (uint32_t)ttl;
    r->max_concurrent = (uint32_t)concurrent;
    return 0;
}

/* Rule j against the rules before it: names and patterns are unique. */
static int check_unique(const struct loader *ld, const struct yconf_node *n,
                        const struct rule *rules, size_t j)
{
    struct yconf_node at;
    for (size_t i = 0; i < j; i++) {
        if (strcmp(rules[i].name, rules[j].name) == 0) {
            yconf_child(n, "name", &at);
            return yconf_error(&at, ld->err, ld->errlen,
                               "rule name \"%s\" is already used at line %d", rules[j].name,
                               rules[i].line);
        }
        if (strcmp(rules[i].pattern, rules[j].pattern) == 0) {
            yconf_child(n, "spiffe_id", &at);
            return yconf_error(&at, ld->err, ld->errlen,
                               "%s is already the pattern of rule \"%s\" at line %d",
                               rules[j].pattern, rules[i].name, rules[i].line);
        }
    }
    return 0;
}

/* Rule i, p->rules[i]; counted first, so that policy_free frees it. */
static int load_rule(const struct loader *ld, const struct yconf_node *n, struct policy *p,
                     size_t i)
{
    static const char *const keys[] = {"name",
                                       "spiffe_id",
                                       "runtimes",
                                       "limits",
                                       "defaults",
                                       "scopes",
                                       "default_scopes",
                                       "audiences",
                                       "default_audiences",
                                       "max_token_ttl_s",
                                       "max_concurrent",
                                       "permissions",
                                       NULL};
    struct rule *r = &p->rules[i];
    p->n_rules = i + 1;
    r->line = n->line;
    if (yconf_mapping(n, keys, ld->err, ld->errlen) != 0 || load_name(ld, n, r) != 0 ||
        load_pattern(ld, n, r) != 0 || load_permissions(ld, n, r) != 0 ||
        load_runtimes(ld, n, r) != 0 || load_limits(ld, n, r) != 0 ||
        load_grant(ld, n, "scopes", "default_scopes", &r->scopes) != 0 ||
        load_grant(ld, n, "audiences", "default_audiences", &r->audiences) != 0 ||
        load_ttl_and_concurrency(ld, n, r) != 0)
        return -1;
    return check_unique(ld, n, p->rules, i);
}

/* An optional absolute path under "exe". */
static int load_exe(const struct loader *ld, const struct yconf_node *n, struct unix_identity *u)
{
    struct yconf_node at;
    const char *s;
    yconf_child(n, "exe", &at);
    int rc = yconf_string(&at, EXE_MAX, &s, ld->err, ld->errlen);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (s[0] != '/')
        return yconf_error(&at, ld->err, ld->errlen, "must be an absolute path");
    return copy_string(ld, &at, s, &u->exe);
}

/* Entry i, p->ids[i]; counted first, so that policy_free frees it. */
static int load_unix_identity(const struct loader *ld, const struct yconf_node *n, struct policy *p,
                              size_t i)
{
    static const char *const keys[] = {"uid", "gid", "exe", "spiffe_id", NULL};
    struct unix_identity *u = &p->ids[i];
    struct yconf_node at;
    const char *s;
    size_t none;
    int uid_rc, gid_rc;
    p->n_ids = i + 1;
    if (yconf_mapping(n, keys, ld->err, ld->errlen) != 0 ||
        (uid_rc = optional_u64(ld, n, "uid", 0, 4294967294u, &u->uid)) < 0 ||
        (gid_rc = optional_u64(ld, n, "gid", 0, 4294967294u, &u->gid)) < 0 ||
        load_exe(ld, n, u) != 0)
        return -1;
    u->has_uid = uid_rc == 0;
    u->has_gid = gid_rc == 0;
    if (!u->has_uid && !u->has_gid && !u->exe)
        return yconf_error(n, ld->err, ld->errlen, "give at least one of uid, gid, exe");
    if (required_string(ld, n, "spiffe_id", SPIFFE_ID_MAX, &s, &at) != 0 ||
        check_spiffe_id(ld, &at, s, false, &none) != 0)
        return -1;
    return copy_string(ld, &at, s, &u->spiffe_id);
}

static int alloc_rules(struct policy *p, size_t count)
{
    return (p->rules = calloc(count, sizeof *p->rules)) ? 0 : -1;
}

static int alloc_ids(struct policy *p, size_t count)
{
    return (p->ids = calloc(count, sizeof *p->ids)) ? 0 : -1;
}

/* The list at n (absent or NULL: empty): alloc makes room for its items,
 * then load_item loads each in turn. */
static int load_list(const struct loader *ld, const struct yconf_node *n, struct policy *p,
                     int (*alloc)(struct policy *, size_t),
                     int (*load_item)(const struct loader *, const struct yconf_node *,
                                      struct policy *, size_t))
{
    size_t count;
    int rc = n ? yconf_sequence(n, &count, ld->err, ld->errlen) : YCONF_ABSENT;
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (count && alloc(p, count) != 0)
        return oom(ld, n);
    for (size_t i = 0; i < count; i++) {
        struct yconf_node item;
        yconf_item(n, i, &item);
        if (load_item(ld, &item, p, i) != 0)
            return -1;
    }
    return 0;
}

/* A policy with nothing in it yet, for trust_domain. */
static struct policy *policy_new(const char *trust_domain)
{
    struct policy *p = trust_domain_valid(trust_domain) ? calloc(1, sizeof *p) : NULL;
    if (p && !(p->trust_domain = strdup(trust_domain))) {
        free(p);
        p = NULL;
    }
    return p;
}

int policy_load(const struct yconf_node *policy_node, const struct yconf_node *unix_node,
                const char *trust_domain, const struct policy_limits *broker_caps,
                int (*runtime_known)(const char *), struct policy **out, char *err, size_t errlen)
{
    *out = NULL;
    struct policy *p = policy_new(trust_domain);
    if (!p)
        return err_set(err, errlen, "invalid trust domain '%s', or out of memory",
                       trust_domain ? trust_domain : "");
    struct loader ld = {trust_domain, broker_caps, runtime_known, err, errlen};
    if (load_list(&ld, policy_node, p, alloc_rules, load_rule) != 0 ||
        load_list(&ld, unix_node, p, alloc_ids, load_unix_identity) != 0) {
        policy_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

int policy_default(const char *trust_domain, uid_t owner_uid, const char *const *runtimes,
                   const struct policy_limits *broker_caps, uint64_t default_timeout_ms,
                   struct policy **out)
{
    char id[512];
    size_t n = 0;
    *out = NULL;
    struct policy *p = policy_new(trust_domain);
    if (!p || !(p->rules = calloc(1, sizeof *p->rules)))
        goto fail;
    p->n_rules = 1;
    struct rule *r = &p->rules[0];
    snprintf(id, sizeof id, "spiffe://%s/uid/%u", trust_domain, (unsigned)owner_uid);
    while (runtimes[n])
        n++;
    if (!(r->name = strdup("local-owner")) || !(r->pattern = strdup(id)) ||
        words_alloc(&r->runtimes, n) != 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (words_push(&r->runtimes, runtimes[i]) != 0)
            goto fail;
    r->max = r->dflt = *broker_caps;
    if (default_timeout_ms && default_timeout_ms < r->max.timeout_ms)
        r->dflt.timeout_ms = default_timeout_ms;
    r->scopes.allowed.any = r->audiences.allowed.any = true;
    if (words_alloc(&r->permissions, 1) != 0 || words_push(&r->permissions, POLICY_AUDIT_READ) != 0)
        goto fail;
    *out = p;
    return 0;
fail:
    policy_free(p);
    return -1;
}

static void rule_free(struct rule *r)
{
    free(r->name);
    free(r->pattern);
    words_free(&r->runtimes);
    words_free(&r->scopes.allowed);
    words_free(&r->scopes.dflt);
    words_free(&r->audiences.allowed);
    words_free(&r->audiences.dflt);
    words_free(&r->permissions);
}

void policy_free(struct policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_rules; i++)
        rule_free(&p->rules[i]);
    for (size_t i = 0; i < p->n_ids; i++) {
        free(p->ids[i].exe);
        free(p->ids[i].spiffe_id);
    }
    free(p->rules);
    free(p->ids);
    free(p->trust_domain);
    free(p);
}

/* ---- identities and decisions ---- */

int policy_unix_identity(const struct policy *p, uid_t uid, gid_t gid, const char *exe, char *out,
                         size_t outlen)
{
    int n = -1;
    for (size_t i = 0; i < p->n_ids && n < 0; i++) {
        const struct unix_identity *u = &p->ids[i];
        if ((!u->has_uid || u->uid == uid) && (!u->has_gid || u->gid == gid) &&
            (!u->exe || (exe && strcmp(u->exe, exe) == 0)))
            n = snprintf(out, outlen, "%s", u->spiffe_id);
    }
    if (n < 0)
        n = snprintf(out, outlen, "spiffe://%s/uid/%u", p->trust_domain, (unsigned)uid);
    return n >= 0 && (size_t)n < outlen ? 0 : -1;
}

/* The exact rule for id, else the longest prefix rule that matches it. */
static const struct rule *match(const struct policy *p, const char *id)
{
    const struct rule *best = NULL;
    for (size_t i = 0; i < p->n_rules; i++) {
        const struct rule *r = &p->rules[i];
        if (!r->prefix_len && strcmp(r->pattern, id) == 0)
            return r;
        if (r->prefix_len && strncmp(r->pattern, id, r->prefix_len) == 0 && id[r->prefix_len] &&
            (!best || r->prefix_len > best->prefix_len))
            best = r;
    }
    return best;
}

/* Denies with 'rule "NAME" (PATTERN)' followed by fmt. Returns false. The
 * request's strings may reach a log: no control bytes. */
static bool deny(struct policy_decision *d, const struct rule *r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool deny(struct policy_decision *d, const struct rule *r, const char *fmt, ...)
{
    int n = snprintf(d->reason, sizeof d->reason, "rule \"%s\" (%s)", r->name, r->pattern);
    if (n > 0 && (size_t)n < sizeof d->reason) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->reason + n, sizeof d->reason - (size_t)n, fmt, ap);
        va_end(ap);
    }
    for (char *p = d->reason; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            *p = '?';
    return false;
}

static bool check_runtime(const struct rule *r, const char *runtime, struct policy_decision *d)
{
    char granted[256];
    if (words_has(&r->runtimes, runtime))
        return true;
    return deny(d, r, " does not grant runtime \"%.64s\" (granted: %s)", runtime,
                words_join(&r->runtimes, granted, sizeof granted));
}

/* Each limit as asked, else the default; asking above the grant denies. */
static bool check_limits(const struct rule *r, const struct policy_limits *asked,
                         struct policy_decision *d)
{
    for (size_t i = 0; i < N_LIMITS; i++) {
        uint64_t want = limit_get(asked, i), max = limit_get(&r->max, i);
        if (want && max && want > max)
            return deny(d, r, ": limits.%s %llu exceeds the grant %llu", limit_defs[i].name,
                        (unsigned long long)want, (unsigned long long)max);
        limit_set(&d->limits, i, want ? want : limit_get(&r->dflt, i));
    }
    return true;
}

static bool check_grant(const struct rule *r, const char *what, const struct grant *g,
                        char *const *asked, size_t n, struct policy_decision *d)
{
    char granted[256];
    for (size_t i = 0; i < n; i++) {
        if (strcmp(asked[i], "*") == 0)
            return deny(d, r, ": %s \"*\" cannot be asked for; name each", what);
        if (!g->allowed.any && !words_has(&g->allowed, asked[i]))
            return deny(d, r, ": %s \"%.64s\" not granted (granted: %s)", what, asked[i],
                        words_join(&g->allowed, granted, sizeof granted));
    }
    return true;
}

/* What goes into the token: those asked, else the grant's defaults. */
static int granted_words(const struct grant *g, char *const *asked, size_t n, const char ***out,
                         size_t *n_out)
{
    const struct words *dflt = g->has_dflt ? &g->dflt : &g->allowed;
    size_t count = n ? n : dflt->n;
    *out = NULL;
    *n_out = 0;
    if (count && !(*out = calloc(count, sizeof **out)))
        return -1;
    for (size_t i = 0; i < count; i++)
        (*out)[i] = n ? asked[i] : dflt->v[i];
    *n_out = count;
    return 0;
}

int policy_decide(const struct policy *p, const char *spiffe_id, const struct policy_request *req,
                  struct policy_decision *d)
{
    memset(d, 0, sizeof *d);
    const struct rule *r = match(p, spiffe_id ? spiffe_id : "");
    if (!r) {
        snprintf(d->reason, sizeof d->reason, "no policy rule matches %.400s (deny by default)",
                 spiffe_id ? spiffe_id : "(no identity)");
        return 0;
    }
    d->rule_name = r->name;
    d->rule_pattern = r->pattern;
    if (!check_runtime(r, req->runtime ? req->runtime : "", d) ||
        !check_limits(r, &req->asked, d) ||
        !check_grant(r, "scope", &r->scopes, req->scopes, req->n_scopes, d) ||
        !check_grant(r, "audience", &r->audiences, req->audience, req->n_audience, d))
        return 0;
    if (granted_words(&r->scopes, req->scopes, req->n_scopes, &d->scopes, &d->n_scopes) != 0 ||
        granted_words(&r->audiences, req->audience, req->n_audience, &d->audience,
                      &d->n_audience) != 0) {
        policy_decision_free(d);
        return -1;
    }
    d->max_token_ttl_s = r->max_token_ttl_s;
    d->max_concurrent = r->max_concurrent;
    d->allowed = true;
    snprintf(d->reason, sizeof d->reason, "rule \"%s\" (%s)", r->name, r->pattern);
    return 0;
}

void policy_decision_free(struct policy_decision *d)
{
    free(d->scopes);
    free(d->audience);
    d->scopes = d->audience = NULL;
    d->n_scopes = d->n_audience = 0;
}

/* ---- explanation ---- */

static void explain_limit(FILE *out, uint64_t v)
{
    if (v)
        fprintf(out, "%llu", (unsigned long long)v);
    else
        fputs("not set", out);
}

static void explain_grant(FILE *out, const char *what, const struct grant *g)
{
    char allowed[1024], dflt[1024];
    const struct words *d = g->has_dflt ? &g->dflt : &g->allowed;
    fprintf(out, "  %s: %s (default: %s)\n", what, words_join(&g->allowed, allowed, sizeof allowed),
            d->any ? "none" : words_join(d, dflt, sizeof dflt));
}

void policy_explain(const struct policy *p, const char *spiffe_id, FILE *out)
{
    char buf[1024];
    const struct rule *r = match(p, spiffe_id);
    fprintf(out, "%s\n", spiffe_id);
    if (!r) {
        fputs("  denied: no policy rule matches (deny by default)\n", out);
        return;
    }
    fprintf(out, "  rule: %s (%s", r->name, r->pattern);
    if (r->line)
        fprintf(out, ", line %d", r->line);
    fprintf(out, ")\n  runtimes: %s\n  limits (maximum / default):\n",
            words_join(&r->runtimes, buf, sizeof buf));
    for (size_t i = 0; i < N_LIMITS; i++) {
        fprintf(out, "    %-13s ", limit_defs[i].name);
        explain_limit(out, limit_get(&r->max, i));
        fputs(" / ", out);
        explain_limit(out, limit_get(&r->dflt, i));
        fputc('\n', out);
    }
    explain_grant(out, "scopes", &r->scopes);
    explain_grant(out, "audiences", &r->audiences);
    if (r->max_token_ttl_s)
        fprintf(out, "  token TTL cap: %u s\n", r->max_token_ttl_s);
    else
        fputs("  token TTL cap: none\n", out);
    if (r->max_concurrent)
        fprintf(out, "  concurrent tasks: at most %u\n", r->max_concurrent);
    else
        fputs("  concurrent tasks: no cap\n", out);
    fprintf(out, "  permissions: %s\n",
            r->permissions.n ? words_join(&r->permissions, buf, sizeof buf) : "none");
}

bool policy_permits(const struct policy *p, const char *spiffe_id, const char *permission,
                    char *why, size_t whylen)
{
    const struct rule *r = match(p, spiffe_id);
    if (!r) {
        snprintf(why, whylen, "no policy rule matches %s (deny by default)", spiffe_id);
        return false;
    }
    if (!words_has(&r->permissions, permission)) {
        snprintf(why, whylen, "rule \"%s\" (%s) does not grant %s", r->name, r->pattern,
                 permission);
        return false;
    }
    snprintf(why, whylen, "rule \"%s\" (%s) grants %s", r->name, r->pattern, permission);
    return true;
}

size_t policy_rule_count(const struct policy *p)
{
    return p->n_rules;
}

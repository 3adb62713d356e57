/*
 * policy.h - who may run what: rules keyed by SPIFFE ID, deny by default,
 * and the map from Unix peer credentials to SPIFFE IDs.
 *
 * In the broker's configuration file:
 *
 *   unix_identities:                 # first entry whose given selectors all match
 *     - uid: 1000                    # any of uid / gid / exe, at least one
 *       spiffe_id: spiffe://prod.example/agents/planner
 *   policy:
 *     - name: planner                # required, unique, [a-z0-9_.-]{1,64}
 *       spiffe_id: spiffe://prod.example/agents/planner  # or a prefix: last segment "*"
 *       runtimes: [python3]          # required, non-empty
 *       limits: {timeout_ms: 30000, memory_mb: 256}      # maxima; unset: the broker's cap
 *       defaults: {timeout_ms: 5000} # what a request asking nothing gets; unset: the max
 *       scopes: [orders:read]        # ["*"]: any; absent: none
 *       default_scopes: [orders:read]  # absent: all of scopes (none when "*")
 *       audiences: [orders.api]      # as scopes
 *       default_audiences: [orders.api]
 *       max_token_ttl_s: 120         # 1..86400; absent: no cap
 *       max_concurrent: 4            # tasks of one SPIFFE ID at once; 0 or absent: no cap
 *       permissions: [audit:read]    # rights beyond running tasks; absent: none. A rule
 *                                    # with permissions may leave out runtimes (runs nothing)
 *
 * Limit keys: timeout_ms, memory_mb, cpu_ms, max_pids, output_bytes, disk_mb,
 * open_files (*_mb in MiB); ranges as the broker's own flags.
 *
 * A pattern whose last path segment is "*" matches every ID below the path
 * before it: for the path spiffe://td/a, spiffe://td/a/b and spiffe://td/a/b/c,
 * not spiffe://td/a nor spiffe://td/ab. Matching does not depend on rule
 * order: an exact rule beats every prefix rule, and the longest prefix wins.
 */
#ifndef AIRLOCK_BROKER_POLICY_H
#define AIRLOCK_BROKER_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "yamlconf.h"

#define POLICY_NAME_MAX 64
#define POLICY_WORD_MAX 256 /* a scope, an audience, a runtime */
#define POLICY_LIST_MAX 256 /* items in one list */

/* Permissions a rule may grant besides running tasks. */
#define POLICY_AUDIT_READ "audit:read" /* Audit/Query and Audit/Verify */
#define POLICY_PERMISSIONS POLICY_AUDIT_READ

/* Per-task limits in the request's units; 0 means not set. */
struct policy_limits {
    uint64_t timeout_ms;
    uint64_t memory_bytes;
    uint64_t cpu_ms;
    uint64_t max_pids;
    uint64_t output_bytes;
    uint64_t disk_bytes;
    uint64_t open_files;
};

struct policy; /* immutable once loaded: many threads may read it */

/* Loads the rules under policy_node and the map under unix_node (either
 * absent or NULL: no rules, everyone denied / no map). Every rule's trust
 * domain must be trust_domain. broker_caps bounds every rule limit (a rule
 * asking more is an error naming it); a limit the rule does not set takes
 * the cap as its maximum, and the maximum as its default. runtime_known
 * (sandbox_runtime_known; NULL: any) vets each runtime name. The policy
 * copies what it keeps: the document may be freed afterwards.
 * 0, or -1 with "FILE:LINE: path: message" in err. */
int policy_load(const struct yconf_node *policy_node, const struct yconf_node *unix_node,
                const char *trust_domain, const struct policy_limits *broker_caps,
                int (*runtime_known)(const char *), struct policy **out, char *err, size_t errlen);

/* The built-in policy when there is no configuration file: one rule,
 * "local-owner", granting exactly spiffe://<td>/uid/<owner_uid> the runtimes
 * of the NULL-terminated list, the broker caps as maxima and defaults (but
 * default_timeout_ms, when non-zero and below the cap, as the timeout's), any
 * scope and audience, no TTL or concurrency cap, and audit:read. Everyone
 * else is denied.
 * 0, or -1 (out of memory, or an invalid trust domain). */
int policy_default(const char *trust_domain, uid_t owner_uid, const char *const *runtimes,
                   const struct policy_limits *broker_caps, uint64_t default_timeout_ms,
                   struct policy **out);

void policy_free(struct policy *p);

/* Does the rule matching spiffe_id grant permission? why says which rule
 * and why (for the log, the audit trail and the caller). */
bool policy_permits(const struct policy *p, const char *spiffe_id, const char *permission,
                    char *why, size_t whylen);

/* Number of rules (0: everyone is denied). */
size_t policy_rule_count(const struct policy *p);

/* The SPIFFE ID of a Unix peer: that of the first unix_identities entry whose
 * given selectors all match (exe NULL: unknown, matches no exe selector),
 * else spiffe://<td>/uid/<uid>. 0, or -1 when out is too small. */
int policy_unix_identity(const struct policy *p, uid_t uid, gid_t gid, const char *exe, char *out,
                         size_t outlen);

struct policy_request {
    const char *runtime;
    struct policy_limits asked; /* 0: not asked */
    char *const *scopes;
    size_t n_scopes;
    char *const *audience;
    size_t n_audience;
};

struct policy_decision {
    bool allowed;
    const char *rule_name; /* NULL when no rule matched */
    const char *rule_pattern;
    /* The rest is meaningful only when allowed. */
    struct policy_limits limits; /* each: as asked, else the rule's default (0: no limit set) */
    const char **scopes;         /* for the token: exactly those asked, else the defaults; */
    size_t n_scopes;             /* the strings belong to the request or the policy */
    const char **audience;
    size_t n_audience;
    uint32_t max_token_ttl_s; /* 0: no cap from the policy */
    uint32_t max_concurrent;  /* 0: no cap */
    char reason[512];         /* allow: 'rule "planner" (spiffe://...)'; deny: why, e.g.
                                 'rule "planner" (spiffe://...): scope "x" not granted
                                 (granted: a, b)' or 'no policy rule matches spiffe://...
                                 (deny by default)' */
};

/* Decides whether spiffe_id may run req. Never trims: anything asked beyond
 * the grant denies, naming the first offending runtime, limit, scope or
 * audience. 0 once decided (allowed or not), -1 only when out of memory.
 * Release with policy_decision_free either way. */
int policy_decide(const struct policy *p, const char *spiffe_id, const struct policy_request *req,
                  struct policy_decision *out);
void policy_decision_free(struct policy_decision *d);

/* For `airlock policy check`: what spiffe_id may do (the matching rule,
 * runtimes, maximum and default limits, scopes, audiences, TTL cap,
 * concurrency), in a few lines of text. */
void policy_explain(const struct policy *p, const char *spiffe_id, FILE *out);

#endif

/*
 * audit_rpc.h - the daemons' side of the audit trail (lib/audit.h): the
 * airlock.v1.Audit service over a daemon's own chain, the records both
 * daemons write about their callers, and the thread that has the chain
 * checkpointed (signed by credd) at a fixed interval.
 */
#ifndef AIRLOCK_AUDIT_RPC_H
#define AIRLOCK_AUDIT_RPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "audit.h"
#include "rpc.h"
#include "yamlconf.h"

/* A daemon's `audit:` configuration section (both daemons):
 *   audit:
 *     path: /var/lib/airlock/broker/audit.jsonl  # default STATE_DIR/audit.jsonl
 *     stream: /var/log/airlock/audit.jsonl       # JSON Lines mirror; "-" stdout; default none
 *     fsync: true                                # false: no durability (benchmarks only)
 *     checkpoint_interval_s: 60                  # 1..86400
 */
struct audit_settings {
    const char *path;   /* NULL: STATE_DIR/audit.jsonl */
    const char *stream;
    bool no_fsync;
    uint64_t checkpoint_interval_s;
};
#define AUDIT_DEFAULT_CHECKPOINT_S 60

/* The flags both daemons take for it, as getopt_long entries (values above
 * any short option and any daemon's own long-only options). */
enum {
    AUDIT_OPT_PATH = 0x400,
    AUDIT_OPT_STREAM,
    AUDIT_OPT_CHECKPOINT,
    AUDIT_OPT_NO_FSYNC,
};
#define AUDIT_LONG_OPTIONS                                             \
    {"audit-path", required_argument, NULL, AUDIT_OPT_PATH},           \
    {"audit-stream", required_argument, NULL, AUDIT_OPT_STREAM},       \
    {"audit-checkpoint-s", required_argument, NULL, AUDIT_OPT_CHECKPOINT}, \
    {"audit-no-fsync", no_argument, NULL, AUDIT_OPT_NO_FSYNC}

/* Applies one of those flags: 1 if opt was one, 0 if it is not, -1 on a
 * bad value. */
int audit_settings_flag(struct audit_settings *s, int opt, const char *arg);

/* Reads the section at node (absent: leaves s as it is). 0, or -1 with
 * "FILE:LINE: audit.key: why" in err. extra_keys (NULL-terminated, may be
 * NULL) are more keys the daemon reads itself from the same mapping. */
int audit_settings_load(const struct yconf_node *node, const char *const *extra_keys,
                        struct audit_settings *s, char *err, size_t errlen);

/* Opens the daemon's chain per s: path defaults to state_dir/audit.jsonl.
 * NULL with err. */
struct audit_log *audit_settings_open(const struct audit_settings *s, const char *state_dir,
                                      const char *daemon, const char *identity,
                                      const char *version, char *err, size_t errlen);

struct audit_service {
    struct audit_log *log;
    /* May this caller read the trail (audit:read)? Fills caller with its
     * SPIFFE ID ("" when it has none) and why with the reason either way. */
    bool (*may_read)(void *ctx, const struct rpc_peer *peer, char *caller, size_t callerlen,
                     char *why, size_t whylen);
    /* credd's JWKS, to verify checkpoints: a malloc'd string, or NULL with err. */
    char *(*jwks)(void *ctx, char *err, size_t errlen);
    void *ctx;
};

/* Audit/Query and Audit/Verify, ctx = s. Returns how many entries were
 * written to m (0 if cap is too small). Each call is itself recorded
 * ("audit.read"): a Query durably before any record leaves (one that cannot
 * be recorded is refused with UNAVAILABLE), a Verify best effort, since it
 * must work precisely when the trail is damaged. */
size_t audit_service_methods(struct audit_service *s, struct rpc_method *m, size_t cap);

/* Who is calling, for a record: {"transport":"unix","uid","gid","pid","exe"}
 * or {"transport":"tls","spiffe_id"} / {"transport":"tls","auth_error"}. */
json_t *audit_peer_json(const struct rpc_peer *peer);

/* Records an authentication failure: kind "authn", result "denied". Not
 * durable (nothing was granted); a failure to record is logged. */
void audit_authn_denied(struct audit_log *log, const struct rpc_peer *peer, const char *method,
                        const char *why);

/* A JSON array of strings (NULL on allocation failure). */
json_t *audit_strings(const char *const *items, size_t n);

/* Fails a call whose audit record could not be written: UNAVAILABLE,
 * "audit trail unavailable (ERR); WHAT". Returns the code. */
grpc_status_code audit_call_fail(struct rpc_call *call, const char *err, const char *what);

/* Checkpoints log with sign every interval_s seconds from a thread of its
 * own. NULL with err. */
struct audit_checkpointer;
struct audit_checkpointer *audit_checkpointer_start(struct audit_log *log, unsigned interval_s,
                                                    audit_sign_fn sign, void *ctx, char *err,
                                                    size_t errlen);
void audit_checkpointer_stop(struct audit_checkpointer *c);

#endif

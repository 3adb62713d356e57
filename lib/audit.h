/*
 * audit.h - the tamper-evident audit chain each daemon keeps: an append-only
 * JSON Lines file with durable, group-committed writes (audit.c), its
 * verifier (audit_verify.c) and its filtered reader (audit_query.c).
 *
 * File format (schema version 1). One record per line, UTF-8 JSON, compact,
 * '\n'-terminated. Every record is an object whose members come in this
 * order:
 *
 *   {"v":1,"seq":N,"ts":MS,"time":"2026-11-23T10:00:00.123Z","chain":ID,
 *    "kind":KIND, ...the kind's own fields..., "prev":HEX}
 *
 *   v      schema version, 1
 *   seq    1, 2, 3 ... with no gaps
 *   ts     unix milliseconds; time is the same instant, RFC 3339 UTC
 *   chain  the chain's id, fixed at creation (random, 32 chars)
 *   kind   what the record is about ("chain.start", "execute", "mint", ...)
 *   prev   SHA-256 (lowercase hex) of the previous line's bytes, without
 *          its '\n'; 64 zeros for seq 1
 *
 * A record's hash is SHA-256 of its exact line bytes, so nothing is ever
 * re-serialised to verify. Record 1 is kind "chain.start" with fields
 * {"daemon","identity","version","host"}.
 *
 * A checkpoint is a record of kind "checkpoint" whose fields are
 *   {"covers_seq":S,"head":H,"signed_time":T,"signer":ID,"kid":KID,"sig":B64}
 * where H is the hash of record S (S < the checkpoint's own seq) and sig is
 * an Ed25519 signature (base64url, no padding) by credd's key KID over
 * audit_checkpoint_message(chain, S, H, T). The key is found in credd's
 * JWKS by kid.
 */
#ifndef AIRLOCK_AUDIT_H
#define AIRLOCK_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUDIT_SCHEMA_VERSION 1
#define AUDIT_HASH_HEX 65     /* 64 hex digits + NUL */
#define AUDIT_CHAIN_ID_MAX 64
#define AUDIT_MAX_LINE (1u << 20) /* a longer line is malformed */
#define AUDIT_LAZY_SYNC_MS 100    /* a record appended without durable is stable within this */

/* ------------------------------------------------------------------ writer */

struct audit_options {
    const char *path;        /* the chain file; created 0600 if missing */
    const char *daemon;      /* "broker" | "credd", for chain.start */
    const char *identity;    /* the daemon's SPIFFE ID, for chain.start */
    const char *version;     /* software version, for chain.start */
    const char *stream_path; /* mirror every line here: NULL none, "-" stdout, else a file (appended) */
    bool no_fsync;           /* true: skip fsync (benchmarks, tests); default is durable */
};

struct audit_log;

/* Opens (or creates, writing chain.start durably) the chain file and finds
 * its head: the last record's seq and hash. A last line without its '\n' (a
 * write torn by a crash, which was never acknowledged since acknowledgement
 * waits for fsync) is cut off, and a record of kind "recovered"
 * {"dropped_bytes":N} is appended. Any other damage (a last line that is not
 * a record of this chain) refuses to open: an operator runs `airlock audit
 * verify`. Then appends a "daemon.start" record {"daemon","pid","version"}.
 * NULL with err on failure. */
struct audit_log *audit_open(const struct audit_options *opts, char *err, size_t errlen);

/* What a checkpoint signs: the fields, and the message built from them by
 * audit_checkpoint_message (len bytes). */
struct audit_checkpoint_claim {
    const char *chain;
    uint64_t seq;     /* the last record covered */
    const char *head; /* its hash */
    int64_t time;     /* unix seconds */
    const char *message;
    size_t len;
};

typedef int (*audit_sign_fn)(void *ctx, const struct audit_checkpoint_claim *claim, char kid[64],
                             char sig[128], char signer[256], char *err, size_t errlen);

/* Clean shutdown: appends "daemon.stop" {"pid"}, then (if sign is non-NULL)
 * a checkpoint covering it, then closes. Failures are logged. NULL is fine. */
void audit_close(struct audit_log *log, audit_sign_fn sign, void *ctx);

/* Appends one record of the given kind. fields is a JSON object (this call
 * steals the reference, success or not) whose members go between "kind" and
 * "prev", in their order; it must not hold v/seq/ts/time/chain/kind/prev.
 * With durable, returns only once the record is on stable storage: callers
 * waiting at the same time share one fsync (group commit). Without, the
 * record is written before the call returns (it survives the process being
 * killed) and a background thread makes it stable within AUDIT_LAZY_SYNC_MS
 * (sooner if a durable record follows): a power cut can lose at most that.
 * Returns 0 (and *seq if non-NULL), or -1 with err: then the record is not in
 * the chain (a partial write is cut back off) and the action it describes
 * must not happen. A write that failed (a full disk, say) and left the file
 * as it was, or was cut back, leaves the log usable: the next append tries
 * again. After a failed fsync, or a partial write that cannot be cut back,
 * the log refuses every later append until reopened. */
int audit_append(struct audit_log *log, const char *kind, json_t *fields, bool durable,
                 uint64_t *seq, char *err, size_t errlen);

/* Makes sure the next bytes appended to the chain file have disk space
 * already (fallocate, FALLOC_FL_KEEP_SIZE: the file's size does not
 * change), so an action can be refused before it starts rather than after,
 * when its record would not fit. A full disk (ENOSPC, EDQUOT), a read-only
 * file system or a broken log: -1 with err. A file system that cannot
 * preallocate: 0, and appends find out. */
int audit_reserve(struct audit_log *log, size_t bytes, char *err, size_t errlen);

/* The last record known to be on stable storage (with no_fsync: the last
 * written). */
uint64_t audit_synced_seq(struct audit_log *log);

/* The last record written: its seq and hash. chain may be NULL. */
void audit_head(struct audit_log *log, uint64_t *seq, char hash[AUDIT_HASH_HEX],
                char chain[AUDIT_CHAIN_ID_MAX]);

const char *audit_path(const struct audit_log *log);

/* audit_sign_fn (declared above): signs claim->message (a remote signer
 * sends the fields and has the message rebuilt): fills kid (≤ 63 chars), sig (base64url Ed25519, ≤ 127 chars)
 * and signer (≤ 255 chars). 0 or -1 with err. May block (the broker asks
 * credd over gRPC): it is called without the log's lock held. */

/* Signs the current head with sign and appends a durable checkpoint record.
 * Records appended while sign runs are simply not covered (covers_seq names
 * the one that is). If nothing was appended since the last checkpoint, does
 * nothing and returns 0. 0 or -1 with err. */
int audit_checkpoint(struct audit_log *log, audit_sign_fn sign, void *ctx, char *err,
                     size_t errlen);

/* The signed message: "airlock-audit-checkpoint-v1\n<chain>\n<seq>\n<head>\n<time>".
 * Returns its length (< outlen), or -1 if it does not fit. */
int audit_checkpoint_message(const char *chain, uint64_t seq, const char *head, int64_t time,
                             char *out, size_t outlen);

/* ---------------------------------------------------------------- verifier */

/* Public keys by kid: parsed from a JWKS document (OKP / Ed25519 keys). */
struct audit_keys;
struct audit_keys *audit_keys_from_jwks(const char *jwks_json, char *err, size_t errlen);
void audit_keys_free(struct audit_keys *keys);

enum audit_problem {
    AUDIT_OK = 0,
    AUDIT_EDITED,         /* a record's bytes changed: the next prev, or a checkpoint, disagrees */
    AUDIT_DELETED,        /* seq jumps: records are missing */
    AUDIT_REORDERED,      /* a record appears out of its place */
    AUDIT_TRUNCATED,      /* the file ends before the expected head, or mid-line */
    AUDIT_BAD_CHECKPOINT, /* a checkpoint's signature, key or fields do not verify */
    AUDIT_MALFORMED,      /* not a record of this schema / chain */
};
const char *audit_problem_name(enum audit_problem p); /* "ok", "edited", ... */

struct audit_verify_result {
    enum audit_problem problem;
    char chain[AUDIT_CHAIN_ID_MAX];
    uint64_t records;              /* lines read */
    uint64_t checkpoints;          /* checkpoints whose signature verified */
    uint64_t last_checkpoint_seq;  /* last record covered by a valid checkpoint */
    uint64_t unsigned_records;     /* records after it */
    uint64_t head_seq;             /* last record in the file */
    char head_hash[AUDIT_HASH_HEX];
    uint64_t bad_seq;              /* the record where the chain breaks (0 if ok) */
    uint64_t bad_line;             /* its 1-based line number */
    char message[512];             /* human-readable, names the record */
};

/* Verifies the whole file at path: every line a schema-1 record of one
 * chain, seq 1..N without gaps, every prev the hash of the line before,
 * every checkpoint's covers_seq/head matching the record it names and its
 * signature valid under keys (keys NULL: a checkpoint counts as
 * bad_checkpoint). If expect_seq > 0 (the daemon's live head), the file must
 * reach record expect_seq and, if expect_hash is non-NULL, that record must
 * hash to it; a shorter file is AUDIT_TRUNCATED. Records after expect_seq
 * are checked too, except that a final line without '\n' past it is a write
 * in progress and ignored; with expect_seq 0 such a line is AUDIT_TRUNCATED.
 * Stops at the first problem.
 * Returns 0 when the file could be read (result says whether it verified),
 * -1 with result->message when it could not be opened or read. */
int audit_verify_file(const char *path, const struct audit_keys *keys, uint64_t expect_seq,
                      const char *expect_hash, struct audit_verify_result *result);

/* ------------------------------------------------------------------ reader */

struct audit_filter {
    const char *subject;  /* the record's "subject" or "caller" equals it */
    const char *task_id;  /* the record's "task_id" equals it */
    const char *token_id; /* the record's "token_id" equals it */
    int64_t since_ms;     /* ts >= since_ms (0: no bound) */
    int64_t until_ms;     /* ts < until_ms (0: no bound) */
    const char *const *kinds; /* kind is one of these (n_kinds 0: any) */
    size_t n_kinds;
    const char *reason;   /* the record's "reason" equals it */
    uint64_t limit;       /* stop after this many matches (0: no limit) */
};

/* Called for each matching record, oldest first. line is the stored bytes
 * (NUL-terminated, no '\n'); record is the parsed object (borrowed). Return
 * 0 to go on, non-zero to stop (audit_query then returns that value). */
typedef int (*audit_record_fn)(void *ctx, const char *line, size_t len, const json_t *record);

/* Scans the file at path. NULL filter fields match everything. Malformed
 * lines are skipped (verification reports them). Returns 0 at the end, the
 * callback's non-zero value if it stopped, or -1 with err if the file
 * cannot be read. */
int audit_query(const char *path, const struct audit_filter *filter, audit_record_fn fn, void *ctx,
                char *err, size_t errlen);

#endif

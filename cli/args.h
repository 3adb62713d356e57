/*
 * args.h - command-line parsing for the `airlock` CLI, kept apart from
 * main.c so it can be unit-tested: cli_parse() and cli_parse_time() are pure
 * functions (no I/O, no allocation, no exit, no clock). Also the bounded
 * reader for code, stdin, token and JWKS inputs, and the exit codes the CLI
 * documents.
 */
#ifndef AIRLOCK_CLI_ARGS_H
#define AIRLOCK_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLI_DEFAULT_BROKER "unix:/run/airlock/broker.sock"
#define CLI_DEFAULT_CREDD "unix:/run/airlock/credd.sock"
#define CLI_DEFAULT_RUNTIME "python3"

#define CLI_MAX_SCOPES 64
#define CLI_MAX_AUDIENCE 64
#define CLI_MAX_TIMEOUT_MS 86400000u      /* 24 h */
#define CLI_MAX_CODE_BYTES (4u << 20)      /* 4 MiB */
#define CLI_MAX_STDIN_BYTES (4u << 20)     /* 4 MiB */
#define CLI_MAX_TOKEN_BYTES (16u << 10)    /* 16 KiB */
#define CLI_MAX_SEQ 1000000000000000000ull /* audit verify --expect-seq */
#define CLI_MAX_KINDS 16                   /* audit query --kind */
#define CLI_MAX_JWKS_BYTES (1u << 20)      /* 1 MiB: audit verify --jwks */

/* Exit codes. A task's own exit status (0-255) passes through unchanged. */
enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_INACTIVE = 1,        /* token introspect: token not active */
    CLI_EXIT_DENIED = 1,          /* policy check: the request would be denied */
    CLI_EXIT_TAMPERED = 1,        /* audit verify: the chain does not verify */
    CLI_EXIT_USAGE = 64,          /* bad command line (EX_USAGE) */
    CLI_EXIT_NOINPUT = 66,        /* code/stdin/token/chain/JWKS file unreadable or too large */
    CLI_EXIT_UNAVAILABLE = 69,    /* the RPC failed: any non-OK gRPC status */
    CLI_EXIT_SOFTWARE = 70,       /* internal error (out of memory, bad reply) */
    CLI_EXIT_IOERR = 74,          /* cannot write our own output */
    CLI_EXIT_PROTOCOL = 76,       /* stream ended without Finished */
    CLI_EXIT_DISK = 118,          /* Finished.reason DISK */
    CLI_EXIT_CPU = 119,           /* Finished.reason CPU */
    CLI_EXIT_OUTPUT_LIMIT = 120,  /* Finished.reason OUTPUT_LIMIT */
    CLI_EXIT_MEMORY = 121,        /* Finished.reason MEMORY */
    CLI_EXIT_SECCOMP = 122,       /* Finished.reason SECCOMP */
    CLI_EXIT_SANDBOX_ERROR = 123, /* Finished.reason SANDBOX_ERROR */
    CLI_EXIT_TIMEOUT = 124,       /* Finished.reason TIMEOUT, like timeout(1) */
    CLI_EXIT_SIGNAL_BASE = 128,   /* KILLED: 128 + signal, like a shell */
};

enum cli_verb {
    CLI_VERB_NONE,
    CLI_VERB_HELP,
    CLI_VERB_VERSION,
    CLI_VERB_EXEC,
    CLI_VERB_INTROSPECT,
    CLI_VERB_KEYS,
    CLI_VERB_HEALTH,
    CLI_VERB_POLICY_CHECK,
    CLI_VERB_AUDIT_QUERY,
    CLI_VERB_AUDIT_VERIFY,
    CLI_VERB_AUDIT_TOKENS,
};

/* Which daemon's audit chain: audit query / verify --of, and audit tokens
 * (always credd). NONE: not an audit verb, or verify --file (offline). */
enum cli_daemon {
    CLI_DAEMON_NONE,
    CLI_DAEMON_BROKER,
    CLI_DAEMON_CREDD,
};

/* Where exec's code, or introspect's token, comes from. */
enum cli_source {
    CLI_SRC_NONE,
    CLI_SRC_INLINE, /* -c CODE / TOKEN argument */
    CLI_SRC_FILE,   /* FILE argument */
    CLI_SRC_STDIN,  /* "-" */
    CLI_SRC_ID,     /* introspect --id JTI */
};

/* Defaults from the environment ($AIRLOCK_BROKER, $AIRLOCK_CREDD,
 * $AIRLOCK_CERT, $AIRLOCK_KEY, $AIRLOCK_CA, $AIRLOCK_SERVER_ID); NULL or ""
 * when unset. */
struct cli_env {
    const char *broker, *credd, *cert, *key, *ca, *server_id;
};

/* Every string points into argv, the env arguments or a static default:
 * nothing to free. */
struct cli_args {
    enum cli_verb verb;
    const char *broker; /* flag > env > default */
    const char *credd;
    /* mTLS for host:port addresses: our SVID, its key, the trust bundle, and
     * the SPIFFE ID the server must present (NULL: any in its trust domain). */
    const char *cert, *key, *ca, *server_id;

    /* policy check */
    const char *config;    /* the broker's config file */
    const char *spiffe_id; /* the caller to check; audit query/tokens: the subject */

    /* audit query / verify / tokens */
    enum cli_daemon of;    /* the daemon asked; defaults to the broker (tokens: credd) */
    const char *task_id;   /* --task */
    const char *token_id;  /* --token */
    const char *since;     /* --since, raw: main resolves it with cli_parse_time */
    const char *until;     /* --until, raw */
    int64_t since_ms;      /* 0 from cli_parse; main fills them in (0: no bound) */
    int64_t until_ms;
    const char *kinds[CLI_MAX_KINDS];
    size_t nkinds;
    const char *reason;    /* --reason */
    uint32_t limit;        /* --limit; 0: no limit */
    const char *file;      /* verify --file: a copied chain file (offline) */
    const char *jwks;      /* verify --jwks: JWKS file; NULL: ask credd's Keys */
    uint64_t expect_seq;   /* verify --expect-seq; 0: none */

    /* exec */
    const char *runtime;
    uint32_t timeout_ms; /* 0: the broker's default */
    /* Requested limits; 0: the broker's default (also its cap). */
    uint64_t memory_bytes;
    uint64_t disk_bytes;
    uint64_t output_bytes;
    uint32_t cpu_ms;
    uint32_t max_pids;
    uint32_t open_files;
    const char *scopes[CLI_MAX_SCOPES];
    size_t nscopes;
    const char *audience[CLI_MAX_AUDIENCE];
    size_t naudience;
    const char *stdin_file; /* NULL: empty stdin; "-" our own stdin */
    const char *request_id; /* NULL: none */
    bool json; /* exec and the audit verbs */

    /* exec: code; introspect: token (or its id) */
    enum cli_source source;
    const char *input; /* the code, the file name, the token or the id */
};

/* Parses argv; env may be NULL. Global options (--broker, --credd, the TLS
 * files, --help, --version) may come before or after the verb. Returns 0,
 * or -1 with a one-line message in err (a usage error: exit CLI_EXIT_USAGE). */
int cli_parse(int argc, char *argv[], const struct cli_env *env, struct cli_args *out, char *err,
              size_t errlen);

/* True for "unix:..." addresses (peer credentials); anything else is TCP and
 * needs mTLS. */
bool cli_address_is_unix(const char *address);

/* Parses a decimal timeout in ms: digits only, at most CLI_MAX_TIMEOUT_MS.
 * Returns 0, or -1 with err set. */
int cli_parse_timeout(const char *s, uint32_t *out, char *err, size_t errlen);

/* Parses an audit time bound into unix ms: RFC 3339 ("2026-11-23T10:00:00Z",
 * optional fractional seconds, 'Z' or a +HH:MM/-HH:MM offset), unix seconds
 * (digits only), or an age before now_ms: digits followed by s, m, h or d
 * ("90s", "15m", "2h", "7d"). Times before 1970 and values that overflow
 * are refused. Returns 0, or -1 with err set (a usage error). */
int cli_parse_time(const char *s, int64_t now_ms, int64_t *out_ms, char *err, size_t errlen);

/* Reads all of fd, refusing more than max bytes. Returns 0 with a malloc'd
 * buffer (NUL-terminated, *len excludes the NUL), or -1 with err set.
 * what names the input in the message ("code file x.py"). */
int cli_read_fd(int fd, size_t max, const char *what, char **buf, size_t *len, char *err,
                size_t errlen);
/* Same for a path, or "-" for standard input. */
int cli_read_path(const char *path, size_t max, char **buf, size_t *len, char *err, size_t errlen);

/* The --help text. */
extern const char cli_usage[];

#endif

/*
 * util.h - small helpers every Airlock program uses: clocks, random ids,
 * hex digests, logging.
 */
#ifndef AIRLOCK_UTIL_H
#define AIRLOCK_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

int64_t monotonic_ms(void);
/* The clock's time ms milliseconds from now: a deadline for
 * pthread_cond_timedwait on a condition variable using that clock. */
struct timespec timespec_after_ms(clockid_t clock, int64_t ms);
int64_t monotonic_us(void);
int64_t unix_seconds(void);
int64_t unix_ms(void); /* wall clock, milliseconds since the epoch */

/* A decimal in [min, max], digits only (no sign, no spaces). 0, or -1. */
int parse_u64_range(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* 128 random bits as 32 lowercase hex chars + NUL. */
#define RANDOM_ID_LEN 33
void random_id(char out[RANDOM_ID_LEN]);

/* SHA-256 of data as 64 lowercase hex chars + NUL. */
#define SHA256_HEX_LEN 65
void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN]);
/* Is s (NULL: no) exactly 64 lowercase hex digits, as sha256_hex writes? */
bool sha256_hex_valid(const char *s);

/* Writes all of buf, retrying on EINTR and short writes. 0, or -1 with
 * errno. Async-signal-safe: the sandbox's child uses it after clone. */
int write_all(int fd, const void *buf, size_t len);

/* Formats an error message into err (when err and errlen are non-zero) and
 * returns -1, for `return err_set(err, errlen, "...")`. */
int err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* One line to stderr: "<time> <program> <level>: message". */
void log_set_program(const char *name);
void log_msg(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_info(...) log_msg("info", __VA_ARGS__)
#define log_warn(...) log_msg("warn", __VA_ARGS__)
#define log_error(...) log_msg("error", __VA_ARGS__)


/* A non-empty string of at most maxlen printable ASCII characters without
 * spaces: what scope, audience and id fields may hold. */
bool is_plain_word(const char *s, size_t maxlen);

/* spiffe://<trust-domain>/<path>, trust domain [a-z0-9.-_], ≤ 2048 bytes. */
bool spiffe_id_valid(const char *id);
/* A trust domain as it stands in a SPIFFE ID ("prod.example"), at most 255
 * bytes; NULL is not one. */
bool trust_domain_valid(const char *td);

#endif

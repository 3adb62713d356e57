/*
 * util.c - clocks, random ids, hex digests, whole writes, error messages and
 * logging over libsodium/libc. No gRPC: the sandbox and the token core link it.
 */
#include "util.h"

#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Set once at start-up, before any thread exists. */
static const char *log_program = "airlock";

int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct timespec timespec_after_ms(clockid_t clock, int64_t ms)
{
    struct timespec t;
    clock_gettime(clock, &t); /* cannot fail for the clocks we use */
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

int64_t unix_seconds(void)
{
    return (int64_t)time(NULL);
}

bool sha256_hex_valid(const char *s)
{
    size_t n = 0;
    for (; s && s[n]; n++)
        if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return false;
    return n == SHA256_HEX_LEN - 1;
}

int parse_u64_range(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void random_id(char out[RANDOM_ID_LEN])
{
    unsigned char raw[16];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out, RANDOM_ID_LEN, raw, sizeof raw);
}

void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, data, len);
    sodium_bin2hex(out, SHA256_HEX_LEN, digest, sizeof digest);
}

int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int err_set(char *err, size_t errlen, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void log_set_program(const char *name)
{
    log_program = name;
}

void log_msg(const char *level, const char *fmt, ...)
{
    char when[32];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ %s %s: %s\n", when, ts.tv_nsec / 1000000, log_program, level, line);
}

bool is_plain_word(const char *s, size_t maxlen)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= maxlen || s[n] <= ' ' || s[n] > '~')
            return false;
    return n > 0;
}

bool spiffe_id_valid(const char *id)
{
    static const char scheme[] = "spiffe://";
    if (strncmp(id, scheme, sizeof scheme - 1) != 0 || !is_plain_word(id, 2048))
        return false;
    const char *td = id + sizeof scheme - 1, *p = td;
    for (; *p && *p != '/'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
              *p == '_'))
            return false;
    return p > td && *p == '/' && p[1] != '\0';
}

bool trust_domain_valid(const char *td)
{
    char probe[sizeof "spiffe://" + 255 + sizeof "/x"]; /* the spec's 255-byte cap */
    if (!td || strlen(td) > 255)
        return false;
    int n = snprintf(probe, sizeof probe, "spiffe://%s/x", td);
    return n > 0 && (size_t)n < sizeof probe && spiffe_id_valid(probe);
}

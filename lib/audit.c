/*
 * audit.c - the audit chain's writer (see audit.h): opening or creating the
 * chain file and finding its head, appending records under one lock with
 * group-committed fdatasync, the optional stream mirror, and checkpoints
 * signed by a caller-supplied function.
 *
 * Every record is written with one write() to an O_APPEND descriptor while
 * the lock is held, so lines never interleave and seq/prev always describe
 * the file. A failed write (ENOSPC, EROFS) that left the file unchanged, or
 * was cut back off with ftruncate, is no corruption: the head is unchanged
 * and the next append tries again, so a full disk heals once space is freed.
 * If the cut fails, or an fdatasync fails (after which the kernel may have
 * dropped the dirty pages and forgotten the error: what is on disk is
 * unknown, and re-reading the tail through the same page cache would not
 * tell), the log is marked broken and refuses every later append: the daemon
 * must be restarted so audit_open can find the real head again.
 */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
#define SCAN_BLOCK 65536

struct audit_log {
    pthread_mutex_t mu;
    pthread_cond_t synced_cv; /* broadcast whenever synced_seq moves or the log breaks */
    int fd;                   /* the chain file, O_APPEND */
    int stream_fd;            /* the mirror, or -1 */
    bool stream_owned;        /* close stream_fd on close (not stdout) */
    bool stream_failing;      /* last mirror write failed: warn once per outage */
    bool no_fsync;
    char *path;
    char chain[AUDIT_CHAIN_ID_MAX];

    /* Everything below is guarded by mu. */
    off_t size;                      /* bytes of complete records in the file */
    uint64_t head_seq;               /* last record written */
    char head_hash[AUDIT_HASH_HEX];
    bool head_is_checkpoint;         /* the last record written is a checkpoint */
    uint64_t checkpointed_seq;       /* highest covers_seq this process appended */
    uint64_t synced_seq;             /* records up to here are on stable storage */
    bool syncing;                    /* a thread is in fdatasync for the group */
    bool broken;
    char broken_since[32];
    char broken_why[256];

    /* The flusher: makes records appended without durable stable within
     * AUDIT_LAZY_SYNC_MS (none with no_fsync). */
    pthread_cond_t flush_cv; /* a lazy record was written, or closing */
    pthread_t flusher;
    bool flusher_running;
    bool closing;
};

/* ---- small helpers ---- */

/* Now as unix ms and "YYYY-MM-DDTHH:MM:SS.mmmZ". */
static int now_stamp(int64_t *ms, char out[32])
{
    struct timespec ts;
    struct tm tm;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || ts.tv_sec < 0)
        return -1;
    *ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (!gmtime_r(&ts.tv_sec, &tm) || strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        return -1;
    size_t n = strlen(out);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000));
    return 0;
}

/* Called with mu held. Later appends fail with broken_why until a restart. */
static void mark_broken(struct audit_log *log, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void mark_broken(struct audit_log *log, const char *fmt, ...)
{
    int64_t ms;
    va_list ap;
    if (log->broken)
        return;
    log->broken = true;
    if (now_stamp(&ms, log->broken_since) != 0)
        snprintf(log->broken_since, sizeof log->broken_since, "an unknown time");
    va_start(ap, fmt);
    vsnprintf(log->broken_why, sizeof log->broken_why, fmt, ap);
    va_end(ap);
    log_error("audit log %s is broken: %s", log->path, log->broken_why);
    pthread_cond_broadcast(&log->synced_cv);
}

static int pread_full(int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO; /* the file shrank under us */
            return -1;
        }
        p += n;
        off += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The start of the line that ends just before end: the offset after the
 * previous '\n', or 0. Scans back at most AUDIT_MAX_LINE + 1 bytes.
 * 0, 1 if the line is longer than that, -1 with errno. */
static int line_start_before(int fd, off_t end, off_t *start)
{
    char buf[SCAN_BLOCK];
    off_t pos = end, floor = end > (off_t)AUDIT_MAX_LINE + 1 ? end - AUDIT_MAX_LINE - 1 : 0;
    while (pos > floor) {
        size_t n = pos - floor < SCAN_BLOCK ? (size_t)(pos - floor) : SCAN_BLOCK;
        if (pread_full(fd, buf, n, pos - (off_t)n) != 0)
            return -1;
        char *nl = memrchr(buf, '\n', n);
        if (nl) {
            *start = pos - (off_t)n + (nl - buf) + 1;
            return 0;
        }
        pos -= (off_t)n;
    }
    if (floor > 0)
        return 1;
    *start = 0;
    return 0;
}

/* Reads [start, end) into a fresh NUL-terminated buffer. */
static char *read_range(int fd, off_t start, off_t end)
{
    size_t len = (size_t)(end - start);
    char *buf = malloc(len + 1);
    if (!buf)
        return NULL;
    if (pread_full(fd, buf, len, start) != 0) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* The head fields of one stored line: is it a record of schema 1? */
struct head_info {
    uint64_t seq;
    char chain[AUDIT_CHAIN_ID_MAX];
    char kind[64];
    char prev[AUDIT_HASH_HEX];
};


static int parse_head(const char *line, size_t len, struct head_info *h, char *why, size_t whylen)
{
    json_error_t jerr;
    json_t *rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!rec)
        return err_set(why, whylen, "not JSON: %s", jerr.text);
    json_t *v = json_object_get(rec, "v"), *seq = json_object_get(rec, "seq");
    const char *chain = json_string_value(json_object_get(rec, "chain"));
    const char *kind = json_string_value(json_object_get(rec, "kind"));
    const char *prev = json_string_value(json_object_get(rec, "prev"));
    int rc = -1;
    if (!json_is_integer(v) || json_integer_value(v) != AUDIT_SCHEMA_VERSION)
        err_set(why, whylen, "no \"v\":%d", AUDIT_SCHEMA_VERSION);
    else if (!json_is_integer(seq) || json_integer_value(seq) < 1)
        err_set(why, whylen, "no valid \"seq\"");
    else if (!chain || !*chain || strlen(chain) >= AUDIT_CHAIN_ID_MAX)
        err_set(why, whylen, "no valid \"chain\"");
    else if (!kind || !*kind || strlen(kind) >= sizeof h->kind)
        err_set(why, whylen, "no valid \"kind\"");
    else if (!prev || !sha256_hex_valid(prev))
        err_set(why, whylen, "no valid \"prev\"");
    else {
        h->seq = (uint64_t)json_integer_value(seq);
        snprintf(h->chain, sizeof h->chain, "%s", chain);
        snprintf(h->kind, sizeof h->kind, "%s", kind);
        snprintf(h->prev, sizeof h->prev, "%s", prev);
        rc = 0;
    }
    json_decref(rec);
    return rc;
}

/* ---- appending ---- */

static const char *const reserved[] = {"v", "seq", "ts", "time", "chain", "kind", "prev"};

/* The line for record seq, without '\n', as a malloc'd string with room
 * for one more byte; NULL with err. Steals nothing. */
static char *build_line(struct audit_log *log, uint64_t seq, const char *kind, json_t *fields,
                        size_t *len, char *err, size_t errlen)
{
    const char *key;
    json_t *value;
    char when[32];
    int64_t ms;

    if (now_stamp(&ms, when) != 0) {
        err_set(err, errlen, "cannot read the clock");
        return NULL;
    }
    json_t *rec = json_object();
    if (!rec || json_object_set_new(rec, "v", json_integer(AUDIT_SCHEMA_VERSION)) != 0 ||
        json_object_set_new(rec, "seq", json_integer((json_int_t)seq)) != 0 ||
        json_object_set_new(rec, "ts", json_integer(ms)) != 0 ||
        json_object_set_new(rec, "time", json_string(when)) != 0 ||
        json_object_set_new(rec, "chain", json_string(log->chain)) != 0 ||
        json_object_set_new(rec, "kind", json_string(kind)) != 0)
        goto oom;
    json_object_foreach(fields, key, value) {
        if (json_object_set(rec, key, value) != 0)
            goto oom;
    }
    if (json_object_set_new(rec, "prev", json_string(log->head_hash)) != 0)
        goto oom;

    char *line = json_dumps(rec, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(rec);
    if (!line) {
        err_set(err, errlen, "cannot serialise the record (out of memory)");
        return NULL;
    }
    *len = strlen(line);
    if (*len > AUDIT_MAX_LINE) {
        err_set(err, errlen, "record of kind %s is %zu bytes, over the %u-byte limit", kind,
                *len, AUDIT_MAX_LINE);
        free(line);
        return NULL;
    }
    char *grown = realloc(line, *len + 2); /* json_dumps' result is free()d: malloc'd */
    if (!grown) {
        free(line);
        err_set(err, errlen, "out of memory");
        return NULL;
    }
    return grown;

oom:
    json_decref(rec);
    err_set(err, errlen, "cannot build the record (out of memory)");
    return NULL;
}

/* Called with mu held: writes one record. The chain file gets the whole
 * line or, after an error, nothing. 0 and *seq, or -1 with err. */
static int append_locked(struct audit_log *log, const char *kind, json_t *fields, uint64_t *seq,
                         char *err, size_t errlen)
{
    const char *key;
    json_t *value;
    size_t len;

    if (log->broken)
        return err_set(err, errlen, "audit log %s is broken since %s (%s); restart the daemon",
                       log->path, log->broken_since, log->broken_why);
    json_object_foreach(fields, key, value) {
        for (size_t i = 0; i < sizeof reserved / sizeof *reserved; i++)
            if (strcmp(key, reserved[i]) == 0)
                return err_set(err, errlen, "record field \"%s\" is reserved", key);
    }
    /* Only this log writes the file (it holds the flock): a size we did not
     * leave means someone cut or extended it. Extending the chain past that
     * would bury the evidence; stop instead. */
    struct stat st;
    if (fstat(log->fd, &st) != 0) {
        mark_broken(log, "fstat: %s", strerror(errno));
        return err_set(err, errlen, "%s", log->broken_why);
    }
    if (st.st_size != log->size) {
        mark_broken(log, "the file was changed behind our back: %jd bytes, expected %jd",
                    (intmax_t)st.st_size, (intmax_t)log->size);
        return err_set(err, errlen, "audit log %s: %s", log->path, log->broken_why);
    }
    uint64_t next = log->head_seq + 1;
    char *line = build_line(log, next, kind, fields, &len, err, errlen);
    if (!line)
        return -1;
    line[len] = '\n';

    if (write_all(log->fd, line, len + 1) != 0) {
        int e = errno;
        /* Nothing to cut when nothing went in (EROFS refuses before writing). */
        struct stat now;
        bool untouched = fstat(log->fd, &now) == 0 && now.st_size == log->size;
        if (!untouched && ftruncate(log->fd, log->size) != 0)
            mark_broken(log, "a failed write could not be cut back off: %s", strerror(errno));
        free(line);
        return err_set(err, errlen, "cannot write to audit log %s: %s", log->path, strerror(e));
    }
    log->size += (off_t)len + 1;
    log->head_seq = next;
    sha256_hex(line, len, log->head_hash);
    log->head_is_checkpoint = strcmp(kind, "checkpoint") == 0;

    /* The mirror is a convenience; the chain file is the record of truth. */
    if (log->stream_fd >= 0) {
        if (write_all(log->stream_fd, line, len + 1) != 0) {
            if (!log->stream_failing)
                log_warn("audit stream mirror: cannot write: %s (record %" PRIu64 " is only in %s)",
                         strerror(errno), next, log->path);
            log->stream_failing = true;
        } else {
            log->stream_failing = false;
        }
    }
    free(line);
    if (seq)
        *seq = next;
    return 0;
}

/* Called with mu held: returns once record seq is on stable storage. The
 * first waiter to find no fdatasync running does one for everyone written
 * so far; the others sleep on synced_cv. */
static int wait_synced(struct audit_log *log, uint64_t seq, char *err, size_t errlen)
{
    if (log->no_fsync)
        return 0;
    while (log->synced_seq < seq) {
        if (log->broken)
            return err_set(err, errlen, "%s", log->broken_why);
        if (log->syncing) {
            pthread_cond_wait(&log->synced_cv, &log->mu);
            continue;
        }
        uint64_t target = log->head_seq;
        log->syncing = true;
        pthread_mutex_unlock(&log->mu);
        int rc = fdatasync(log->fd), e = errno;
        pthread_mutex_lock(&log->mu);
        log->syncing = false;
        if (rc != 0)
            mark_broken(log, "fsync failed: %s", strerror(e));
        else if (target > log->synced_seq)
            log->synced_seq = target;
        pthread_cond_broadcast(&log->synced_cv);
    }
    return 0;
}

static int append(struct audit_log *log, const char *kind, json_t *fields, bool durable,
                  uint64_t *seq, char *err, size_t errlen)
{
    uint64_t mine;
    pthread_mutex_lock(&log->mu);
    int rc = append_locked(log, kind, fields, &mine, err, errlen);
    if (rc == 0 && durable)
        rc = wait_synced(log, mine, err, errlen);
    else if (rc == 0 && log->flusher_running)
        pthread_cond_signal(&log->flush_cv);
    pthread_mutex_unlock(&log->mu);
    if (rc == 0 && seq)
        *seq = mine;
    return rc;
}

int audit_append(struct audit_log *log, const char *kind, json_t *fields, bool durable,
                 uint64_t *seq, char *err, size_t errlen)
{
    int rc;
    if (!log || !kind || !is_plain_word(kind, 63))
        rc = err_set(err, errlen, "audit record kind must be a plain word of at most 63 chars");
    else if (strcmp(kind, "checkpoint") == 0 || strcmp(kind, "chain.start") == 0)
        rc = err_set(err, errlen, "%s records are written by the audit log itself", kind);
    else if (fields && !json_is_object(fields))
        rc = err_set(err, errlen, "audit record fields must be a JSON object");
    else
        rc = append(log, kind, fields, durable, seq, err, errlen);
    json_decref(fields);
    return rc;
}

int audit_reserve(struct audit_log *log, size_t bytes, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&log->mu);
    if (log->broken)
        rc = err_set(err, errlen, "audit log %s is broken since %s (%s); restart the daemon",
                     log->path, log->broken_since, log->broken_why);
    else if (bytes > 0 && fallocate(log->fd, FALLOC_FL_KEEP_SIZE, log->size, (off_t)bytes) != 0 &&
             errno != EOPNOTSUPP && errno != ENOSYS)
        rc = err_set(err, errlen, "cannot reserve %zu bytes in audit log %s: %s", bytes, log->path,
                     strerror(errno));
    pthread_mutex_unlock(&log->mu);
    return rc;
}

uint64_t audit_synced_seq(struct audit_log *log)
{
    pthread_mutex_lock(&log->mu);
    uint64_t seq = log->no_fsync ? log->head_seq : log->synced_seq;
    pthread_mutex_unlock(&log->mu);
    return seq;
}

void audit_head(struct audit_log *log, uint64_t *seq, char hash[AUDIT_HASH_HEX],
                char chain[AUDIT_CHAIN_ID_MAX])
{
    pthread_mutex_lock(&log->mu);
    if (seq)
        *seq = log->head_seq;
    if (hash)
        memcpy(hash, log->head_hash, AUDIT_HASH_HEX);
    if (chain)
        memcpy(chain, log->chain, AUDIT_CHAIN_ID_MAX);
    pthread_mutex_unlock(&log->mu);
}

const char *audit_path(const struct audit_log *log)
{
    return log->path;
}

/* ---- checkpoints ---- */

int audit_checkpoint_message(const char *chain, uint64_t seq, const char *head, int64_t time,
                             char *out, size_t outlen)
{
    if (!chain || !head || !out || outlen == 0 || outlen > INT_MAX)
        return -1;
    int n = snprintf(out, outlen, "airlock-audit-checkpoint-v1\n%s\n%" PRIu64 "\n%s\n%" PRId64,
                     chain, seq, head, time);
    return n < 0 || (size_t)n >= outlen ? -1 : n;
}

int audit_checkpoint(struct audit_log *log, audit_sign_fn sign, void *ctx, char *err,
                     size_t errlen)
{
    uint64_t covers;
    char head[AUDIT_HASH_HEX], msg[256];
    char kid[64] = "", sig[128] = "", signer[256] = "";

    if (!log || !sign)
        return err_set(err, errlen, "audit_checkpoint: no log or signer");
    pthread_mutex_lock(&log->mu);
    bool nothing_new = log->head_is_checkpoint || log->head_seq <= log->checkpointed_seq;
    covers = log->head_seq;
    memcpy(head, log->head_hash, sizeof head);
    pthread_mutex_unlock(&log->mu);
    if (nothing_new)
        return 0;

    int64_t signed_time = unix_seconds();
    int len = audit_checkpoint_message(log->chain, covers, head, signed_time, msg, sizeof msg);
    if (len < 0)
        return err_set(err, errlen, "checkpoint message does not fit");
    const struct audit_checkpoint_claim claim = {log->chain, covers, head, signed_time, msg,
                                                 (size_t)len};
    if (sign(ctx, &claim, kid, sig, signer, err, errlen) != 0)
        return -1;
    kid[sizeof kid - 1] = sig[sizeof sig - 1] = signer[sizeof signer - 1] = '\0';
    if (!kid[0] || !sig[0])
        return err_set(err, errlen, "checkpoint signer returned no kid or signature");
    json_t *fields = json_pack("{s:I,s:s,s:I,s:s,s:s,s:s}", "covers_seq", (json_int_t)covers,
                               "head", head, "signed_time", (json_int_t)signed_time, "signer",
                               signer, "kid", kid, "sig", sig);
    if (!fields)
        return err_set(err, errlen, "cannot build the checkpoint (kid, sig or signer not UTF-8?)");

    int rc = 0;
    uint64_t mine;
    pthread_mutex_lock(&log->mu);
    if (log->checkpointed_seq < covers) { /* else a concurrent checkpoint beat us to it */
        rc = append_locked(log, "checkpoint", fields, &mine, err, errlen);
        if (rc == 0) {
            log->checkpointed_seq = covers;
            rc = wait_synced(log, mine, err, errlen);
        }
    }
    pthread_mutex_unlock(&log->mu);
    json_decref(fields);
    return rc;
}

/* ---- opening and closing ---- */

/* The flusher thread: once a record is written without durable, waits
 * AUDIT_LAZY_SYNC_MS (a burst, or a durable append meanwhile, shares the
 * sync) and then syncs everything written so far, through the same group
 * commit as durable appends. A failed fsync breaks the log as it would
 * there. */
static void *flusher_main(void *arg)
{
    struct audit_log *log = arg;
    char err[256];
    pthread_mutex_lock(&log->mu);
    while (!log->closing) {
        if (log->broken || log->synced_seq >= log->head_seq) {
            pthread_cond_wait(&log->flush_cv, &log->mu);
            continue;
        }
        struct timespec until = timespec_after_ms(CLOCK_MONOTONIC, AUDIT_LAZY_SYNC_MS);
        while (!log->closing && pthread_cond_timedwait(&log->flush_cv, &log->mu, &until) == 0)
            ;
        if (wait_synced(log, log->head_seq, err, sizeof err) != 0)
            log_error("audit log %s: background sync: %s", log->path, err);
    }
    pthread_mutex_unlock(&log->mu);
    return NULL;
}

static int flusher_start(struct audit_log *log, char *err, size_t errlen)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return err_set(err, errlen, "cannot create a condition variable");
    int rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
             pthread_cond_init(&log->flush_cv, &attr) != 0;
    pthread_condattr_destroy(&attr);
    if (rc)
        return err_set(err, errlen, "cannot create a condition variable");
    if (pthread_create(&log->flusher, NULL, flusher_main, log) != 0) {
        pthread_cond_destroy(&log->flush_cv);
        return err_set(err, errlen, "cannot start the audit flusher thread");
    }
    log->flusher_running = true;
    return 0;
}

/* Stops the flusher (audit_close's durable daemon.stop has synced what it
 * was waiting for). */
static void flusher_stop(struct audit_log *log)
{
    if (!log->flusher_running)
        return;
    pthread_mutex_lock(&log->mu);
    log->closing = true;
    pthread_cond_signal(&log->flush_cv);
    pthread_mutex_unlock(&log->mu);
    pthread_join(log->flusher, NULL);
    pthread_cond_destroy(&log->flush_cv);
    log->flusher_running = false;
}

static void log_free(struct audit_log *log)
{
    flusher_stop(log);
    if (log->fd >= 0 && close(log->fd) != 0)
        log_error("audit log %s: close: %s", log->path, strerror(errno));
    if (log->stream_fd >= 0 && log->stream_owned && close(log->stream_fd) != 0)
        log_error("audit stream mirror: close: %s", strerror(errno));
    pthread_cond_destroy(&log->synced_cv);
    pthread_mutex_destroy(&log->mu);
    free(log->path);
    free(log);
}

static int fsync_parent_dir(const char *path, char *err, size_t errlen)
{
    char *dir = strdup(path);
    if (!dir)
        return err_set(err, errlen, "out of memory");
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (dfd < 0 || (fsync(dfd) != 0 && errno != EINVAL))
        rc = err_set(err, errlen, "%s: cannot sync its directory %s: %s", path, dir,
                     strerror(errno));
    if (dfd >= 0)
        close(dfd);
    free(dir);
    return rc;
}

/* Opens the existing chain file, or creates it; sets *created. */
static int open_chain_file(struct audit_log *log, bool *created, char *err, size_t errlen)
{
    const int flags = O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW;
    for (int attempt = 0; attempt < 2; attempt++) {
        log->fd = open(log->path, flags);
        if (log->fd >= 0) {
            *created = false;
            return 0;
        }
        if (errno != ENOENT)
            break;
        log->fd = open(log->path, flags | O_CREAT | O_EXCL, 0600);
        if (log->fd >= 0) {
            *created = true;
            /* The umask may have removed bits; it cannot have added any. */
            if (fchmod(log->fd, 0600) != 0)
                return err_set(err, errlen, "%s: chmod: %s", log->path, strerror(errno));
            return log->no_fsync ? 0 : fsync_parent_dir(log->path, err, errlen);
        }
        if (errno != EEXIST) /* EEXIST: someone created it meanwhile; open theirs */
            break;
    }
    if (errno == ELOOP)
        return err_set(err, errlen, "%s: is a symbolic link; refusing to use it as the audit log",
                       log->path);
    return err_set(err, errlen, "%s: cannot open: %s", log->path, strerror(errno));
}

/* Cuts a last line without '\n' off the file; *dropped is its length. */
static int cut_torn_tail(struct audit_log *log, off_t *size, uint64_t *dropped, char *err,
                         size_t errlen)
{
    char last;
    off_t start;
    if (pread_full(log->fd, &last, 1, *size - 1) != 0)
        return err_set(err, errlen, "%s: cannot read: %s", log->path, strerror(errno));
    if (last == '\n')
        return 0;
    int rc = line_start_before(log->fd, *size, &start);
    if (rc < 0)
        return err_set(err, errlen, "%s: cannot read: %s", log->path, strerror(errno));
    if (rc > 0)
        return err_set(err, errlen,
                       "%s: ends with over %u bytes without a newline; not a torn record, run "
                       "`airlock audit verify`",
                       log->path, AUDIT_MAX_LINE);
    if (ftruncate(log->fd, start) != 0 || (!log->no_fsync && fsync(log->fd) != 0))
        return err_set(err, errlen, "%s: cannot cut off a torn last line: %s", log->path,
                       strerror(errno));
    log_warn("audit log %s: cut off a torn last line of %jd bytes", log->path,
             (intmax_t)(*size - start));
    *dropped = (uint64_t)(*size - start);
    *size = start;
    return 0;
}

/* Reads the last and first lines of a non-empty file ending in '\n' and
 * takes the head from them. */
static int load_head(struct audit_log *log, off_t size, char *err, size_t errlen)
{
    off_t start, first_end;
    struct head_info last, first;
    char why[160];
    int rc = line_start_before(log->fd, size - 1, &start);
    if (rc < 0)
        return err_set(err, errlen, "%s: cannot read: %s", log->path, strerror(errno));
    if (rc > 0)
        return err_set(err, errlen, "%s: last line is over %u bytes; run `airlock audit verify`",
                       log->path, AUDIT_MAX_LINE);
    char *line = read_range(log->fd, start, size - 1);
    if (!line)
        return err_set(err, errlen, "%s: cannot read: %s", log->path, strerror(errno));
    if (parse_head(line, (size_t)(size - 1 - start), &last, why, sizeof why) != 0) {
        free(line);
        return err_set(err, errlen,
                       "%s: last line is not an audit record (%s); run `airlock audit verify`",
                       log->path, why);
    }
    sha256_hex(line, (size_t)(size - 1 - start), log->head_hash);
    free(line);

    /* The first line: where it ends is the first '\n' in the file. */
    char buf[SCAN_BLOCK];
    for (first_end = 0;; first_end += SCAN_BLOCK) {
        if (first_end > (off_t)AUDIT_MAX_LINE)
            return err_set(err, errlen, "%s: first line is over %u bytes", log->path,
                           AUDIT_MAX_LINE);
        size_t n = size - first_end < SCAN_BLOCK ? (size_t)(size - first_end) : SCAN_BLOCK;
        if (pread_full(log->fd, buf, n, first_end) != 0)
            return err_set(err, errlen, "%s: cannot read: %s", log->path, strerror(errno));
        char *nl = memchr(buf, '\n', n);
        if (nl) {
            first_end += nl - buf;
            break;
        }
    }
    if (first_end > (off_t)AUDIT_MAX_LINE)
        return err_set(err, errlen, "%s: first line is over %u bytes", log->path, AUDIT_MAX_LINE);
    line = read_range(log->fd, 0, first_end);
    if (!line)
        return err_set(err, errlen, "%s: cannot read: %s", log->path, strerror(errno));
    rc = parse_head(line, (size_t)first_end, &first, why, sizeof why);
    free(line);
    if (rc != 0 || first.seq != 1 || strcmp(first.kind, "chain.start") != 0)
        return err_set(err, errlen,
                       "%s: first line is not record 1 (chain.start) of an audit chain; run "
                       "`airlock audit verify`",
                       log->path);
    if (strcmp(first.chain, last.chain) != 0)
        return err_set(err, errlen,
                       "%s: last line belongs to another chain than the first; run `airlock "
                       "audit verify`",
                       log->path);
    memcpy(log->chain, first.chain, sizeof log->chain);
    log->head_seq = log->synced_seq = last.seq;
    log->head_is_checkpoint = strcmp(last.kind, "checkpoint") == 0;
    log->size = size;
    return 0;
}

static const char *or_empty(const char *s)
{
    return s ? s : "";
}

struct audit_log *audit_open(const struct audit_options *opts, char *err, size_t errlen)
{
    struct stat st;
    bool created = false;
    uint64_t dropped = 0;
    char host[256];

    if (!opts || !opts->path || !*opts->path) {
        err_set(err, errlen, "audit log: no path");
        return NULL;
    }
    if (sodium_init() < 0) {
        err_set(err, errlen, "libsodium initialisation failed");
        return NULL;
    }
    struct audit_log *log = calloc(1, sizeof *log);
    if (!log) {
        err_set(err, errlen, "out of memory");
        return NULL;
    }
    log->fd = log->stream_fd = -1;
    log->no_fsync = opts->no_fsync;
    memcpy(log->head_hash, ZERO_HASH, sizeof log->head_hash);
    if (pthread_mutex_init(&log->mu, NULL) != 0) {
        free(log);
        err_set(err, errlen, "cannot create a mutex");
        return NULL;
    }
    if (pthread_cond_init(&log->synced_cv, NULL) != 0) {
        pthread_mutex_destroy(&log->mu);
        free(log);
        err_set(err, errlen, "cannot create a condition variable");
        return NULL;
    }
    if (!(log->path = strdup(opts->path))) {
        err_set(err, errlen, "out of memory");
        goto fail;
    }

    if (opts->stream_path && strcmp(opts->stream_path, "-") == 0) {
        log->stream_fd = STDOUT_FILENO;
    } else if (opts->stream_path) {
        log->stream_fd = open(opts->stream_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (log->stream_fd < 0) {
            err_set(err, errlen, "audit stream %s: cannot open: %s", opts->stream_path,
                    strerror(errno));
            goto fail;
        }
        log->stream_owned = true;
    }

    if (open_chain_file(log, &created, err, errlen) != 0)
        goto fail;
    /* One writer per file: a second daemon appending would fork the chain. */
    if (flock(log->fd, LOCK_EX | LOCK_NB) != 0) {
        err_set(err, errlen, "%s: %s", log->path,
                errno == EWOULDBLOCK ? "in use by another process" : strerror(errno));
        goto fail;
    }
    if (fstat(log->fd, &st) != 0) {
        err_set(err, errlen, "%s: %s", log->path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        err_set(err, errlen, "%s: not a regular file", log->path);
        goto fail;
    }
    off_t size = st.st_size;
    if (size > 0 && cut_torn_tail(log, &size, &dropped, err, errlen) != 0)
        goto fail;

    if (size > 0) {
        if (load_head(log, size, err, errlen) != 0)
            goto fail;
    } else {
        /* New, or empty (created but never written, or only a torn first
         * line): start a chain. Deleting the file would have the same effect,
         * so an empty one is not worth refusing. */
        char id[RANDOM_ID_LEN];
        if (!created)
            log_warn("audit log %s is empty; starting a new chain", log->path);
        random_id(id);
        memcpy(log->chain, id, sizeof id);
        if (gethostname(host, sizeof host) != 0) {
            err_set(err, errlen, "gethostname: %s", strerror(errno));
            goto fail;
        }
        host[sizeof host - 1] = '\0';
        json_t *f = json_pack("{s:s,s:s,s:s,s:s}", "daemon", or_empty(opts->daemon), "identity",
                              or_empty(opts->identity), "version", or_empty(opts->version),
                              "host", host);
        int rc = f ? append(log, "chain.start", f, true, NULL, err, errlen)
                   : err_set(err, errlen, "chain.start fields are not valid UTF-8");
        json_decref(f);
        if (rc != 0)
            goto fail;
    }

    if (dropped > 0) {
        json_t *f = json_pack("{s:I}", "dropped_bytes", (json_int_t)dropped);
        int rc = f ? append(log, "recovered", f, true, NULL, err, errlen)
                   : err_set(err, errlen, "out of memory");
        json_decref(f);
        if (rc != 0)
            goto fail;
    }
    json_t *f = json_pack("{s:s,s:I,s:s}", "daemon", or_empty(opts->daemon), "pid",
                          (json_int_t)getpid(), "version", or_empty(opts->version));
    int rc = f ? append(log, "daemon.start", f, true, NULL, err, errlen)
               : err_set(err, errlen, "daemon.start fields are not valid UTF-8");
    json_decref(f);
    if (rc != 0 || (!log->no_fsync && flusher_start(log, err, errlen) != 0))
        goto fail;
    return log;

fail:
    /* Not every message names the file (append's, gethostname's). */
    if (err && errlen && log->path && !strstr(err, log->path)) {
        char why[512];
        snprintf(why, sizeof why, "%s", err);
        err_set(err, errlen, "%s: %s", log->path, why);
    }
    log_free(log);
    return NULL;
}

void audit_close(struct audit_log *log, audit_sign_fn sign, void *ctx)
{
    char err[512];
    if (!log)
        return;
    json_t *f = json_pack("{s:I}", "pid", (json_int_t)getpid());
    if (!f || append(log, "daemon.stop", f, true, NULL, err, sizeof err) != 0)
        log_error("audit log %s: daemon.stop: %s", log->path, f ? err : "out of memory");
    json_decref(f);
    if (sign && audit_checkpoint(log, sign, ctx, err, sizeof err) != 0)
        log_error("audit log %s: closing checkpoint: %s", log->path, err);
    log_free(log);
}

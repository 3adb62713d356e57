/*
 * keys.c - credd's Ed25519 signing key: loading it from, or creating it in,
 * STATE_DIR/signing.key, and computing its RFC 7638 thumbprint (the kid).
 *
 * File format: exactly the 32-byte Ed25519 seed (crypto_sign_SEEDBYTES), raw,
 * no header. The 64-byte libsodium secret key and the public key are derived
 * from it with crypto_sign_seed_keypair() on every load.
 *
 * The file must be a regular file (not a symlink, FIFO or device), owned by
 * the effective uid, exactly 32 bytes, with no group/other permission bits.
 * It is created with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, written fully and
 * fsync'ed (and the directory too). If writing fails the partial file is
 * removed; a file truncated by a crash is refused at the next start rather
 * than silently replaced (fail closed: an operator decides).
 */
#include "token.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE "signing.key"

/* kid = b64url(SHA-256({"crv":"Ed25519","kty":"OKP","x":"<b64url pk>"})), RFC 7638. */
static void compute_kid(struct signing_key *key)
{
    char x[sodium_base64_ENCODED_LEN(crypto_sign_PUBLICKEYBYTES,
                                     sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    char jwk[128];
    uint8_t digest[crypto_hash_sha256_BYTES];

    sodium_bin2base64(x, sizeof x, key->public_key, sizeof key->public_key,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    int n = snprintf(jwk, sizeof jwk, "{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}", x);
    crypto_hash_sha256(digest, (const unsigned char *)jwk, (unsigned long long)n);
    sodium_bin2base64(key->kid, sizeof key->kid, digest, sizeof digest,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void signing_key_from_seed(const uint8_t seed[crypto_sign_SEEDBYTES], struct signing_key *key)
{
    crypto_sign_seed_keypair(key->public_key, key->secret_key, seed);
    compute_kid(key);
}

void signing_key_wipe(struct signing_key *key)
{
    sodium_memzero(key->secret_key, sizeof key->secret_key);
}

/* Reads exactly len bytes; -1 on error or if the file holds more or fewer. */
static int read_exact(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    uint8_t extra;
    ssize_t n;
    while ((n = read(fd, &extra, 1)) < 0 && errno == EINTR)
        ;
    return n == 0 ? 0 : -1;
}

/* Opens and checks an existing key file. Returns 0 and the seed, 1 if the
 * file does not exist, -1 with err set otherwise. */
static int load_seed(int dfd, const char *path, uint8_t seed[crypto_sign_SEEDBYTES], char *err,
                     size_t errlen)
{
    /* O_NONBLOCK: a FIFO planted here must not hang us; it fails S_ISREG below. */
    int fd = openat(dfd, KEY_FILE, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 1;
        if (errno == ELOOP)
            return err_set(err, errlen, "%s: is a symlink; refusing to use it", path);
        return err_set(err, errlen, "%s: %s", path, strerror(errno));
    }
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) != 0)
        err_set(err, errlen, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        err_set(err, errlen, "%s: not a regular file", path);
    else if (st.st_uid != geteuid())
        err_set(err, errlen, "%s: owned by uid %u, not by uid %u", path, (unsigned)st.st_uid,
                (unsigned)geteuid());
    else if (st.st_mode & (S_IRWXG | S_IRWXO))
        err_set(err, errlen, "%s: mode %04o gives group/others access; must be 0600", path,
                (unsigned)(st.st_mode & 07777));
    else if (st.st_size != crypto_sign_SEEDBYTES)
        err_set(err, errlen, "%s: %lld bytes, expected a %d-byte Ed25519 seed", path,
                (long long)st.st_size, crypto_sign_SEEDBYTES);
    else if (read_exact(fd, seed, crypto_sign_SEEDBYTES) != 0)
        err_set(err, errlen, "%s: short or failed read", path);
    else
        rc = 0;
    close(fd);
    return rc;
}

/* Creates a new key file. Returns 0, 1 if it appeared meanwhile (EEXIST), -1. */
static int create_seed(int dfd, const char *path, uint8_t seed[crypto_sign_SEEDBYTES], char *err,
                       size_t errlen)
{
    int fd = openat(dfd, KEY_FILE, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return 1;
        return err_set(err, errlen, "%s: cannot create: %s", path, strerror(errno));
    }
    randombytes_buf(seed, crypto_sign_SEEDBYTES);
    /* fchmod: the umask may have removed the owner's read bit. */
    if (fchmod(fd, 0600) != 0 || write_all(fd, seed, crypto_sign_SEEDBYTES) != 0 ||
        fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlinkat(dfd, KEY_FILE, 0);
        return err_set(err, errlen, "%s: cannot write: %s", path, strerror(e));
    }
    if (close(fd) != 0) {
        int e = errno;
        unlinkat(dfd, KEY_FILE, 0);
        return err_set(err, errlen, "%s: cannot write: %s", path, strerror(e));
    }
    if (fsync(dfd) != 0)
        return err_set(err, errlen, "%s: cannot sync directory: %s", path, strerror(errno));
    return 0;
}

int signing_key_load_or_create(const char *state_dir, struct signing_key *key, char *err,
                               size_t errlen)
{
    char path[4096];
    uint8_t seed[crypto_sign_SEEDBYTES];

    if (sodium_init() < 0)
        return err_set(err, errlen, "libsodium initialisation failed");
    if (snprintf(path, sizeof path, "%s/%s", state_dir, KEY_FILE) >= (int)sizeof path)
        return err_set(err, errlen, "state directory path too long");
    if (mkdir(state_dir, 0700) != 0 && errno != EEXIST)
        return err_set(err, errlen, "%s: cannot create: %s", state_dir, strerror(errno));

    int dfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return err_set(err, errlen, "%s: %s", state_dir, strerror(errno));
    struct stat st;
    if (fstat(dfd, &st) != 0) {
        err_set(err, errlen, "%s: %s", state_dir, strerror(errno));
        close(dfd);
        return -1;
    }
    /* Whoever can write the directory can swap the key file. */
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        err_set(err, errlen, "%s: writable by group/others (mode %04o)", state_dir,
                (unsigned)(st.st_mode & 07777));
        close(dfd);
        return -1;
    }

    /* Load; if absent create; if someone else created it meanwhile, load theirs. */
    int rc = load_seed(dfd, path, seed, err, errlen);
    if (rc == 1 && (rc = create_seed(dfd, path, seed, err, errlen)) == 1)
        rc = load_seed(dfd, path, seed, err, errlen);
    if (rc == 1)
        rc = err_set(err, errlen, "%s: vanished while being created", path);
    close(dfd);
    if (rc == 0)
        signing_key_from_seed(seed, key);
    sodium_memzero(seed, sizeof seed);
    return rc;
}

/*
 * tls.c - SPIFFE X.509-SVID mutual TLS over gRPC's SSL credentials and
 * OpenSSL: reading and checking PEM files, the server's reloadable
 * certificate config, per-call verification of the caller's SVID, and the
 * client's check of the server's SPIFFE ID. See tls.h for the contract.
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc_security_constants.h>
#include <grpc/support/string_util.h>
#include <sodium.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "util.h"

#define PEM_FILE_MAX (1 << 20)
#define TRUST_DOMAIN_MAX 256
#define SPIFFE_SCHEME "spiffe://"
/* How often a client re-reads its files (SPIRE rotates at half-life, ~30 min). */
#define CLIENT_REFRESH_S 60
/* Verified caller chains remembered by a server (see struct verified). */
#define VERIFIED_CACHE 64

/* ------------------------------------------------------------- PEM files */

/* One generation of the files' contents, immutable once loaded. */
struct material {
    char *cert_pem;    /* NULL on a client without identity */
    char *key_pem;     /* secret: cleansed when freed */
    char *bundle_pem;
    X509_STORE *store; /* the bundle, for verifying peers */
};

/* Reads a whole file (at most PEM_FILE_MAX) as a NUL-terminated string. */
static char *read_text_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > PEM_FILE_MAX) {
        err_set(err, errlen, "cannot read %s: not a regular file of at most %d bytes", path,
                PEM_FILE_MAX);
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        err_set(err, errlen, "cannot read %s: out of memory", path);
        goto out;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err_set(err, errlen, "cannot read %s: %s", path,
                    n < 0 ? strerror(errno) : "file shrank");
            free(buf);
            buf = NULL;
            goto out;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
out:
    close(fd);
    return buf;
}

/* Frees a string that held a private key, wiping it first. */
static void free_secret(char *s)
{
    if (s)
        OPENSSL_clear_free(s, strlen(s));
}

/* Parses every PEM certificate in pem[0..len). NULL (with why) if one does
 * not parse or there are none. */
static STACK_OF(X509) *parse_certs(const char *pem, size_t len, char *why, size_t whylen)
{
    STACK_OF(X509) *certs = sk_X509_new_null();
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!certs || !bio) {
        err_set(why, whylen, "out of memory");
        goto fail;
    }
    ERR_clear_error();
    X509 *x;
    while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (!sk_X509_push(certs, x)) {
            X509_free(x);
            err_set(why, whylen, "out of memory");
            goto fail;
        }
    }
    /* The loop ends at end of input (PEM "no start line") or on bad data. */
    unsigned long e = ERR_peek_last_error();
    if (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        err_set(why, whylen, "a certificate does not parse (%s)", ERR_reason_error_string(e));
        goto fail;
    }
    if (sk_X509_num(certs) == 0) {
        err_set(why, whylen, "no PEM certificate");
        goto fail;
    }
    ERR_clear_error();
    BIO_free(bio);
    return certs;
fail:
    ERR_clear_error();
    BIO_free(bio);
    sk_X509_pop_free(certs, X509_free);
    return NULL;
}

/* Never prompts for a passphrase: an encrypted key is simply refused. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

/* Checks that key_pem holds a private key matching leaf. */
static int check_key(const char *key_pem, X509 *leaf, const struct tls_files *f, char *err,
                     size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(key_pem, -1);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    int rc = 0;
    if (!key)
        rc = err_set(err, errlen, "%s: no unencrypted PEM private key", f->key);
    else if (X509_check_private_key(leaf, key) != 1)
        rc = err_set(err, errlen, "%s: private key does not match the certificate in %s", f->key,
                     f->cert);
    ERR_clear_error();
    EVP_PKEY_free(key);
    return rc;
}

static void material_free(struct material *m)
{
    free(m->cert_pem);
    free_secret(m->key_pem);
    free(m->bundle_pem);
    X509_STORE_free(m->store);
    memset(m, 0, sizeof *m);
}

/* Reads and checks files into m. cert and key may both be NULL (no identity). */
static int material_load(const struct tls_files *f, struct material *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    char why[256];
    STACK_OF(X509) *chain = NULL, *bundle = NULL;
    if (!f->bundle || (!f->cert != !f->key))
        return err_set(err, errlen, "a trust bundle, and a certificate with its key, are needed");
    if (f->cert) {
        if (!(m->cert_pem = read_text_file(f->cert, err, errlen)) ||
            !(m->key_pem = read_text_file(f->key, err, errlen)))
            goto fail;
        if (!(chain = parse_certs(m->cert_pem, strlen(m->cert_pem), why, sizeof why))) {
            err_set(err, errlen, "%s: %s", f->cert, why);
            goto fail;
        }
        if (check_key(m->key_pem, sk_X509_value(chain, 0), f, err, errlen) != 0)
            goto fail;
    }
    if (!(m->bundle_pem = read_text_file(f->bundle, err, errlen)))
        goto fail;
    if (!(bundle = parse_certs(m->bundle_pem, strlen(m->bundle_pem), why, sizeof why))) {
        err_set(err, errlen, "%s: %s", f->bundle, why);
        goto fail;
    }
    if (!(m->store = X509_STORE_new())) {
        err_set(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < sk_X509_num(bundle); i++)
        if (X509_STORE_add_cert(m->store, sk_X509_value(bundle, i)) != 1) {
            ERR_clear_error(); /* a duplicate is harmless; anything else shows at verification */
        }
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(bundle, X509_free);
    return 0;
fail:
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(bundle, X509_free);
    material_free(m);
    return -1;
}

/* ---------------------------------------------------------- SPIFFE checks */

/* Copies s for a message, with anything unprintable shown as '?'. */
static const char *printable(const char *s, char *out, size_t outlen)
{
    size_t i = 0;
    for (; s[i] && i + 1 < outlen; i++)
        out[i] = (s[i] > ' ' && s[i] <= '~') ? s[i] : '?';
    out[i] = '\0';
    return out;
}

/* Judges the URI SANs of a certificate (nuris of them, the first is uri)
 * as an X.509-SVID's: exactly one, a valid SPIFFE ID, in trust_domain (when
 * not NULL) and equal to expected (when not NULL). who names the certificate
 * in messages. 0 with the ID in id, or -1 with why. */
static int check_svid_uri(const char *uri, size_t nuris, const char *who, const char *trust_domain,
                          const char *expected, char *id, size_t idlen, char *why, size_t whylen)
{
    char shown[128];
    if (nuris == 0)
        return err_set(why, whylen, "%s has no URI SAN, so no SPIFFE ID", who);
    if (nuris > 1)
        return err_set(why, whylen, "%s has %zu URI SANs; an X.509-SVID has exactly one", who,
                       nuris);
    printable(uri, shown, sizeof shown);
    if (strncmp(uri, SPIFFE_SCHEME, strlen(SPIFFE_SCHEME)) != 0)
        return err_set(why, whylen, "%s's URI SAN %s is not a spiffe:// ID", who, shown);
    if (!spiffe_id_valid(uri))
        return err_set(why, whylen, "%s's URI SAN %s is not a valid SPIFFE ID", who, shown);
    if (trust_domain) {
        const char *td = uri + strlen(SPIFFE_SCHEME);
        size_t tdlen = strlen(trust_domain);
        if (strncmp(td, trust_domain, tdlen) != 0 || td[tdlen] != '/')
            return err_set(why, whylen, "%s's SPIFFE ID %s is not in trust domain %s", who, shown,
                           trust_domain);
    }
    if (expected && strcmp(uri, expected) != 0)
        return err_set(why, whylen, "%s's SPIFFE ID is %s, expected %s", who, shown, expected);
    if (strlen(uri) >= idlen)
        return err_set(why, whylen, "%s's SPIFFE ID is too long", who);
    strcpy(id, uri);
    return 0;
}

/* check_svid_uri on the URI SANs of an OpenSSL certificate. */
static int cert_spiffe_id(X509 *cert, const char *who, const char *trust_domain, char *id,
                          size_t idlen, char *why, size_t whylen)
{
    int crit = 0;
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, &crit, NULL);
    if (!names && crit == -2)
        return err_set(why, whylen, "%s has more than one SAN extension", who);
    size_t nuris = 0;
    const char *first = NULL;
    bool embedded_nul = false;
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI)
            continue;
        const char *s = (const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
        if (nuris++ == 0) {
            first = s;
            embedded_nul = strlen(s) != (size_t)ASN1_STRING_length(gn->d.uniformResourceIdentifier);
        }
    }
    int rc = embedded_nul ? err_set(why, whylen, "%s's URI SAN holds a NUL byte", who)
                          : check_svid_uri(first, nuris, who, trust_domain, NULL, id, idlen, why,
                                           whylen);
    GENERAL_NAMES_free(names);
    return rc;
}

/* ------------------------------------------------------ peer verification */

/* An ASN1_TIME as seconds since the epoch; fallback if unreadable. */
static time_t asn1_seconds(const ASN1_TIME *t, time_t fallback)
{
    struct tm tm;
    return t && ASN1_TIME_to_tm(t, &tm) == 1 ? timegm(&tm) : fallback;
}

static void format_time(const ASN1_TIME *t, char *out, size_t outlen)
{
    struct tm tm;
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1 || strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, outlen, "(unreadable time)");
}

/* Explains a failed X509_verify_cert. */
static void explain_verify_error(X509_STORE_CTX *ctx, char *why, size_t whylen)
{
    int e = X509_STORE_CTX_get_error(ctx);
    int depth = X509_STORE_CTX_get_error_depth(ctx);
    X509 *cert = X509_STORE_CTX_get_current_cert(ctx);
    char which[64], when[40];
    if (depth <= 0)
        snprintf(which, sizeof which, "client certificate");
    else
        snprintf(which, sizeof which, "CA certificate %d above the client's in its chain", depth);
    switch (e) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        format_time(cert ? X509_get0_notAfter(cert) : NULL, when, sizeof when);
        err_set(why, whylen, "%s expired at %s", which, when);
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        format_time(cert ? X509_get0_notBefore(cert) : NULL, when, sizeof when);
        err_set(why, whylen, "%s is not yet valid (valid from %s)", which, when);
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        err_set(why, whylen, "client certificate is not signed by the trust bundle (%s)",
                X509_verify_cert_error_string(e));
        break;
    case X509_V_ERR_INVALID_PURPOSE:
        err_set(why, whylen,
                "%s may not be used for TLS client authentication (extended key usage)", which);
        break;
    default:
        err_set(why, whylen, "%s rejected: %s", which, X509_verify_cert_error_string(e));
    }
}

/* When a verified chain is valid: the intersection of its certificates'
 * validity periods, [*from, *until). */
static void chain_window(X509_STORE_CTX *ctx, time_t *from, time_t *until)
{
    STACK_OF(X509) *chain = X509_STORE_CTX_get0_chain(ctx);
    *from = 0;
    *until = 0; /* unknown: never valid, so never cached */
    for (int i = 0; chain && i < sk_X509_num(chain); i++) {
        X509 *c = sk_X509_value(chain, i);
        time_t nb = asn1_seconds(X509_get0_notBefore(c), INT64_MAX);
        time_t na = asn1_seconds(X509_get0_notAfter(c), 0);
        if (i == 0 || nb > *from)
            *from = nb;
        if (i == 0 || na < *until)
            *until = na;
    }
}

/* Verifies a client's leaf (with the untrusted chain that came with it)
 * against store, then reads its SPIFFE ID. On success [*from, *until) is
 * when the same chain stays valid. */
static int verify_client_pem(X509_STORE *store, const char *leaf_pem, size_t leaf_len,
                             const char *chain_pem, size_t chain_len, const char *trust_domain,
                             char *id, size_t idlen, time_t *from, time_t *until, char *why,
                             size_t whylen)
{
    char perr[128] = "out of memory";
    int rc = -1;
    STACK_OF(X509) *leaf = parse_certs(leaf_pem, leaf_len, perr, sizeof perr);
    STACK_OF(X509) *chain = chain_pem ? parse_certs(chain_pem, chain_len, perr, sizeof perr) : NULL;
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (!leaf || (chain_pem && !chain) || !ctx) {
        err_set(why, whylen, "client certificate chain does not parse: %s", perr);
        goto out;
    }
    X509 *cert = sk_X509_value(leaf, 0);
    if (X509_STORE_CTX_init(ctx, store, cert, chain) != 1 ||
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1) {
        err_set(why, whylen, "cannot set up certificate verification");
        goto out;
    }
    if (X509_verify_cert(ctx) != 1) {
        explain_verify_error(ctx, why, whylen);
        goto out;
    }
    if (X509_check_ca(cert) != 0) {
        err_set(why, whylen, "client certificate is a CA certificate, not an X.509-SVID");
        goto out;
    }
    rc = cert_spiffe_id(cert, "client certificate", trust_domain, id, idlen, why, whylen);
    chain_window(ctx, from, until);
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    sk_X509_pop_free(leaf, X509_free);
    sk_X509_pop_free(chain, X509_free);
    return rc;
}

/* ------------------------------------------------------------------ server */

/* The fetcher's state for one credentials object (one listener): which
 * generation of material its handshaker factory was built from. */
struct fetch_handle {
    struct tls_server *ts;
    unsigned long seen; /* 0: none yet */
    struct fetch_handle *next;
};

/* A caller's chain that passed verification. Calls on a connection carry
 * the same PEM bytes, so later calls skip OpenSSL (~0.5 ms per call in a new
 * call thread, measured) while the bundle is unchanged and the chain is
 * within its validity period. TLS itself proves key possession on every
 * connection; this only remembers the judgement of the certificates. */
struct verified {
    unsigned char digest[crypto_hash_sha256_BYTES]; /* of leaf PEM, NUL, chain PEM */
    unsigned long generation;                       /* of the bundle; 0: empty slot */
    time_t from, until;
    uint64_t last_used;
    char spiffe_id[TLS_SPIFFE_ID_MAX];
};

struct tls_server {
    struct tls_files paths; /* owned copies */
    char trust_domain[TRUST_DOMAIN_MAX];
    pthread_mutex_t lock; /* guards everything below and every handle's seen */
    struct material m;
    unsigned long generation; /* 1 after tls_server_new, +1 per reload */
    struct fetch_handle *handles;
    struct verified cache[VERIFIED_CACHE];
    uint64_t uses; /* clock for least-recently-used eviction */
};

struct tls_server *tls_server_new(const struct tls_files *files, const char *trust_domain,
                                  char *err, size_t errlen)
{
    if (!files->cert || !files->key || !files->bundle) {
        err_set(err, errlen, "a TLS server needs a certificate, its key and a trust bundle");
        return NULL;
    }
    if (!trust_domain_valid(trust_domain)) {
        err_set(err, errlen, "invalid trust domain \"%s\"", trust_domain ? trust_domain : "");
        return NULL;
    }
    struct tls_server *ts = calloc(1, sizeof *ts);
    if (!ts) {
        err_set(err, errlen, "out of memory");
        return NULL;
    }
    ts->paths.cert = strdup(files->cert);
    ts->paths.key = strdup(files->key);
    ts->paths.bundle = strdup(files->bundle);
    snprintf(ts->trust_domain, sizeof ts->trust_domain, "%s", trust_domain);
    pthread_mutex_init(&ts->lock, NULL);
    ts->generation = 1;
    if (!ts->paths.cert || !ts->paths.key || !ts->paths.bundle) {
        err_set(err, errlen, "out of memory");
        tls_server_free(ts);
        return NULL;
    }
    if (material_load(&ts->paths, &ts->m, err, errlen) != 0) {
        tls_server_free(ts);
        return NULL;
    }
    return ts;
}

int tls_server_reload(struct tls_server *ts, char *err, size_t errlen)
{
    struct material fresh, old;
    if (material_load(&ts->paths, &fresh, err, errlen) != 0)
        return -1;
    pthread_mutex_lock(&ts->lock);
    old = ts->m;
    ts->m = fresh;
    ts->generation++;
    pthread_mutex_unlock(&ts->lock);
    material_free(&old); /* calls still verifying hold their own store reference */
    return 0;
}

/* gRPC's certificate config fetcher, called before every handshake on the
 * listener: hands over the material only when it is newer than what the
 * listener has, so the SSL context is rebuilt once per reload. */
static grpc_ssl_certificate_config_reload_status
fetch_config(void *user_data, grpc_ssl_server_certificate_config **config)
{
    struct fetch_handle *h = user_data;
    struct tls_server *ts = h->ts;
    grpc_ssl_certificate_config_reload_status status = GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_UNCHANGED;
    pthread_mutex_lock(&ts->lock);
    if (h->seen != ts->generation) {
        grpc_ssl_pem_key_cert_pair pair = {ts->m.key_pem, ts->m.cert_pem};
        /* The bundle goes in too: gRPC sends its names as acceptable client CAs. */
        *config = grpc_ssl_server_certificate_config_create(ts->m.bundle_pem, &pair, 1);
        status = *config ? GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_NEW
                         : GRPC_SSL_CERTIFICATE_CONFIG_RELOAD_FAIL;
        if (*config)
            h->seen = ts->generation;
    }
    pthread_mutex_unlock(&ts->lock);
    return status;
}

grpc_server_credentials *tls_server_credentials(struct tls_server *ts)
{
    struct fetch_handle *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->ts = ts;
    pthread_mutex_lock(&ts->lock);
    h->next = ts->handles;
    ts->handles = h; /* freed with ts: gRPC has no destructor for user data */
    pthread_mutex_unlock(&ts->lock);
    grpc_ssl_server_credentials_options *opts =
        grpc_ssl_server_credentials_create_options_using_config_fetcher(
            GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY, fetch_config, h);
    return opts ? grpc_ssl_server_credentials_create_with_options(opts) : NULL;
}

/* The first value of an auth context property, or NULL. */
static const grpc_auth_property *auth_property(const grpc_auth_context *ctx, const char *name)
{
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, name);
    return grpc_auth_property_iterator_next(&it);
}

/* A cached judgement of digest, valid now: copies its ID into id. Locked. */
static bool cache_lookup(struct tls_server *ts, const unsigned char *digest, time_t now, char *id,
                         size_t idlen)
{
    for (size_t i = 0; i < VERIFIED_CACHE; i++) {
        struct verified *v = &ts->cache[i];
        if (v->generation == ts->generation && now >= v->from && now < v->until &&
            memcmp(v->digest, digest, sizeof v->digest) == 0 && strlen(v->spiffe_id) < idlen) {
            v->last_used = ++ts->uses;
            strcpy(id, v->spiffe_id);
            return true;
        }
    }
    return false;
}

/* Remembers a verification made with the bundle of generation. Locked. */
static void cache_store(struct tls_server *ts, unsigned long generation,
                        const unsigned char *digest, time_t from, time_t until, const char *id)
{
    if (generation != ts->generation || strlen(id) >= TLS_SPIFFE_ID_MAX)
        return; /* reloaded meanwhile */
    struct verified *slot = &ts->cache[0];
    for (size_t i = 0; i < VERIFIED_CACHE; i++) {
        struct verified *v = &ts->cache[i];
        if (v->generation != ts->generation) { /* empty or from an older bundle */
            slot = v;
            break;
        }
        if (v->last_used < slot->last_used)
            slot = v;
    }
    memcpy(slot->digest, digest, sizeof slot->digest);
    slot->generation = generation;
    slot->from = from;
    slot->until = until;
    slot->last_used = ++ts->uses;
    strcpy(slot->spiffe_id, id);
}

int tls_server_verify_call(struct tls_server *ts, grpc_call *call, char *spiffe_id, size_t idlen,
                           char *why, size_t whylen)
{
    if (idlen)
        spiffe_id[0] = '\0';
    grpc_auth_context *ctx = grpc_call_auth_context(call);
    if (!ctx)
        return err_set(why, whylen, "connection has no TLS authentication context");
    int rc = -1;
    const grpc_auth_property *type = auth_property(ctx, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
    const grpc_auth_property *leaf = auth_property(ctx, GRPC_X509_PEM_CERT_PROPERTY_NAME);
    const grpc_auth_property *chain = auth_property(ctx, GRPC_X509_PEM_CERT_CHAIN_PROPERTY_NAME);
    if (!type || strcmp(type->value, GRPC_SSL_TRANSPORT_SECURITY_TYPE) != 0) {
        err_set(why, whylen, "connection is not TLS");
    } else if (!leaf || leaf->value_length == 0) {
        err_set(why, whylen, "no client certificate: mutual TLS with an X.509-SVID is required");
    } else {
        const char *chain_pem = chain && chain->value_length ? chain->value : NULL;
        size_t chain_len = chain_pem ? chain->value_length : 0;
        unsigned char digest[crypto_hash_sha256_BYTES];
        crypto_hash_sha256_state sha;
        crypto_hash_sha256_init(&sha);
        crypto_hash_sha256_update(&sha, (const unsigned char *)leaf->value, leaf->value_length);
        crypto_hash_sha256_update(&sha, (const unsigned char *)"", 1);
        crypto_hash_sha256_update(&sha, (const unsigned char *)chain_pem, chain_len);
        crypto_hash_sha256_final(&sha, digest);

        pthread_mutex_lock(&ts->lock);
        X509_STORE *store = NULL;
        unsigned long generation = ts->generation;
        if (cache_lookup(ts, digest, time(NULL), spiffe_id, idlen)) {
            rc = 0;
        } else {
            store = ts->m.store;
            X509_STORE_up_ref(store); /* a reload may replace ts->m meanwhile */
        }
        pthread_mutex_unlock(&ts->lock);
        if (store) {
            time_t from, until;
            rc = verify_client_pem(store, leaf->value, leaf->value_length, chain_pem, chain_len,
                                   ts->trust_domain, spiffe_id, idlen, &from, &until, why, whylen);
            X509_STORE_free(store);
            if (rc == 0) {
                pthread_mutex_lock(&ts->lock);
                cache_store(ts, generation, digest, from, until, spiffe_id);
                pthread_mutex_unlock(&ts->lock);
            }
        }
    }
    grpc_auth_context_release(ctx);
    if (rc != 0 && idlen)
        spiffe_id[0] = '\0';
    return rc;
}

void tls_server_free(struct tls_server *ts)
{
    if (!ts)
        return;
    while (ts->handles) {
        struct fetch_handle *next = ts->handles->next;
        free(ts->handles);
        ts->handles = next;
    }
    material_free(&ts->m);
    pthread_mutex_destroy(&ts->lock);
    free((char *)ts->paths.cert);
    free((char *)ts->paths.key);
    free((char *)ts->paths.bundle);
    free(ts);
}

/* ------------------------------------------------------------------ client */

/* What the client requires of the server's SVID. gRPC calls destruct when
 * the last channel using the verifier is gone; it frees the whole struct. */
struct server_check {
    grpc_tls_certificate_verifier_external ext; /* first: user_data points here */
    char trust_domain[TRUST_DOMAIN_MAX];
    char expected[TLS_SPIFFE_ID_MAX]; /* "" for any ID in trust_domain */
};

/* Runs after gRPC has verified the server's chain against the bundle. */
static int check_server(void *user_data, grpc_tls_custom_verification_check_request *request,
                        grpc_tls_on_custom_verification_check_done_cb callback, void *callback_arg,
                        grpc_status_code *sync_status, char **sync_error_details)
{
    (void)callback, (void)callback_arg;
    const struct server_check *sc = user_data;
    char id[TLS_SPIFFE_ID_MAX], why[512];
    size_t n = request->peer_info.san_names.uri_names_size;
    const char *uri = n ? request->peer_info.san_names.uri_names[0] : NULL;
    const char *expected = sc->expected[0] ? sc->expected : NULL;
    if (check_svid_uri(uri, n, "server certificate", sc->trust_domain, expected, id, sizeof id, why,
                       sizeof why) != 0) {
        *sync_status = GRPC_STATUS_UNAUTHENTICATED;
        *sync_error_details = gpr_strdup(why);
    } else {
        *sync_status = GRPC_STATUS_OK;
    }
    return 1; /* answered synchronously */
}

static void server_check_free(void *user_data)
{
    free(user_data);
}

grpc_channel_credentials *tls_client_credentials(const struct tls_files *files,
                                                 const char *expected_server_id,
                                                 const char *trust_domain, char *err,
                                                 size_t errlen)
{
    if (!trust_domain_valid(trust_domain)) {
        err_set(err, errlen, "invalid trust domain \"%s\"", trust_domain ? trust_domain : "");
        return NULL;
    }
    char id[TLS_SPIFFE_ID_MAX];
    if (expected_server_id &&
        check_svid_uri(expected_server_id, 1, "expected server ID", trust_domain, NULL, id,
                       sizeof id, err, errlen) != 0)
        return NULL;
    /* Check the files now for a clear message; gRPC's watcher only logs. */
    struct material m;
    if (material_load(files, &m, err, errlen) != 0)
        return NULL;
    material_free(&m);

    struct server_check *sc = calloc(1, sizeof *sc);
    if (!sc) {
        err_set(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(sc->trust_domain, sizeof sc->trust_domain, "%s", trust_domain);
    snprintf(sc->expected, sizeof sc->expected, "%s", expected_server_id ? expected_server_id : "");
    sc->ext = (grpc_tls_certificate_verifier_external){
        .user_data = sc, .verify = check_server, .destruct = server_check_free};

    /* In 1.51 these constructors cannot return NULL (C++ new); checked anyway. */
    grpc_tls_credentials_options *opts = grpc_tls_credentials_options_create();
    grpc_tls_certificate_provider *provider = grpc_tls_certificate_provider_file_watcher_create(
        files->key, files->cert, files->bundle, CLIENT_REFRESH_S);
    grpc_tls_certificate_verifier *verifier =
        grpc_tls_certificate_verifier_external_create(&sc->ext);
    grpc_channel_credentials *creds = NULL;
    if (!opts || !provider || !verifier) {
        err_set(err, errlen, "cannot create TLS options");
        grpc_tls_certificate_provider_release(provider);
        if (verifier)
            grpc_tls_certificate_verifier_release(verifier); /* runs destruct */
        else
            free(sc);
        return NULL; /* opts alone has no public destructor in 1.51 */
    }
    grpc_tls_credentials_options_set_certificate_provider(opts, provider);
    grpc_tls_credentials_options_watch_root_certs(opts);
    if (files->cert)
        grpc_tls_credentials_options_watch_identity_key_cert_pairs(opts);
    grpc_tls_credentials_options_set_verify_server_cert(opts, 1);
    grpc_tls_credentials_options_set_check_call_host(opts, 0);
    grpc_tls_credentials_options_set_certificate_verifier(opts, verifier);
    creds = grpc_tls_credentials_create(opts); /* takes opts */
    grpc_tls_certificate_provider_release(provider);
    grpc_tls_certificate_verifier_release(verifier);
    if (!creds)
        err_set(err, errlen, "gRPC refused the TLS options");
    return creds;
}

/* ------------------------------------------------------------------- tools */

int tls_spiffe_id_of_cert_file(const char *path, char *out, size_t outlen, char *err,
                               size_t errlen)
{
    char why[256];
    char *pem = read_text_file(path, err, errlen);
    if (!pem)
        return -1;
    STACK_OF(X509) *certs = parse_certs(pem, strlen(pem), why, sizeof why);
    int rc = certs ? cert_spiffe_id(sk_X509_value(certs, 0), "certificate", NULL, out, outlen, why,
                                    sizeof why)
                   : -1;
    if (rc != 0)
        err_set(err, errlen, "%s: %s", path, why);
    sk_X509_pop_free(certs, X509_free);
    free(pem);
    return rc;
}

/*
 * tls.h - SPIFFE X.509-SVID mutual TLS for our gRPC servers and clients:
 * reloadable server credentials, per-call verification of the caller's SVID
 * (the caller's identity is the SPIFFE ID in its certificate's one URI SAN),
 * and client credentials that check the server's SPIFFE ID instead of a
 * host name. Everything TLS lives here; rpc.c only calls it.
 *
 * How the server side works (gRPC 1.51 C core, OpenSSL 3):
 * - gRPC runs the handshake with GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY:
 *   a client certificate is asked for, TLS proves the client holds its key,
 *   but gRPC does not judge it and a client may send none. Plaintext is never
 *   offered.
 * - Every call is then judged by tls_server_verify_call: the chain must lead
 *   to the trust bundle, be valid now, allow TLS client use, and the leaf must
 *   carry exactly one URI SAN, a valid SPIFFE ID in our trust domain. Failing
 *   calls get a reason the server can log and send back as UNAUTHENTICATED,
 *   instead of a handshake failure the client would only see as UNAVAILABLE.
 * - The certificate, key and bundle are re-read by tls_server_reload (on
 *   SIGHUP: SVIDs rotate hourly under SPIRE). New connections get the new
 *   certificate; established connections and running calls are untouched;
 *   calls from then on are verified against the new bundle.
 */
#ifndef AIRLOCK_TLS_H
#define AIRLOCK_TLS_H

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <stddef.h>

/* Longest SPIFFE ID we accept (the SPIFFE spec's limit), plus NUL. */
#define TLS_SPIFFE_ID_MAX 2049

/* PEM file paths. cert: our SVID, leaf first, then any intermediates. key:
 * its private key. bundle: the trust bundle (CA certificates) that peers'
 * certificates must chain to. */
struct tls_files {
    const char *cert;
    const char *key;
    const char *bundle;
};

/* ------------------------------------------------------------------ server */

/* Server-side state: the current files' contents and the verification store.
 * Shared by the gRPC handshake threads, the call threads and the reloading
 * thread; every function below is thread-safe. */
struct tls_server;

/* Reads and validates files (each certificate parses, the key matches the
 * leaf, the bundle holds at least one certificate). trust_domain: the
 * callers' trust domain ("example.org", without spiffe://). NULL on failure
 * with a message in err naming the file. The paths are copied. */
struct tls_server *tls_server_new(const struct tls_files *files, const char *trust_domain,
                                  char *err, size_t errlen);

/* Re-reads the same paths with the same checks. On success new handshakes
 * present the new certificate and calls are verified against the new
 * bundle; returns 0. On any error nothing changes (the old material keeps
 * serving) and it returns -1 with the reason in err. Safe to call from a
 * signal-handling thread while calls run. */
int tls_server_reload(struct tls_server *ts, char *err, size_t errlen);

/* New gRPC server credentials backed by ts, for one grpc_server_add_http2_port
 * (call once per listener: each credentials object tracks which material its
 * listener already has). The caller releases them with
 * grpc_server_credentials_release; ts must outlive every server using them.
 * NULL on allocation failure. */
grpc_server_credentials *tls_server_credentials(struct tls_server *ts);

/* Verifies the peer of a call that arrived on a listener using ts's
 * credentials. 0: the peer is authenticated and spiffe_id holds its SPIFFE
 * ID. -1: it is not, spiffe_id is "", and why says why in a sentence fit for
 * an UNAUTHENTICATED status and the audit log ("no client certificate",
 * "client certificate expired at 2026-01-01T00:00:00Z", "client certificate
 * is not signed by the trust bundle (…)", "client certificate has 2 URI SANs;
 * an X.509-SVID has exactly one", …). idlen should be TLS_SPIFFE_ID_MAX.
 * A chain that passed is remembered (up to 64 of them) until a reload or the
 * end of its validity, so later calls on a connection cost a SHA-256 instead
 * of ~0.3-0.5 ms of OpenSSL. */
int tls_server_verify_call(struct tls_server *ts, grpc_call *call, char *spiffe_id, size_t idlen,
                           char *why, size_t whylen);

/* Frees ts. Every server using its credentials must be destroyed first. */
void tls_server_free(struct tls_server *ts);

/* ------------------------------------------------------------------ client */

/* Client credentials for mutual TLS. files->cert and files->key are our SVID
 * and key, sent as the client certificate; both may be NULL to send none
 * (only for tests and tools: our servers answer Health/Check, nothing else).
 * files->bundle is required. The server's chain is verified by gRPC against
 * the bundle (expiry included); then its leaf must carry exactly one URI SAN,
 * a valid SPIFFE ID equal to expected_server_id when that is non-NULL, else
 * any ID in trust_domain. No host name is checked (SVIDs often have no DNS
 * SAN). A refused server makes calls fail UNAVAILABLE with the reason in the
 * status message. The files are watched and re-read about once a minute, so a
 * long-lived channel follows SVID rotation. Release with
 * grpc_channel_credentials_release. NULL with err on bad files or
 * arguments (an expected_server_id outside trust_domain is an error). */
grpc_channel_credentials *tls_client_credentials(const struct tls_files *files,
                                                 const char *expected_server_id,
                                                 const char *trust_domain, char *err,
                                                 size_t errlen);

/* ------------------------------------------------------------------- tools */

/* The SPIFFE ID in the leaf (first) certificate of a PEM file: for logs and
 * for checking our own SVID at start. 0, or -1 with err (no file, no
 * certificate, not exactly one URI SAN, not a valid SPIFFE ID). */
int tls_spiffe_id_of_cert_file(const char *path, char *out, size_t outlen, char *err,
                               size_t errlen);

#endif

/*
 * test_tls.c - cmocka tests for SPIFFE mutual TLS (lib/tls.c and the TLS
 * parts of lib/rpc.c) against a real rpc_server on 127.0.0.1:0 with SVIDs
 * made by deploy/dev-ca.sh: which callers the server accepts and why it
 * refuses the others, which servers the client refuses, reload of rotated
 * files, and the file checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "airlock/v1/credentials.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "rpc.h"
#include "tls.h"

#ifndef AIRLOCK_DEV_CA
#error "AIRLOCK_DEV_CA must name deploy/dev-ca.sh"
#endif

#define TD "airlock.test"
#define SERVER_ID "spiffe://" TD "/airlock/credd"
#define NEXT_SERVER_ID "spiffe://" TD "/airlock/credd-next"
#define CLIENT_ID "spiffe://" TD "/airlock/cli"
#define WHO_PATH "/airlock.test.Tls/WhoAmI"
#define CALL_MS 5000

/* -------------------------------------------------------------- fixture */

struct server {
    struct tls_server *tls;
    struct rpc_server *rpc;
    pthread_t thread;
    char target[64]; /* 127.0.0.1:PORT */
};

struct fixture {
    char dir[64];
    struct server main; /* DIR/srv.pem, DIR/srv-bundle.pem: test_rotation replaces them */
};

/* PEM paths of one SVID in the fixture's directory, trusting DIR/ca.pem. */
struct svid_files {
    char cert[128], key[128], bundle[128];
    struct tls_files f;
};

static const struct tls_files *svid(const struct fixture *fx, const char *name,
                                    struct svid_files *out)
{
    snprintf(out->cert, sizeof out->cert, "%s/%s.pem", fx->dir, name);
    snprintf(out->key, sizeof out->key, "%s/%s.key", fx->dir, name);
    snprintf(out->bundle, sizeof out->bundle, "%s/ca.pem", fx->dir);
    out->f = (struct tls_files){out->cert, out->key, out->bundle};
    return &out->f;
}

/* Echoes the caller's verified SPIFFE ID (in RevokeResponse.status), or
 * refuses it as the broker and credd will. */
static grpc_status_code who_am_i(struct rpc_call *call, const ProtobufCMessage *request, void *ctx)
{
    (void)request, (void)ctx;
    const struct rpc_peer *peer = rpc_call_peer(call);
    if (peer->transport != RPC_TRANSPORT_TLS || !peer->authenticated)
        return rpc_call_fail(call, GRPC_STATUS_UNAUTHENTICATED, "%s", peer->auth_error);
    Airlock__V1__RevokeResponse resp = AIRLOCK__V1__REVOKE_RESPONSE__INIT;
    resp.status = (char *)peer->spiffe_id;
    rpc_call_send(call, &resp.base);
    return GRPC_STATUS_OK;
}

static const struct rpc_method methods[] = {
    {WHO_PATH, RPC_UNARY, &airlock__v1__revoke_request__descriptor, who_am_i, NULL},
};

static void *run_server(void *arg)
{
    rpc_server_run(arg);
    return NULL;
}

static int server_start(struct server *sv, const struct tls_files *files)
{
    char err[512];
    sv->tls = tls_server_new(files, TD, err, sizeof err);
    if (!sv->tls) {
        fprintf(stderr, "tls_server_new: %s\n", err);
        return -1;
    }
    sv->rpc = rpc_server_new(methods, 1, 16);
    int port = sv->rpc ? rpc_server_listen_tls(sv->rpc, "127.0.0.1:0", sv->tls) : -1;
    if (port <= 0 || rpc_server_start(sv->rpc) != 0 ||
        pthread_create(&sv->thread, NULL, run_server, sv->rpc) != 0) {
        rpc_server_free(sv->rpc);
        tls_server_free(sv->tls);
        return -1;
    }
    snprintf(sv->target, sizeof sv->target, "127.0.0.1:%d", port);
    return 0;
}

static void server_stop(struct server *sv)
{
    rpc_server_stop(sv->rpc);
    pthread_join(sv->thread, NULL);
    rpc_server_free(sv->rpc);
    tls_server_free(sv->tls);
}

/* Runs deploy/dev-ca.sh DIR ARGS. Only before grpc_init: it forks. */
static int dev_ca(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int dev_ca(const char *dir, const char *fmt, ...)
{
    char cmd[512];
    int n = snprintf(cmd, sizeof cmd, "%s %s ", AIRLOCK_DEV_CA, dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "failed (%d): %s\n", rc, cmd);
    return rc == 0 ? 0 : -1;
}

static int group_setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    *state = fx;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/airlock-tls-test.XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    char other[96]; /* another CA, another trust domain */
    snprintf(other, sizeof other, "%s/other", fx->dir);
    const char *d = fx->dir;
    if (dev_ca(d, "ca") || dev_ca(other, "--trust-domain other.test ca") ||
        dev_ca(d, "svid srv /airlock/credd --dns localhost") ||
        dev_ca(d, "svid next /airlock/credd-next --dns localhost") ||
        dev_ca(d, "svid client /airlock/cli") ||
        dev_ca(d, "svid foreign spiffe://other.test/airlock/cli") ||
        dev_ca(d, "svid otherca /airlock/cli --ca-dir %s", other) ||
        dev_ca(d, "svid srv-otherca /airlock/credd --ca-dir %s", other) ||
        dev_ca(d, "svid expired /airlock/cli --expired") ||
        dev_ca(d, "svid future /airlock/cli --not-yet-valid") ||
        dev_ca(d, "svid two /airlock/cli --uri spiffe://" TD "/airlock/b") ||
        dev_ca(d, "svid nouri - --dns client.local") ||
        dev_ca(d, "svid https https://" TD "/airlock/cli"))
        return -1;
    struct svid_files sf;
    struct tls_files files = *svid(fx, "srv", &sf);
    char bundle[128];
    snprintf(bundle, sizeof bundle, "%s/srv-bundle.pem", fx->dir);
    if (link(files.bundle, bundle) != 0)
        return -1;
    files.bundle = bundle;
    grpc_init();
    return server_start(&fx->main, &files);
}

static int group_teardown(void **state)
{
    struct fixture *fx = *state;
    server_stop(&fx->main);
    grpc_shutdown();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

/* ----------------------------------------------------------------- calls */

/* Calls WhoAmI; on OK copies the echoed ID into id. */
static grpc_status_code call_who(struct rpc_channel *ch, char *id, size_t idlen,
                                 struct rpc_status *st)
{
    Airlock__V1__RevokeRequest req = AIRLOCK__V1__REVOKE_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    grpc_status_code code = rpc_unary(
        ch, WHO_PATH, &req.base, &airlock__v1__revoke_response__descriptor, &resp, CALL_MS, st);
    if (code == GRPC_STATUS_OK) {
        snprintf(id, idlen, "%s", ((Airlock__V1__RevokeResponse *)resp)->status);
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    return code;
}

static struct rpc_channel *channel(const char *target, const struct tls_files *f,
                                   const char *expected, const char *td)
{
    char err[512] = "";
    struct rpc_channel *ch = rpc_channel_new_tls(target, f, expected, td, err, sizeof err);
    if (!ch)
        fprintf(stderr, "rpc_channel_new_tls: %s\n", err);
    assert_non_null(ch);
    return ch;
}

/* One call on a new channel as SVID name; returns the status, fills st. */
static grpc_status_code call_as(const struct fixture *fx, const char *name, const char *expected,
                                const char *td, char *id, size_t idlen, struct rpc_status *st)
{
    struct svid_files sf;
    struct rpc_channel *ch = channel(fx->main.target, svid(fx, name, &sf), expected, td);
    grpc_status_code code = call_who(ch, id, idlen, st);
    rpc_channel_free(ch);
    return code;
}

#define assert_contains(haystack, needle)                                               \
    do {                                                                                \
        if (!strstr((haystack), (needle)))                                              \
            fail_msg("\"%s\" does not contain \"%s\"", (haystack), (needle));           \
    } while (0)

/* ----------------------------------------------------------------- tests */

static void test_good_client(void **state)
{
    struct fixture *fx = *state;
    char id[TLS_SPIFFE_ID_MAX] = "";
    struct rpc_status st;
    assert_int_equal(call_as(fx, "client", SERVER_ID, TD, id, sizeof id, &st), GRPC_STATUS_OK);
    assert_string_equal(id, CLIENT_ID);
    /* Without an expected ID any server in the trust domain will do. */
    assert_int_equal(call_as(fx, "client", NULL, TD, id, sizeof id, &st), GRPC_STATUS_OK);
    assert_string_equal(id, CLIENT_ID);
}

static void test_refused_clients(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        const char *svid, *why;
    } cases[] = {
        {"foreign", "spiffe://other.test/airlock/cli is not in trust domain airlock.test"},
        {"otherca", "not signed by the trust bundle"},
        {"expired", "client certificate expired at 20"},
        {"future", "client certificate is not yet valid (valid from 20"},
        {"two", "has 2 URI SANs; an X.509-SVID has exactly one"},
        {"nouri", "has no URI SAN"},
        {"https", "URI SAN https://airlock.test/airlock/cli is not a spiffe:// ID"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char id[TLS_SPIFFE_ID_MAX] = "";
        struct rpc_status st = {0};
        grpc_status_code code = call_as(fx, cases[i].svid, SERVER_ID, TD, id, sizeof id, &st);
        if (code != GRPC_STATUS_UNAUTHENTICATED)
            fail_msg("%s: %s: %s", cases[i].svid, rpc_status_name(code), st.message);
        assert_contains(st.message, cases[i].why);
        printf("# %s: %s\n", cases[i].svid, st.message);
    }
}

static void test_no_client_certificate(void **state)
{
    struct fixture *fx = *state;
    struct svid_files sf;
    struct tls_files anonymous = *svid(fx, "client", &sf);
    anonymous.cert = anonymous.key = NULL;
    struct rpc_channel *ch = channel(fx->main.target, &anonymous, SERVER_ID, TD);
    char id[TLS_SPIFFE_ID_MAX];
    struct rpc_status st;
    assert_int_equal(call_who(ch, id, sizeof id, &st), GRPC_STATUS_UNAUTHENTICATED);
    assert_contains(st.message, "no client certificate");
    /* Health/Check stays open to anyone who completes the TLS handshake. */
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    assert_int_equal(rpc_unary(ch, "/grpc.health.v1.Health/Check", &req.base,
                               &grpc__health__v1__health_check_response__descriptor, &resp,
                               CALL_MS, &st),
                     GRPC_STATUS_OK);
    protobuf_c_message_free_unpacked(resp, NULL);
    rpc_channel_free(ch);
}

static void test_client_refuses_server(void **state)
{
    struct fixture *fx = *state;
    char id[TLS_SPIFFE_ID_MAX];
    struct rpc_status st;
    assert_int_equal(
        call_as(fx, "client", "spiffe://" TD "/airlock/broker", TD, id, sizeof id, &st),
        GRPC_STATUS_UNAVAILABLE);
    assert_contains(st.message, "server certificate's SPIFFE ID is " SERVER_ID
                                ", expected spiffe://" TD "/airlock/broker");
    assert_int_equal(call_as(fx, "client", NULL, "other.test", id, sizeof id, &st),
                     GRPC_STATUS_UNAVAILABLE);
    assert_contains(st.message, "is not in trust domain other.test");

    /* A server whose SVID comes from a CA outside our bundle: gRPC's chain
     * check refuses it before our SPIFFE ID check runs. */
    struct server rogue;
    struct svid_files sf;
    assert_int_equal(server_start(&rogue, svid(fx, "srv-otherca", &sf)), 0);
    struct rpc_channel *ch = channel(rogue.target, svid(fx, "client", &sf), SERVER_ID, TD);
    assert_int_equal(call_who(ch, id, sizeof id, &st), GRPC_STATUS_UNAVAILABLE);
    assert_contains(st.message, "certificate verify failed");
    rpc_channel_free(ch);
    server_stop(&rogue);
}

static void test_bad_arguments_and_files(void **state)
{
    struct fixture *fx = *state;
    struct svid_files sf;
    char err[512];
    /* client */
    assert_null(tls_client_credentials(svid(fx, "client", &sf), "spiffe://other.test/x", TD, err,
                                       sizeof err));
    assert_contains(err, "is not in trust domain " TD);
    assert_null(tls_client_credentials(svid(fx, "client", &sf), NULL, "Not/A/Domain", err,
                                       sizeof err));
    assert_contains(err, "invalid trust domain");
    struct tls_files mixed = *svid(fx, "client", &sf);
    mixed.key = svid(fx, "next", &(struct svid_files){0})->key;
    assert_null(tls_client_credentials(&mixed, NULL, TD, err, sizeof err));
    assert_contains(err, "private key does not match the certificate in");
    /* server */
    struct tls_files missing = *svid(fx, "nosuch", &sf);
    assert_null(tls_server_new(&missing, TD, err, sizeof err));
    assert_contains(err, "nosuch.pem: No such file");
    struct tls_files notabundle = *svid(fx, "client", &sf);
    notabundle.bundle = notabundle.key;
    assert_null(tls_server_new(&notabundle, TD, err, sizeof err));
    assert_contains(err, "client.key: no PEM certificate");
    assert_null(tls_server_new(svid(fx, "client", &sf), "", err, sizeof err));
    assert_contains(err, "invalid trust domain");
}

static void test_spiffe_id_of_cert_file(void **state)
{
    struct fixture *fx = *state;
    struct svid_files sf;
    char id[TLS_SPIFFE_ID_MAX], err[512];
    assert_int_equal(tls_spiffe_id_of_cert_file(svid(fx, "srv", &sf)->cert, id, sizeof id, err,
                                                sizeof err),
                     0);
    assert_string_equal(id, SERVER_ID);
    assert_int_equal(tls_spiffe_id_of_cert_file(svid(fx, "nouri", &sf)->cert, id, sizeof id, err,
                                                sizeof err),
                     -1);
    assert_contains(err, "nouri.pem: certificate has no URI SAN");
    assert_int_equal(tls_spiffe_id_of_cert_file(svid(fx, "client", &sf)->key, id, sizeof id, err,
                                                sizeof err),
                     -1);
    assert_contains(err, "no PEM certificate");
}

static void test_port_taken(void **state)
{
    struct fixture *fx = *state;
    struct rpc_server *second = rpc_server_new(methods, 1, 4);
    assert_non_null(second);
    assert_int_equal(rpc_server_listen_tls(second, fx->main.target, fx->main.tls), -1);
    rpc_server_free(second);
}

/* Mean round trip of an authenticated call on one warm connection. */
static void test_call_cost(void **state)
{
    struct fixture *fx = *state;
    struct svid_files sf;
    struct rpc_channel *ch = channel(fx->main.target, svid(fx, "client", &sf), SERVER_ID, TD);
    char id[TLS_SPIFFE_ID_MAX];
    struct rpc_status st;
    assert_int_equal(call_who(ch, id, sizeof id, &st), GRPC_STATUS_OK);
    enum { N = 200 };
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < N; i++)
        assert_int_equal(call_who(ch, id, sizeof id, &st), GRPC_STATUS_OK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / 1e3 / N;
    printf("# TLS call with per-call SVID verification: %.0f us mean over %d calls\n", us, N);
    rpc_channel_free(ch);
}

/* Runs last: it replaces the main server's certificate and bundle. */
static void test_rotation(void **state)
{
    struct fixture *fx = *state;
    struct svid_files srv, next, cli;
    svid(fx, "srv", &srv);
    svid(fx, "next", &next);
    char id[TLS_SPIFFE_ID_MAX], err[512], bundle[128], other_ca[128];
    snprintf(bundle, sizeof bundle, "%s/srv-bundle.pem", fx->dir);
    snprintf(other_ca, sizeof other_ca, "%s/other/ca.pem", fx->dir);
    struct rpc_status st;
    struct rpc_channel *before = channel(fx->main.target, svid(fx, "client", &cli), SERVER_ID, TD);
    assert_int_equal(call_who(before, id, sizeof id, &st), GRPC_STATUS_OK);

    /* SPIRE-style rotation: new files under the same names, then SIGHUP. */
    assert_int_equal(rename(next.key, srv.key), 0);
    assert_int_equal(rename(next.cert, srv.cert), 0);
    assert_int_equal(tls_server_reload(fx->main.tls, err, sizeof err), 0);

    /* The established connection goes on; new ones see the new SVID. */
    assert_int_equal(call_who(before, id, sizeof id, &st), GRPC_STATUS_OK);
    assert_int_equal(call_as(fx, "client", NEXT_SERVER_ID, TD, id, sizeof id, &st), GRPC_STATUS_OK);
    assert_string_equal(id, CLIENT_ID);
    assert_int_equal(call_as(fx, "client", SERVER_ID, TD, id, sizeof id, &st),
                     GRPC_STATUS_UNAVAILABLE);

    /* A new bundle judges the next call, even on a connection whose
     * certificate passed before (and was remembered). */
    assert_int_equal(rename(other_ca, bundle), 0);
    assert_int_equal(tls_server_reload(fx->main.tls, err, sizeof err), 0);
    assert_int_equal(call_who(before, id, sizeof id, &st), GRPC_STATUS_UNAUTHENTICATED);
    assert_contains(st.message, "not signed by the trust bundle");
    assert_int_equal(call_as(fx, "otherca", NEXT_SERVER_ID, TD, id, sizeof id, &st),
                     GRPC_STATUS_OK);
    assert_string_equal(id, CLIENT_ID);

    /* A broken key: reload fails, saying why; the server keeps serving. */
    FILE *f = fopen(srv.key, "w");
    assert_non_null(f);
    fputs("-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(tls_server_reload(fx->main.tls, err, sizeof err), -1);
    assert_contains(err, "srv.key: no unencrypted PEM private key");
    assert_int_equal(call_as(fx, "otherca", NEXT_SERVER_ID, TD, id, sizeof id, &st),
                     GRPC_STATUS_OK);
    rpc_channel_free(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_client),
        cmocka_unit_test(test_refused_clients),
        cmocka_unit_test(test_no_client_certificate),
        cmocka_unit_test(test_client_refuses_server),
        cmocka_unit_test(test_bad_arguments_and_files),
        cmocka_unit_test(test_spiffe_id_of_cert_file),
        cmocka_unit_test(test_port_taken),
        cmocka_unit_test(test_call_cost),
        cmocka_unit_test(test_rotation),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

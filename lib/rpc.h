/*
 * rpc.h - the gRPC C core glue shared by credd, the broker, the worker and
 * the CLI: a server that runs each call's handler on a thread of its own
 * (handler threads are reused from call to call), with registered unary and
 * server-streaming methods, Unix-socket listeners that know their peers'
 * credentials, TCP listeners with SPIFFE mutual TLS (lib/tls.h),
 * grpc.health.v1.Health/Check, and blocking client calls with deadlines.
 * Messages are protobuf-c; framing to grpc_byte_buffer lives here and
 * nowhere else.
 */
#ifndef AIRLOCK_RPC_H
#define AIRLOCK_RPC_H

#include <grpc/grpc.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "tls.h"

#define RPC_STATUS_MESSAGE_MAX 512

/* A gRPC status with its message. */
struct rpc_status {
    grpc_status_code code;
    char message[RPC_STATUS_MESSAGE_MAX];
};

enum rpc_transport {
    RPC_TRANSPORT_UNKNOWN, /* neither: trust nothing (e.g. the Unix peer table was full) */
    RPC_TRANSPORT_UNIX,    /* an rpc_server_listen_unix socket */
    RPC_TRANSPORT_TLS,     /* an rpc_server_listen_tls port */
};

/* Who is on the other end of a server call. Filled before the handler runs.
 * Unix socket: has_ucred and the SO_PEERCRED fields; authenticated is false.
 * TLS: the caller's certificate has been through tls_server_verify_call;
 * authenticated says whether it passed, with its SPIFFE ID in spiffe_id, or
 * the reason in auth_error. A handler that needs a TLS caller's identity
 * must refuse an unauthenticated one with UNAUTHENTICATED and auth_error. */
struct rpc_peer {
    enum rpc_transport transport;
    bool has_ucred;  /* connection came through an rpc_server_listen_unix socket */
    pid_t pid;       /* SO_PEERCRED at accept time */
    uid_t uid;
    gid_t gid;
    char exe[4096];  /* /proc/PID/exe at accept time, "" if unreadable */
    bool authenticated;                 /* TLS only: the SVID was verified */
    char spiffe_id[TLS_SPIFFE_ID_MAX];  /* TLS only: "" unless authenticated */
    char auth_error[256];               /* TLS only: why not authenticated */
};

/* ------------------------------------------------------------------ server */

struct rpc_server;
struct rpc_call;

/* Handler for one call. request is the unpacked request (owned by the
 * framework). A unary handler calls rpc_call_send once with its response; a
 * streaming handler calls it once per message. Return GRPC_STATUS_OK, or the
 * value of rpc_call_fail(). Handlers run on their own thread and may block
 * for as long as they like. A handler thread serves one call at a time and is
 * then reused for a later call, so a handler must leave nothing of its call
 * on the thread (signal mask, thread-local state, OpenSSL's error queue). */
typedef grpc_status_code (*rpc_handler)(struct rpc_call *call, const ProtobufCMessage *request,
                                        void *ctx);

enum rpc_kind { RPC_UNARY, RPC_SERVER_STREAMING };

struct rpc_method {
    const char *path;  /* "/airlock.v1.Broker/Execute" */
    enum rpc_kind kind;
    const ProtobufCMessageDescriptor *request_type;
    rpc_handler handler;
    void *ctx;
};

/* Creates a server; methods[] (and the strings in it) must outlive it.
 * Health/Check is added and answers SERVING for "" and for each service
 * named in the method paths. max_concurrent_calls (<= 0: 64) bounds running
 * handlers, and so handler threads; a call beyond it gets RESOURCE_EXHAUSTED
 * at once, never a place in a queue. A thread whose handler returned waits
 * for the next call; up to 16 (at most max_concurrent_calls) wait, the rest
 * exit. */
struct rpc_server *rpc_server_new(const struct rpc_method *methods, size_t nmethods,
                                  int max_concurrent_calls);

/* Binds a Unix socket at path (mode 0660; a stale socket file is replaced,
 * a live one is an error), accepts connections itself and records each
 * peer's SO_PEERCRED. Call before rpc_server_start. 0 or -1 (errno). */
int rpc_server_listen_unix(struct rpc_server *s, const char *path);

/* Binds a TCP address ("127.0.0.1:0", "[::]:8443", "0.0.0.0:8443") with
 * mutual TLS from tls (never plaintext). Every call on it is verified with
 * tls_server_verify_call before its handler runs (see struct rpc_peer).
 * One tls_server per rpc_server (more ports may share it); it must outlive
 * the server. Port reuse is off, so a port another server holds fails.
 * Call before rpc_server_start. Returns the bound port, or -1 with errno
 * (EINVAL: started already, or another tls_server; EADDRINUSE: gRPC could
 * not bind, which it does not explain: a busy port or a bad address). */
int rpc_server_listen_tls(struct rpc_server *s, const char *host_port, struct tls_server *tls);

/* Starts serving. 0 or -1. */
int rpc_server_start(struct rpc_server *s);

/* A server's stop, in phases, for rpc_server_set_drain. */
enum rpc_drain_phase {
    RPC_DRAIN_START,      /* no new call is admitted from now on */
    RPC_DRAIN_GRACE_OVER, /* calls still running: end them now (they get a while more) */
};
typedef void (*rpc_drain_fn)(void *ctx, enum rpc_drain_phase phase);

/* How rpc_server_run stops: first it stops admitting calls (the Unix
 * listeners close and their socket files go; a call that comes anyway, on an
 * open connection or through a TLS port, is refused UNAVAILABLE "server
 * shutting down") and calls fn(RPC_DRAIN_START); the calls in
 * flight get grace_ms to finish. Calls still running then: fn(ctx,
 * RPC_DRAIN_GRACE_OVER), which should make their handlers return soon; 15 s
 * later whatever still runs is cancelled. A second rpc_server_stop ends the
 * grace early. fn runs on rpc_server_run's thread and may be NULL. Without
 * this the grace is 0: calls in flight are cancelled at once. Call before
 * rpc_server_run. */
void rpc_server_set_drain(struct rpc_server *s, int grace_ms, rpc_drain_fn fn, void *ctx);

/* Blocks until rpc_server_stop is called (e.g. from a signal-watching
 * thread), then shuts down: drains (see rpc_server_set_drain), cancels the
 * calls still in flight, waits for their handlers to return and joins every
 * handler thread. */
void rpc_server_run(struct rpc_server *s);
/* Async-signal-safe: asks rpc_server_run to return, gracefully (drain); a
 * second call ends the drain's grace at once. */
void rpc_server_stop(struct rpc_server *s);
/* Shuts down as rpc_server_run does, if it has not, and frees everything. No
 * thread of the server's is left when it returns. NULL is a no-op. */
void rpc_server_free(struct rpc_server *s);

/* Call accessors, valid during the handler. */
const struct rpc_peer *rpc_call_peer(const struct rpc_call *call);
/* Sends one message (unary: the response). Blocks until it is on the wire.
 * Returns 0, or -1 if the call is gone (client cancelled / deadline). */
int rpc_call_send(struct rpc_call *call, const ProtobufCMessage *msg);
/* Has the client cancelled or its deadline passed? Never blocks. */
bool rpc_call_cancelled(struct rpc_call *call);
/* Records the status message; returns code, for `return rpc_call_fail(…)`. */
grpc_status_code rpc_call_fail(struct rpc_call *call, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------ client */

struct rpc_channel;

/* target: "unix:/path" or "unix:///path" (insecure local transport). */
struct rpc_channel *rpc_channel_new(const char *target);

/* A channel with mutual TLS: target is "host:port", "dns:host:port",
 * "ipv4:1.2.3.4:port" or "ipv6:[::1]:port"; files, expected_server_id and
 * trust_domain as for tls_client_credentials (lib/tls.h): the server must
 * present a certificate chained to files->bundle whose SPIFFE ID is
 * expected_server_id, or any ID in trust_domain when that is NULL. A server
 * that fails this makes calls fail UNAVAILABLE with the reason in the status
 * message. The connection is made at the first call. NULL with err. */
struct rpc_channel *rpc_channel_new_tls(const char *target, const struct tls_files *files,
                                        const char *expected_server_id, const char *trust_domain,
                                        char *err, size_t errlen);

void rpc_channel_free(struct rpc_channel *ch);

/* One unary call. On GRPC_STATUS_OK *response is set (free it with
 * protobuf_c_message_free_unpacked(*response, NULL)). status->message says
 * what went wrong otherwise. timeout_ms bounds the whole call. */
grpc_status_code rpc_unary(struct rpc_channel *ch, const char *method,
                           const ProtobufCMessage *request,
                           const ProtobufCMessageDescriptor *response_type,
                           ProtobufCMessage **response, int timeout_ms,
                           struct rpc_status *status);

struct rpc_stream;

/* Starts a server-streaming call. NULL only on allocation failure; errors
 * surface from rpc_stream_next / rpc_stream_finish. */
struct rpc_stream *rpc_stream_start(struct rpc_channel *ch, const char *method,
                                    const ProtobufCMessage *request, int timeout_ms);
/* Next message: 1 and *msg set (free with protobuf_c_message_free_unpacked),
 * 0 at end of stream, -1 on error (see rpc_stream_finish). */
int rpc_stream_next(struct rpc_stream *st, const ProtobufCMessageDescriptor *type,
                    ProtobufCMessage **msg);
/* Cancels if still running, reads the final status, frees the stream. */
grpc_status_code rpc_stream_finish(struct rpc_stream *st, struct rpc_status *status);

/* Name of a status code ("UNAVAILABLE"). */
const char *rpc_status_name(grpc_status_code code);

#endif

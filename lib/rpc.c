/*
 * rpc.c - gRPC C core glue: a server that runs each call's handler on a
 * thread of its own, reusing finished handler threads, for registered unary
 * and server-streaming methods; Unix listeners that record SO_PEERCRED, TLS
 * listeners whose callers are verified per call (lib/tls.c), the health
 * service, and blocking client calls. See rpc.h for the contract.
 *
 * Server shape (gRPC 1.51): one "next" completion queue receives new-call
 * notifications; each pending request owns a pluck queue that becomes the
 * call's queue, so the handler thread drives its call with blocking plucks.
 * A generic request is always pending so unknown methods get UNIMPLEMENTED.
 *
 * Handler threads: rpc_server_run's thread hands each new call to a parked
 * (idle) handler thread, or starts one; a thread whose handler returned parks
 * for the next call, unless IDLE_THREADS_MAX are parked already, in which
 * case it exits. Creating a thread costs the kernel a stack mmap, page faults
 * and, at exit, an munmap with TLB flushes: on a paravirtualized VM that was
 * most of credd's CPU under Mint load when every call had a new thread.
 */
#include "rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "grpc/health/v1/health.pb-c.h"
#include "util.h"

#define HEALTH_CHECK_PATH "/grpc.health.v1.Health/Check"
#define MAX_LISTENERS 4
/* Parked handler threads kept for the next calls (fewer if the server allows
 * fewer calls). Enough for the concurrency a 2-core daemon sustains on short
 * calls; a burst beyond it pays for its extra threads once, and they go when
 * it ends, so idle threads hold a few MiB at most. */
#define IDLE_THREADS_MAX 16
#define HANDLER_THREAD_NAME "rpc-call" /* in /proc/PID/task/TID/comm, top -H */
/* After a drain's grace: how long the handlers told to end get before their
 * calls are cancelled. */
#define RPC_DRAIN_FINISH_MS 15000

/* ---------------------------------------------------------- byte buffers */

/* Packs msg into a new byte buffer. */
static grpc_byte_buffer *pack_message(const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    grpc_slice slice = grpc_slice_malloc(len);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(slice));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    return bb;
}

/* True if msg, or any message inside it, carries fields its schema does not
 * know: a peer speaking another contract version, or garbage that happened
 * to parse. We refuse rather than silently drop what the caller asked for. */
static bool has_unknown_fields(const ProtobufCMessage *msg)
{
    if (msg->n_unknown_fields > 0)
        return true;
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        const char *base = (const char *)msg;
        /* A oneof member is only there when the case names it. */
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (items[k] && has_unknown_fields(items[k]))
                    return true;
        } else {
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);
            if (sub && has_unknown_fields(sub))
                return true;
        }
    }
    return false;
}

/* Unpacks a byte buffer. NULL on a bad encoding or unknown fields. */
static ProtobufCMessage *unpack_message(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *type)
{
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return NULL;
    grpc_slice slice = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    ProtobufCMessage *msg = protobuf_c_message_unpack(type, NULL, GRPC_SLICE_LENGTH(slice),
                                                      GRPC_SLICE_START_PTR(slice));
    grpc_slice_unref(slice);
    if (msg && has_unknown_fields(msg)) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return NULL;
    }
    return msg;
}

static void slice_to_cstr(grpc_slice s, char *out, size_t outlen)
{
    size_t n = GRPC_SLICE_LENGTH(s);
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, GRPC_SLICE_START_PTR(s), n);
    out[n] = '\0';
}

static gpr_timespec deadline_after_ms(int timeout_ms)
{
    if (timeout_ms < 0)
        return gpr_inf_future(GPR_CLOCK_REALTIME);
    return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}

const char *rpc_status_name(grpc_status_code code)
{
    static const char *const names[] = {
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    if ((unsigned)code < sizeof names / sizeof names[0])
        return names[code];
    return "UNKNOWN";
}

/* ------------------------------------------------------------------ server */

/* A request posted to the server, waiting for a call. Becomes the call. */
struct pending {
    struct rpc_server *server;
    const struct rpc_method *method; /* NULL: generic (unknown method) */
    void *registered;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_call_details details; /* generic only */
    grpc_metadata_array metadata;
    grpc_byte_buffer *payload;
    grpc_completion_queue *cq; /* pluck queue bound to the call */
};

struct rpc_call {
    struct pending *p;
    struct rpc_peer peer;
    int close_tag;                /* address used as tag */
    int cancelled;                /* from RECV_CLOSE_ON_SERVER */
    bool closed;                  /* RECV_CLOSE_ON_SERVER completed */
    bool initial_metadata_sent;
    grpc_byte_buffer *unary_response;
    grpc_status_code code;
    char message[RPC_STATUS_MESSAGE_MAX];
};

/* A handler thread. Joinable: shutdown, or rpc_server_run's thread for one
 * that exited on its own, joins it and frees this. */
struct handler_thread {
    struct rpc_server *server;
    pthread_t thread;
    pthread_cond_t wake;          /* call set, or the server is stopping */
    struct pending *call;         /* the call to serve next; NULL while parked */
    struct handler_thread *next;  /* on the server's idle or exited list */
};

/* Credentials of the connection behind each fd we handed to gRPC. Indexed by
 * fd: a fd number is only reused after gRPC closed it, which it does only
 * once no call holds the connection, so a live call always reads the entry
 * of its own connection. */
struct peer_table {
    pthread_mutex_t lock;
    struct rpc_peer *by_fd;
    size_t cap;
};

struct rpc_server {
    grpc_server *server;
    grpc_completion_queue *cq;
    grpc_server_credentials *fd_creds;
    const struct rpc_method *methods;
    size_t nmethods;
    struct rpc_method health;
    void **registered; /* per method, health last */
    int max_calls;

    int listen_fds[MAX_LISTENERS];
    char listen_paths[MAX_LISTENERS][sizeof(((struct sockaddr_un *)0)->sun_path)];
    size_t nlisten;
    int wake_pipe[2];
    pthread_t acceptor;
    bool acceptor_running;

    struct peer_table peers;
    struct tls_server *tls; /* of the TLS listeners, if any; not owned */

    /* Handler threads; all under lock. A thread is running a handler
     * (counted in active_calls), parked on idle, or on exited (returned or
     * about to, not yet joined). Threads are only started when none is
     * parked, so running + parked never exceeds max_calls. */
    pthread_mutex_t lock;
    pthread_cond_t calls_done;      /* active_calls fell to 0 */
    int active_calls;               /* handlers dispatched and not finished */
    struct handler_thread *idle;    /* parked, the most recently parked first */
    int nidle, max_idle;
    struct handler_thread *exited;
    bool stopping;                  /* shutting down: no thread parks */
    volatile sig_atomic_t stop;     /* rpc_server_stop calls: 1 drain, 2 end the grace */
    bool started;
    bool shut_down;

    /* Draining (rpc_server_set_drain): no new calls, the running ones get
     * drain_grace_ms to finish before drain_fn hears the grace is over. */
    int drain_grace_ms;
    rpc_drain_fn drain_fn;
    void *drain_ctx;
};

static int post_request(struct rpc_server *s, const struct rpc_method *m, void *registered);
static void server_drain(struct rpc_server *s);
static void server_shutdown(struct rpc_server *s);

static grpc_status_code health_check(struct rpc_call *call, const ProtobufCMessage *request, void *ctx)
{
    const Grpc__Health__V1__HealthCheckRequest *req = (const void *)request;
    struct rpc_server *s = ctx;
    bool known = req->service == NULL || req->service[0] == '\0';
    size_t svclen = known ? 0 : strlen(req->service);
    for (size_t i = 0; !known && i < s->nmethods; i++) {
        const char *path = s->methods[i].path; /* "/pkg.Service/Method" */
        known = strncmp(path + 1, req->service, svclen) == 0 && path[1 + svclen] == '/';
    }
    if (!known)
        return rpc_call_fail(call, GRPC_STATUS_NOT_FOUND, "unknown service");
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    rpc_call_send(call, &resp.base);
    return GRPC_STATUS_OK;
}

struct rpc_server *rpc_server_new(const struct rpc_method *methods, size_t nmethods,
                                  int max_concurrent_calls)
{
    struct rpc_server *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->methods = methods;
    s->nmethods = nmethods;
    s->max_calls = max_concurrent_calls > 0 ? max_concurrent_calls : 64;
    s->max_idle = s->max_calls < IDLE_THREADS_MAX ? s->max_calls : IDLE_THREADS_MAX;
    s->wake_pipe[0] = s->wake_pipe[1] = -1;
    s->health = (struct rpc_method){HEALTH_CHECK_PATH, RPC_UNARY,
                                    &grpc__health__v1__health_check_request__descriptor,
                                    health_check, s};
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->calls_done, NULL);
    pthread_mutex_init(&s->peers.lock, NULL);

    grpc_arg args[] = {{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0}};
    grpc_channel_args cargs = {1, args};
    s->server = grpc_server_create(&cargs, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    s->fd_creds = grpc_insecure_server_credentials_create();
    s->registered = calloc(nmethods + 1, sizeof *s->registered);
    if (!s->server || !s->cq || !s->fd_creds || !s->registered || pipe2(s->wake_pipe, O_CLOEXEC) != 0)
        goto fail;
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    for (size_t i = 0; i <= nmethods; i++) {
        const struct rpc_method *m = i < nmethods ? &methods[i] : &s->health;
        s->registered[i] = grpc_server_register_method(
            s->server, m->path, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
        if (!s->registered[i])
            goto fail;
    }
    return s;
fail:
    rpc_server_free(s);
    return NULL;
}

int rpc_server_listen_unix(struct rpc_server *s, const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (s->nlisten == MAX_LISTENERS || strlen(path) >= sizeof addr.sun_path) {
        errno = s->nlisten == MAX_LISTENERS ? EMFILE : ENAMETOOLONG;
        return -1;
    }
    strcpy(addr.sun_path, path);

    /* A live socket at path belongs to another server: refuse, don't steal it. */
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return -1;
    int live = connect(probe, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(probe);
    if (live) {
        errno = EADDRINUSE;
        return -1;
    }
    if (unlink(path) != 0 && errno != ENOENT)
        return -1;

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    /* No one can connect before listen(), so chmod after bind is race-free. */
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || chmod(path, 0660) != 0 ||
        listen(fd, 128) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    s->listen_fds[s->nlisten] = fd;
    strcpy(s->listen_paths[s->nlisten], path);
    s->nlisten++;
    return 0;
}

static void peer_table_set(struct peer_table *t, int fd, const struct rpc_peer *peer)
{
    pthread_mutex_lock(&t->lock);
    if ((size_t)fd >= t->cap) {
        size_t cap = t->cap ? t->cap : 64;
        while (cap <= (size_t)fd)
            cap *= 2;
        struct rpc_peer *grown = realloc(t->by_fd, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&t->lock);
            return; /* the call will find no credentials and be refused */
        }
        memset(grown + t->cap, 0, (cap - t->cap) * sizeof *grown);
        t->by_fd = grown;
        t->cap = cap;
    }
    t->by_fd[fd] = *peer;
    pthread_mutex_unlock(&t->lock);
}

/* Fills peer for a new call. Connections we accepted on a Unix socket show
 * as "fd:N" (their credentials are in the table); every other connection
 * came through a TLS listener ("ipv4:…", "ipv6:…") and has its certificate
 * verified here, so no TLS call reaches a handler unverified. */
static void peer_identify(struct rpc_server *s, grpc_call *call, struct rpc_peer *peer)
{
    memset(peer, 0, sizeof *peer);
    char *name = grpc_call_get_peer(call);
    if (!name)
        return;
    bool unix_fd = strncmp(name, "fd:", 3) == 0;
    char *end = NULL;
    long fd = -1;
    if (unix_fd) {
        errno = 0;
        fd = strtol(name + 3, &end, 10);
        if (errno || end == name + 3 || *end != '\0')
            fd = -1;
    }
    gpr_free(name);
    if (unix_fd) {
        pthread_mutex_lock(&s->peers.lock);
        if (fd >= 0 && (size_t)fd < s->peers.cap)
            *peer = s->peers.by_fd[fd];
        pthread_mutex_unlock(&s->peers.lock);
        return;
    }
    if (!s->tls) {
        snprintf(peer->auth_error, sizeof peer->auth_error, "connection from an unknown transport");
        return;
    }
    peer->transport = RPC_TRANSPORT_TLS;
    peer->authenticated = tls_server_verify_call(s->tls, call, peer->spiffe_id,
                                                 sizeof peer->spiffe_id, peer->auth_error,
                                                 sizeof peer->auth_error) == 0;
}

static void *acceptor_main(void *arg)
{
    struct rpc_server *s = arg;
    struct pollfd pfds[MAX_LISTENERS + 1];
    for (size_t i = 0; i < s->nlisten; i++)
        pfds[i] = (struct pollfd){.fd = s->listen_fds[i], .events = POLLIN};
    pfds[s->nlisten] = (struct pollfd){.fd = s->wake_pipe[0], .events = POLLIN};

    for (;;) {
        if (poll(pfds, s->nlisten + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("rpc: poll");
            return NULL;
        }
        if (pfds[s->nlisten].revents)
            return NULL;
        for (size_t i = 0; i < s->nlisten; i++) {
            if (!(pfds[i].revents & POLLIN))
                continue;
            /* gRPC stalls on a blocking fd: the connection must be non-blocking. */
            int fd = accept4(pfds[i].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                    perror("rpc: accept4");
                if (errno == EMFILE || errno == ENFILE)
                    usleep(100 * 1000);
                continue;
            }
            struct ucred cred;
            socklen_t len = sizeof cred;
            struct rpc_peer peer = {0};
            if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
                close(fd);
                continue;
            }
            peer.transport = RPC_TRANSPORT_UNIX;
            peer.has_ucred = true;
            peer.pid = cred.pid;
            peer.uid = cred.uid;
            peer.gid = cred.gid;
            char link[64];
            snprintf(link, sizeof link, "/proc/%d/exe", (int)cred.pid);
            ssize_t n = readlink(link, peer.exe, sizeof peer.exe - 1);
            peer.exe[n > 0 ? n : 0] = '\0';
            peer_table_set(&s->peers, fd, &peer);
            grpc_server_add_channel_from_fd(s->server, fd, s->fd_creds);
        }
    }
}

int rpc_server_listen_tls(struct rpc_server *s, const char *host_port, struct tls_server *tls)
{
    if (s->started || !tls || (s->tls && s->tls != tls)) {
        errno = EINVAL;
        return -1;
    }
    grpc_server_credentials *creds = tls_server_credentials(tls);
    if (!creds) {
        errno = ENOMEM;
        return -1;
    }
    int port = grpc_server_add_http2_port(s->server, host_port, creds);
    grpc_server_credentials_release(creds);
    if (port <= 0) {
        errno = EADDRINUSE;
        return -1;
    }
    s->tls = tls;
    return port;
}

int rpc_server_start(struct rpc_server *s)
{
    grpc_server_start(s->server);
    s->started = true;
    for (size_t i = 0; i <= s->nmethods; i++) {
        const struct rpc_method *m = i < s->nmethods ? &s->methods[i] : &s->health;
        if (post_request(s, m, s->registered[i]) != 0)
            return -1;
    }
    if (post_request(s, NULL, NULL) != 0)
        return -1;
    if (s->nlisten > 0) {
        if (pthread_create(&s->acceptor, NULL, acceptor_main, s) != 0)
            return -1;
        s->acceptor_running = true;
    }
    return 0;
}

static int post_request(struct rpc_server *s, const struct rpc_method *m, void *registered)
{
    struct pending *p = calloc(1, sizeof *p);
    if (!p)
        return -1;
    p->server = s;
    p->method = m;
    p->registered = registered;
    p->cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_metadata_array_init(&p->metadata);
    grpc_call_details_init(&p->details);
    grpc_call_error err;
    if (m)
        err = grpc_server_request_registered_call(s->server, registered, &p->call, &p->deadline,
                                                  &p->metadata, &p->payload, p->cq, s->cq, p);
    else
        err = grpc_server_request_call(s->server, &p->call, &p->details, &p->metadata, p->cq,
                                       s->cq, p);
    if (err != GRPC_CALL_OK) {
        fprintf(stderr, "rpc: request_call: %d\n", err);
        grpc_metadata_array_destroy(&p->metadata);
        grpc_call_details_destroy(&p->details);
        grpc_completion_queue_destroy(p->cq);
        free(p);
        return -1;
    }
    return 0;
}

static void pending_free(struct pending *p)
{
    if (p->payload)
        grpc_byte_buffer_destroy(p->payload);
    grpc_metadata_array_destroy(&p->metadata);
    grpc_call_details_destroy(&p->details);
    if (p->call)
        grpc_call_unref(p->call);
    grpc_completion_queue_shutdown(p->cq);
    while (grpc_completion_queue_pluck(p->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(p->cq);
    free(p);
}

/* Runs one batch on the call's queue and waits for it. */
static bool run_batch(struct rpc_call *c, const grpc_op *ops, size_t nops)
{
    void *tag = (void *)ops;
    if (grpc_call_start_batch(c->p->call, ops, nops, tag, NULL) != GRPC_CALL_OK)
        return false;
    grpc_event ev = grpc_completion_queue_pluck(c->p->cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

const struct rpc_peer *rpc_call_peer(const struct rpc_call *call)
{
    return &call->peer;
}

bool rpc_call_cancelled(struct rpc_call *c)
{
    if (!c->closed) {
        grpc_event ev = grpc_completion_queue_pluck(c->p->cq, &c->close_tag, gpr_inf_past(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            c->closed = true;
    }
    if (c->closed && c->cancelled)
        return true;
    gpr_timespec deadline = gpr_convert_clock_type(c->p->deadline, GPR_CLOCK_REALTIME);
    return gpr_time_cmp(gpr_now(GPR_CLOCK_REALTIME), deadline) > 0;
}

grpc_status_code rpc_call_fail(struct rpc_call *c, grpc_status_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->message, sizeof c->message, fmt, ap);
    va_end(ap);
    c->code = code;
    return code;
}

int rpc_call_send(struct rpc_call *c, const ProtobufCMessage *msg)
{
    if (c->p->method->kind == RPC_UNARY) {
        if (c->unary_response)
            grpc_byte_buffer_destroy(c->unary_response);
        c->unary_response = pack_message(msg);
        return 0;
    }
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c->initial_metadata_sent) {
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->initial_metadata_sent = true;
    }
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = pack_message(msg);
    bool ok = run_batch(c, ops, n);
    grpc_byte_buffer_destroy(ops[n - 1].data.send_message.send_message);
    return ok ? 0 : -1;
}

/* Answers a call whose handler never runs (unknown method, overload). */
static void reject_call(struct pending *p, grpc_status_code code, const char *message)
{
    struct rpc_call c = {.p = p};
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[1].data.recv_close_on_server.cancelled = &c.cancelled;
    grpc_slice details = grpc_slice_from_copied_string(message);
    ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[2].data.send_status_from_server.status = code;
    ops[2].data.send_status_from_server.status_details = &details;
    run_batch(&c, ops, 3);
    grpc_slice_unref(details);
}

static void serve_call(struct pending *p)
{
    struct rpc_server *s = p->server;
    const struct rpc_method *m = p->method;
    struct rpc_call c = {.p = p, .code = GRPC_STATUS_OK};
    peer_identify(s, p->call, &c.peer);

    grpc_op close_op = {.op = GRPC_OP_RECV_CLOSE_ON_SERVER};
    close_op.data.recv_close_on_server.cancelled = &c.cancelled;
    if (grpc_call_start_batch(p->call, &close_op, 1, &c.close_tag, NULL) != GRPC_CALL_OK) {
        pending_free(p);
        return;
    }

    ProtobufCMessage *request = p->payload ? unpack_message(p->payload, m->request_type) : NULL;
    if (!request)
        rpc_call_fail(&c, GRPC_STATUS_INVALID_ARGUMENT,
                      "request is not a valid %s (bad encoding or unknown fields)",
                      m->request_type->name);
    else
        c.code = m->handler(&c, request, m->ctx);
    if (c.code == GRPC_STATUS_OK && m->kind == RPC_UNARY && !c.unary_response)
        rpc_call_fail(&c, GRPC_STATUS_INTERNAL, "handler produced no response");

    grpc_op ops[3];
    size_t n = 0;
    memset(ops, 0, sizeof ops);
    if (!c.initial_metadata_sent)
        ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (c.code == GRPC_STATUS_OK && c.unary_response) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = c.unary_response;
    }
    grpc_slice details = grpc_slice_from_copied_string(c.message);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = c.code;
    ops[n++].data.send_status_from_server.status_details = &details;
    run_batch(&c, ops, n);
    grpc_slice_unref(details);
    if (c.unary_response)
        grpc_byte_buffer_destroy(c.unary_response);
    if (!c.closed)
        grpc_completion_queue_pluck(p->cq, &c.close_tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (request)
        protobuf_c_message_free_unpacked(request, NULL);
    pending_free(p);
}

/* With s->lock held: a handler has finished (or never started). */
static void call_done_locked(struct rpc_server *s)
{
    if (--s->active_calls == 0)
        pthread_cond_broadcast(&s->calls_done);
}

/* Joins the threads on list and frees them. Without s->lock. */
static void join_threads(struct handler_thread *list)
{
    while (list) {
        struct handler_thread *t = list;
        list = t->next;
        pthread_join(t->thread, NULL);
        pthread_cond_destroy(&t->wake);
        free(t);
    }
}

/* Joins the threads that exited on their own since the last time. */
static void reap_exited(struct rpc_server *s)
{
    pthread_mutex_lock(&s->lock);
    struct handler_thread *exited = s->exited;
    s->exited = NULL;
    pthread_mutex_unlock(&s->lock);
    join_threads(exited);
}

/* Serves the call it was started with, then parks for the next until the
 * server stops or enough threads are parked already. */
static void *handler_thread_main(void *arg)
{
    struct handler_thread *t = arg;
    struct rpc_server *s = t->server;
    pthread_setname_np(pthread_self(), HANDLER_THREAD_NAME);
    pthread_mutex_lock(&s->lock);
    for (;;) {
        struct pending *p = t->call;
        t->call = NULL;
        pthread_mutex_unlock(&s->lock);
        serve_call(p);
        pthread_mutex_lock(&s->lock);
        call_done_locked(s);
        if (s->stopping || s->nidle >= s->max_idle)
            break;
        t->next = s->idle;
        s->idle = t;
        s->nidle++;
        while (!t->call && !s->stopping)
            pthread_cond_wait(&t->wake, &s->lock);
        if (!t->call) { /* still on the idle list: shutdown joins it from there */
            pthread_mutex_unlock(&s->lock);
            return NULL;
        }
    }
    t->next = s->exited;
    s->exited = t;
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Serves p (already counted in active_calls) on a new handler thread, or
 * rejects it if there is none to be had. */
static void start_handler_thread(struct rpc_server *s, struct pending *p)
{
    struct handler_thread *t = calloc(1, sizeof *t);
    if (t) {
        t->server = s;
        t->call = p;
        pthread_cond_init(&t->wake, NULL);
        if (pthread_create(&t->thread, NULL, handler_thread_main, t) == 0)
            return;
        pthread_cond_destroy(&t->wake);
        free(t);
    }
    reject_call(p, GRPC_STATUS_RESOURCE_EXHAUSTED, "server busy: cannot start a thread");
    pending_free(p);
    pthread_mutex_lock(&s->lock);
    call_done_locked(s);
    pthread_mutex_unlock(&s->lock);
}

/* A new call arrived on pending p: serve it on a handler thread of its own,
 * a parked one if there is one. */
static void dispatch(struct rpc_server *s, struct pending *p)
{
    if (!p->method) {
        char path[256];
        slice_to_cstr(p->details.method, path, sizeof path);
        char msg[320];
        snprintf(msg, sizeof msg, "unknown method %s", path);
        reject_call(p, GRPC_STATUS_UNIMPLEMENTED, msg);
        pending_free(p);
        return;
    }
    pthread_mutex_lock(&s->lock);
    bool full = s->active_calls >= s->max_calls;
    struct handler_thread *t = NULL;
    if (!full) {
        s->active_calls++;
        if ((t = s->idle) != NULL) {
            s->idle = t->next;
            s->nidle--;
            t->call = p;
        }
    }
    struct handler_thread *exited = s->exited;
    s->exited = NULL;
    pthread_mutex_unlock(&s->lock);
    /* t cannot be freed meanwhile: only this thread joins handler threads. */
    if (full) {
        reject_call(p, GRPC_STATUS_RESOURCE_EXHAUSTED, "server busy: too many concurrent calls");
        pending_free(p);
    } else if (t) {
        pthread_cond_signal(&t->wake);
    } else {
        start_handler_thread(s, p);
    }
    join_threads(exited);
}

void rpc_server_run(struct rpc_server *s)
{
    while (!s->stop) {
        grpc_event ev = grpc_completion_queue_next(s->cq, deadline_after_ms(200), NULL);
        if (ev.type != GRPC_OP_COMPLETE) {
            reap_exited(s); /* quiet: join what a burst left, not only at the next call */
            continue;
        }
        struct pending *p = ev.tag;
        if (!ev.success) {
            pending_free(p);
            continue;
        }
        /* Re-arm first so the method is never without a pending request. */
        if (post_request(s, p->method, p->registered) != 0)
            fprintf(stderr, "rpc: cannot re-arm %s\n", p->method ? p->method->path : "generic");
        dispatch(s, p);
    }
    server_drain(s);
    server_shutdown(s);
}

/* Stops the acceptor and closes the Unix listeners (removing their socket
 * files): a connect from now on is refused. Connections already handed to
 * gRPC stay. */
static void stop_listening(struct rpc_server *s)
{
    if (s->acceptor_running) {
        ssize_t w = write(s->wake_pipe[1], "x", 1);
        (void)w;
        pthread_join(s->acceptor, NULL);
        s->acceptor_running = false;
    }
    for (size_t i = 0; i < s->nlisten; i++) {
        if (s->listen_fds[i] < 0)
            continue;
        close(s->listen_fds[i]);
        s->listen_fds[i] = -1;
        unlink(s->listen_paths[i]);
    }
}

/* While draining: a new call is refused UNAVAILABLE (a client may retry it
 * elsewhere), and its method re-armed so the next one is refused too. */
static void refuse_new_call(struct rpc_server *s, grpc_event ev)
{
    if (ev.type != GRPC_OP_COMPLETE)
        return;
    struct pending *p = ev.tag;
    if (ev.success) {
        if (post_request(s, p->method, p->registered) != 0)
            fprintf(stderr, "rpc: cannot re-arm %s\n", p->method ? p->method->path : "generic");
        reject_call(p, GRPC_STATUS_UNAVAILABLE, "server shutting down");
    }
    pending_free(p);
}

/* Serves the new-call queue (refusing) until no handler runs, until_ms
 * (monotonic) passes, or rpc_server_stop is called once more (when hurry).
 * true when every handler has returned. */
static bool wait_calls(struct rpc_server *s, int64_t until_ms, bool hurry)
{
    for (;;) {
        pthread_mutex_lock(&s->lock);
        int active = s->active_calls;
        pthread_mutex_unlock(&s->lock);
        if (active == 0)
            return true;
        int64_t left = until_ms - monotonic_ms();
        if (left <= 0 || (hurry && s->stop > 1))
            return false;
        refuse_new_call(s, grpc_completion_queue_next(s->cq, deadline_after_ms(left < 100 ? (int)left : 100), NULL));
        reap_exited(s);
    }
}

/* The graceful part of a stop: no new connections, new calls refused, the
 * running ones get the grace to finish, then drain_fn is told to end them
 * and they get a while more. gRPC itself is shut down after, by
 * server_shutdown: shut down now, it would cancel calls that come on open
 * connections (CANCELLED, which clients do not retry) instead of refusing
 * them. */
static void server_drain(struct rpc_server *s)
{
    if (!s->started || s->shut_down)
        return;
    stop_listening(s);
    if (s->drain_fn)
        s->drain_fn(s->drain_ctx, RPC_DRAIN_START);
    if (wait_calls(s, monotonic_ms() + s->drain_grace_ms, true) || !s->drain_fn)
        return;
    s->drain_fn(s->drain_ctx, RPC_DRAIN_GRACE_OVER);
    wait_calls(s, monotonic_ms() + RPC_DRAIN_FINISH_MS, false);
}

/* Stops accepting, cancels calls in flight, waits for their handlers, then
 * stops and joins every handler thread. */
static void server_shutdown(struct rpc_server *s)
{
    if (!s->started || s->shut_down)
        return;
    s->shut_down = true;
    stop_listening(s);
    int shutdown_tag;
    grpc_server_shutdown_and_notify(s->server, s->cq, &shutdown_tag);
    grpc_server_cancel_all_calls(s->server);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE || ev.tag == &shutdown_tag)
            break;
        pending_free(ev.tag); /* requests that never got a call */
    }
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    for (struct handler_thread *t = s->idle; t; t = t->next)
        pthread_cond_signal(&t->wake);
    while (s->active_calls > 0)
        pthread_cond_wait(&s->calls_done, &s->lock);
    /* Every thread is now parked-and-woken or on exited: none parks again. */
    struct handler_thread *idle = s->idle, *exited = s->exited;
    s->idle = s->exited = NULL;
    s->nidle = 0;
    pthread_mutex_unlock(&s->lock);
    join_threads(idle);
    join_threads(exited);
}

void rpc_server_set_drain(struct rpc_server *s, int grace_ms, rpc_drain_fn fn, void *ctx)
{
    s->drain_grace_ms = grace_ms > 0 ? grace_ms : 0;
    s->drain_fn = fn;
    s->drain_ctx = ctx;
}

void rpc_server_stop(struct rpc_server *s)
{
    if (s->stop < 2)
        s->stop = s->stop + 1;
}

void rpc_server_free(struct rpc_server *s)
{
    if (!s)
        return;
    server_shutdown(s);
    if (s->server)
        grpc_server_destroy(s->server);
    if (s->cq) {
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(s->cq);
    }
    if (s->fd_creds)
        grpc_server_credentials_release(s->fd_creds);
    stop_listening(s);
    if (s->wake_pipe[0] >= 0) {
        close(s->wake_pipe[0]);
        close(s->wake_pipe[1]);
    }
    free(s->registered);
    free(s->peers.by_fd);
    pthread_mutex_destroy(&s->peers.lock);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->calls_done);
    free(s);
}

/* ------------------------------------------------------------------ client */

struct rpc_channel {
    grpc_channel *channel;
};

/* Reconnect quickly once a server is back: gRPC's default backoff grows to
 * 120 s, so a daemon restarted after a crash would stay unreachable for up
 * to two minutes. 100 ms first, then growing (x1.6, jittered) to at most 2 s.
 * GRPC_ARG_MIN_RECONNECT_BACKOFF_MS is really gRPC's minimum *connect
 * timeout*: kept at its default 20 s, or a busy server that is slow to send
 * its HTTP/2 SETTINGS would fail every attempt. (A server that is down
 * refuses at once, so this does not slow recovery.) */
#define RECONNECT_INITIAL_MS 100
#define RECONNECT_MAX_MS 2000
#define CONNECT_TIMEOUT_MS 20000

static grpc_channel *channel_create(const char *target, grpc_channel_credentials *creds)
{
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
         .value.integer = RECONNECT_INITIAL_MS},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
         .value.integer = CONNECT_TIMEOUT_MS},
        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
         .value.integer = RECONNECT_MAX_MS},
    };
    const grpc_channel_args chargs = {sizeof args / sizeof args[0], args};
    return grpc_channel_create(target, creds, &chargs);
}

struct rpc_channel *rpc_channel_new(const char *target)
{
    struct rpc_channel *ch = calloc(1, sizeof *ch);
    if (!ch)
        return NULL;
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    ch->channel = channel_create(target, creds);
    grpc_channel_credentials_release(creds);
    if (!ch->channel) {
        free(ch);
        return NULL;
    }
    return ch;
}

struct rpc_channel *rpc_channel_new_tls(const char *target, const struct tls_files *files,
                                        const char *expected_server_id, const char *trust_domain,
                                        char *err, size_t errlen)
{
    grpc_channel_credentials *creds =
        tls_client_credentials(files, expected_server_id, trust_domain, err, errlen);
    if (!creds)
        return NULL;
    struct rpc_channel *ch = calloc(1, sizeof *ch);
    if (ch)
        ch->channel = channel_create(target, creds);
    grpc_channel_credentials_release(creds);
    if (!ch || !ch->channel) {
        err_set(err, errlen, "cannot create a channel to %s", target);
        free(ch);
        return NULL;
    }
    return ch;
}

void rpc_channel_free(struct rpc_channel *ch)
{
    if (!ch)
        return;
    grpc_channel_destroy(ch->channel);
    free(ch);
}

static void status_set(struct rpc_status *st, grpc_status_code code, const char *msg)
{
    if (!st)
        return;
    st->code = code;
    snprintf(st->message, sizeof st->message, "%s", msg);
}

struct rpc_stream {
    grpc_completion_queue *cq;
    grpc_call *call;
    grpc_metadata_array initial_md;
    bool ended;
    bool failed_to_start;
};

static grpc_call *start_call(struct rpc_channel *ch, grpc_completion_queue *cq, const char *method,
                             int timeout_ms)
{
    grpc_slice path = grpc_slice_from_copied_string(method);
    grpc_call *call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, cq, path,
                                               NULL, deadline_after_ms(timeout_ms), NULL);
    grpc_slice_unref(path);
    return call;
}

static grpc_status_code finish_status(grpc_call *call, grpc_completion_queue *cq,
                                      struct rpc_status *st)
{
    grpc_status_code code = GRPC_STATUS_UNKNOWN;
    grpc_slice details = grpc_empty_slice();
    grpc_metadata_array trailing;
    grpc_metadata_array_init(&trailing);
    grpc_op op = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
    op.data.recv_status_on_client.status = &code;
    op.data.recv_status_on_client.status_details = &details;
    op.data.recv_status_on_client.trailing_metadata = &trailing;
    int tag;
    if (grpc_call_start_batch(call, &op, 1, &tag, NULL) == GRPC_CALL_OK)
        grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (st) {
        st->code = code;
        slice_to_cstr(details, st->message, sizeof st->message);
    }
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&trailing);
    return code;
}

static void destroy_cq(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

struct rpc_stream *rpc_stream_start(struct rpc_channel *ch, const char *method,
                                    const ProtobufCMessage *request, int timeout_ms)
{
    struct rpc_stream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->cq = grpc_completion_queue_create_for_pluck(NULL);
    st->call = start_call(ch, st->cq, method, timeout_ms);
    grpc_metadata_array_init(&st->initial_md);
    if (!st->call) {
        st->failed_to_start = true;
        return st;
    }
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = pack_message(request);
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &st->initial_md;
    int tag;
    if (grpc_call_start_batch(st->call, ops, 4, &tag, NULL) == GRPC_CALL_OK)
        grpc_completion_queue_pluck(st->cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    else
        st->ended = true;
    grpc_byte_buffer_destroy(ops[1].data.send_message.send_message);
    return st;
}

int rpc_stream_next(struct rpc_stream *st, const ProtobufCMessageDescriptor *type,
                    ProtobufCMessage **msg)
{
    *msg = NULL;
    if (st->failed_to_start || st->ended)
        return 0;
    grpc_byte_buffer *bb = NULL;
    grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
    op.data.recv_message.recv_message = &bb;
    int tag;
    if (grpc_call_start_batch(st->call, &op, 1, &tag, NULL) != GRPC_CALL_OK) {
        st->ended = true;
        return -1;
    }
    grpc_completion_queue_pluck(st->cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (!bb) {
        st->ended = true;
        return 0;
    }
    *msg = unpack_message(bb, type);
    grpc_byte_buffer_destroy(bb);
    if (!*msg) {
        st->ended = true;
        grpc_call_cancel_with_status(st->call, GRPC_STATUS_INTERNAL, "malformed message from server", NULL);
        return -1;
    }
    return 1;
}

grpc_status_code rpc_stream_finish(struct rpc_stream *st, struct rpc_status *status)
{
    grpc_status_code code;
    if (st->failed_to_start) {
        code = GRPC_STATUS_INTERNAL;
        status_set(status, code, "cannot create call");
    } else {
        if (!st->ended)
            grpc_call_cancel(st->call, NULL);
        code = finish_status(st->call, st->cq, status);
    }
    if (st->call)
        grpc_call_unref(st->call);
    grpc_metadata_array_destroy(&st->initial_md);
    destroy_cq(st->cq);
    free(st);
    return code;
}

grpc_status_code rpc_unary(struct rpc_channel *ch, const char *method,
                           const ProtobufCMessage *request,
                           const ProtobufCMessageDescriptor *response_type,
                           ProtobufCMessage **response, int timeout_ms, struct rpc_status *status)
{
    *response = NULL;
    struct rpc_stream *st = rpc_stream_start(ch, method, request, timeout_ms);
    if (!st) {
        status_set(status, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return GRPC_STATUS_RESOURCE_EXHAUSTED;
    }
    ProtobufCMessage *msg = NULL;
    int got = rpc_stream_next(st, response_type, &msg);
    if (got == 1) {
        /* A unary call has exactly one message: read to the end of stream. */
        ProtobufCMessage *extra = NULL;
        if (rpc_stream_next(st, response_type, &extra) != 0) {
            if (extra)
                protobuf_c_message_free_unpacked(extra, NULL);
            protobuf_c_message_free_unpacked(msg, NULL);
            rpc_stream_finish(st, status);
            status_set(status, GRPC_STATUS_INTERNAL, "unary call returned more than one message");
            return GRPC_STATUS_INTERNAL;
        }
    }
    grpc_status_code code = rpc_stream_finish(st, status);
    if (code == GRPC_STATUS_OK && got == 1) {
        *response = msg;
        return code;
    }
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
    if (code == GRPC_STATUS_OK) {
        code = GRPC_STATUS_INTERNAL;
        status_set(status, code, got < 0 ? "malformed response" : "no response message");
    }
    return code;
}

/*
 * fuzz_frame.c - the worker's task-message decoding: the input is what the
 * broker's end of the socket sent (length prefix and airlock.internal.v1.Task
 * bytes), read back with frame_read as worker/main.c does, then frame_read
 * again until the stream ends or fails.
 */
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "airlock/internal/v1/worker.pb-c.h"
#include "frame.h"

#define FUZZ_MAX_INPUT (64u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_INPUT) /* stays within the socket buffer: one write, no blocking */
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    int buf = (int)(FUZZ_MAX_INPUT * 4);
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(sv[1], data + off, size - off);
        if (n <= 0)
            abort();
        off += (size_t)n;
    }
    close(sv[1]); /* the end of stream is part of the input */
    for (int i = 0; i < 8; i++) {
        ProtobufCMessage *msg = NULL;
        /* a small cap, so a length prefix cannot make it allocate much; the
         * worker's wait (all of the input and its end are queued already:
         * a timeout of 0 would time out before the first read) */
        if (frame_read(sv[0], &airlock__internal__v1__task__descriptor, FUZZ_MAX_INPUT, 10000,
                       &msg) != 1)
            break;
        protobuf_c_message_free_unpacked(msg, NULL);
    }
    close(sv[0]);
    return 0;
}

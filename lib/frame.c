/*
 * frame.c - length-prefixed protobuf-c frames on a stream socket.
 */
#include "frame.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

/* write_all, but a dead peer is an error to report rather than a SIGPIPE. */
static int send_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

int frame_write(int fd, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    if (len > FRAME_MAX_BYTES) {
        errno = EMSGSIZE;
        return -1;
    }
    uint8_t *buf = malloc(4 + len);
    if (!buf)
        return -1;
    buf[0] = (uint8_t)(len >> 24);
    buf[1] = (uint8_t)(len >> 16);
    buf[2] = (uint8_t)(len >> 8);
    buf[3] = (uint8_t)len;
    protobuf_c_message_pack(msg, buf + 4);
    int rc = send_all(fd, buf, 4 + len);
    free(buf);
    return rc;
}

/* Reads exactly len bytes before the deadline. Returns len, 0 if the stream
 * ended before the first byte, or -1 (EPROTO: ended mid-way). */
static ssize_t read_exact(int fd, uint8_t *buf, size_t len, int64_t deadline_ms)
{
    size_t got = 0;
    while (got < len) {
        int wait = -1;
        if (deadline_ms >= 0) {
            int64_t left = deadline_ms - monotonic_ms();
            if (left <= 0) {
                errno = ETIMEDOUT;
                return -1;
            }
            wait = left > 60000 ? 60000 : (int)left;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, wait);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return -1;
        if (pr == 0)
            continue;
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -1;
        }
        if (n == 0) {
            if (got == 0)
                return 0;
            errno = EPROTO;
            return -1;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int frame_read(int fd, const ProtobufCMessageDescriptor *type, size_t max_bytes, int timeout_ms,
               ProtobufCMessage **msg)
{
    *msg = NULL;
    int64_t deadline = timeout_ms < 0 ? -1 : monotonic_ms() + timeout_ms;
    uint8_t hdr[4];
    ssize_t n = read_exact(fd, hdr, 4, deadline);
    if (n <= 0)
        return (int)n;
    size_t len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
    if (len > max_bytes || len > FRAME_MAX_BYTES) {
        errno = EMSGSIZE;
        return -1;
    }
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return -1;
    n = len ? read_exact(fd, buf, len, deadline) : 0;
    if (len && n <= 0) {
        if (n == 0)
            errno = EPROTO;
        free(buf);
        return -1;
    }
    *msg = protobuf_c_message_unpack(type, NULL, len, buf);
    free(buf);
    if (!*msg) {
        errno = EPROTO;
        return -1;
    }
    return 1;
}

/*
 * frame.h - protobuf-c messages over a stream socket, each prefixed with its
 * length as 4 big-endian bytes. The one framing used between broker and
 * worker.
 */
#ifndef AIRLOCK_FRAME_H
#define AIRLOCK_FRAME_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* Largest frame either side accepts. */
#define FRAME_MAX_BYTES (16u << 20)

/* Writes one message. 0, or -1 with errno. */
int frame_write(int fd, const ProtobufCMessage *msg);

/* Reads one message of the given type, waiting at most timeout_ms (-1:
 * forever) for the whole frame. Returns 1 with *msg set (free with
 * protobuf_c_message_free_unpacked), 0 at a clean end of stream, -1 with
 * errno: ETIMEDOUT, EMSGSIZE (over max_bytes), EPROTO (truncated frame or a
 * message that does not parse), or the read error. */
int frame_read(int fd, const ProtobufCMessageDescriptor *type, size_t max_bytes, int timeout_ms,
               ProtobufCMessage **msg);

#endif

/*
 * fuzz_requests.c - protobuf-c decoding of every message the daemons, the
 * worker and the CLI accept off the wire: the public requests, the health
 * check, the broker <-> worker messages (worker.proto), and the responses
 * the broker (from credd) and the CLI read. The first byte picks the type;
 * the rest is the message. A message that decodes is packed again (size,
 * then bytes) and freed.
 */
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "airlock/internal/v1/worker.pb-c.h"
#include "airlock/v1/audit.pb-c.h"
#include "airlock/v1/broker.pb-c.h"
#include "airlock/v1/credentials.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

static const ProtobufCMessageDescriptor *const types[] = {
    &airlock__v1__execute_request__descriptor,
    &airlock__v1__mint_request__descriptor,
    &airlock__v1__revoke_request__descriptor,
    &airlock__v1__introspect_request__descriptor,
    &airlock__v1__keys_request__descriptor,
    &airlock__v1__sign_checkpoint_request__descriptor,
    &airlock__v1__audit_query__descriptor,
    &airlock__v1__audit_verify_request__descriptor,
    /* appended: the seeds' first bytes keep their types */
    &grpc__health__v1__health_check_request__descriptor,
    &airlock__internal__v1__task__descriptor,         /* worker: from the broker */
    &airlock__internal__v1__worker_event__descriptor, /* broker: from a worker */
    &airlock__v1__mint_response__descriptor,           /* broker: from credd */
    &airlock__v1__revoke_response__descriptor,
    &airlock__v1__keys_response__descriptor,
    &airlock__v1__sign_checkpoint_response__descriptor,
    &airlock__v1__execute_event__descriptor,           /* CLI: from the broker */
    &airlock__v1__introspect_response__descriptor,
    &airlock__v1__audit_record__descriptor,
    &airlock__v1__audit_verify_response__descriptor,
    &grpc__health__v1__health_check_response__descriptor,
};
#define N_TYPES (sizeof types / sizeof types[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor *type = types[data[0] % N_TYPES];
    ProtobufCMessage *msg = protobuf_c_message_unpack(type, NULL, size - 1, data + 1);
    if (!msg)
        return 0;
    size_t len = protobuf_c_message_get_packed_size(msg);
    uint8_t *out = malloc(len ? len : 1);
    if (out) {
        if (protobuf_c_message_pack(msg, out) != len)
            abort();
        free(out);
    }
    protobuf_c_message_free_unpacked(msg, NULL);
    return 0;
}

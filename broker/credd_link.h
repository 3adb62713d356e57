/*
 * credd_link.h - the broker's announce to credd (BrokerStarted): made once,
 * before any Mint, so credd revokes the tokens a previous run of this broker
 * left active; retried in the background with backoff until it succeeds.
 */
#ifndef AIRLOCK_BROKER_CREDD_LINK_H
#define AIRLOCK_BROKER_CREDD_LINK_H

#include <stdbool.h>
#include <stddef.h>

#include "rpc.h"

struct credd_link;

/* Announces over ch (borrowed; it must outlive the link). The first attempt
 * is made here; if it fails, a thread retries (200 ms doubling to 5 s). NULL
 * only when out of resources. */
struct credd_link *credd_link_start(struct rpc_channel *ch);

/* Has the announce succeeded? If not, why holds the last failure. */
bool credd_link_ready(struct credd_link *l, char *why, size_t whylen);

/* Stops the retries and frees. NULL is fine. */
void credd_link_stop(struct credd_link *l);

#endif

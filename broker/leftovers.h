/*
 * leftovers.h - what a dead broker leaves behind, cleaned at start.
 */
#ifndef AIRLOCK_BROKER_LEFTOVERS_H
#define AIRLOCK_BROKER_LEFTOVERS_H

#include <stddef.h>

#include "sandbox.h"

/* Removes the empty task cgroups (under this broker's cgroup base) whose
 * worker no longer exists. Call after sandbox_cgroup_setup and before any
 * worker of ours starts. Returns how many were removed, or -1 with err. */
int broker_remove_dead_cgroups(enum sandbox_cgroup_mode mode, char *err, size_t errlen);

#endif

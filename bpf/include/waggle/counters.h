/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-pod per-CPU counters. The entry is created by the attach; programs only bump it. */
#ifndef WAGGLE_COUNTERS_H
#define WAGGLE_COUNTERS_H

#include <stddef.h>
#include "maps.h"

#define COUNT(netns, field) count_at((netns), offsetof(struct pod_counters, field))

static __always_inline void count_at(__u64 netns, __u32 offset)
{
	struct pod_counters *c = bpf_map_lookup_elem(&waggle_counters, &netns);

	if (c && offset <= sizeof(*c) - sizeof(__u64))
		__sync_fetch_and_add((__u64 *)((void *)c + offset), 1);
}

#endif

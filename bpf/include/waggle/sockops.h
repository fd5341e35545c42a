/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* A sockops socket's own addresses, as the datapath keys them (addr.h). */
#ifndef WAGGLE_SOCKOPS_H
#define WAGGLE_SOCKOPS_H

#include <linux/bpf.h>
#include "addr.h"

static __always_inline void sock_local(struct bpf_sock_ops *s, struct addr *a)
{
	pick_addr(a, CTX32(s->family), CTX32(s->local_ip4), CTX32(s->local_ip6[0]),
		  CTX32(s->local_ip6[1]), CTX32(s->local_ip6[2]), CTX32(s->local_ip6[3]));
}

static __always_inline void sock_remote(struct bpf_sock_ops *s, struct addr *a)
{
	pick_addr(a, CTX32(s->family), CTX32(s->remote_ip4), CTX32(s->remote_ip6[0]),
		  CTX32(s->remote_ip6[1]), CTX32(s->remote_ip6[2]), CTX32(s->remote_ip6[3]));
}

#endif

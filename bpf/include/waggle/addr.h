/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Addresses as the datapath keys them: 16 bytes, network order, IPv4 as ::ffff:a.b.c.d.
 * Kept as four __u32 words so comparisons are word compares, not byte loops.
 */
#ifndef WAGGLE_ADDR_H
#define WAGGLE_ADDR_H

#include <stdbool.h>
#include <linux/types.h>
#include <bpf/bpf_endian.h>

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

struct addr {
	__u32 w[4];
};

#define V4_MAPPED_W2 bpf_htonl(0x0000ffff)

/* an IPv6 address given as its four network-order words (a context's *_ip6[] fields) */
static __always_inline void addr_from_v6(struct addr *a, __u32 w0, __u32 w1, __u32 w2, __u32 w3)
{
	a->w[0] = w0;
	a->w[1] = w1;
	a->w[2] = w2;
	a->w[3] = w3;
}

static __always_inline void addr_from_v4(struct addr *a, __u32 ip4_be)
{
	a->w[0] = 0;
	a->w[1] = 0;
	a->w[2] = V4_MAPPED_W2;
	a->w[3] = ip4_be;
}

static __always_inline bool addr_is_v4(const struct addr *a)
{
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == V4_MAPPED_W2;
}

/* 127.0.0.0/8 (v4-mapped) or ::1 */
static __always_inline bool addr_is_loopback(const struct addr *a)
{
	if (addr_is_v4(a))
		return (bpf_ntohl(a->w[3]) >> 24) == 127;
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == 0 && a->w[3] == bpf_htonl(1);
}

/* 127.0.0.1 or ::1: the address the proxy's capture listeners are bound to */
static __always_inline bool addr_is_localhost(const struct addr *a)
{
	if (addr_is_v4(a))
		return a->w[3] == bpf_htonl(0x7f000001);
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == 0 && a->w[3] == bpf_htonl(1);
}

/* 127.0.0.6 or ::6: the source the proxy uses for inbound passthrough (O2) */
static __always_inline bool addr_is_passthrough_source(const struct addr *a)
{
	if (addr_is_v4(a))
		return a->w[3] == bpf_htonl(0x7f000006);
	return a->w[0] == 0 && a->w[1] == 0 && a->w[2] == 0 && a->w[3] == bpf_htonl(6);
}

/* the localhost address of the same family: 127.0.0.1 (v4-mapped) or ::1 */
static __always_inline void addr_localhost_like(struct addr *out, const struct addr *a)
{
	if (addr_is_v4(a))
		addr_from_v4(out, bpf_htonl(0x7f000001));
	else
		addr_from_v6(out, 0, 0, 0, bpf_htonl(1));
}

/* :: (or an unset address) */
static __always_inline bool addr_is_zero(const struct addr *a)
{
	return !(a->w[0] | a->w[1] | a->w[2] | a->w[3]);
}

/* 0.0.0.0 (v4-mapped) or ::: as a destination, the kernel's "this host" */
static __always_inline bool addr_is_unspecified(const struct addr *a)
{
	if (addr_is_v4(a))
		return a->w[3] == 0;
	return addr_is_zero(a);
}

static __always_inline bool addr_eq(const struct addr *a, const struct addr *b)
{
	return a->w[0] == b->w[0] && a->w[1] == b->w[1] && a->w[2] == b->w[2] &&
	       a->w[3] == b->w[3];
}

/*
 * The verifier forbids loads through a modified ctx/socket pointer, which clang produces
 * when a branch picks between fields. Read each field as its own load (CTX32: volatile
 * keeps clang from merging the address computation) and pick afterwards.
 */
#define CTX32(field) (*(volatile __u32 *)&(field))

static __always_inline void pick_addr(struct addr *a, __u32 family, __u32 ip4, __u32 w0,
				      __u32 w1, __u32 w2, __u32 w3)
{
	if (family == AF_INET)
		addr_from_v4(a, ip4);
	else
		addr_from_v6(a, w0, w1, w2, w3);
}

#endif

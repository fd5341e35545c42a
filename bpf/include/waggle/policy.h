/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The capture contract as lookups: which pod a netns or an address belongs to, its port and
 * CIDR sets, and the first-match walk of the outbound rows (O1-O10, D1, D2) and the
 * inbound rows (I2-I6). Everything here is read-only; userspace writes the maps.
 */
#ifndef WAGGLE_POLICY_H
#define WAGGLE_POLICY_H

#include <linux/in.h>
#include "addr.h"
#include "maps.h"

#define DNS_PORT 53

enum verdict {
	VERDICT_PASS = 0,     /* untouched */
	VERDICT_OUTBOUND = 1, /* O8, O9: to the outbound port on localhost */
	VERDICT_LOCAL = 2,    /* O3: to the inbound port on localhost */
	VERDICT_DNS = 3,      /* D1, D2: to the DNS port on localhost */
};

/*
 * What every cgroup program returns: the syscall goes on, with whatever rewrite the program
 * made in its context (0 would fail the syscall with EPERM; waggle never refuses one).
 */
#define SYSCALL_CONTINUE 1

/* The pod's policy by its netns cookie; NULL for a netns waggle does not capture. */
static __always_inline const struct pod_policy *policy_of(__u64 netns)
{
	return bpf_map_lookup_elem(&waggle_policy, &netns);
}

static __always_inline bool port_in(__u64 netns, __u16 port, __u8 kind)
{
	struct port_key k = { .netns = netns, .kind = kind };
	const struct port_set *set = bpf_map_lookup_elem(&waggle_ports, &k);

	return set && (set->bits[port >> 3] & (1 << (port & 7)));
}

static __always_inline bool cidr_in(__u64 netns, const struct addr *a, __u32 kind)
{
	struct cidr_key k = {
		.prefixlen = CIDR_KEY_FIXED_BITS + 128,
		.kind = kind,
		.netns = netns,
	};

	__builtin_memcpy(k.addr, a, sizeof(k.addr));
	return bpf_map_lookup_elem(&waggle_cidrs, &k) != NULL;
}

/* the pod whose IP this is, or 0 */
static __always_inline __u64 pod_of_ip(const struct addr *a)
{
	__u64 *netns = bpf_map_lookup_elem(&waggle_pod_ips, (const struct ip_key *)a);

	return netns ? *netns : 0;
}

/*
 * "local destination" (routed via lo): 127/8, ::1, ::6 (put on lo for the proxy's inbound
 * passthrough when IPv6 is captured) or one of the pod's own addresses.
 */
static __always_inline bool is_local_destination(__u64 netns, const struct addr *dst)
{
	return addr_is_loopback(dst) || addr_is_passthrough_source(dst) || pod_of_ip(dst) == netns;
}

struct outbound_conn {
	__u64 netns;
	struct addr dst;
	struct addr src; /* the socket's bound address, zero when unbound */
	__u16 port;      /* destination port, host order */
	bool tcp;
};

/*
 * One owner block (O3, O4, O5) for a match on the proxy uid (uid_block) or gid; returns a
 * verdict, or -1 to go on.
 */
static __always_inline int owner_block(const struct pod_policy *p, const struct outbound_conn *c,
				       bool local, bool dns, bool owner, bool uid_block)
{
	/* O3: the proxy calling a local address other than localhost goes inbound */
	if (c->tcp && local && owner && !addr_is_localhost(&c->dst) && c->port != p->tunnel_port &&
	    !(dns && uid_block && c->port == DNS_PORT))
		return VERDICT_LOCAL;
	/* O4: anybody else's local traffic stays local (DNS on: only TCP not to 53) */
	if (local && !owner && !(p->flags & POLICY_NO_LOCAL_RULE) &&
	    (!dns || (c->tcp && c->port != DNS_PORT)))
		return VERDICT_PASS;
	/* O5: the proxy's own traffic */
	if (owner)
		return VERDICT_PASS;
	return -1;
}

/*
 * The outbound rows, first match wins. The caller has already returned for UDP that is not
 * addressed to port 53 (O10), so UDP here is a DNS candidate.
 */
static __always_inline enum verdict outbound_verdict(const struct pod_policy *p,
						     const struct outbound_conn *c)
{
	bool v4 = addr_is_v4(&c->dst);
	__u32 f = p->flags;
	bool dns, local;
	__u64 ugid;
	int v;

	if (!v4 && !(f & POLICY_IPV6))
		return VERDICT_PASS;
	dns = (f & POLICY_DNS) && (v4 || (f & POLICY_DNS_IPV6));
	if (!c->tcp && !(dns && c->port == DNS_PORT))
		return VERDICT_PASS; /* O10 */

	/* O1 */
	if ((f & POLICY_OUT_EXCLUDE_PORTS) && port_in(c->netns, c->port, PORT_OUT_EXCLUDE))
		return VERDICT_PASS;

	local = is_local_destination(c->netns, &c->dst);
	/*
	 * O2: from the passthrough address; an unbound IPv6 socket to ::6 too, since the kernel
	 * then picks ::6 itself as the source (IPv4's 127.0.0.6 gets 127.0.0.1)
	 */
	if (local && (addr_is_passthrough_source(&c->src) ||
		      (!v4 && !(c->src.w[0] | c->src.w[1] | c->src.w[2] | c->src.w[3]) &&
		       addr_is_passthrough_source(&c->dst))))
		return VERDICT_PASS;

	/*
	 * O3, O4, O5 as istio-iptables writes them: a block of three rules for the proxy uid,
	 * then the same block for the proxy gid, so "P" is uid OR gid but a non-proxy uid
	 * meets the uid block's O4 first. Port 53 leaves O3 only in the uid block (DNS on).
	 */
	ugid = bpf_get_current_uid_gid();
	v = owner_block(p, c, local, dns, (__u32)ugid == p->proxy_uid, true);
	if (v >= 0)
		return v;
	v = owner_block(p, c, local, dns, (__u32)(ugid >> 32) == p->proxy_gid, false);
	if (v >= 0)
		return v;
	/* D1, D2 */
	if (dns && c->port == DNS_PORT)
		return VERDICT_DNS;
	if (!c->tcp)
		return VERDICT_PASS;
	/* O6 */
	if (addr_is_localhost(&c->dst))
		return VERDICT_PASS;
	/* O7 */
	if ((f & POLICY_OUT_EXCLUDE_CIDRS) &&
	    cidr_in(c->netns, &c->dst, v4 ? CIDR_OUT_EXCLUDE_V4 : CIDR_OUT_EXCLUDE_V6))
		return VERDICT_PASS;
	/* O8 */
	if ((f & POLICY_OUT_INCLUDE_PORTS) && port_in(c->netns, c->port, PORT_OUT_INCLUDE))
		return VERDICT_OUTBOUND;
	/* O9 */
	if ((f & POLICY_OUT_INCLUDE_ALL) ||
	    ((f & POLICY_OUT_INCLUDE_CIDRS) &&
	     cidr_in(c->netns, &c->dst, v4 ? CIDR_OUT_INCLUDE_V4 : CIDR_OUT_INCLUDE_V6)))
		return VERDICT_OUTBOUND;
	/* O10 */
	return VERDICT_PASS;
}

/* X1: inbound traffic arriving on this interface of the pod is captured */
static __always_inline bool inbound_interface(__u64 netns, __u32 ifindex)
{
	struct iface_key k = { .netns = netns, .ifindex = ifindex };

	return bpf_map_lookup_elem(&waggle_ifaces, &k) != NULL;
}

/* The inbound rows for a TCP connection to one of the pod's IPs on port (host order). */
static __always_inline bool inbound_captures(const struct pod_policy *p, __u64 netns, __u16 port)
{
	/* I2 */
	if (port == p->tunnel_port)
		return false;
	/* I3, I4 */
	if (p->flags & POLICY_IN_ALL)
		return !port_in(netns, port, PORT_IN_EXCLUDE);
	/* I5 */
	if (p->flags & POLICY_IN_LIST)
		return port_in(netns, port, PORT_IN_INCLUDE);
	/* I6 */
	return false;
}

#endif

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Inbound capture: TC ingress (clsact, direct action) on the pod's interface inside the
 * pod's netns. For TCP to one of a meshed pod's IPs on a captured port (I2-I6), the
 * segment is handed to the proxy's inbound listener with bpf_sk_assign, unchanged: the
 * accepted socket's local address is the original destination, so there is no NAT
 * state, no checksum edit and nothing to clean up per connection.
 *
 *   - a segment of an existing connection (established, SYN_RECV request, FIN states)
 *     goes on untouched: the stack finds that socket by its own 4-tuple;
 *   - anything else (a SYN, a stray ACK that might carry a SYN cookie, a SYN hitting a
 *     TIME_WAIT socket) is assigned to the listener on the inbound port (bound to the pod
 *     IP or the wildcard); the app's own listener never sees it;
 *   - with no such listener yet the segment is dropped and counted: the client's SYN
 *     retransmission succeeds once the proxy listens, and the app is never reached
 *     behind the proxy's back.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "waggle/addr.h"
#include "waggle/counters.h"
#include "waggle/maps.h"
#include "waggle/policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define IP_OFFSET_MASK 0x1fff

struct segment {
	struct bpf_sock_tuple tuple;
	bool v4;
	struct addr dst;
	__u16 dport; /* host order */
	bool syn;    /* SYN without ACK: a new connection */
};

/* Parses an Ethernet frame carrying TCP over IPv4 or IPv6; false for anything else (I1). */
static __always_inline bool parse_tcp(struct __sk_buff *skb, struct segment *seg)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *th;

	if ((void *)(eth + 1) > end)
		return false;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP || ip->ihl < 5)
			return false;
		if (ip->frag_off & bpf_htons(IP_OFFSET_MASK))
			return false; /* not the first fragment: no TCP header */
		th = (void *)ip + ip->ihl * 4;
		if ((void *)(th + 1) > end)
			return false;
		seg->tuple.ipv4.saddr = ip->saddr;
		seg->tuple.ipv4.daddr = ip->daddr;
		seg->tuple.ipv4.sport = th->source;
		seg->tuple.ipv4.dport = th->dest;
		seg->v4 = true;
		addr_from_v4(&seg->dst, ip->daddr);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		/* TCP directly after the fixed header; extension headers are left alone */
		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return false;
		th = (void *)(ip6 + 1);
		if ((void *)(th + 1) > end)
			return false;
		__builtin_memcpy(seg->tuple.ipv6.saddr, &ip6->saddr, 16);
		__builtin_memcpy(seg->tuple.ipv6.daddr, &ip6->daddr, 16);
		seg->tuple.ipv6.sport = th->source;
		seg->tuple.ipv6.dport = th->dest;
		__builtin_memcpy(&seg->dst, &ip6->daddr, 16);
	} else {
		return false;
	}
	seg->dport = bpf_ntohs(th->dest);
	seg->syn = th->syn && !th->ack;
	return true;
}

static __always_inline void set_tuple_dport(struct segment *seg, __u16 port)
{
	if (seg->v4)
		seg->tuple.ipv4.dport = bpf_htons(port);
	else
		seg->tuple.ipv6.dport = bpf_htons(port);
}

/* Socket lookups with a constant tuple size per family (the verifier wants it bounded). */
static __always_inline struct bpf_sock *lookup_any(struct __sk_buff *skb, struct segment *seg)
{
	if (seg->v4)
		return bpf_skc_lookup_tcp(skb, &seg->tuple, sizeof(seg->tuple.ipv4),
					  BPF_F_CURRENT_NETNS, 0);
	return bpf_skc_lookup_tcp(skb, &seg->tuple, sizeof(seg->tuple.ipv6), BPF_F_CURRENT_NETNS,
				  0);
}

static __always_inline struct bpf_sock *lookup_full(struct __sk_buff *skb, struct segment *seg)
{
	if (seg->v4)
		return bpf_sk_lookup_tcp(skb, &seg->tuple, sizeof(seg->tuple.ipv4),
					 BPF_F_CURRENT_NETNS, 0);
	return bpf_sk_lookup_tcp(skb, &seg->tuple, sizeof(seg->tuple.ipv6), BPF_F_CURRENT_NETNS,
				 0);
}

/* Does the segment belong to a connection the stack already knows by its own 4-tuple? */
static __always_inline bool has_connection(struct __sk_buff *skb, struct segment *seg)
{
	struct bpf_sock *sk = lookup_any(skb, seg);
	bool known;

	if (!sk)
		return false;
	known = sk->state != BPF_TCP_LISTEN && !(seg->syn && sk->state == BPF_TCP_TIME_WAIT);
	bpf_sk_release(sk);
	return known;
}

static __always_inline int capture(struct __sk_buff *skb, struct segment *seg,
				   const struct pod_policy *p, __u64 netns)
{
	struct bpf_sock *listener;
	long err;

	if (has_connection(skb, seg))
		return TC_ACT_OK;
	set_tuple_dport(seg, p->inbound_port);
	listener = lookup_full(skb, seg);
	if (!listener) {
		COUNT(netns, inbound_no_listener);
		return TC_ACT_SHOT;
	}
	if (listener->state != BPF_TCP_LISTEN) {
		bpf_sk_release(listener);
		COUNT(netns, inbound_no_listener);
		return TC_ACT_SHOT;
	}
	err = bpf_sk_assign(skb, listener, 0);
	bpf_sk_release(listener);
	if (err) {
		COUNT(netns, errors);
		return TC_ACT_SHOT;
	}
	if (seg->syn)
		COUNT(netns, inbound_captured);
	return TC_ACT_OK;
}

SEC("tc")
int waggle_ingress(struct __sk_buff *skb)
{
	const struct pod_policy *p;
	struct segment seg = {};
	__u64 netns;

	if (!parse_tcp(skb, &seg))
		return TC_ACT_OK; /* I1 */
	netns = pod_of_ip(&seg.dst);
	if (!netns)
		return TC_ACT_OK; /* not addressed to a meshed pod */
	p = policy_of(netns);
	if (!p || (!addr_is_v4(&seg.dst) && !(p->flags & POLICY_IPV6)))
		return TC_ACT_OK;
	if (!inbound_captures(p, netns, seg.dport)) {
		if (seg.syn)
			COUNT(netns, passthrough);
		return TC_ACT_OK;
	}
	return capture(skb, &seg, p, netns);
}

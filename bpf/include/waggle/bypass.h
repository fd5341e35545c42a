/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Socket bypass, the sockops half: which established sockets join waggle_bypass.
 * (bypass.bpf.c is the sk_msg half that hands each message to the peer socket.)
 *
 * A socket joins at ACTIVE/PASSIVE_ESTABLISHED_CB when all of these hold:
 *   - the node's switch is on (waggle_node) and its pod has not opted out;
 *   - no payload has passed the socket yet in either direction (TCP Fast Open data, or any
 *     byte sent before the socket joined, went through TCP: its direction stays on TCP; a
 *     Fast Open server's socket passes this check, its callback running before the SYN's data
 *     is queued, but its client never joins, so the server's sends only ever fall back);
 *   - its peer is a socket of a meshed pod on this node: the remote address is loopback or
 *     the pod's own address (peer in the same netns), or another meshed pod's address
 *     (waggle_pod_ips); in the same netns only the sidecar hops qualify: the capture ports
 *     (outbound, inbound) on either side, or the proxy's passthrough source 127.0.0.6 / ::6;
 *   - the peer's pod has not opted out either.
 * The socket's storage keeps the peer's key (the mirror image of its own in the peer's netns)
 * and the sticky "went through TCP" decision the sk_msg program honours.
 *
 * Flow control: waggle_bypass_backlog holds, per receiving socket (its own key), the bytes
 * waiting unread in its ingress queue and how far it has read its TCP stream; bypass.bpf.c
 * adds what it redirects and holds a direction on TCP when the bound would be passed,
 * bypass_recv.bpf.c sets the true figures after each read. A direction enters it only once
 * it has redirected half the bound (less than that cannot fill the peer's queue), so short
 * connections, most of them, never touch it, and leaves it when the peer has read every byte.
 */
#ifndef WAGGLE_BYPASS_H
#define WAGGLE_BYPASS_H

#include <stddef.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "addr.h"
#include "counters.h"
#include "maps.h"
#include "policy.h"
#include "sockops.h"

#define BYPASS_COUNT(netns, field, n)                                                   \
	bypass_count_at(&waggle_bypass_counters, (netns), offsetof(struct bypass_counters, field), \
			sizeof(struct bypass_counters), (n))
#define FLOW_COUNT(netns, field, n)                                                       \
	bypass_count_at(&waggle_bypass_flow_counters, (netns),                            \
			offsetof(struct bypass_flow_counters, field),                     \
			sizeof(struct bypass_flow_counters), (n))

static __always_inline void bypass_count_at(void *map, __u64 netns, __u32 offset, __u32 size,
					    __u64 n)
{
	void *c = bpf_map_lookup_elem(map, &netns);

	if (c && offset <= size - sizeof(__u64))
		__sync_fetch_and_add((__u64 *)(c + offset), n);
}

/* A message handed to the peer: one lookup for both of its counters (this runs per message). */
static __always_inline void bypass_count_msg(__u64 netns, __u64 size)
{
	struct bypass_counters *c = bpf_map_lookup_elem(&waggle_bypass_counters, &netns);

	if (!c)
		return;
	__sync_fetch_and_add(&c->bypass_msgs, 1);
	__sync_fetch_and_add(&c->bypass_bytes, size);
}

static __always_inline bool bypass_node_enabled(void)
{
	__u32 zero = 0;
	const struct node_settings *n = bpf_map_lookup_elem(&waggle_node, &zero);

	return n && (n->flags & NODE_BYPASS);
}

/* Bytes a bypassed receiver may have unread before its senders fall back to TCP. */
static __always_inline __u64 bypass_backlog_max(void)
{
	__u32 zero = 0;
	const struct node_settings *n = bpf_map_lookup_elem(&waggle_node, &zero);

	return n && n->bypass_backlog_max ? n->bypass_backlog_max : BYPASS_BACKLOG_DEFAULT;
}

/* the fields read from the kernel's struct tcp_sock, relocated by libbpf at load (CO-RE) */
struct tcp_sock___waggle {
	__u32 copied_seq;
	__u32 write_seq;
} __attribute__((preserve_access_index));

/* A socket's own key: the mirror image of the peer's key its storage keeps. */
static __always_inline void bypass_own_key(const struct bypass_sock *b, struct bypass_key *own)
{
	own->netns = b->netns;
	__builtin_memcpy(own->local_addr, b->peer.remote_addr, sizeof(own->local_addr));
	__builtin_memcpy(own->remote_addr, b->peer.local_addr, sizeof(own->remote_addr));
	own->local_port = b->peer.remote_port;
	own->remote_port = b->peer.local_port;
	own->pad = 0;
}

/*
 * A receiver's entry, made when its sender starts tracking it (with every byte it redirected
 * before counted as unread, until the next read tells), or again when the LRU evicted it.
 */
static __always_inline void bypass_backlog_start(const struct bypass_key *peer, __u64 size)
{
	struct bypass_backlog fresh = { .unread = size };
	struct bypass_backlog *v;

	if (!bpf_map_update_elem(&waggle_bypass_backlog, peer, &fresh, BPF_NOEXIST))
		return;
	v = bpf_map_lookup_elem(&waggle_bypass_backlog, peer); /* its first read made it meanwhile */
	if (v)
		__sync_fetch_and_add(&v->unread, size);
}

/* A same-netns connection is a sidecar hop: a capture port or the passthrough source on it. */
static __always_inline bool bypass_sidecar_hop(const struct pod_policy *p, const struct addr *local,
					       const struct addr *remote, __u16 lport, __u16 rport)
{
	if (lport == p->outbound_port || rport == p->outbound_port || lport == p->inbound_port ||
	    rport == p->inbound_port)
		return true;
	return addr_is_passthrough_source(local) || addr_is_passthrough_source(remote);
}

static __always_inline void bypass_join(struct bpf_sock_ops *s)
{
	struct bypass_key own = {};
	const struct pod_policy *mine, *theirs;
	struct bpf_sock *sk = s->sk;
	struct addr local, remote;
	struct bypass_sock *b;
	__u64 netns, peer_netns;
	struct ip_key ik;
	__u16 lport, rport;
	const __u64 *owner;

	/* the node's switch */
	if (!sk || !bypass_node_enabled())
		return;
	/* this pod takes part */
	netns = bpf_get_netns_cookie(s);
	mine = policy_of(netns);
	if (!mine || (mine->flags & POLICY_NO_BYPASS))
		return;
	/* nothing has passed the socket yet (TCP Fast Open data did): no byte went through TCP */
	if (s->data_segs_in || s->data_segs_out || s->bytes_received)
		return;
	/* the peer's netns: loopback stays in this netns, a pod address names its pod's */
	sock_local(s, &local);
	sock_remote(s, &remote);
	lport = (__u16)s->local_port;
	rport = (__u16)bpf_ntohl(s->remote_port);
	if (addr_is_loopback(&remote)) {
		peer_netns = netns;
	} else {
		__builtin_memcpy(ik.addr, &remote, sizeof(ik.addr));
		owner = bpf_map_lookup_elem(&waggle_pod_ips, &ik);
		if (!owner)
			return; /* another node, the host or an unmeshed pod: TCP */
		peer_netns = *owner;
	}
	/* in one pod only the sidecar hops; across pods only to a meshed pod that takes part */
	if (peer_netns == netns) {
		if (!bypass_sidecar_hop(mine, &local, &remote, lport, rport))
			return;
	} else {
		theirs = policy_of(peer_netns);
		if (!theirs || (theirs->flags & POLICY_NO_BYPASS))
			return;
	}
	/* the decision and the peer's key go with the socket */
	b = bpf_sk_storage_get(&waggle_bypass_sock, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!b) {
		COUNT(netns, errors);
		return;
	}
	b->peer.netns = peer_netns;
	__builtin_memcpy(b->peer.local_addr, &remote, sizeof(remote));
	__builtin_memcpy(b->peer.remote_addr, &local, sizeof(local));
	b->peer.local_port = rport;
	b->peer.remote_port = lport;
	b->netns = netns;
	b->flags = 0;
	/* the socket joins under its own key */
	own.netns = netns;
	__builtin_memcpy(own.local_addr, &local, sizeof(local));
	__builtin_memcpy(own.remote_addr, &remote, sizeof(remote));
	own.local_port = lport;
	own.remote_port = rport;
	/*
	 * nothing is queued for it yet: drop an entry a closed socket with the same tuple left
	 * (looked up first: entries are rare, and a delete locks its bucket with interrupts off)
	 */
	if (bpf_map_lookup_elem(&waggle_bypass_backlog, &own))
		bpf_map_delete_elem(&waggle_bypass_backlog, &own);
	if (bpf_sock_hash_update(s, &waggle_bypass, &own, BPF_NOEXIST)) {
		b->flags = BYPASS_TCP;
		COUNT(netns, errors);
		return;
	}
	b->flags = BYPASS_JOINED;
	BYPASS_COUNT(netns, bypass_sockets, 1);
}

#endif

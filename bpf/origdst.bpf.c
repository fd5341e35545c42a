// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * SO_ORIGINAL_DST without conntrack, attached to each meshed pod's cgroup.
 *
 * sockops carries a redirected connection's original destination from the client socket
 * (recorded by connect, outbound.bpf.c) to the proxy's accepted socket:
 *   TCP_CONNECT_CB (client to localhost, source port now known): publish {netns, 4-tuple as
 *     the accepted socket will see it} -> original destination in waggle_redirect, and ask
 *     for state callbacks on the client socket until its handshake completes;
 *   PASSIVE_ESTABLISHED_CB (accepted socket on localhost): move the entry into the
 *     accepted socket's storage and delete it;
 *   STATE_CB -> TCP_CLOSE (client, handshake failed): delete the entry nobody will adopt;
 *   ACTIVE_ESTABLISHED_CB (client): the proxy's side adopts the entry as it completes the
 *     same handshake, so the state callbacks it asked for stop here.
 * A waggle_redirect entry outlives its client socket only when the proxy's kernel side never
 * completes an established handshake (an accept queue that never drains); the LRU bounds
 * those. The per-socket records die with their sockets. Every other callback returns at
 * once: sockops runs for every TCP event of every socket in the pod.
 *
 * TCP_LISTEN_CB: a socket listening on the pod's inbound port (not on localhost) is the
 * proxy's inbound listener; it goes into waggle_listeners for inbound capture
 * (inbound.bpf.c) and leaves it when it closes.
 *
 * getsockopt answers (SOL_IP, SO_ORIGINAL_DST) and (SOL_IPV6, IP6T_SO_ORIGINAL_DST) on TCP
 * sockets the way conntrack would under iptables for the sockets a proxy asks about: the
 * recorded original destination (redirected connections), else for a connected socket the
 * local address (an accepted one, e.g. inbound captured by sk_lookup, whose local address IS
 * the original destination). Conntrack would name the peer for a socket the pod connected
 * itself without redirection; such sockets carry no record (docs/datapath.md).
 * Every other call is left exactly as the kernel answered it, at the cost of two compares.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "waggle/addr.h"
#include "waggle/bypass.h"
#include "waggle/counters.h"
#include "waggle/maps.h"
#include "waggle/policy.h"
#include "waggle/sockops.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SOL_IP 0
#define SOL_IPV6 41
#define SO_ORIGINAL_DST 80 /* = IP6T_SO_ORIGINAL_DST */
/*
 * Programs see at most PAGE_SIZE bytes of optval. The kernel doc's rule for a larger
 * optval: set optlen to 0 so the kernel hands userspace its own buffer untouched. 4096 is
 * the smallest page size; with larger pages 0 still means "untouched".
 */
#define SOCKOPT_PAGE_SIZE 4096

/* The waggle_redirect key of a client socket that was redirected (o->flags REDIRECTED). */
static __always_inline void client_key(struct bpf_sock_ops *s, const struct sock_orig *o,
				       struct redirect_key *k)
{
	struct addr a;

	k->netns = o->netns;
	sock_local(s, &a);
	__builtin_memcpy(k->client_addr, &a, sizeof(a));
	k->client_port = (__u16)s->local_port;
	sock_remote(s, &a);
	__builtin_memcpy(k->server_addr, &a, sizeof(a));
	k->server_port = o->via_port;
}

static __always_inline void publish(struct bpf_sock_ops *s)
{
	struct redirect_value v = {};
	struct redirect_key k = {};
	struct bpf_sock *sk = s->sk;
	struct sock_orig *o;
	struct addr a;

	sock_remote(s, &a);
	if (!sk || !addr_is_localhost(&a))
		return; /* redirected sockets connect to a capture port on localhost */
	o = bpf_sk_storage_get(&waggle_sock, sk, 0, 0);
	if (!o || !(o->flags & ORIG_REDIRECTED))
		return;
	client_key(s, o, &k);
	__builtin_memcpy(v.addr, o->addr, sizeof(v.addr));
	v.port = o->port;
	if (bpf_map_update_elem(&waggle_redirect, &k, &v, BPF_ANY)) {
		COUNT(o->netns, errors);
		return;
	}
	o->flags |= ORIG_PUBLISHED;
	if (!(s->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_STATE_CB_FLAG) &&
	    !bpf_sock_ops_cb_flags_set(s, s->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG))
		o->flags |= ORIG_STATE_CB;
}

/* The handshake completed: the proxy's side adopts the entry now; no more state callbacks. */
static __always_inline void established(struct bpf_sock_ops *s)
{
	struct bpf_sock *sk = s->sk;
	struct sock_orig *o;

	if (!(s->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_STATE_CB_FLAG) || !sk)
		return; /* nothing asked for by publish */
	o = bpf_sk_storage_get(&waggle_sock, sk, 0, 0);
	if (!o || !(o->flags & ORIG_STATE_CB))
		return; /* another program's state callbacks: leave them */
	o->flags &= ~ORIG_STATE_CB;
	bpf_sock_ops_cb_flags_set(s, s->bpf_sock_ops_cb_flags & ~BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void unpublish(struct bpf_sock_ops *s)
{
	struct redirect_key k = {};
	struct bpf_sock *sk = s->sk;
	struct sock_orig *o;

	if (!sk)
		return;
	o = bpf_sk_storage_get(&waggle_sock, sk, 0, 0);
	if (!o || !(o->flags & ORIG_PUBLISHED))
		return;
	client_key(s, o, &k);
	bpf_map_delete_elem(&waggle_redirect, &k);
	o->flags &= ~ORIG_PUBLISHED;
}

static __always_inline void adopt(struct bpf_sock_ops *s)
{
	struct redirect_value *v;
	struct redirect_key k = {};
	struct bpf_sock *sk = s->sk;
	struct sock_orig *o;
	struct addr a;

	if (!sk)
		return;
	sock_local(s, &a);
	if (!addr_is_loopback(&a))
		return; /* capture listeners are on localhost: nothing to adopt elsewhere */
	__builtin_memcpy(k.server_addr, &a, sizeof(a));
	k.server_port = (__u16)s->local_port;
	sock_remote(s, &a);
	__builtin_memcpy(k.client_addr, &a, sizeof(a));
	k.client_port = (__u16)bpf_ntohl(s->remote_port);
	k.netns = bpf_get_netns_cookie(s);
	v = bpf_map_lookup_elem(&waggle_redirect, &k);
	if (!v)
		return;
	o = bpf_sk_storage_get(&waggle_sock, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (o) {
		__builtin_memcpy(o->addr, v->addr, sizeof(o->addr));
		o->port = v->port;
		o->flags = ORIG_ADOPTED;
		o->via_port = k.server_port;
		o->netns = k.netns;
	} else {
		COUNT(k.netns, errors);
	}
	bpf_map_delete_elem(&waggle_redirect, &k);
}

/* A socket listening on the pod's inbound port becomes its inbound capture target. */
static __always_inline void remember_listener(struct bpf_sock_ops *s)
{
	struct listener_key k = {};
	const struct pod_policy *p;
	struct addr a;

	k.netns = bpf_get_netns_cookie(s);
	p = policy_of(k.netns);
	if (!p || s->local_port != p->inbound_port)
		return;
	sock_local(s, &a);
	if (addr_is_loopback(&a))
		return; /* e.g. istio-validation's 127.0.0.1:15006: never an inbound target */
	k.family = s->family;
	if (bpf_sock_hash_update(s, &waggle_listeners, &k, BPF_ANY))
		COUNT(k.netns, errors);
}

SEC("sockops")
int waggle_sockops(struct bpf_sock_ops *s)
{
	switch (s->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		publish(s);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		established(s);
		bypass_join(s);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		adopt(s);
		bypass_join(s);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (s->args[1] == BPF_TCP_CLOSE)
			unpublish(s);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		remember_listener(s);
		break;
	}
	return 1;
}

static __always_inline int leave_as_kernel_answered(struct bpf_sockopt *ctx)
{
	if (ctx->optlen > SOCKOPT_PAGE_SIZE)
		ctx->optlen = 0;
	return SYSCALL_CONTINUE;
}

/* The original destination of a TCP socket, as conntrack would report it. */
static __always_inline bool original_destination(struct bpf_sock *sk, struct addr *a,
						 __u16 *port, __u64 *netns)
{
	struct sock_orig *o = bpf_sk_storage_get(&waggle_sock, sk, 0, 0);

	if (o && (o->flags & (ORIG_ACTIVE | ORIG_ADOPTED))) {
		__builtin_memcpy(a, o->addr, sizeof(*a));
		*port = o->port;
		*netns = o->netns;
		return true;
	}
	/* no record: a connected socket is taken for an accepted one */
	if (sk->state == BPF_TCP_LISTEN || sk->state == BPF_TCP_CLOSE)
		return false;
	pick_addr(a, CTX32(sk->family), CTX32(sk->src_ip4), CTX32(sk->src_ip6[0]),
		  CTX32(sk->src_ip6[1]), CTX32(sk->src_ip6[2]), CTX32(sk->src_ip6[3]));
	*port = (__u16)CTX32(sk->src_port);
	*netns = 0;
	return true;
}

SEC("cgroup/getsockopt")
int waggle_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	__u8 *optval, *end;
	struct addr a;
	__u64 netns;
	__u16 port;

	if (ctx->optname != SO_ORIGINAL_DST || (ctx->level != SOL_IP && ctx->level != SOL_IPV6))
		return leave_as_kernel_answered(ctx);
	if (!sk || sk->protocol != IPPROTO_TCP || !original_destination(sk, &a, &port, &netns))
		return leave_as_kernel_answered(ctx);
	/* conntrack of the other family never knows the connection */
	if ((ctx->level == SOL_IP) != addr_is_v4(&a))
		return leave_as_kernel_answered(ctx);
	if (!netns)
		netns = bpf_get_netns_cookie(ctx);
	/* no ip6tables rules (IPv6 not captured for this pod): no IPv6 conntrack answer */
	if (!addr_is_v4(&a)) {
		const struct pod_policy *p = policy_of(netns);

		if (!p || !(p->flags & POLICY_IPV6))
			return leave_as_kernel_answered(ctx);
	}

	optval = ctx->optval;
	end = ctx->optval_end;
	if (ctx->level == SOL_IP) {
		struct sockaddr_in *sin = (struct sockaddr_in *)optval;

		if ((void *)(sin + 1) > (void *)end)
			return leave_as_kernel_answered(ctx); /* the kernel's EINVAL stands */
		__builtin_memset(sin, 0, sizeof(*sin));
		sin->sin_family = AF_INET;
		sin->sin_port = bpf_htons(port);
		sin->sin_addr.s_addr = a.w[3];
		ctx->optlen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)optval;

		if ((void *)(sin6 + 1) > (void *)end)
			return leave_as_kernel_answered(ctx);
		__builtin_memset(sin6, 0, sizeof(*sin6));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = bpf_htons(port);
		sin6->sin6_addr.in6_u.u6_addr32[0] = a.w[0];
		sin6->sin6_addr.in6_u.u6_addr32[1] = a.w[1];
		sin6->sin6_addr.in6_u.u6_addr32[2] = a.w[2];
		sin6->sin6_addr.in6_u.u6_addr32[3] = a.w[3];
		ctx->optlen = sizeof(*sin6);
	}
	ctx->retval = 0;
	COUNT(netns, orig_dst_answered);
	return SYSCALL_CONTINUE;
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Outbound capture, attached to each meshed pod's cgroup (never the root):
 *   connect4/6   TCP rows O1-O10 and D1, UDP D2 for connected sockets
 *   sendmsg4/6   D2 for unconnected UDP datagrams to port 53
 *   recvmsg4/6   D2 replies appear to come from the original DNS server
 *   getpeername4/6  a redirected socket's peer is the destination the app asked for
 * A redirect rewrites the destination of the connect/datagram to the proxy's listener on
 * localhost and records the original destination in the socket's storage (waggle_sock);
 * origdst.bpf.c carries it to the proxy's accepted socket for SO_ORIGINAL_DST.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "waggle/addr.h"
#include "waggle/counters.h"
#include "waggle/maps.h"
#include "waggle/policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SYSCALL_CONTINUE 1

static __always_inline __u16 target_port(const struct pod_policy *p, enum verdict v)
{
	if (v == VERDICT_OUTBOUND)
		return p->outbound_port;
	if (v == VERDICT_LOCAL)
		return p->inbound_port;
	return p->dns_port;
}

static __always_inline void count_verdict(__u64 netns, enum verdict v)
{
	switch (v) {
	case VERDICT_OUTBOUND:
		COUNT(netns, outbound_redirected);
		break;
	case VERDICT_LOCAL:
		COUNT(netns, local_redirected);
		break;
	case VERDICT_DNS:
		COUNT(netns, dns_redirected);
		break;
	default:
		COUNT(netns, passthrough);
	}
}

/* Records what this socket's original destination is; false when storage failed. */
static __always_inline bool remember(struct bpf_sock *sk, const struct outbound_conn *c,
				     __u16 flags, __u16 via_port)
{
	struct sock_orig *o = bpf_sk_storage_get(&waggle_sock, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);

	if (!o)
		return false;
	__builtin_memcpy(o->addr, &c->dst, sizeof(o->addr));
	o->port = c->port;
	o->flags = flags;
	o->via_port = via_port;
	o->netns = c->netns;
	return true;
}

/* Drops what an earlier connect of this socket recorded (a lookup only: nothing allocated). */
static __always_inline void forget(struct bpf_sock *sk)
{
	struct sock_orig *o = bpf_sk_storage_get(&waggle_sock, sk, 0, 0);

	if (o)
		o->flags = 0;
}

/*
 * Binds a still-unbound socket that is being redirected to the source the kernel would
 * have picked by route for the original destination, so the proxy's accepted socket sees
 * the same peer address as under iptables: nothing for loopback destinations (localhost
 * is what the kernel picks anyway), the destination itself for the pod's own addresses
 * (local routes), else the pod's address of that family (its default route). When nothing
 * fits or the bind fails, the kernel picks localhost as the source, which is harmless.
 */
static __always_inline bool redirect_source(const struct pod_policy *p,
					    const struct outbound_conn *c, struct addr *src)
{
	if (c->src.w[0] | c->src.w[1] | c->src.w[3])
		return false; /* bound by the app */
	if (addr_is_loopback(&c->dst) || addr_is_passthrough_source(&c->dst))
		return false;
	if (pod_of_ip(&c->dst) == c->netns) {
		*src = c->dst;
	} else if (addr_is_v4(&c->dst)) {
		if (!p->source_v4)
			return false;
		addr_from_v4(src, p->source_v4);
	} else {
		src->w[0] = p->source_v6[0];
		src->w[1] = p->source_v6[1];
		src->w[2] = p->source_v6[2];
		src->w[3] = p->source_v6[3];
		if (!(src->w[0] | src->w[1] | src->w[2] | src->w[3]))
			return false;
	}
	return true;
}

static __always_inline void bind_source(struct bpf_sock_addr *ctx, const struct pod_policy *p,
					const struct outbound_conn *c, bool v6_socket)
{
	struct addr src;

	if (!redirect_source(p, c, &src))
		return;
	if (!v6_socket) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = src.w[3] };

		bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa));
		return;
	}
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6 };

	sa6.sin6_addr.in6_u.u6_addr32[0] = src.w[0];
	sa6.sin6_addr.in6_u.u6_addr32[1] = src.w[1];
	sa6.sin6_addr.in6_u.u6_addr32[2] = src.w[2];
	sa6.sin6_addr.in6_u.u6_addr32[3] = src.w[3];
	bpf_bind(ctx, (struct sockaddr *)&sa6, sizeof(sa6));
}

/*
 * connect(): decides the row, records the original destination of redirected sockets and
 * rewrites ctx->user_* when redirecting. Returns the redirect target in *to. A connection left
 * untouched gets no record: allocating socket storage is most of what a connect costs here
 * (about 0.7 us), and only redirected sockets need one (getpeername, SO_ORIGINAL_DST).
 */
static __always_inline int on_connect(struct bpf_sock_addr *ctx, struct outbound_conn *c,
				      struct addr *to, __u16 *to_port, bool v6_socket)
{
	const struct pod_policy *p;
	struct bpf_sock *sk = ctx->sk;
	enum verdict v;
	__u16 flags;

	if (!sk)
		return VERDICT_PASS;
	c->tcp = ctx->protocol == IPPROTO_TCP;
	if (!c->tcp && c->port != DNS_PORT)
		return VERDICT_PASS; /* no work for UDP that is not DNS */
	c->netns = bpf_get_netns_cookie(ctx);
	p = policy_of(c->netns);
	if (!p)
		return VERDICT_PASS;
	v = outbound_verdict(p, c);
	count_verdict(c->netns, v);
	if (v == VERDICT_PASS) {
		forget(sk); /* a socket connecting again after a redirected attempt */
		return VERDICT_PASS;
	}
	*to_port = target_port(p, v);
	addr_localhost_like(to, &c->dst);
	flags = c->tcp ? (ORIG_ACTIVE | ORIG_REDIRECTED) : ORIG_DNS_UDP;
	if (!remember(sk, c, flags, *to_port))
		COUNT(c->netns, errors);
	bind_source(ctx, p, c, v6_socket);
	return v;
}

SEC("cgroup/connect4")
int waggle_connect4(struct bpf_sock_addr *ctx)
{
	struct outbound_conn c = {};
	struct addr to;
	__u16 to_port = 0;

	addr_from_v4(&c.dst, ctx->user_ip4);
	if (ctx->sk)
		addr_from_v4(&c.src, ctx->sk->src_ip4);
	c.port = bpf_ntohs(ctx->user_port);
	if (on_connect(ctx, &c, &to, &to_port, false) != VERDICT_PASS) {
		ctx->user_ip4 = to.w[3];
		ctx->user_port = bpf_htons(to_port);
	}
	return SYSCALL_CONTINUE;
}

SEC("cgroup/connect6")
int waggle_connect6(struct bpf_sock_addr *ctx)
{
	struct outbound_conn c = {};
	struct addr to;
	__u16 to_port = 0;

	c.dst.w[0] = ctx->user_ip6[0];
	c.dst.w[1] = ctx->user_ip6[1];
	c.dst.w[2] = ctx->user_ip6[2];
	c.dst.w[3] = ctx->user_ip6[3];
	if (ctx->sk) {
		c.src.w[0] = ctx->sk->src_ip6[0];
		c.src.w[1] = ctx->sk->src_ip6[1];
		c.src.w[2] = ctx->sk->src_ip6[2];
		c.src.w[3] = ctx->sk->src_ip6[3];
	}
	c.port = bpf_ntohs(ctx->user_port);
	if (on_connect(ctx, &c, &to, &to_port, true) != VERDICT_PASS) {
		ctx->user_ip6[0] = to.w[0];
		ctx->user_ip6[1] = to.w[1];
		ctx->user_ip6[2] = to.w[2];
		ctx->user_ip6[3] = to.w[3];
		ctx->user_port = bpf_htons(to_port);
	}
	return SYSCALL_CONTINUE;
}

/*
 * sendmsg() with an address on a UDP socket: D2. *from is the datagram's source to set
 * (the route's source for the original server, see redirect_source), when *has_from.
 */
static __always_inline bool on_sendmsg(struct bpf_sock_addr *ctx, struct outbound_conn *c,
				       struct addr *to, __u16 *to_port, struct addr *from,
				       bool *has_from)
{
	const struct pod_policy *p;
	enum verdict v;

	if (c->port != DNS_PORT || !ctx->sk)
		return false;
	c->netns = bpf_get_netns_cookie(ctx);
	p = policy_of(c->netns);
	if (!p)
		return false;
	v = outbound_verdict(p, c);
	count_verdict(c->netns, v);
	if (v != VERDICT_DNS)
		return false;
	*to_port = p->dns_port;
	addr_localhost_like(to, &c->dst);
	if (!remember(ctx->sk, c, ORIG_DNS_UDP, *to_port))
		COUNT(c->netns, errors);
	*has_from = redirect_source(p, c, from);
	return true;
}

SEC("cgroup/sendmsg4")
int waggle_sendmsg4(struct bpf_sock_addr *ctx)
{
	struct outbound_conn c = {};
	struct addr to, from = {};
	bool has_from = false;
	__u16 to_port = 0;

	c.port = bpf_ntohs(ctx->user_port);
	if (c.port != DNS_PORT)
		return SYSCALL_CONTINUE;
	addr_from_v4(&c.dst, ctx->user_ip4);
	if (ctx->sk)
		addr_from_v4(&c.src, ctx->sk->src_ip4);
	if (on_sendmsg(ctx, &c, &to, &to_port, &from, &has_from)) {
		ctx->user_ip4 = to.w[3];
		ctx->user_port = bpf_htons(to_port);
		if (has_from && !ctx->msg_src_ip4)
			ctx->msg_src_ip4 = from.w[3];
	}
	return SYSCALL_CONTINUE;
}

SEC("cgroup/sendmsg6")
int waggle_sendmsg6(struct bpf_sock_addr *ctx)
{
	struct outbound_conn c = {};
	struct addr to, from = {};
	bool has_from = false;
	__u16 to_port = 0;

	c.port = bpf_ntohs(ctx->user_port);
	if (c.port != DNS_PORT)
		return SYSCALL_CONTINUE;
	c.dst.w[0] = ctx->user_ip6[0];
	c.dst.w[1] = ctx->user_ip6[1];
	c.dst.w[2] = ctx->user_ip6[2];
	c.dst.w[3] = ctx->user_ip6[3];
	if (ctx->sk) {
		c.src.w[0] = ctx->sk->src_ip6[0];
		c.src.w[1] = ctx->sk->src_ip6[1];
		c.src.w[2] = ctx->sk->src_ip6[2];
		c.src.w[3] = ctx->sk->src_ip6[3];
	}
	if (on_sendmsg(ctx, &c, &to, &to_port, &from, &has_from)) {
		ctx->user_ip6[0] = to.w[0];
		ctx->user_ip6[1] = to.w[1];
		ctx->user_ip6[2] = to.w[2];
		ctx->user_ip6[3] = to.w[3];
		ctx->user_port = bpf_htons(to_port);
		if (has_from && !(ctx->msg_src_ip6[0] | ctx->msg_src_ip6[1] | ctx->msg_src_ip6[2] |
				  ctx->msg_src_ip6[3])) {
			ctx->msg_src_ip6[0] = from.w[0];
			ctx->msg_src_ip6[1] = from.w[1];
			ctx->msg_src_ip6[2] = from.w[2];
			ctx->msg_src_ip6[3] = from.w[3];
		}
	}
	return SYSCALL_CONTINUE;
}

/*
 * The recorded original destination when the peer address the kernel reports (from) is
 * the capture listener this socket was redirected to; NULL otherwise.
 */
static __always_inline const struct sock_orig *redirected_peer(struct bpf_sock *sk,
							       const struct addr *from,
							       __u16 from_port, __u16 flag)
{
	struct sock_orig *o;
	struct addr lh;

	if (!sk || !addr_is_loopback(from))
		return NULL;
	o = bpf_sk_storage_get(&waggle_sock, sk, 0, 0);
	if (!o || !(o->flags & flag) || o->via_port != from_port)
		return NULL;
	addr_localhost_like(&lh, (const struct addr *)o->addr);
	if (!addr_eq(&lh, from))
		return NULL;
	return o;
}

static __always_inline int rewrite_peer4(struct bpf_sock_addr *ctx, __u16 flag)
{
	const struct sock_orig *o;
	struct addr from;

	addr_from_v4(&from, ctx->user_ip4);
	o = redirected_peer(ctx->sk, &from, bpf_ntohs(ctx->user_port), flag);
	if (o && addr_is_v4((const struct addr *)o->addr)) {
		ctx->user_ip4 = ((const struct addr *)o->addr)->w[3];
		ctx->user_port = bpf_htons(o->port);
	}
	return SYSCALL_CONTINUE;
}

static __always_inline int rewrite_peer6(struct bpf_sock_addr *ctx, __u16 flag)
{
	const struct sock_orig *o;
	const struct addr *a;
	struct addr from;

	from.w[0] = ctx->user_ip6[0];
	from.w[1] = ctx->user_ip6[1];
	from.w[2] = ctx->user_ip6[2];
	from.w[3] = ctx->user_ip6[3];
	o = redirected_peer(ctx->sk, &from, bpf_ntohs(ctx->user_port), flag);
	if (o) {
		a = (const struct addr *)o->addr;
		ctx->user_ip6[0] = a->w[0];
		ctx->user_ip6[1] = a->w[1];
		ctx->user_ip6[2] = a->w[2];
		ctx->user_ip6[3] = a->w[3];
		ctx->user_port = bpf_htons(o->port);
	}
	return SYSCALL_CONTINUE;
}

/* D2: a reply from the DNS capture port reads as coming from the server the app asked. */
SEC("cgroup/recvmsg4")
int waggle_recvmsg4(struct bpf_sock_addr *ctx)
{
	return rewrite_peer4(ctx, ORIG_DNS_UDP);
}

SEC("cgroup/recvmsg6")
int waggle_recvmsg6(struct bpf_sock_addr *ctx)
{
	return rewrite_peer6(ctx, ORIG_DNS_UDP);
}

/* getpeername() of a redirected socket names the original destination, as under NAT. */
SEC("cgroup/getpeername4")
int waggle_getpeername4(struct bpf_sock_addr *ctx)
{
	return rewrite_peer4(ctx, ORIG_REDIRECTED | ORIG_DNS_UDP);
}

SEC("cgroup/getpeername6")
int waggle_getpeername6(struct bpf_sock_addr *ctx)
{
	return rewrite_peer6(ctx, ORIG_REDIRECTED | ORIG_DNS_UDP);
}

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
 *
 * Each IPv4/IPv6 pair of programs is one body over struct addr (waggle/addr.h), called with
 * the program's family as a constant. Every path of every program returns SYSCALL_CONTINUE:
 * a redirect is a rewrite of the context, never a refusal of the syscall.
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

/*
 * The address fields of a sock_addr context. The kernel lets an IPv4 program touch only
 * user_ip4 and msg_src_ip4 and an IPv6 one only the *_ip6 words, so v6 is a constant at every
 * call and the other family's branch is compiled out.
 */
static __always_inline void user_addr(const struct bpf_sock_addr *ctx, bool v6, struct addr *a)
{
	if (v6)
		addr_from_v6(a, ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2],
			     ctx->user_ip6[3]);
	else
		addr_from_v4(a, ctx->user_ip4);
}

static __always_inline void set_user_addr(struct bpf_sock_addr *ctx, bool v6,
					  const struct addr *a, __u16 port)
{
	if (v6) {
		ctx->user_ip6[0] = a->w[0];
		ctx->user_ip6[1] = a->w[1];
		ctx->user_ip6[2] = a->w[2];
		ctx->user_ip6[3] = a->w[3];
	} else {
		ctx->user_ip4 = a->w[3];
	}
	ctx->user_port = bpf_htons(port);
}

/* The socket's bound address (zero when unbound), read as the program's family. */
static __always_inline void sock_source(const struct bpf_sock *sk, bool v6, struct addr *a)
{
	if (v6)
		addr_from_v6(a, sk->src_ip6[0], sk->src_ip6[1], sk->src_ip6[2], sk->src_ip6[3]);
	else
		addr_from_v4(a, sk->src_ip4);
}

/* A datagram's source, unless the app chose one itself (IP_PKTINFO and the like). */
static __always_inline void set_msg_source(struct bpf_sock_addr *ctx, bool v6,
					   const struct addr *a)
{
	if (v6) {
		if (ctx->msg_src_ip6[0] | ctx->msg_src_ip6[1] | ctx->msg_src_ip6[2] |
		    ctx->msg_src_ip6[3])
			return;
		ctx->msg_src_ip6[0] = a->w[0];
		ctx->msg_src_ip6[1] = a->w[1];
		ctx->msg_src_ip6[2] = a->w[2];
		ctx->msg_src_ip6[3] = a->w[3];
	} else if (!ctx->msg_src_ip4) {
		ctx->msg_src_ip4 = a->w[3];
	}
}

/*
 * The connection or datagram as the rows see it: destination, the socket's source, port. An
 * unspecified destination (0.0.0.0, ::) is the one the kernel's route lookup will use, which
 * is what iptables' rules see: the socket's bound source, else localhost.
 */
static __always_inline void read_conn(struct bpf_sock_addr *ctx, bool v6, struct outbound_conn *c)
{
	user_addr(ctx, v6, &c->dst);
	if (ctx->sk)
		sock_source(ctx->sk, v6, &c->src);
	c->port = bpf_ntohs(ctx->user_port);
	if (addr_is_unspecified(&c->dst)) {
		if (addr_is_unspecified(&c->src))
			addr_localhost_like(&c->dst, &c->dst);
		else
			c->dst = c->src;
	}
}

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
 * The source the kernel would have picked by route for the original destination of a
 * still-unbound socket that is being redirected, so the proxy's accepted socket sees the
 * same peer address as under iptables: nothing for loopback destinations (localhost is what
 * the kernel picks anyway), the destination itself for the pod's own addresses (local
 * routes), else the pod's address of that family (its default route). When nothing fits or
 * the bind fails, the kernel picks localhost as the source, which is harmless.
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
		addr_from_v6(src, p->source_v6[0], p->source_v6[1], p->source_v6[2],
			     p->source_v6[3]);
		if (addr_is_zero(src))
			return false;
	}
	return true;
}

/* Binds the socket to redirect_source's address (a socket of the program's family). */
static __always_inline void bind_source(struct bpf_sock_addr *ctx, const struct pod_policy *p,
					const struct outbound_conn *c, bool v6)
{
	struct addr src;

	if (!redirect_source(p, c, &src))
		return;
	if (!v6) {
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
 * rewrites the destination to the capture listener. A connection left untouched gets no
 * record: allocating socket storage is most of what a connect costs here (about 0.7 us),
 * and only redirected sockets need one (getpeername, SO_ORIGINAL_DST).
 */
static __always_inline int on_connect(struct bpf_sock_addr *ctx, bool v6)
{
	struct outbound_conn c = {};
	const struct pod_policy *p;
	struct bpf_sock *sk;
	struct addr to;
	enum verdict v;
	__u16 to_port;

	read_conn(ctx, v6, &c);
	sk = ctx->sk;
	if (!sk)
		return SYSCALL_CONTINUE;
	c.tcp = ctx->protocol == IPPROTO_TCP;
	if (!c.tcp && c.port != DNS_PORT)
		return SYSCALL_CONTINUE; /* no work for UDP that is not DNS */
	c.netns = bpf_get_netns_cookie(ctx);
	p = policy_of(c.netns);
	if (!p)
		return SYSCALL_CONTINUE;
	v = outbound_verdict(p, &c);
	count_verdict(c.netns, v);
	if (v == VERDICT_PASS) {
		forget(sk); /* a socket connecting again after a redirected attempt */
		return SYSCALL_CONTINUE;
	}
	to_port = target_port(p, v);
	addr_localhost_like(&to, &c.dst);
	if (!remember(sk, &c, c.tcp ? (ORIG_ACTIVE | ORIG_REDIRECTED) : ORIG_DNS_UDP, to_port))
		COUNT(c.netns, errors);
	bind_source(ctx, p, &c, v6);
	set_user_addr(ctx, v6, &to, to_port);
	return SYSCALL_CONTINUE;
}

SEC("cgroup/connect4")
int waggle_connect4(struct bpf_sock_addr *ctx)
{
	return on_connect(ctx, false);
}

SEC("cgroup/connect6")
int waggle_connect6(struct bpf_sock_addr *ctx)
{
	return on_connect(ctx, true);
}

/*
 * sendmsg() with an address on a UDP socket: D2. The datagram goes to the DNS capture
 * listener, from the source the route to the original server would have given it (see
 * redirect_source).
 */
static __always_inline int on_sendmsg(struct bpf_sock_addr *ctx, bool v6)
{
	struct outbound_conn c = {};
	const struct pod_policy *p;
	struct addr to, from;
	enum verdict v;

	if (bpf_ntohs(ctx->user_port) != DNS_PORT)
		return SYSCALL_CONTINUE;
	read_conn(ctx, v6, &c);
	if (!ctx->sk)
		return SYSCALL_CONTINUE;
	c.netns = bpf_get_netns_cookie(ctx);
	p = policy_of(c.netns);
	if (!p)
		return SYSCALL_CONTINUE;
	v = outbound_verdict(p, &c);
	count_verdict(c.netns, v);
	if (v != VERDICT_DNS)
		return SYSCALL_CONTINUE;
	addr_localhost_like(&to, &c.dst);
	if (!remember(ctx->sk, &c, ORIG_DNS_UDP, p->dns_port))
		COUNT(c.netns, errors);
	set_user_addr(ctx, v6, &to, p->dns_port);
	if (redirect_source(p, &c, &from))
		set_msg_source(ctx, v6, &from);
	return SYSCALL_CONTINUE;
}

SEC("cgroup/sendmsg4")
int waggle_sendmsg4(struct bpf_sock_addr *ctx)
{
	return on_sendmsg(ctx, false);
}

SEC("cgroup/sendmsg6")
int waggle_sendmsg6(struct bpf_sock_addr *ctx)
{
	return on_sendmsg(ctx, true);
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

/*
 * The peer address the kernel is about to report (recvmsg's source, getpeername's answer)
 * becomes the recorded original destination when it is the capture listener the socket was
 * redirected to. An IPv4 program can only report an IPv4 destination.
 */
static __always_inline int rewrite_peer(struct bpf_sock_addr *ctx, bool v6, __u16 flag)
{
	const struct sock_orig *o;
	struct addr from;

	user_addr(ctx, v6, &from);
	o = redirected_peer(ctx->sk, &from, bpf_ntohs(ctx->user_port), flag);
	if (o && (v6 || addr_is_v4((const struct addr *)o->addr)))
		set_user_addr(ctx, v6, (const struct addr *)o->addr, o->port);
	return SYSCALL_CONTINUE;
}

/* D2: a reply from the DNS capture port reads as coming from the server the app asked. */
SEC("cgroup/recvmsg4")
int waggle_recvmsg4(struct bpf_sock_addr *ctx)
{
	return rewrite_peer(ctx, false, ORIG_DNS_UDP);
}

SEC("cgroup/recvmsg6")
int waggle_recvmsg6(struct bpf_sock_addr *ctx)
{
	return rewrite_peer(ctx, true, ORIG_DNS_UDP);
}

/* getpeername() of a redirected socket names the original destination, as under NAT. */
SEC("cgroup/getpeername4")
int waggle_getpeername4(struct bpf_sock_addr *ctx)
{
	return rewrite_peer(ctx, false, ORIG_REDIRECTED | ORIG_DNS_UDP);
}

SEC("cgroup/getpeername6")
int waggle_getpeername6(struct bpf_sock_addr *ctx)
{
	return rewrite_peer(ctx, true, ORIG_REDIRECTED | ORIG_DNS_UDP);
}

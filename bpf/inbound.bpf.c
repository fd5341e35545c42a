// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Inbound capture (I1-I6, X1): a BPF_PROG_TYPE_SK_LOOKUP program attached to each meshed
 * pod's network namespace. The kernel runs it whenever it looks for a listening socket for
 * an arriving packet: a SYN, the ACK of a SYN cookie, and a SYN on a 4-tuple whose socket is
 * in TIME_WAIT (tcp_v4_rcv/tcp_v6_rcv, TCP_TW_SYN: the TIME_WAIT socket is retired only when
 * a listener takes the SYN). Segments of known connections never get here: the stack finds
 * their socket first. For TCP from outside the pod to one of its addresses on a captured
 * port, the proxy's listener on the inbound port takes the connection (bpf_sk_assign): the
 * packet is not rewritten, so the accepted socket's local address IS the original
 * destination (what SO_ORIGINAL_DST answers), and nothing is left to clean up per connection.
 *
 * "From outside" is what PREROUTING sees under istio-iptables: it arrived on an interface
 * with inbound capture (not lo, not excludeInterfaces: waggle_ifaces) and its source is not
 * an address of the pod itself (the kernel reports the interface holding a local address as
 * the arrival interface of loopback traffic to that address).
 *
 * No proxy listening (yet): SK_DROP, which the kernel answers with a reset, as under
 * istio-iptables (REDIRECT to a port nobody listens on); the app's own listener never sees
 * the connection.
 *
 * The proxy's listener comes from waggle_listeners (SOCKHASH): sockops puts it there when the
 * proxy listens (origdst.bpf.c), waggle_listener below when it listened before the pod was
 * attached. Closed sockets leave the map by themselves.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "waggle/addr.h"
#include "waggle/counters.h"
#include "waggle/maps.h"
#include "waggle/policy.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define EAFNOSUPPORT 97

/* Hands the connection to the pod's proxy listener; SK_DROP (refused) when there is none. */
static __always_inline int to_proxy(struct bpf_sk_lookup *ctx, __u64 netns, bool v4)
{
	struct listener_key k = { .netns = netns, .family = v4 ? AF_INET : AF_INET6 };
	struct bpf_sock *sk;
	long err;

	sk = bpf_map_lookup_elem(&waggle_listeners, &k);
	if (!sk && v4) {
		k.family = AF_INET6; /* an IPv6 socket without IPV6_V6ONLY takes IPv4 too */
		sk = bpf_map_lookup_elem(&waggle_listeners, &k);
	}
	if (!sk) {
		COUNT(netns, inbound_no_listener);
		return SK_DROP;
	}
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err == -EAFNOSUPPORT) {
		COUNT(netns, inbound_no_listener); /* only an IPV6_V6ONLY listener for IPv4 */
		return SK_DROP;
	}
	if (err) {
		COUNT(netns, errors);
		return SK_DROP;
	}
	COUNT(netns, inbound_captured);
	return SK_PASS;
}

SEC("sk_lookup")
int waggle_inbound(struct bpf_sk_lookup *ctx)
{
	const struct pod_policy *p;
	struct addr local, remote;
	__u32 family, port;
	__u64 netns;

	if (ctx->protocol != IPPROTO_TCP)
		return SK_PASS; /* I1 */
	family = ctx->family;
	/* the pod's own traffic never goes through PREROUTING: first the checks without lookups */
	pick_addr(&remote, family, CTX32(ctx->remote_ip4), CTX32(ctx->remote_ip6[0]),
		  CTX32(ctx->remote_ip6[1]), CTX32(ctx->remote_ip6[2]), CTX32(ctx->remote_ip6[3]));
	if (addr_is_loopback(&remote) || addr_is_passthrough_source(&remote))
		return SK_PASS;
	pick_addr(&local, family, CTX32(ctx->local_ip4), CTX32(ctx->local_ip6[0]),
		  CTX32(ctx->local_ip6[1]), CTX32(ctx->local_ip6[2]), CTX32(ctx->local_ip6[3]));
	netns = pod_of_ip(&local);
	if (!netns)
		return SK_PASS; /* not addressed to a meshed pod */
	p = policy_of(netns);
	if (!p || (family != AF_INET && !(p->flags & POLICY_IPV6)))
		return SK_PASS;
	/* X1, lo: only what arrives on an interface with inbound capture */
	if (!inbound_interface(netns, ctx->ingress_ifindex))
		return SK_PASS;
	if (pod_of_ip(&remote) == netns)
		return SK_PASS; /* from one of the pod's own addresses */
	port = ctx->local_port;
	if (!inbound_captures(p, netns, (__u16)port)) {
		COUNT(netns, passthrough);
		return SK_PASS;
	}
	if (port == p->inbound_port)
		return SK_PASS; /* already addressed to the proxy */
	return to_proxy(ctx, netns, family == AF_INET);
}

/*
 * waggle_listener's input layout, kept in the object's BTF so that the TypeScript encoding
 * (datapath/layout.ts) is checked against it like every map key (a program's local types
 * are not in BTF). Never read.
 */
const volatile struct listener_query waggle_listener_input = {};

/*
 * Finds the listener on the inbound port for one address of the pod and stores it in
 * waggle_listeners. Run by the attach with BPF_PROG_TEST_RUN inside the pod's netns (so the
 * lookup searches that netns) on a struct listener_query after an Ethernet header: the
 * proxy may have listened before sockops was attached to the pod (a pod meshed in place).
 * The lookup is the kernel's own: a listener bound to that address or the wildcard, never
 * one bound to localhost (the istio-validation probe's).
 */
SEC("tc")
int waggle_listener(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct listener_query *q = data + sizeof(struct ethhdr);
	struct bpf_sock_tuple t = {};
	struct listener_key k = {};
	struct bpf_sock *sk;
	struct addr a;
	long err;

	if ((void *)(q + 1) > end)
		return LISTENER_BAD_RUN;
	__builtin_memcpy(&a, q->addr, sizeof(a));
	k.netns = q->netns;
	if (addr_is_v4(&a)) {
		t.ipv4.daddr = a.w[3];
		t.ipv4.dport = bpf_htons(q->port);
		sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	} else {
		__builtin_memcpy(t.ipv6.daddr, &a, sizeof(t.ipv6.daddr));
		t.ipv6.dport = bpf_htons(q->port);
		sk = bpf_sk_lookup_tcp(skb, &t, sizeof(t.ipv6), BPF_F_CURRENT_NETNS, 0);
	}
	if (!sk)
		return LISTENER_NONE;
	if (sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		return LISTENER_NONE;
	}
	k.family = sk->family;
	err = bpf_map_update_elem(&waggle_listeners, &k, sk, BPF_ANY);
	bpf_sk_release(sk);
	return err ? LISTENER_FAILED : LISTENER_STORED;
}

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * waggle datapath ABI: the layouts of every map key and value and the constants the
 * TypeScript side writes (datapath/layout.ts mirrors this file; a unit test checks both
 * against the BTF of the compiled objects). Change a layout here and there, never one alone.
 *
 * Addresses are always 16 bytes in network order; IPv4 is stored v4-mapped
 * (::ffff:a.b.c.d) so one key shape serves both families and a v4 connection made through
 * a dual-stack IPv6 socket has the same key as one made through an IPv4 socket.
 * Ports are host order unless a name says otherwise.
 */
#ifndef WAGGLE_ABI_H
#define WAGGLE_ABI_H

#include <linux/types.h>

/* Policy flags (struct pod_policy.flags). Decided in TypeScript from RedirectSettings. */
#define POLICY_IPV6              (1u << 0)  /* pod has an IPv6 address: IPv6 rules apply */
#define POLICY_OUT_INCLUDE_ALL   (1u << 1)  /* includeOutboundIPRanges "*" */
#define POLICY_OUT_INCLUDE_CIDRS (1u << 2)  /* include CIDR entries exist */
#define POLICY_OUT_EXCLUDE_CIDRS (1u << 3)  /* exclude CIDR entries exist */
#define POLICY_OUT_INCLUDE_PORTS (1u << 4)  /* includeOutboundPorts entries exist */
#define POLICY_OUT_EXCLUDE_PORTS (1u << 5)  /* excludeOutboundPorts entries exist */
#define POLICY_IN_ALL            (1u << 6)  /* includeInboundPorts "*" (excludes apply) */
#define POLICY_IN_LIST           (1u << 7)  /* includeInboundPorts is an explicit list */
#define POLICY_DNS               (1u << 8)  /* DNS capture (D1, D2) */
#define POLICY_NO_LOCAL_RULE     (1u << 9)  /* O4 skipped: include ranges hold loopback */
#define POLICY_DNS_IPV6          (1u << 10) /* DNS capture for IPv6 destinations too */
#define POLICY_NO_BYPASS         (1u << 11) /* socket bypass opted out (waggle.io/socket-bypass) */

/* Per-pod policy: map waggle_policy, key = netns cookie (__u64). */
struct pod_policy {
	__u32 flags;
	__u32 proxy_uid;
	__u32 proxy_gid;
	__u16 outbound_port; /* 15001 */
	__u16 inbound_port;  /* 15006 */
	__u16 dns_port;      /* 15053 */
	__u16 tunnel_port;   /* 15008 */
	/*
	 * The pod's first IPv4 / IPv6 address (network order, 0 when none): redirected
	 * outbound sockets that are not bound yet are bound to it, so the proxy sees the
	 * same peer address as under iptables (the kernel would have picked it by route).
	 */
	__u32 source_v4;
	__u32 source_v6[4];
};

/* Port set kinds (struct port_key.kind). */
#define PORT_OUT_INCLUDE 1
#define PORT_OUT_EXCLUDE 2
#define PORT_IN_INCLUDE  3
#define PORT_IN_EXCLUDE  4

/*
 * Map waggle_ports: one bitmap per pod and set kind, bit p set when port p is in the set. A
 * pod holds at most 4 entries whatever its annotations list, so no pod's settings can fill
 * the map for the others.
 */
struct port_key {
	__u64 netns;
	__u8 kind;
	__u8 pad[7];
};

#define PORT_SET_BYTES 8192 /* 65536 ports, one bit each */
struct port_set {
	__u8 bits[PORT_SET_BYTES];
};

/*
 * CIDR kinds (struct cidr_key.kind). The family is part of the kind so that an IPv6 range
 * such as ::/0 never matches an IPv4 destination (ip6tables never sees IPv4 packets).
 */
#define CIDR_OUT_INCLUDE_V4 1
#define CIDR_OUT_EXCLUDE_V4 2
#define CIDR_OUT_INCLUDE_V6 3
#define CIDR_OUT_EXCLUDE_V6 4

/*
 * Map waggle_cidrs (LPM trie): prefixlen counts the bits of kind and netns (96) plus the
 * CIDR's bits in the v4-mapped address (IPv4 /n -> 96 + 96 + n). Value is 1.
 */
#define CIDR_KEY_FIXED_BITS 96
struct cidr_key {
	__u32 prefixlen;
	__u32 kind;
	__u64 netns;
	__u8 addr[16];
};

/* Map waggle_pod_ips: a pod IP -> the pod's netns cookie (inbound lookup, "local destination"). */
struct ip_key {
	__u8 addr[16];
};

/*
 * Map waggle_ifaces: presence of {netns, ifindex} means inbound TCP arriving on that interface
 * of the pod is captured (every interface at attach time but lo and excludeInterfaces, X1).
 */
struct iface_key {
	__u64 netns;
	__u32 ifindex;
	__u32 pad;
};

/*
 * Map waggle_listeners (SOCKHASH): the proxy's socket listening on the inbound port, per pod
 * and socket family (an AF_INET6 socket without IPV6_V6ONLY takes IPv4 too). sockops puts it
 * there when the proxy listens; waggle_listener finds listeners older than the pod's
 * attachment. The kernel removes a socket from the map when it closes.
 */
struct listener_key {
	__u64 netns;
	__u32 family;
	__u32 pad;
};

/*
 * The input of waggle_listener (BPF_PROG_TEST_RUN inside the pod's netns), after a 14-byte
 * Ethernet header: the pod and one of its addresses whose inbound listener to look up.
 */
struct listener_query {
	__u64 netns;
	__u8 addr[16];
	__u16 port;
	__u16 pad[3];
};

/* waggle_listener's return values */
#define LISTENER_STORED  0 /* found and put into waggle_listeners */
#define LISTENER_NONE    1 /* nothing listens on the inbound port for that address */
#define LISTENER_FAILED  2 /* found, but the map update failed */
#define LISTENER_BAD_RUN 3 /* the input was not a struct listener_query */

/* Per-pod per-CPU counters: map waggle_counters, key = netns cookie. */
struct pod_counters {
	__u64 outbound_redirected;  /* O8/O9 TCP connects sent to the outbound port */
	__u64 local_redirected;     /* O3 connects sent to the inbound port */
	__u64 dns_redirected;       /* D1 connects and D2 datagrams sent to the DNS port */
	__u64 inbound_captured;     /* I4/I5 connections handed to the proxy's inbound listener */
	__u64 passthrough;          /* connects, DNS-port datagrams and inbound connections left untouched */
	__u64 inbound_no_listener;  /* captured connections refused: no proxy listener (yet) */
	__u64 orig_dst_answered;    /* SO_ORIGINAL_DST answered */
	__u64 errors;               /* helper failures (storage, map update, sk_assign) */
};

/* struct sock_orig.flags */
#define ORIG_ACTIVE     (1u << 0) /* set by connect: this socket connected out, redirected */
#define ORIG_REDIRECTED (1u << 1) /* addr/port is the destination before our rewrite */
#define ORIG_PUBLISHED  (1u << 2) /* a waggle_redirects entry names this socket */
#define ORIG_ADOPTED    (1u << 3) /* an accepted socket that took over a redirect record */
#define ORIG_DNS_UDP    (1u << 4) /* UDP socket whose last DNS datagram was redirected */
#define ORIG_STATE_CB   (1u << 5) /* publish asked for this socket's state callbacks */

/*
 * Socket storage waggle_sock: what this socket's "original destination" is. Freed by the
 * kernel with the socket, so it can never leak.
 */
struct sock_orig {
	__u8 addr[16];
	__u16 port;
	__u16 flags;
	__u16 via_port;  /* the capture port the socket was sent to, when ORIG_REDIRECTED/DNS */
	__u16 pad;
	__u64 netns;
};

/*
 * Map waggle_redirects (LRU hash): a redirected connection between the client's connect
 * (TCP_CONNECT_CB) and the proxy's accepted socket (PASSIVE_ESTABLISHED_CB), keyed as the
 * accepted socket sees it. Deleted when adopted, and when the client socket closes.
 */
struct redirect_key {
	__u64 netns;
	__u8 client_addr[16];
	__u8 server_addr[16];
	__u16 client_port;
	__u16 server_port;
	__u32 pad;
};

struct redirect_value {
	__u8 addr[16];
	__u16 port;
	__u16 pad[3];
};

/*
 * Socket bypass (bypass.h, docs/datapath.md "Socket bypass").
 *
 * Map waggle_bypass (SOCKHASH): one established TCP socket of a meshed pod, keyed as that
 * socket sees its connection: its own netns cookie, local and remote address and port.
 * The peer's key is the mirror image in the peer's netns, so two pods' identical loopback
 * tuples never meet.
 */
struct bypass_key {
	__u64 netns;
	__u8 local_addr[16];
	__u8 remote_addr[16];
	__u16 local_port;
	__u16 remote_port;
	__u32 pad;
};

/* struct bypass_sock.flags */
#define BYPASS_JOINED (1u << 0) /* the socket is in waggle_bypass */
#define BYPASS_TCP    (1u << 1) /* bytes this socket sent went through TCP: never redirect again */
#define BYPASS_HELD   (1u << 2) /* back-pressure: through TCP until the peer read all of it */
#define BYPASS_TRACKED (1u << 3) /* the peer's unread bytes are kept in waggle_bypass_backlog */

/* Socket storage waggle_bypass_sock: the peer's key and this socket's decision. */
struct bypass_sock {
	struct bypass_key peer;
	__u64 netns;
	__u32 flags;
	__u32 untracked; /* bytes redirected before BYPASS_TRACKED (at most half the bound) */
};

/*
 * Per-pod per-CPU bypass counters: map waggle_bypass_counters, key = netns cookie. A map of
 * its own so that waggle_counters keeps its layout across upgrades.
 */
struct bypass_counters {
	__u64 bypass_sockets;    /* sockets put into waggle_bypass at established time */
	__u64 bypass_msgs;       /* messages handed straight to the peer socket */
	__u64 bypass_bytes;      /* bytes of those messages */
	__u64 bypass_fallbacks;  /* sockets whose sending fell back to TCP for good */
};

/*
 * Per-pod per-CPU flow control counters: map waggle_bypass_flow_counters, key = netns
 * cookie. A map of its own so that a datapath pinned before it upgrades in place.
 */
struct bypass_flow_counters {
	__u64 bypass_backpressure_fallbacks; /* times a direction was held on TCP (peer's queue full) */
	__u64 bypass_backpressure_bytes;     /* bytes sent through TCP while held */
};

/* struct bypass_backlog.flags */
#define BACKLOG_SEQ (1u << 0) /* copied_seq is the receiver's, as of its last read */

/*
 * Map waggle_bypass_backlog, key = the receiving socket's own key: what its senders may add
 * to. unread: bytes in its ingress queue (the sender adds, each read sets the true figure);
 * copied_seq: how far it has read its TCP stream (the sender's sequence space), so a sender
 * held on TCP knows when every byte it sent through TCP has been read.
 */
struct bypass_backlog {
	__u64 unread;
	__u32 copied_seq;
	__u32 flags;
};

/* struct node_settings.flags */
#define NODE_BYPASS (1u << 0) /* socket bypass on for this node */

/*
 * The bound on a bypassed receiver's ingress queue when waggle_node holds none (a datapath
 * loader that predates it): TCP's autotuned receive buffer goes up to 6 MiB by default.
 */
#define BYPASS_BACKLOG_DEFAULT (4u << 20)

/* Map waggle_node (array, one entry): node-wide settings, written by the datapath's loader. */
struct node_settings {
	__u32 flags;
	__u32 bypass_backlog_max; /* bytes a bypassed receiver may have unread; 0: the default */
};

#endif

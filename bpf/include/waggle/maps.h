/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The maps every waggle program shares. Each object defines them identically; the loader
 * pins them once under <bpfRoot>/maps/ and every later object reuses the pins by name.
 * Policy maps are written only from userspace (attach/detach), so they are not
 * preallocated: memory follows the number of meshed pods, not max_entries.
 */
#ifndef WAGGLE_MAPS_H
#define WAGGLE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "abi.h"

/*
 * Capacity: every per-pod map holds what MAX_PODS pods need at their settings' limits, so no
 * pod's annotations can use up a map the others need (userspace enforces the per-pod limits).
 */
#define MAX_PODS 16384
#define MAX_CIDRS_PER_POD 768 /* 256 per annotation list, 256 routes of excluded interfaces */

/* netns cookie -> struct pod_policy */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_PODS);
	__type(key, __u64);
	__type(value, struct pod_policy);
} waggle_policy SEC(".maps");

/* pod IP -> netns cookie */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 32768);
	__type(key, struct ip_key);
	__type(value, __u64);
} waggle_pod_ips SEC(".maps");

/* {netns, kind} -> the pod's include/exclude port set (a bitmap; at most 4 per pod) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_PODS * 4);
	__type(key, struct port_key);
	__type(value, struct port_set);
} waggle_ports SEC(".maps");

/* {kind, netns, prefix} -> 1: include/exclude CIDR sets of every pod (an LPM trie allocates per entry) */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_PODS * MAX_CIDRS_PER_POD);
	__type(key, struct cidr_key);
	__type(value, __u8);
} waggle_cidrs SEC(".maps");

/* netns cookie -> per-CPU struct pod_counters */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pod_counters);
} waggle_counters SEC(".maps");

/* {netns, ifindex} -> 1: the interfaces of every pod with inbound capture */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, struct iface_key);
	__type(value, __u8);
} waggle_ifaces SEC(".maps");

/* {netns, family} -> the proxy's listening socket on the inbound port (leaves when closed) */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 32768);
	__type(key, struct listener_key);
	__type(value, __u64);
} waggle_listeners SEC(".maps");

/* per-socket original destination; freed with the socket */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_orig);
} waggle_sock SEC(".maps");

/* redirected connection in flight: client connect -> proxy's accepted socket */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct redirect_key);
	__type(value, struct redirect_value);
} waggle_redirect SEC(".maps");

/* {netns, local, remote} -> an established socket of the socket bypass */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 65536);
	__type(key, struct bypass_key);
	__type(value, __u64);
} waggle_bypass SEC(".maps");

/* per-socket bypass decision and peer key; freed with the socket */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct bypass_sock);
} waggle_bypass_sock SEC(".maps");

/*
 * a bypassed socket's own key -> what it has not read yet (the sk_msg program adds what it
 * redirects, the read tracepoint sets the true figures after each read)
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct bypass_key);
	__type(value, struct bypass_backlog);
} waggle_bypass_backlog SEC(".maps");

/* netns cookie -> per-CPU struct bypass_counters */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct bypass_counters);
} waggle_bypass_counters SEC(".maps");

/* netns cookie -> per-CPU struct bypass_flow_counters */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct bypass_flow_counters);
} waggle_bypass_flow_counters SEC(".maps");

/* 0 -> struct node_settings */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct node_settings);
} waggle_node SEC(".maps");

#endif

// The interfaces and addresses of a network namespace, read and changed over rtnetlink on the
// netns thread: no `ip` process per call (attaching a pod reads its interfaces every time).
#include <arpa/inet.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "args.h"
#include "fd.h"
#include "module.h"
#include "netns_thread.h"

namespace ebpf_napi {

namespace {

struct Address {
  int family;
  std::string address;
  uint32_t prefixLength;
  uint32_t scope;  // RT_SCOPE_*: 0 universe (global), 200 site, 253 link, 254 host
};

struct Interface {
  uint32_t ifindex;
  std::string ifname;
  uint32_t flags;  // IFF_*
  std::vector<Address> addresses;
};

// One rtnetlink socket of the calling thread's netns; requests are answered in order.
class Rtnetlink {
 public:
  Rtnetlink()
      : fd_(CheckSys(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), "socket(NETLINK_ROUTE)")) {}

  // Sends one request (a complete nlmsghdr + payload) and hands every answer message to fn
  // until NLMSG_DONE (dumps) or the ACK (requests with NLM_F_ACK); an error answer throws.
  template <typename Fn>
  void Transact(nlmsghdr* req, const char* op, Fn&& fn) {
    req->nlmsg_seq = ++seq_;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    CheckSys(static_cast<int>(::sendto(fd_.get(), req, req->nlmsg_len, 0,
                                       reinterpret_cast<sockaddr*>(&kernel), sizeof(kernel))),
             op);
    std::vector<char> buf(32768);
    for (;;) {
      ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
      if (n < 0 && errno == EINTR) continue;
      CheckSys(static_cast<int>(n), op);
      int len = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != seq_) continue;
        if (h->nlmsg_type == NLMSG_DONE) return;
        if (h->nlmsg_type == NLMSG_ERROR) {
          auto* e = static_cast<nlmsgerr*>(NLMSG_DATA(h));
          if (e->error != 0) Fail(op, -e->error);
          return;  // the ACK of a request without a dump
        }
        fn(h);
      }
    }
  }

 private:
  UniqueFd fd_;
  uint32_t seq_ = 0;
};

// The attributes of a message after its fixed header of hdrSize bytes, by type.
std::map<int, rtattr*> Attributes(nlmsghdr* h, size_t hdrSize) {
  std::map<int, rtattr*> out;
  int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(hdrSize));
  auto* a = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(NLMSG_DATA(h)) + NLMSG_ALIGN(hdrSize));
  for (; RTA_OK(a, len); a = RTA_NEXT(a, len)) out[a->rta_type] = a;
  return out;
}

template <typename Payload>
struct Request {
  nlmsghdr header;
  Payload payload;
  char attributes[64];
};

std::vector<Interface> ListInterfaces() {
  Rtnetlink nl;
  std::map<uint32_t, Interface> byIndex;
  Request<ifinfomsg> links{};
  links.header.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
  links.header.nlmsg_type = RTM_GETLINK;
  links.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nl.Transact(&links.header, "rtnetlink RTM_GETLINK", [&](nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWLINK) return;
    auto* ifi = static_cast<ifinfomsg*>(NLMSG_DATA(h));
    auto attrs = Attributes(h, sizeof(ifinfomsg));
    Interface i{static_cast<uint32_t>(ifi->ifi_index), "", ifi->ifi_flags, {}};
    if (auto it = attrs.find(IFLA_IFNAME); it != attrs.end())
      i.ifname = static_cast<const char*>(RTA_DATA(it->second));
    byIndex[i.ifindex] = i;
  });
  Request<ifaddrmsg> addrs{};
  addrs.header.nlmsg_len = NLMSG_LENGTH(sizeof(ifaddrmsg));
  addrs.header.nlmsg_type = RTM_GETADDR;
  addrs.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nl.Transact(&addrs.header, "rtnetlink RTM_GETADDR", [&](nlmsghdr* h) {
    if (h->nlmsg_type != RTM_NEWADDR) return;
    auto* ifa = static_cast<ifaddrmsg*>(NLMSG_DATA(h));
    if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) return;
    auto attrs = Attributes(h, sizeof(ifaddrmsg));
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer's on point-to-point)
    auto it = attrs.find(IFA_LOCAL);
    if (it == attrs.end()) it = attrs.find(IFA_ADDRESS);
    auto owner = byIndex.find(ifa->ifa_index);
    if (it == attrs.end() || owner == byIndex.end()) return;
    char text[INET6_ADDRSTRLEN];
    if (::inet_ntop(ifa->ifa_family, RTA_DATA(it->second), text, sizeof(text)) == nullptr) return;
    owner->second.addresses.push_back({ifa->ifa_family, text, ifa->ifa_prefixlen, ifa->ifa_scope});
  });
  std::vector<Interface> out;
  for (auto& [_, i] : byIndex) out.push_back(std::move(i));
  return out;
}

Napi::Array InterfacesToJs(Napi::Env env, const std::vector<Interface>& interfaces) {
  Napi::Array out = Napi::Array::New(env, interfaces.size());
  for (size_t n = 0; n < interfaces.size(); n++) {
    const Interface& i = interfaces[n];
    Napi::Object o = Napi::Object::New(env);
    o.Set("ifindex", i.ifindex);
    o.Set("ifname", i.ifname);
    o.Set("up", (i.flags & IFF_UP) != 0);
    Napi::Array addresses = Napi::Array::New(env, i.addresses.size());
    for (size_t k = 0; k < i.addresses.size(); k++) {
      const Address& a = i.addresses[k];
      Napi::Object ao = Napi::Object::New(env);
      ao.Set("family", a.family == AF_INET ? 4 : 6);
      ao.Set("address", a.address);
      ao.Set("prefixLength", a.prefixLength);
      ao.Set("scope", a.scope);
      addresses.Set(k, ao);
    }
    o.Set("addresses", addresses);
    out.Set(n, o);
  }
  return out;
}

std::string NetnsPathArg(const Napi::CallbackInfo& info, const char* op) {
  std::string path = ArgString(info, 0);
  if (path.empty()) Fail(op, EINVAL, "empty netns path");
  return path;
}

// netnsInterfaces(netnsPath) -> [{ ifindex, ifname, up, addresses: [{ family, address,
// prefixLength, scope }] }] in ifindex order
Napi::Value NetnsInterfaces(const Napi::CallbackInfo& info) {
  std::string path = NetnsPathArg(info, "netns_interfaces");
  std::vector<Interface> interfaces;
  RunInNetns(path, [&] { interfaces = ListInterfaces(); });
  return InterfacesToJs(info.Env(), interfaces);
}

// netnsSnapshot(netnsPath) -> { cookie, interfaces }: the netns cookie and netnsInterfaces'
// answer from one trip into the netns (one thread, one setns), as attaching a pod needs both.
Napi::Value NetnsSnapshot(const Napi::CallbackInfo& info) {
  std::string path = NetnsPathArg(info, "netns_snapshot");
  uint64_t cookie = 0;
  std::vector<Interface> interfaces;
  RunInNetns(path, [&] {
    cookie = CurrentNetnsCookie(path);
    interfaces = ListInterfaces();
  });
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("cookie", Napi::BigInt::New(info.Env(), cookie));
  out.Set("interfaces", InterfacesToJs(info.Env(), interfaces));
  return out;
}

// netnsReplaceAddress(netnsPath, ifname, address, prefixLength): `ip addr replace` (created
// when absent, left as it is when present)
Napi::Value NetnsReplaceAddress(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  std::string ifname = ArgString(info, 1);
  std::string address = ArgString(info, 2);
  uint32_t prefixLength = ArgU32(info, 3);
  unsigned char bytes[16];
  int family = AF_INET;
  size_t size = 4;
  if (::inet_pton(AF_INET6, address.c_str(), bytes) == 1) {
    family = AF_INET6;
    size = 16;
  } else if (::inet_pton(AF_INET, address.c_str(), bytes) != 1) {
    Fail("netns_replace_address", EINVAL, address + " is not an IP address");
  }
  if (prefixLength > size * 8) Fail("netns_replace_address", EINVAL, "prefix length " + std::to_string(prefixLength));
  if (path.empty()) Fail("netns_replace_address", EINVAL, "empty netns path");
  RunInNetns(path, [&] {
    unsigned ifindex = ::if_nametoindex(ifname.c_str());
    if (ifindex == 0) Fail("if_nametoindex", errno, ifname);
    Request<ifaddrmsg> req{};
    req.header.nlmsg_type = RTM_NEWADDR;
    req.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    req.payload.ifa_family = static_cast<unsigned char>(family);
    req.payload.ifa_prefixlen = static_cast<unsigned char>(prefixLength);
    req.payload.ifa_index = ifindex;
    size_t len = NLMSG_LENGTH(sizeof(ifaddrmsg));
    for (int type : {IFA_LOCAL, IFA_ADDRESS}) {
      auto* a = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(&req) + NLMSG_ALIGN(len));
      a->rta_type = static_cast<unsigned short>(type);
      a->rta_len = static_cast<unsigned short>(RTA_LENGTH(size));
      std::memcpy(RTA_DATA(a), bytes, size);
      len = NLMSG_ALIGN(len) + RTA_ALIGN(a->rta_len);
    }
    req.header.nlmsg_len = static_cast<uint32_t>(len);
    Rtnetlink nl;
    nl.Transact(&req.header, "rtnetlink RTM_NEWADDR", [](nlmsghdr*) {});
  });
  return info.Env().Undefined();
}

}  // namespace

void InitNetnsInterfaces(Napi::Env env, Napi::Object exports) {
  Export<NetnsInterfaces>(env, exports, "netnsInterfaces");
  Export<NetnsSnapshot>(env, exports, "netnsSnapshot");
  Export<NetnsReplaceAddress>(env, exports, "netnsReplaceAddress");
}

}  // namespace ebpf_napi

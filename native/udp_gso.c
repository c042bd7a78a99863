// One sendmsg carrying many equal-size UDP datagrams (Linux UDP GSO, UDP_SEGMENT):
// the kernel splits the payload into datagrams of `segment` bytes (the last may be
// shorter) as late as it can, so a burst of packets to one destination costs one
// system call instead of one per packet. Node's dgram has no way to do this.
// node-api only (no V8/Node internals): one binary works on every Node version.
#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#define MAX_SEGMENTS 64

// A numeric IPv6 or IPv4 host and a port as a socket address; 0 when the host is not an IP literal
// (a scoped fe80::1%eth0, a name, or a string the 64-byte buffer cut short: never parse a truncated one).
// inet_pton costs ~40 ns here, against ~2.7 us for the sendmsg: not worth a cache (BENCHMARKS.md).
static int to_sockaddr(const char *host, size_t hostLen, size_t bufLen, int32_t port, struct sockaddr_storage *ss, socklen_t *slen) {
  if (hostLen + 1 >= bufLen) return 0;
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *slen = sizeof *a6;
    return 1;
  }
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *slen = sizeof *a4;
    return 1;
  }
  return 0;
}

// sendGso(fd, buffers, segment, host, port) -> bytes sent, or -errno (never throws for a send error:
// EAGAIN/ENOBUFS/EINVAL/EIO are the caller's decision, not exceptions).
static napi_value SendGso(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_value result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) {
    napi_throw_type_error(env, NULL, "sendGso(fd, buffers, segment, host, port)");
    return NULL;
  }
  int32_t fd, segment, port;
  uint32_t count;
  char host[64];
  size_t hostLen;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_array_length(env, argv[1], &count) != napi_ok ||
      napi_get_value_int32(env, argv[2], &segment) != napi_ok ||
      napi_get_value_string_utf8(env, argv[3], host, sizeof host, &hostLen) != napi_ok ||
      napi_get_value_int32(env, argv[4], &port) != napi_ok) {
    napi_throw_type_error(env, NULL, "sendGso(fd: number, buffers: Buffer[], segment: number, host: string, port: number)");
    return NULL;
  }
  if (count == 0 || count > MAX_SEGMENTS || segment <= 0 || segment > 65535 || port <= 0 || port > 65535) {
    napi_throw_range_error(env, NULL, "sendGso: 1-64 buffers, segment 1-65535, port 1-65535");
    return NULL;
  }
  struct iovec iov[MAX_SEGMENTS];
  for (uint32_t i = 0; i < count; i++) {
    napi_value el;
    void *data;
    size_t len;
    if (napi_get_element(env, argv[1], i, &el) != napi_ok || napi_get_buffer_info(env, el, &data, &len) != napi_ok) {
      napi_throw_type_error(env, NULL, "sendGso: buffers must be Buffers");
      return NULL;
    }
    iov[i].iov_base = data;
    iov[i].iov_len = len;
  }
  struct sockaddr_storage ss;
  socklen_t slen;
  if (!to_sockaddr(host, hostLen, sizeof host, port, &ss, &slen)) {
    napi_throw_type_error(env, NULL, "sendGso: host must be a numeric IPv4 or IPv6 address");
    return NULL;
  }
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t))];
    struct cmsghdr align;
  } ctrl;
  memset(&ctrl, 0, sizeof ctrl);
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_name = &ss;
  msg.msg_namelen = slen;
  msg.msg_iov = iov;
  msg.msg_iovlen = count;
  if (count > 1) {
    msg.msg_control = ctrl.buf;
    msg.msg_controllen = sizeof ctrl.buf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t gso = (uint16_t)segment;
    memcpy(CMSG_DATA(cm), &gso, sizeof gso);
  }
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  napi_create_int32(env, n < 0 ? -errno : (int32_t)n, &result);
  return result;
}

// sendOne(fd, buffer, host, port) -> bytes sent, or -errno: one plain datagram, one sendmsg, no cmsg
// (the socket's DF mode decides about fragmentation exactly as for dgram's send). A lone packet (an
// ACK, a ping, the last of a turn) went through dgram.send, which costs a SendWrap, a lookup
// nextTick and a libuv request per packet for the same system call: most of a receiver's sends are
// such ACKs (BENCHMARKS.md, issue 20).
static napi_value SendOne(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_value result;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4) {
    napi_throw_type_error(env, NULL, "sendOne(fd, buffer, host, port)");
    return NULL;
  }
  int32_t fd, port;
  void *data;
  size_t len;
  char host[64];
  size_t hostLen;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_get_buffer_info(env, argv[1], &data, &len) != napi_ok ||
      napi_get_value_string_utf8(env, argv[2], host, sizeof host, &hostLen) != napi_ok ||
      napi_get_value_int32(env, argv[3], &port) != napi_ok) {
    napi_throw_type_error(env, NULL, "sendOne(fd: number, buffer: Buffer, host: string, port: number)");
    return NULL;
  }
  if (port <= 0 || port > 65535) {
    napi_throw_range_error(env, NULL, "sendOne: port 1-65535");
    return NULL;
  }
  struct sockaddr_storage ss;
  socklen_t slen;
  if (!to_sockaddr(host, hostLen, sizeof host, port, &ss, &slen)) {
    napi_throw_type_error(env, NULL, "sendOne: host must be a numeric IPv4 or IPv6 address");
    return NULL;
  }
  ssize_t n;
  do {
    n = sendto(fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&ss, slen);
  } while (n < 0 && errno == EINTR);
  napi_create_int32(env, n < 0 ? -errno : (int32_t)n, &result);
  return result;
}

// dfAlways(fd) -> 0, or -errno. IP_PMTUDISC_PROBE (and its IPv6 twin on an AF_INET6 socket):
// every datagram leaves with DF set and is never fragmented locally. The default mode (WANT)
// sets DF only on a datagram that fits the path MTU, and a GSO send is one 64 KB datagram to
// it: its segments went out without DF, routers fragmented them, and the path MTU discoverer
// (src/transport/mtu-discoverer.ts) never saw a black hole. QUIC stacks use PROBE for the same
// reason: they discover the path MTU themselves (RFC 8899).
static napi_value DfAlways(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value result;
  int32_t fd;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok) {
    napi_throw_type_error(env, NULL, "dfAlways(fd)");
    return NULL;
  }
  int mode = IP_PMTUDISC_PROBE;
  int rc = setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &mode, sizeof mode);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (rc == 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0 && ss.ss_family == AF_INET6) {
    int mode6 = IPV6_PMTUDISC_PROBE;
    rc = setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &mode6, sizeof mode6);
  }
  napi_create_int32(env, rc < 0 ? -errno : 0, &result);
  return result;
}

void udp_rx_init(napi_env env, napi_value exports);  // udp_rx.c: batched receive

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "sendGso", NAPI_AUTO_LENGTH, SendGso, NULL, &fn);
  napi_set_named_property(env, exports, "sendGso", fn);
  napi_value df;
  napi_create_function(env, "dfAlways", NAPI_AUTO_LENGTH, DfAlways, NULL, &df);
  napi_set_named_property(env, exports, "dfAlways", df);
  napi_value one;
  napi_create_function(env, "sendOne", NAPI_AUTO_LENGTH, SendOne, NULL, &one);
  napi_set_named_property(env, exports, "sendOne", one);
  udp_rx_init(env, exports);
  return exports;
}

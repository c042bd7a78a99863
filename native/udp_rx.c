// Batched UDP receive for a Node dgram socket: recvmmsg (up to `msgs` datagrams per system
// call) and optionally Linux UDP GRO (one datagram read may carry up to 64 coalesced datagrams
// of one flow, split here by the UDP_GRO cmsg's segment size). Node's dgram reads one datagram
// per recvmsg and calls JavaScript once per datagram (a new ArrayBuffer, an rinfo object and a
// MakeCallback with its microtask checkpoint each); this calls JavaScript once per batch.
//
// How it sits beside dgram: JavaScript stops dgram's own reading (handle.recvStop()), and we
// poll a dup() of the socket's fd on Node's libuv loop (uv_poll: two fds, two epoll entries,
// one socket). Each batch is copied, packed, into new Buffers the JavaScript side owns (the
// daemon decrypts in place and its streams keep slices of the plaintext, so the scratch the
// kernel writes into can never be handed out). Per packet JavaScript reads four int32 from a
// shared Int32Array: length, source port, flags, IPv4 address; the source's text form is
// written only when the source differs from the previous packet's.
// node-api (plus libuv's stable C API, which node-api exposes the loop of) only.
#define _GNU_SOURCE  // recvmmsg
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#define RX_MAX_MSGS 256
#define RX_META_INTS 4  // per packet: length, port, flags, IPv4 address (host order)
#define RX_TEXT_BYTES 48  // per packet: the source as text (INET6_ADDRSTRLEN 46), when it changed
#define RX_SAME 1  // same source as the previous packet delivered
#define RX_V6 2  // an IPv6 source that is not IPv4-mapped (use the text)
#define RX_MAPPED 4  // an IPv4-mapped IPv6 source (a dual-stack socket)
#define RX_NEXT_CHUNK 8  // the packet starts the batch's next Buffer
#define RX_CHUNK 65536
#define RX_MAX_GRO_SEGS 64  // the kernel coalesces at most 64 (UDP_GRO_CNT_MAX)
#define RX_ROUNDS 2  // recvmmsg calls per readable event at most (libuv reads 32 datagrams): then timers and other sockets

enum { ST_CALLS, ST_DATAGRAMS, ST_PACKETS, ST_TRUNCATED, ST_ERRORS, ST_OVERFLOW, ST_GRO, ST_COUNT };

typedef struct Rx {
  napi_env env;
  uv_poll_t *poll;  // its own allocation: libc's free() is its close callback (see rx_close)
  int fd;  // our dup of the socket's fd
  int closed;
  int gro;
  uint32_t msgs, slot, maxPackets;
  unsigned char *scratch;  // msgs * slot bytes the kernel writes into
  struct mmsghdr *hdrs;
  struct iovec *iovs;
  struct sockaddr_storage *names;
  char *ctrl;  // per message CMSG_SPACE(sizeof(int))
  size_t ctrlLen;
  napi_ref cb, meta, text, stats;
  int32_t *metaP;
  uint8_t *textP;
  double *statsP;
  napi_async_context actx;
  struct sockaddr_storage last;  // the source of the last packet delivered
  int haveLast;
  int delivering;  // inside a JavaScript call: node-api cleanup waits until it returns
  int napiPending;  // closed during a JavaScript call: references and async context still to release
  int hooked;  // the env cleanup hook is registered
} Rx;

static void rx_free(Rx *r) {  // the struct and its buffers (the poll handle is libuv's until closed)
  free(r->scratch);
  free(r->hdrs);
  free(r->iovs);
  free(r->names);
  free(r->ctrl);
  free(r);
}

static void napi_release(Rx *r) {
  r->napiPending = 0;
  napi_delete_reference(r->env, r->cb);
  napi_delete_reference(r->env, r->meta);
  napi_delete_reference(r->env, r->text);
  napi_delete_reference(r->env, r->stats);
  napi_async_destroy(r->env, r->actx);
}

// Stop polling and give the fd back; no callback runs after this. `napi`: release the references
// and the async context too (not at env teardown); inside a JavaScript call that waits until it
// returns (on_readable), so the async context is never destroyed under the callback using it.
static void rx_close(Rx *r, int napi) {
  if (r->closed) return;
  r->closed = 1;
  uv_poll_stop(r->poll);
  // GRO is a socket option: dgram, reading again (a fallback), must not get coalesced datagrams
  if (r->gro) {
    int zero = 0;
    setsockopt(r->fd, SOL_UDP, UDP_GRO, &zero, sizeof zero);
  }
  // The close callback is libc's free, not code of ours: a worker's environment unloads this addon
  // before its loop runs the last close callbacks (a pointer into it crashed the process).
  uv_close((uv_handle_t *)r->poll, (uv_close_cb)(void (*)(void))free);
  r->poll = NULL;
  // closed now, not at the close callback: the port must be free for a rebind as soon as dgram closes its fd
  close(r->fd);
  r->fd = -1;
  if (napi) {
    if (r->delivering) r->napiPending = 1;
    else napi_release(r);
  }
}

static void env_cleanup(void *arg) {
  Rx *r = arg;
  r->hooked = 0;
  rx_close(r, 0);
}

// The external is collected (the reader object is gone) or the env tears down: stop if still
// running, then free. While reading, the callback reference keeps the external alive.
static void on_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  Rx *r = data;
  if (r->hooked) {
    napi_remove_env_cleanup_hook(env, env_cleanup, r);
    r->hooked = 0;
  }
  rx_close(r, 0);
  rx_free(r);
}

static int same_source(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family) return 0;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
  return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
}

// Source fields of packet `p` from `name`.
static void write_source(Rx *r, uint32_t p, const struct sockaddr_storage *name) {
  int32_t *m = r->metaP + (size_t)p * RX_META_INTS;
  int flags = 0;
  if (r->haveLast && same_source(name, &r->last)) flags = RX_SAME;
  char *text = (char *)r->textP + (size_t)p * RX_TEXT_BYTES;
  size_t tlen = 0;
  if (name->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)name;
    m[1] = ntohs(a->sin_port);
    m[3] = (int32_t)ntohl(a->sin_addr.s_addr);
    if (!flags && inet_ntop(AF_INET, &a->sin_addr, text, RX_TEXT_BYTES)) tlen = strlen(text);
  } else {
    const struct sockaddr_in6 *a = (const void *)name;
    m[1] = ntohs(a->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      uint32_t v4;
      memcpy(&v4, &a->sin6_addr.s6_addr[12], 4);
      m[3] = (int32_t)ntohl(v4);
      flags |= RX_MAPPED;
    } else {
      m[3] = 0;
      flags |= RX_V6;
    }
    if (!(flags & RX_SAME) && inet_ntop(AF_INET6, &a->sin6_addr, text, RX_TEXT_BYTES)) tlen = strlen(text);
  }
  m[2] = flags | (int)(tlen << 8);
  r->last = *name;
  r->haveLast = 1;
}

// Hand JavaScript a batch or an error: cb(buffers, packets) or cb(null, -errno).
static int deliver(Rx *r, napi_value buf, int32_t n) {
  napi_env env = r->env;
  napi_value cb, global, argv[2], res;
  if (napi_get_reference_value(env, r->cb, &cb) != napi_ok || cb == NULL) return -1;
  napi_get_global(env, &global);
  if (buf == NULL) napi_get_null(env, &argv[0]);
  else argv[0] = buf;
  napi_create_int32(env, n, &argv[1]);
  napi_status st = napi_make_callback(env, r->actx, global, cb, 2, argv, &res);
  if (st == napi_pending_exception) {
    // as a throwing 'message' listener: the process's uncaughtException
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
    return -1;
  }
  return st == napi_ok ? 0 : -1;
}

// One recvmmsg: the batch to JavaScript. 1: the socket may hold more; 0: drained; -1: stop.
static int rx_round(Rx *r) {
  for (uint32_t i = 0; i < r->msgs; i++) {
    struct msghdr *h = &r->hdrs[i].msg_hdr;
    h->msg_namelen = sizeof(struct sockaddr_storage);
    h->msg_controllen = r->gro ? r->ctrlLen : 0;
    h->msg_flags = 0;
    r->iovs[i].iov_len = r->slot;
  }
  int n;
  do {
    n = recvmmsg(r->fd, r->hdrs, r->msgs, MSG_DONTWAIT, NULL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    r->statsP[ST_ERRORS]++;
    deliver(r, NULL, -errno);
    return -1;
  }
  if (n == 0) return 0;
  r->statsP[ST_CALLS]++;
  r->statsP[ST_DATAGRAMS] += n;
  // pass 1: what fits, and its size
  size_t total = 0;
  uint32_t packets = 0;
  uint32_t segOf[RX_MAX_MSGS];  // segment size per message, 0 = drop it
  for (int i = 0; i < n; i++) {
    struct msghdr *h = &r->hdrs[i].msg_hdr;
    uint32_t len = r->hdrs[i].msg_len;
    segOf[i] = 0;
    if ((h->msg_flags & MSG_TRUNC) || len > r->slot) {
      r->statsP[ST_TRUNCATED]++;
      continue;
    }
    uint32_t seg = len > 0 ? len : 1;
    if (r->gro) {
      if (h->msg_flags & MSG_CTRUNC) {  // a segment size we could not read: not one datagram, not safe to split
        r->statsP[ST_TRUNCATED]++;
        continue;
      }
      for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && c->cmsg_len >= CMSG_LEN(sizeof(int))) {
          int g;
          memcpy(&g, CMSG_DATA(c), sizeof g);
          if (g > 0 && (uint32_t)g < len) seg = (uint32_t)g;
        }
      }
    }
    uint32_t segs = len == 0 ? 1 : (len + seg - 1) / seg;
    if (segs > RX_MAX_GRO_SEGS || packets + segs > r->maxPackets) {
      r->statsP[ST_OVERFLOW]++;
      continue;
    }
    if (segs > 1) r->statsP[ST_GRO]++;
    segOf[i] = seg;
    packets += segs;
    total += len;
  }
  if (packets == 0) return n == (int)r->msgs;
  (void)total;
  // Chunks of at most RX_CHUNK bytes (a bigger datagram alone): a slice someone keeps holds its
  // chunk's memory alive, so what one kept packet can hold is bounded as with Node's own 64 KiB reads.
  uint32_t chunkOf[RX_MAX_MSGS];
  size_t chunkLen[RX_MAX_MSGS];
  uint32_t chunks = 0;
  for (int i = 0; i < n; i++) {
    if (segOf[i] == 0) continue;
    size_t len = r->hdrs[i].msg_len;
    if (chunks == 0 || (chunkLen[chunks - 1] > 0 && chunkLen[chunks - 1] + len > RX_CHUNK)) chunkLen[chunks++] = 0;
    chunkOf[i] = chunks - 1;
    chunkLen[chunks - 1] += len;
  }
  napi_value bufs;
  unsigned char *outs[RX_MAX_MSGS];
  size_t offs[RX_MAX_MSGS];
  if (napi_create_array_with_length(r->env, chunks, &bufs) != napi_ok) {
    r->statsP[ST_ERRORS]++;
    return -1;
  }
  for (uint32_t k = 0; k < chunks; k++) {
    napi_value b;
    void *data;
    if (napi_create_buffer(r->env, chunkLen[k], &data, &b) != napi_ok || napi_set_element(r->env, bufs, k, b) != napi_ok) {
      r->statsP[ST_ERRORS]++;
      return -1;
    }
    outs[k] = data;
    offs[k] = 0;
  }
  // pass 2: packed copy and per-packet fields
  uint32_t p = 0;
  uint32_t chunk = 0;
  for (int i = 0; i < n; i++) {
    if (segOf[i] == 0) continue;
    uint32_t len = r->hdrs[i].msg_len, seg = segOf[i];
    uint32_t k = chunkOf[i];
    memcpy(outs[k] + offs[k], r->scratch + (size_t)i * r->slot, len);
    offs[k] += len;
    uint32_t done = 0;
    do {
      uint32_t l = len - done < seg ? len - done : seg;
      write_source(r, p, &r->names[i]);
      r->metaP[(size_t)p * RX_META_INTS] = (int32_t)l;
      if (k != chunk) {  // the first packet of the next chunk
        r->metaP[(size_t)p * RX_META_INTS + 2] |= RX_NEXT_CHUNK;
        chunk = k;
      }
      p++;
      done += l;
    } while (done < len);
  }
  r->statsP[ST_PACKETS] += p;
  if (deliver(r, bufs, (int32_t)p) < 0) return -1;
  return n == (int)r->msgs;
}

static void on_readable(uv_poll_t *h, int status, int events) {
  (void)events;
  Rx *r = (Rx *)h->data;
  if (r->closed) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(r->env, &scope) != napi_ok) return;
  r->delivering = 1;
  if (status < 0) {
    r->statsP[ST_ERRORS]++;
    deliver(r, NULL, status);
  } else {
    for (int i = 0; i < RX_ROUNDS && !r->closed; i++)
      if (rx_round(r) <= 0) break;
  }
  r->delivering = 0;
  if (r->napiPending) napi_release(r);
  napi_close_handle_scope(r->env, scope);
}

static int typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *length) {
  bool is;
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  if (napi_get_typedarray_info(env, v, &t, length, data, &ab, &off) != napi_ok) return 0;
  return t == want;
}

// rxStart(fd, msgs, slot, gro, meta: Int32Array, text: Uint8Array, stats: Float64Array, cb) -> handle, or -errno.
// Throws only for wrong arguments. gro: 1 asks for UDP_GRO (handle.gro says whether the kernel took it).
static napi_value RxStart(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], result;
  int32_t fd, msgs, slot, gro;
  void *meta, *text, *stats;
  size_t metaLen, textLen, statsLen;
  napi_valuetype cbType;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 8 || napi_get_value_int32(env, argv[0], &fd) != napi_ok ||
      napi_get_value_int32(env, argv[1], &msgs) != napi_ok || napi_get_value_int32(env, argv[2], &slot) != napi_ok ||
      napi_get_value_int32(env, argv[3], &gro) != napi_ok || !typed(env, argv[4], napi_int32_array, &meta, &metaLen) ||
      !typed(env, argv[5], napi_uint8_array, &text, &textLen) || !typed(env, argv[6], napi_float64_array, &stats, &statsLen) ||
      napi_typeof(env, argv[7], &cbType) != napi_ok || cbType != napi_function) {
    napi_throw_type_error(env, NULL, "rxStart(fd, msgs, slot, gro, meta: Int32Array, text: Uint8Array, stats: Float64Array, cb)");
    return NULL;
  }
  size_t maxPackets = metaLen / RX_META_INTS;
  if (fd < 0 || msgs < 1 || msgs > RX_MAX_MSGS || slot < 64 || slot > 65536 || maxPackets < (size_t)msgs || maxPackets > 1 << 20 ||
      textLen < maxPackets * RX_TEXT_BYTES || statsLen < ST_COUNT) {
    napi_throw_range_error(env, NULL, "rxStart: msgs 1-256, slot 64-65536, meta >= 4 ints per packet, text 48 bytes per packet, stats >= 7");
    return NULL;
  }
  int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dfd < 0) {
    napi_create_int32(env, -errno, &result);
    return result;
  }
  Rx *r = calloc(1, sizeof *r);
  if (r == NULL) {
    close(dfd);
    napi_create_int32(env, -ENOMEM, &result);
    return result;
  }
  r->env = env;
  r->fd = dfd;
  r->msgs = (uint32_t)msgs;
  r->slot = (uint32_t)slot;
  r->maxPackets = (uint32_t)maxPackets;
  r->ctrlLen = CMSG_SPACE(sizeof(int));
  r->scratch = malloc((size_t)msgs * (size_t)slot);
  r->hdrs = calloc((size_t)msgs, sizeof *r->hdrs);
  r->iovs = calloc((size_t)msgs, sizeof *r->iovs);
  r->names = calloc((size_t)msgs, sizeof *r->names);
  r->ctrl = calloc((size_t)msgs, r->ctrlLen);
  uv_loop_t *loop;
  if (r->scratch == NULL || r->hdrs == NULL || r->iovs == NULL || r->names == NULL || r->ctrl == NULL ||
      napi_get_uv_event_loop(env, &loop) != napi_ok) {
    close(dfd);
    rx_free(r);
    napi_create_int32(env, -ENOMEM, &result);
    return result;
  }
  for (int i = 0; i < msgs; i++) {
    r->iovs[i].iov_base = r->scratch + (size_t)i * (size_t)slot;
    r->iovs[i].iov_len = (size_t)slot;
    struct msghdr *h = &r->hdrs[i].msg_hdr;
    h->msg_name = &r->names[i];
    h->msg_iov = &r->iovs[i];
    h->msg_iovlen = 1;
    h->msg_control = r->ctrl + (size_t)i * r->ctrlLen;
  }
  if (gro) {
    int one = 1;
    r->gro = setsockopt(dfd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  }
  r->poll = malloc(sizeof *r->poll);
  int rc = r->poll == NULL ? UV_ENOMEM : uv_poll_init(loop, r->poll, dfd);
  if (rc == 0) {
    r->poll->data = r;
    rc = uv_poll_start(r->poll, UV_READABLE, on_readable);
    if (rc != 0) uv_close((uv_handle_t *)r->poll, (uv_close_cb)(void (*)(void))free);
  } else {
    free(r->poll);
  }
  if (rc != 0) {
    if (r->gro) {
      int zero = 0;
      setsockopt(dfd, SOL_UDP, UDP_GRO, &zero, sizeof zero);
    }
    close(dfd);
    r->poll = NULL;
    rx_free(r);
    napi_create_int32(env, rc, &result);
    return result;
  }
  r->metaP = meta;
  r->textP = text;
  r->statsP = stats;
  napi_value name;
  napi_create_reference(env, argv[7], 1, &r->cb);
  napi_create_reference(env, argv[4], 1, &r->meta);
  napi_create_reference(env, argv[5], 1, &r->text);
  napi_create_reference(env, argv[6], 1, &r->stats);
  napi_create_string_utf8(env, "PilotUdpRx", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &r->actx);
  napi_add_env_cleanup_hook(env, env_cleanup, r);
  r->hooked = 1;
  napi_value handle, groV;
  napi_create_external(env, r, on_finalize, NULL, &handle);
  // the handle is an external; gro is reported through a wrapper object
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "handle", handle);
  napi_get_boolean(env, r->gro, &groV);
  napi_set_named_property(env, result, "gro", groV);
  return result;
}

// rxStop(handle): no callback after this returns; the dup'd fd is closed at once. Twice is fine.
static napi_value RxStop(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *p;
  napi_valuetype t;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok ||
      t != napi_external || napi_get_value_external(env, argv[0], &p) != napi_ok) {
    napi_throw_type_error(env, NULL, "rxStop(handle)");
    return NULL;
  }
  Rx *r = p;
  if (r->hooked) {
    napi_remove_env_cleanup_hook(env, env_cleanup, r);
    r->hooked = 0;
  }
  rx_close(r, 1);
  return NULL;
}

void udp_rx_init(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "rxStart", NAPI_AUTO_LENGTH, RxStart, NULL, &fn);
  napi_set_named_property(env, exports, "rxStart", fn);
  napi_create_function(env, "rxStop", NAPI_AUTO_LENGTH, RxStop, NULL, &fn);
  napi_set_named_property(env, exports, "rxStop", fn);
}

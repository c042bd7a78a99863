// ChaCha20-Poly1305 (RFC 8439) for the data path, through the OpenSSL that the running Node
// already carries (Node exports OpenSSL's symbols to addons; Debian's node links libcrypto).
// Same algorithm and bytes as libsodium's crypto_aead_chacha20poly1305_ietf, which the rest of
// the code uses (src/crypto/aead.ts), but ~2.5x cheaper per 1,400-byte packet here: OpenSSL's
// AVX-512 ChaCha20 and Poly1305, a cipher context keyed once per session instead of per call,
// and one node-api call that reads the nonce and associated data from the packet itself instead
// of four Buffer views built in JavaScript. No cryptography is written here: OpenSSL's EVP does it.
//
// Packet layout (a Pilot Data packet, src/crypto/session.ts):
//   [ad: adLen bytes, holding the 8-byte big-endian counter at nonceAt][body][16-byte tag]
//   nonce = 4 zero bytes || the 8 counter bytes (as WireGuard and libsodium's IETF variant).
// Sealing encrypts the body in place and writes the tag; opening checks the tag and decrypts
// the body in place (zeroed when the tag does not verify, as libsodium does).
// node-api only (no V8/Node internals): one binary works on every Node version.
#define NAPI_VERSION 8
#include <node_api.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define KEY_BYTES 32
#define TAG_BYTES 16
#define NONCE_BYTES 12

typedef struct {
  EVP_CIPHER_CTX *ctx;  // NULL once wiped
  int encrypt;
  uint32_t adLen;    // the packet's header: associated data
  uint32_t nonceAt;  // where in it the 8-byte counter sits
} AeadKey;

// Marks our handles: a foreign external (another addon's) passed in is refused, not misread.
static const napi_type_tag KEY_TAG = {0x7069c0de5eed0001ULL, 0x61656164636861ULL};

static void FreeKey(AeadKey *k) {
  if (k->ctx != NULL) {
    EVP_CIPHER_CTX_free(k->ctx);  // resets the context: OpenSSL cleanses the key schedule
    k->ctx = NULL;
  }
}

static void Finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  FreeKey((AeadKey *)data);
  free(data);
}

static int Throw(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return 0;
}

// aeadKey(key: Buffer(32), encrypt: boolean, adLen: number, nonceAt: number) -> handle: the layout
// is fixed per key, so the per-packet calls take only the handle and the packet.
static napi_value NewKey(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  void *key;
  size_t keyLen;
  bool encrypt;
  uint32_t adLen, nonceAt;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      napi_get_buffer_info(env, argv[0], &key, &keyLen) != napi_ok || keyLen != KEY_BYTES ||
      napi_get_value_bool(env, argv[1], &encrypt) != napi_ok || napi_get_value_uint32(env, argv[2], &adLen) != napi_ok ||
      napi_get_value_uint32(env, argv[3], &nonceAt) != napi_ok || adLen > 4096 || nonceAt + 8 > adLen) {
    Throw(env, "aeadKey(key: 32-byte Buffer, encrypt: boolean, adLen: number, nonceAt: number), the counter inside the header");
    return NULL;
  }
  AeadKey *k = calloc(1, sizeof *k);
  if (k == NULL) {
    napi_throw_error(env, NULL, "aeadKey: out of memory");
    return NULL;
  }
  k->encrypt = encrypt ? 1 : 0;
  k->adLen = adLen;
  k->nonceAt = nonceAt;
  k->ctx = EVP_CIPHER_CTX_new();
  unsigned char zero[NONCE_BYTES] = {0};
  if (k->ctx == NULL || EVP_CipherInit_ex(k->ctx, EVP_chacha20_poly1305(), NULL, NULL, NULL, k->encrypt) != 1 ||
      EVP_CIPHER_CTX_ctrl(k->ctx, EVP_CTRL_AEAD_SET_IVLEN, NONCE_BYTES, NULL) != 1 ||
      EVP_CipherInit_ex(k->ctx, NULL, NULL, key, zero, k->encrypt) != 1) {
    FreeKey(k);
    free(k);
    napi_throw_error(env, NULL, "aeadKey: OpenSSL has no ChaCha20-Poly1305");
    return NULL;
  }
  napi_value handle;
  if (napi_create_external(env, k, Finalize, NULL, &handle) != napi_ok) {
    FreeKey(k);
    free(k);
    return NULL;
  }
  napi_type_tag_object(env, handle, &KEY_TAG);
  return handle;
}

// The handle and the packet of a seal/open call; 0 (and a thrown error) when malformed.
static int Args(napi_env env, napi_callback_info info, AeadKey **k, unsigned char **pkt, size_t *len) {
  size_t argc = 2;
  napi_value argv[2];
  void *data;
  bool ours = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_check_object_type_tag(env, argv[0], &KEY_TAG, &ours) != napi_ok || !ours ||
      napi_get_value_external(env, argv[0], &data) != napi_ok || napi_get_buffer_info(env, argv[1], (void **)pkt, len) != napi_ok)
    return Throw(env, "(handle, packet: Buffer)");
  *k = data;
  if (*len < (size_t)(*k)->adLen + TAG_BYTES) return Throw(env, "packet shorter than its header and tag");
  return 1;
}

static napi_value Bool(napi_env env, int v) {
  napi_value r;
  napi_get_boolean(env, v != 0, &r);
  return r;
}

// One AEAD pass over the packet in place: the nonce and associated data from its header.
static int Pass(AeadKey *k, unsigned char *pkt, size_t len) {
  uint32_t adLen = k->adLen;
  unsigned char nonce[NONCE_BYTES] = {0};
  memcpy(nonce + 4, pkt + k->nonceAt, 8);
  unsigned char *body = pkt + adLen;
  int bodyLen = (int)(len - adLen - TAG_BYTES);
  unsigned char *tag = body + bodyLen;
  int n;
  if (EVP_CipherInit_ex(k->ctx, NULL, NULL, NULL, nonce, -1) != 1) return 0;
  if (!k->encrypt && EVP_CIPHER_CTX_ctrl(k->ctx, EVP_CTRL_AEAD_SET_TAG, TAG_BYTES, tag) != 1) return 0;
  if (adLen > 0 && EVP_CipherUpdate(k->ctx, NULL, &n, pkt, (int)adLen) != 1) return 0;
  if (bodyLen > 0 && EVP_CipherUpdate(k->ctx, body, &n, body, bodyLen) != 1) return 0;
  if (EVP_CipherFinal_ex(k->ctx, body + bodyLen, &n) != 1) return 0;  // decrypt: the tag check
  if (k->encrypt && EVP_CIPHER_CTX_ctrl(k->ctx, EVP_CTRL_AEAD_GET_TAG, TAG_BYTES, tag) != 1) return 0;
  return 1;
}

// aeadSeal(handle, packet) -> true (false: the key was wiped, or OpenSSL failed)
static napi_value Seal(napi_env env, napi_callback_info info) {
  AeadKey *k;
  unsigned char *pkt;
  size_t len;
  if (!Args(env, info, &k, &pkt, &len)) return NULL;
  if (k->ctx == NULL || !k->encrypt) return Bool(env, 0);
  return Bool(env, Pass(k, pkt, len));
}

// aeadOpen(handle, packet) -> true when the tag verified (the body is then plaintext)
static napi_value Open(napi_env env, napi_callback_info info) {
  AeadKey *k;
  unsigned char *pkt;
  size_t len;
  if (!Args(env, info, &k, &pkt, &len)) return NULL;
  if (k->ctx == NULL || k->encrypt) return Bool(env, 0);
  int ok = Pass(k, pkt, len);
  // OpenSSL decrypts before it verifies: never leave unauthenticated plaintext behind
  if (!ok) memset(pkt + k->adLen, 0, len - k->adLen - TAG_BYTES);
  return Bool(env, ok);
}

// aeadWipe(handle): forget the key now (a session dropped); later calls return false.
static napi_value Wipe(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data;
  bool ours = false;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_check_object_type_tag(env, argv[0], &KEY_TAG, &ours) != napi_ok || !ours ||
      napi_get_value_external(env, argv[0], &data) != napi_ok) {
    Throw(env, "aeadWipe(handle)");
    return NULL;
  }
  FreeKey((AeadKey *)data);
  return NULL;
}

NAPI_MODULE_INIT() {
  static const struct {
    const char *name;
    napi_callback cb;
  } fns[] = {{"aeadKey", NewKey}, {"aeadSeal", Seal}, {"aeadOpen", Open}, {"aeadWipe", Wipe}};
  for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
    napi_value fn;
    napi_create_function(env, fns[i].name, NAPI_AUTO_LENGTH, fns[i].cb, NULL, &fn);
    napi_set_named_property(env, exports, fns[i].name, fn);
  }
  return exports;
}

// First byte of every UDP datagram (and of every frame on a TCP relay link).
// One real socket carries all of these, so the daemon dispatches on this byte.
// Only the Data/Handshake packets carry peer traffic, and those are always
// encrypted and authenticated; nothing else ever carries application bytes.
export const PacketType = {
  /** daemon -> rendezvous: signed registry/beacon request (JSON envelope). */
  RegistryRequest: 0x01,
  /** rendezvous -> daemon: signed response to a request (JSON envelope). */
  RegistryResponse: 0x02,
  /** rendezvous -> daemon: signed unsolicited notice (punch coordination, pending trust, ...). */
  RegistryPush: 0x03,
  /**
   * rendezvous -> daemon (UDP only): [type][16-byte cookie][request nonce ASCII].
   * "Prove you receive at this address": echo the cookie in the signed statement and retry.
   */
  RegistryCookie: 0x04,
  /**
   * daemon -> rendezvous (UDP only): [type] alone. Refreshes the NAT mappings on the way when
   * they time out sooner than the heartbeat comes (issue 19); the rendezvous answers nothing.
   */
  Keepalive: 0x05,
  /** Noise IK message 1: [type][u32 sender index][noise msg][mac1 16][mac2 16] (src/crypto/cookie.ts). */
  HandshakeInit: 0x10,
  /** Noise IK message 2: [type][u32 sender index][u32 receiver index][noise msg]. */
  HandshakeResp: 0x11,
  /** Transport data: [type][u32 receiver index][u64 counter][ciphertext+16-byte tag]. */
  Data: 0x12,
  /** Unauthenticated hint "I have no session for index X": only ever triggers a re-handshake. */
  SessionUnknown: 0x13,
  /** Answer to a message 1 while under load: [type][u32 receiver index][nonce 24][XChaCha20-Poly1305 cookie 16 + tag 16]. */
  HandshakeCookie: 0x14,
  /** node -> rendezvous relay: [type][6-byte dst address][inner packet]. */
  RelaySend: 0x20,
  /** rendezvous relay -> node: [type][6-byte src address][inner packet]. */
  RelayDeliver: 0x21,
  /** rendezvous -> rendezvous (scale-out): [type][16-byte HMAC tag][6-byte src address][RelaySend packet]. */
  RelayForward: 0x22,
} as const;
export type PacketTypeValue = (typeof PacketType)[keyof typeof PacketType];

/** Default UDP payload budget: 1280-byte path MTU minus IPv6 (40) and UDP (8) headers. */
export const DEFAULT_UDP_PAYLOAD = 1232;
/** Data packet overhead: type(1) + index(4) + counter(8) + AEAD tag(16). */
export const DATA_OVERHEAD = 29;
/** Relay wrapper overhead: type(1) + address(6). */
export const RELAY_OVERHEAD = 7;
/** Largest plaintext the transport may hand to the session layer by default (fits even when relayed). */
export const DEFAULT_MAX_PLAINTEXT = DEFAULT_UDP_PAYLOAD - DATA_OVERHEAD - RELAY_OVERHEAD;

// Types for the CommonJS Noise libraries (they ship none).
declare module 'noise-handshake' {
  interface KeyPair {
    publicKey: Buffer;
    secretKey: Buffer;
  }
  class Noise {
    constructor(pattern: string, initiator: boolean, staticKeypair?: KeyPair, opts?: { curve?: unknown });
    s: KeyPair;
    rs: Buffer | null;
    tx: Buffer | null;
    rx: Buffer | null;
    complete: boolean;
    initialise(prologue: Buffer, remoteStatic?: Buffer): void;
    send(payload?: Buffer): Buffer;
    recv(buf: Buffer): Buffer;
  }
  export = Noise;
}
declare module 'noise-curve-ed' {
  const curve: unknown;
  export = curve;
}

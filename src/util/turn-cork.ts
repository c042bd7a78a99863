// Coalesces the writes one event-loop turn makes to a TCP socket into one writev: a relayed
// packet over a TCP link (the daemon's uplink, the rendezvous's framed link to a node) is one
// frame, and written one by one each frame was a write() system call of its own. The first write
// of a turn goes out at once (a request, a reply, a lone packet must not wait for the turn to
// end, as a QUIC stack sends the first packet of a burst at once); the writes after it in the
// same turn are corked until the turn's I/O is done (setImmediate) and leave together.
// Backpressure is unchanged: write() still answers false past the high-water mark, and the
// callers' writableLength checks still see every byte. The gateway's splice (src/gateway/splice.ts)
// uses it for the TCP side, where the overlay stream delivers one chunk per packet.

export interface Corkable {
  cork(): void;
  uncork(): void;
}

export class TurnCork {
  private readonly sock: Corkable;
  private inTurn = false;
  private corked = false;
  private readonly endTurn = (): void => {
    this.inTurn = false;
    if (!this.corked) return;
    this.corked = false;
    this.sock.uncork();
  };

  constructor(sock: Corkable) {
    this.sock = sock;
  }

  /** Call right before each write to the socket. */
  beforeWrite(): void {
    if (!this.inTurn) {
      this.inTurn = true; // this write goes out now
      setImmediate(this.endTurn);
    } else if (!this.corked) {
      this.corked = true;
      this.sock.cork();
    }
  }
}

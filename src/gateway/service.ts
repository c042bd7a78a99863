// Gateway + expose as one unit the daemon owns: restored at start, closed at stop.
import type { OverlayHost } from './host.ts';
import { Gateway } from './gateway.ts';
import { Expose } from './expose.ts';

export class GatewayService {
  readonly gateway: Gateway;
  readonly expose: Expose;
  private readonly host: OverlayHost;

  constructor(host: OverlayHost) {
    this.host = host;
    this.gateway = new Gateway(host);
    this.expose = new Expose(host);
  }

  /** Never fails the daemon start: what cannot be restored is logged and listed with its error. */
  async restore(): Promise<void> {
    try {
      this.expose.restore();
      await this.gateway.restore();
    } catch (err) {
      this.host.log.warn({ err: (err as Error).message }, 'gateway/expose restore failed');
    }
  }

  async close(): Promise<void> {
    this.expose.close();
    await this.gateway.close();
  }
}

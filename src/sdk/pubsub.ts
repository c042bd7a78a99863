// node.pubsub: events on topics of a broker (port 1002). Every node is a broker
// for its trusted peers; the target may be this node itself (its own address
// or hostname) or a peer.
import type { Backend } from './backend.ts';
import type { PubSubEvent, PubSubStatus, PublishResult } from './service-types.ts';
import { ServiceSubscription, type SubscriptionOptions } from './subscription.ts';

export class PubSub {
  private readonly backend: Backend;

  constructor(backend: Backend) {
    this.backend = backend;
  }

  /** Publish `data` (UTF-8 text, at most 64 KiB) on `topic` of `target`'s broker. */
  publish(target: string, topic: string, data = ''): Promise<PublishResult> {
    return this.backend.call('publish', { target, topic, data });
  }

  /**
   * Subscribe to a topic pattern (`a.b`, `a.*`, or `*` for all) of `target`'s
   * broker. Resolves once the broker registered the subscription (an event
   * published after that arrives), with an async iterable of the events.
   */
  subscribe(target: string, topic: string, opts: SubscriptionOptions<PubSubEvent> = {}): Promise<ServiceSubscription<PubSubEvent>> {
    return ServiceSubscription.open(this.backend, 'subscribe', { target, topic }, 'event', 'subscribed', opts);
  }

  /** This node's broker: subscribers now, events published so far. */
  status(): Promise<PubSubStatus> {
    return this.backend.call('pubsub_status');
  }
}

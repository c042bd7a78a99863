// Node lifecycle at the rendezvous (issue 18): ephemeral nodes are removed - address,
// hostname, trust pairs and memberships - when they deregister (a clean stop) or after
// a silence (a crash, a killed container), as Tailscale removes its ephemeral nodes;
// and a node that stops cleanly says so (`offline`), so it shows offline at once
// instead of after ONLINE_MS. Node ids are never handed out again (SECURITY.md).
import { formatAddress } from '../wire/address.ts';
import type { NodeRecord, RemovedNode } from './store/store.ts';
import type { HandlerContext } from './registry-handlers.ts';

/**
 * Removes a node entirely, in one store call: its memberships (not pushed to the other
 * members: its proofs lapse with its ticket), its trust pairs (the peers hear `trust_revoked`, so their mirrors drop it at once), its
 * pending trust requests, its record (the address no longer resolves; the hostname is
 * free for any key) and its presence. False if another instance removed it first.
 */
export async function releaseNode(ctx: HandlerContext, rec: NodeRecord): Promise<boolean> {
  const removed = await ctx.store.remove(rec.publicKey);
  if (!removed) return false;
  await afterRemoval(ctx, removed);
  return true;
}

/**
 * releaseNode for the node of `key` if it is ephemeral, in one store call with no lookup first
 * (an ephemeral agent's clean stop: 100 a second in a churning fleet). False if it is not
 * ephemeral or not there.
 */
export async function releaseIfEphemeral(ctx: HandlerContext, key: Buffer): Promise<boolean> {
  const removed = await ctx.store.remove(key, { onlyEphemeral: true });
  if (!removed) return false;
  await afterRemoval(ctx, removed);
  return true;
}

async function afterRemoval(ctx: HandlerContext, removed: RemovedNode): Promise<void> {
  const rec = removed.node;
  for (const a of removed.memberships) ctx.hooks.nodeChanged(a);
  const me = formatAddress(rec.address);
  for (const p of removed.pairs) {
    const other = formatAddress(p.a) === me ? p.b : p.a;
    ctx.hooks.pairChanged(p.a, p.b);
    ctx.hooks.push(other, 'trust_revoked', { peer: me });
  }
  ctx.online.remove(rec.publicKey.toString('base64'));
  await ctx.cluster?.absent(rec.address);
  ctx.hooks.nodeChanged(rec.address);
}

/** When the ephemeral nodes were last swept, and whether a sweep is running (one per service). */
export interface NodeSweepState {
  last: number;
  running: boolean;
}

/** Candidates looked at per sweep; live ones get their stored last_seen refreshed, so they stop being candidates. */
const SWEEP_BATCH = 1000;

/**
 * Releases the ephemeral nodes silent for the network limits' ephemeralSilenceMs (the same
 * limit and cadence as the ephemeral memberships' sweep: pilot-rendezvous --ephemeral-timeout).
 * The stored last_seen lags the live one (heartbeats persist only every few minutes), so a
 * candidate heard here within the window is refreshed in the store instead, and one online
 * at another instance is left to that instance.
 */
export async function sweepEphemeralNodes(ctx: HandlerContext, now: number, st: NodeSweepState): Promise<number> {
  const { ephemeralSilenceMs: silence, ephemeralSweepMs: every } = ctx.net.limits;
  if (st.running || now - st.last < every) return 0;
  st.running = true;
  st.last = now;
  try {
    let n = 0;
    for (const rec of await ctx.store.listEphemeralSeenBefore(now - silence, SWEEP_BATCH)) {
      const e = ctx.online.getByKey(rec.publicKey.toString('base64'));
      if (e && now - e.lastSeen < silence) {
        await ctx.store.touch(rec.publicKey, { observed: e.link?.observed ?? rec.observed ?? '', now: e.lastSeen }).catch(() => {});
        continue;
      }
      if (ctx.cluster && (await ctx.cluster.locate(rec.address, now))) continue;
      if (await releaseNode(ctx, rec)) n++;
    }
    return n;
  } finally {
    st.running = false;
  }
}

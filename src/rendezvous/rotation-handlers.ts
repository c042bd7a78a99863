// rotate_key (issue 18): a node moves its address to a new key. The request is
// signed by the NEW key (the envelope check proved we talk to its holder); the
// statement inside is signed by the OLD key, the address's current one. The store
// rebinds atomically (both stores, all instances); then the node's networks get an
// audit entry and its trusted peers and co-members a key_rotated push carrying the
// statement, which they verify themselves (src/registry/rotation.ts).
import { PilotError } from '../util/errors.ts';
import { rotationErrors } from './store/rotation-errors.ts';
import { addressKey, formatAddress, type Address } from '../wire/address.ts';
import { compactRotation, ROTATION_HISTORY, ROTATION_INTERVAL_MS, verifyRotation } from '../registry/rotation.ts';
import { isOnline } from './online-index.ts';
import type { HandlerContext } from './registry-handlers.ts';
import type { Link } from './link.ts';
import type { SignedStatement } from './trust-handlers.ts';
import { envelopeCost, RESULT_BUDGET } from './trust-handlers.ts';
import type { NodeRecord } from './store/store.ts';

export async function rotateKey(
  ctx: HandlerContext,
  key: Buffer,
  p: { statement: string; sig: string },
  link: Link,
  now: number,
  signed: SignedStatement,
): Promise<Record<string, unknown>> {
  const r = verifyRotation({ statement: p.statement, sig: Buffer.from(p.sig, 'base64') });
  if (!r.newKey.equals(key)) {
    throw new PilotError(
      'BAD_SIGNATURE',
      'key rotation refused: the request is not signed by the new key',
      'sign the rotate_key request with the new key (proof that you hold it); pilotctl rotate-key does this',
    );
  }
  const { status, node } = await ctx.store.rotateKey(
    { address: r.address, oldKey: r.oldKey, newKey: r.newKey, statement: p.statement, sig: Buffer.from(p.sig, 'base64'), created: now },
    { keep: ROTATION_HISTORY, minIntervalMs: ROTATION_INTERVAL_MS },
  );
  // The old key is out of the online index: it cannot heartbeat from memory either.
  ctx.online.remove(r.oldKey.toString('base64'));
  ctx.online.seen({ address: node.address, keyB64: key.toString('base64'), link, lanEndpoints: node.lanEndpoints, now, persisted: true });
  await ctx.cluster?.present({ address: node.address, observed: link.kind === 'udp' ? link.observed : null, lanEndpoints: node.lanEndpoints, now });
  ctx.hooks.nodeChanged(node.address);
  const nets = await ctx.store.networks.networksOf(key);
  if (status === 'rotated') {
    const detail = JSON.stringify({ node: formatAddress(node.address), old: r.oldKey.toString('base64'), new: r.newKey.toString('base64') });
    for (const n of nets) {
      await ctx.store.networks.appendAudit(
        { net: n.id, ts: now, actor: node.address, action: 'rotate_key', detail, stmt: signed.text, sig: signed.sig },
        ctx.net.limits.auditPerNetwork,
      );
    }
  }
  // Again on a retry: the first answer (and its pushes) may have been lost with a crash.
  await pushRotation(ctx, node, nets, { address: formatAddress(node.address), statement: p.statement, sig: p.sig }, now);
  return { address: formatAddress(node.address), publicKey: key.toString('base64'), already: status === 'already', observed: link.observed };
}

/** key_rotated to trusted peers and co-members (members and admins of the node's networks) that are online. */
async function pushRotation(
  ctx: HandlerContext,
  node: NodeRecord,
  nets: { id: number; admin: Buffer }[],
  data: Record<string, unknown>,
  now: number,
): Promise<void> {
  const to = new Map<number, Address>();
  for (const pair of await ctx.store.listTrustPairs(node.address)) {
    const other = addressKey(pair.a) === addressKey(node.address) ? pair.b : pair.a;
    to.set(addressKey(other), other);
  }
  for (const n of nets) {
    for (const m of await ctx.store.networks.listMembers(n.id)) to.set(addressKey(m.address), m.address);
    const admin = await ctx.store.getByKey(n.admin);
    if (admin) to.set(addressKey(admin.address), admin.address);
  }
  to.delete(addressKey(node.address));
  for (const a of to.values()) {
    const e = ctx.online.getByAddress(a);
    if ((!e || !isOnline(e, now)) && !ctx.cluster) continue;
    ctx.hooks.push(a, 'key_rotated', data);
  }
}

/** The statement that bound `rec`'s current key, for a resolve answer, when it fits the packet. */
export async function latestRotation(ctx: HandlerContext, rec: NodeRecord, result: Record<string, unknown>): Promise<Record<string, unknown>> {
  let last: { statement: string; sig: Buffer } | undefined;
  if (rec.boundBy !== undefined)
    last = rec.boundBy ?? undefined; // read with the record
  else {
    const all = await ctx.store.listRotations(rec.address);
    const newest = all[all.length - 1];
    if (newest?.newKey.equals(rec.publicKey)) last = newest;
  }
  if (!last) return result;
  const withIt = { ...result, rotation: compactRotation({ statement: last.statement, sig: last.sig }) };
  return envelopeCost(withIt) <= RESULT_BUDGET ? withIt : result;
}

/** register/heartbeat by a key a rotation replaced: refused, with the reason. */
export async function refuseRetired(ctx: HandlerContext, key: Buffer): Promise<void> {
  const a = await ctx.store.retiredKey(key);
  if (a) throw rotationErrors.retired(a);
}

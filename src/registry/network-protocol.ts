// Wire schemas of the fleet methods (issue 18), valibot. Params are checked by the
// rendezvous before a handler runs (network-handlers.ts); results and push data are
// checked by the client (network-client.ts): a server bug fails loudly. Binary things
// (certificates, bindings, tickets, signatures) travel as standard base64; their
// contents are checked by membership.ts.
import * as v from 'valibot';
import { PilotError } from '../util/errors.ts';
import { BINDING_BYTES, CERT_MAX_BYTES, TICKET_BYTES } from './membership.ts';
import { MAX_TAGS, POLICY_MAX_BYTES, TAG_MAX_LENGTH } from './network-policy.ts';

export const NETWORK_METHODS = [
  'network_create',
  'network_delete',
  'network_list',
  'network_members',
  'network_invite',
  'network_invites',
  'network_revoke_invite',
  'network_join',
  'network_leave',
  'network_kick',
  'network_kicks',
  'network_tickets',
  'network_policy_set',
  'network_policy_get',
  'network_audit',
  'network_audit_stmt',
  'set_tags',
  'clear_tags',
  'find',
] as const;
export type NetworkMethod = (typeof NETWORK_METHODS)[number];

export function isNetworkMethod(m: string): m is NetworkMethod {
  return (NETWORK_METHODS as readonly string[]).includes(m);
}

/** Largest policy part (characters); the client cuts smaller parts when escaping makes them longer on the wire. */
export const POLICY_PART_MAX_CHARS = 600;
/** Most parts of one policy. */
export const POLICY_MAX_PARTS = Math.ceil(POLICY_MAX_BYTES / 64);

function b64(maxBytes: number, exact = false) {
  const maxChars = 4 * Math.ceil(maxBytes / 3);
  return v.pipe(
    v.string(),
    v.maxLength(maxChars),
    v.check(
      (s) => {
        const b = Buffer.from(s, 'base64');
        return b.toString('base64') === s && b.length > 0 && (!exact || b.length === maxBytes);
      },
      `must be base64${exact ? ` of ${maxBytes} bytes` : ''}`,
    ),
  );
}

const netId = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(0xffff));
const offset = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(1_000_000));
const address = v.pipe(v.string(), v.minLength(1), v.maxLength(32));
const tag = v.pipe(v.string(), v.maxLength(TAG_MAX_LENGTH + 1));
const inviteIdHex = v.pipe(v.string(), v.regex(/^[0-9a-f]{32}$/, 'must be 32 lower-case hex digits'));
export const sig64 = b64(64, true);
const certB64 = b64(CERT_MAX_BYTES);
const bindingB64 = b64(BINDING_BYTES, true);

export const NetworkParamSchemas = {
  network_create: v.strictObject({ name: v.pipe(v.string(), v.maxLength(63)) }),
  network_delete: v.strictObject({ net: netId }),
  network_list: v.strictObject({ offset: v.optional(offset) }),
  network_members: v.strictObject({ net: netId, offset: v.optional(offset) }),
  network_invite: v.strictObject({ cert: certB64, certSig: sig64 }),
  network_invites: v.strictObject({ net: netId, offset: v.optional(offset) }),
  network_revoke_invite: v.strictObject({ net: netId, inviteId: inviteIdHex }),
  network_join: v.strictObject({ cert: certB64, certSig: sig64, binding: bindingB64, bindingSig: sig64 }),
  network_leave: v.strictObject({ net: netId }),
  network_kick: v.strictObject({ net: netId, node: address }),
  network_kicks: v.strictObject({ net: netId, offset: v.optional(offset) }),
  network_tickets: v.strictObject({ offset: v.optional(offset) }),
  network_policy_set: v.strictObject({
    net: netId,
    part: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(POLICY_MAX_PARTS - 1)),
    parts: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(POLICY_MAX_PARTS)),
    text: v.pipe(v.string(), v.maxLength(POLICY_PART_MAX_CHARS)),
    sig: v.optional(sig64),
    /** With the signature (last part): the policy version the admin signed (ms, increasing). */
    version: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER))),
  }),
  network_policy_get: v.strictObject({ net: netId, offset: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(POLICY_MAX_BYTES))) }),
  network_audit: v.strictObject({ net: netId, after: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))) }),
  network_audit_stmt: v.strictObject({ net: netId, seq: v.pipe(v.number(), v.integer(), v.minValue(1)), offset: v.optional(offset) }),
  set_tags: v.strictObject({ tags: v.pipe(v.array(tag), v.maxLength(MAX_TAGS * 2)) }),
  clear_tags: v.strictObject({}),
  find: v.strictObject({ tag, net: v.optional(netId), online: v.optional(v.boolean()), offset: v.optional(offset) }),
} satisfies Record<NetworkMethod, v.GenericSchema>;

/** A valibot failure as a short BAD_REQUEST naming the first offending field (as zodError does). */
export function valibotError(issues: readonly v.BaseIssue<unknown>[], what: string): PilotError {
  const issue = issues[0];
  const path = issue?.path?.map((p) => String(p.key)).join('.');
  return new PilotError('BAD_REQUEST', `invalid ${what}: ${path || what}: ${issue?.message ?? 'malformed'}`.slice(0, 300));
}

export function parseNetworkParams<M extends NetworkMethod>(method: M, params: unknown): v.InferOutput<(typeof NetworkParamSchemas)[M]> {
  const r = v.safeParse(NetworkParamSchemas[method], params);
  if (!r.success) throw valibotError(r.issues, `${method} params`);
  return r.output as v.InferOutput<(typeof NetworkParamSchemas)[M]>;
}

// ---------------- results ----------------

const tags = v.array(v.string());
const b64Key = b64(32, true);

export const NetworkSummary = v.object({ net: netId, name: v.string(), admin: v.boolean(), adminKey: b64Key, tags, members: v.number() });
export const NetworkMember = v.object({ address: v.string(), hostname: v.nullable(v.string()), tags, online: v.boolean(), ephemeral: v.boolean() });
export const InviteInfo = v.object({
  inviteId: v.string(),
  tags,
  uses: v.number(),
  used: v.number(),
  exp: v.number(),
  ephemeral: v.boolean(),
  revoked: v.boolean(),
});
export const KickInfo = v.object({ node: v.string(), ts: v.number(), stmt: v.string(), sig: sig64 });
export const TicketInfo = v.object({ net: netId, ticket: b64(TICKET_BYTES, true), sig: sig64, exp: v.number() });
export const AuditInfo = v.object({ seq: v.number(), ts: v.number(), actor: v.string(), action: v.string(), detail: v.record(v.string(), v.unknown()) });
export const FoundNode = v.object({ address: v.string(), hostname: v.nullable(v.string()), tags, selfTags: tags, online: v.boolean() });

export const NetworkResultSchemas = {
  network_create: v.object({ net: netId, name: v.string(), admin: b64Key }),
  network_delete: v.object({ net: netId, deleted: v.literal(true) }),
  network_list: v.object({ networks: v.array(NetworkSummary), more: v.boolean() }),
  network_members: v.object({ members: v.array(NetworkMember), total: v.number(), more: v.boolean() }),
  network_invite: v.object({ inviteId: v.string(), net: netId }),
  network_invites: v.object({ invites: v.array(InviteInfo), more: v.boolean() }),
  network_revoke_invite: v.object({ inviteId: v.string(), revoked: v.literal(true) }),
  network_join: v.object({ net: netId, name: v.string(), address: v.string(), tags, adminKey: b64Key, ephemeral: v.boolean() }),
  network_leave: v.object({ net: netId, left: v.literal(true) }),
  network_kick: v.object({ net: netId, node: v.string(), kicked: v.literal(true) }),
  network_kicks: v.object({ kicks: v.array(KickInfo), more: v.boolean() }),
  network_tickets: v.object({ tickets: v.array(TicketInfo), more: v.boolean() }),
  network_policy_set: v.object({ net: netId, received: v.number(), parts: v.number(), done: v.boolean() }),
  network_policy_get: v.object({
    net: netId,
    text: v.string(),
    offset: v.number(),
    total: v.number(),
    sig: v.nullable(sig64),
    updated: v.number(),
    more: v.boolean(),
  }),
  network_audit: v.object({ entries: v.array(AuditInfo), more: v.boolean() }),
  network_audit_stmt: v.object({ seq: v.number(), text: v.string(), offset: v.number(), total: v.number(), sig: sig64, more: v.boolean() }),
  set_tags: v.object({ tags }),
  clear_tags: v.object({ tags }),
  find: v.object({ nodes: v.array(FoundNode), more: v.boolean(), next: v.number() }),
} satisfies Record<NetworkMethod, v.GenericSchema>;

export type NetworkResult<M extends NetworkMethod> = v.InferOutput<(typeof NetworkResultSchemas)[M]>;

/** Data of the fleet pushes (0x03), by event name. */
export const NetworkPushSchemas = {
  /** No longer sent (a push per member per join made fleets quadratic): members learn of each other from resolve answers. */
  network_member_joined: v.object({ net: netId, node: v.string(), tags }),
  /** `reason`: absent when the member left itself; 'deregistered' / 'silent' for an ephemeral member the rendezvous removed. */
  network_member_left: v.object({ net: netId, node: v.string(), reason: v.optional(v.string()) }),
  /** With the admin's signed kick when it fits one packet (else fetch it with network_kicks). */
  network_member_kicked: v.object({ net: netId, node: v.string(), ts: v.number(), stmt: v.optional(v.string()), sig: v.optional(sig64) }),
  network_policy_changed: v.object({ net: netId, updated: v.number() }),
  network_deleted: v.object({ net: netId, name: v.string() }),
} as const;
export type NetworkPushEvent = keyof typeof NetworkPushSchemas;

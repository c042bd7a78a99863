// pilotctl network create|list|members|invite|invites|revoke-invite|join|leave|kick|delete|policy|audit,
// set-tags, clear-tags (fleets, issue 18; docs/FLEETS.md). Every command talks to the running
// daemon, which signs the rendezvous requests with the node key. A network is named by its id or name.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import type { NetworkMemberInfo } from '../../ipc/api.ts';
import { PilotError } from '../../util/errors.ts';
import { ok } from '../output.ts';
import type { RunWrapper } from '../action.ts';

const yesNo = (b: boolean | undefined): string => (b ? 'yes' : 'no');
const tagsText = (t: string[] | undefined): string => (t && t.length > 0 ? t.join(',') : '-');
const when = (s: number): string => (s === 0 ? 'never' : new Date(s * 1000).toISOString().replace(/\.\d+Z$/, 'Z'));

export function membersTable(ms: NetworkMemberInfo[], empty: string): string {
  if (ms.length === 0) return empty;
  return [
    'ADDRESS            HOSTNAME         TAGS                     ONLINE  VERIFIED',
    ...ms.map(
      (m) =>
        `${m.address.padEnd(18)} ${(m.hostname ?? '-').padEnd(16)} ${tagsText(m.tags).padEnd(24)} ${yesNo(m.online).padEnd(7)} ${m.verified === undefined ? '-' : yesNo(m.verified)}`,
    ),
  ].join('\n');
}

/** Tags given as "a b" or "a,b", checked here (a bad one is a usage error: exit 2, nothing sent). Loaded when needed (startup cost). */
const splitTags = async (t: string[] | string | undefined): Promise<string[]> =>
  (await import('../../registry/network-policy.ts')).validateTags(
    (Array.isArray(t) ? t : t ? [t] : []).flatMap((x) => x.split(',')).filter((x) => x.length > 0),
  );

export function registerNetworkCommands(program: Command, run: RunWrapper): void {
  const net = program.command('network').description('fleets: networks of agents that join with a token (docs/FLEETS.md)');
  net
    .command('create <name>')
    .description('create a network administered by this node (it is not a member until it joins with an invite)')
    .action(
      run(async (_g, out, client, name: string) => {
        const r = await client().call('network_create', { name });
        ok(out, r, () => `Network ${r.name} created (id ${r.net})\n  invite agents: pilotctl network invite ${r.name} --tag <tag>`);
      }),
    );
  net
    .command('list')
    .description('networks this node belongs to or administers')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('network_list');
        ok(out, r, () =>
          r.networks.length === 0
            ? 'no networks (create one: pilotctl network create <name>, or join: pilotctl network join <token>)'
            : [
                'ID     NAME                 ADMIN  MEMBER  TAGS                     MEMBERS  ADDRESS',
                ...r.networks.map(
                  (n) =>
                    `${String(n.net).padEnd(6)} ${n.name.padEnd(20)} ${yesNo(n.admin).padEnd(6)} ${yesNo(n.member).padEnd(7)} ${tagsText(n.tags).padEnd(24)} ${String(n.members).padEnd(8)} ${n.address ?? '-'}`,
                ),
              ].join('\n'),
        );
      }),
    );
  net
    .command('members <net>')
    .description('members of a network: address, hostname, tags, online, verified (proved their membership to this node)')
    .action(
      run(async (_g, out, client, ref: string) => {
        const r = await client().call('network_members', { net: ref });
        ok(out, r, () => membersTable(r.members, `no members in ${r.name}`));
      }),
    );
  net
    .command('invite <net>')
    .description('make a join token (admin): secret, give it to the agents that should join')
    .option('--tag <tag...>', 'credential tags the joiners get (policy names them: tag:<tag>)')
    .option('--uses <n>', 'joins allowed (default unlimited)')
    .option('--expires <duration>', 'e.g. 30m, 24h, 7d (default never)')
    .option('--ephemeral', 'members leave on deregister or 2 min of silence')
    .action(
      run(async (_g, out, client, ref: string, o: { tag?: string[]; uses?: string; expires?: string; ephemeral?: boolean }) => {
        const uses = o.uses === undefined ? 0 : Number(o.uses);
        if (!Number.isInteger(uses) || uses < 0) throw new PilotError('BAD_ARGUMENT', `bad --uses ${o.uses}`, 'a whole number; 0 = unlimited');
        const r = await client().call('network_invite', {
          net: ref,
          tags: await splitTags(o.tag),
          uses,
          ...(o.expires !== undefined ? { expires: o.expires } : {}),
          ephemeral: o.ephemeral === true,
        });
        ok(
          out,
          r,
          () =>
            `${r.token}\n\n  network ${r.name} (${r.net}), tags ${tagsText(r.tags)}, uses ${r.uses === 0 ? 'unlimited' : r.uses}, expires ${when(r.expires)}${r.ephemeral ? ', ephemeral' : ''}\n  on each agent: pilotctl daemon start --join <token>   (or: pilotctl network join <token>)`,
        );
      }),
    );
  net
    .command('invites <net>')
    .description('invites of a network (admin)')
    .action(
      run(async (_g, out, client, ref: string) => {
        const r = await client().call('network_invites', { net: ref });
        ok(out, r, () =>
          r.invites.length === 0
            ? 'no invites'
            : [
                'INVITE                            TAGS                 USED/USES  EXPIRES               STATE',
                ...r.invites.map(
                  (i) =>
                    `${i.inviteId.padEnd(33)} ${tagsText(i.tags).padEnd(20)} ${`${i.used}/${i.uses === 0 ? '∞' : i.uses}`.padEnd(10)} ${when(i.exp).padEnd(21)} ${i.revoked ? 'revoked' : 'live'}${i.ephemeral ? ' ephemeral' : ''}`,
                ),
              ].join('\n'),
        );
      }),
    );
  net
    .command('revoke-invite <net> <inviteId>')
    .description('revoke an invite (admin): no more joins with it; members already joined stay')
    .action(
      run(async (_g, out, client, ref: string, inviteId: string) => {
        const r = await client().call('network_revoke_invite', { net: ref, inviteId });
        ok(out, r, () => `Invite ${r.inviteId} revoked`);
      }),
    );
  net
    .command('join <token>')
    .description('join a network with a token (no approval step)')
    .action(
      run(async (_g, out, client, token: string) => {
        (await import('../../registry/membership.ts')).parseToken(token.trim(), Date.now()); // damaged, forged or expired: a value error here (exit 2), nothing sent
        const r = await client().call('network_join', { token });
        ok(out, r, () => `${r.already ? 'Already a member of' : 'Joined'} ${r.name} (${r.net}) as ${r.address}, tags ${tagsText(r.tags)}`);
      }),
    );
  net
    .command('leave <net>')
    .description('leave a network')
    .action(
      run(async (_g, out, client, ref: string) => {
        const r = await client().call('network_leave', { net: ref });
        ok(out, r, () => `Left network ${r.net}`);
      }),
    );
  net
    .command('kick <net> <node>')
    .description('remove a member (admin): peers refuse it at once, and within 5 min even if they missed the news')
    .action(
      run(async (_g, out, client, ref: string, node: string) => {
        const r = await client().call('network_kick', { net: ref, node });
        ok(out, r, () => `Kicked ${r.node} from network ${r.net}`);
      }),
    );
  net
    .command('delete <net>')
    .description('delete a network (admin)')
    .action(
      run(async (_g, out, client, ref: string) => {
        const r = await client().call('network_delete', { net: ref });
        ok(out, r, () => `Network ${r.net} deleted`);
      }),
    );
  net
    .command('policy <net>')
    .description('show the network policy, or set it (admin) from a JSON file')
    .option('--set <file>', 'policy file: {"rules": [{"from": ["tag:a"], "to": ["tag:b"], "ports": [1000, "2000-2010"]}]}')
    .action(
      run(async (_g, out, client, ref: string, o: { set?: string }) => {
        let text: string | undefined;
        if (o.set !== undefined) {
          try {
            text = fs.readFileSync(o.set, 'utf8');
          } catch (err) {
            throw new PilotError('BAD_ARGUMENT', `cannot read ${o.set}: ${(err as Error).message}`, 'give the path of a policy JSON file');
          }
          (await import('../../registry/network-policy.ts')).parsePolicy(text, path.basename(o.set)); // the same parser as the daemon's: line:column errors before anything is sent
        }
        const r = await client().call('network_policy', { net: ref, ...(text !== undefined ? { text, source: path.basename(o.set!) } : {}) });
        ok(out, r, () =>
          r.set
            ? `Policy of network ${r.net} set (version ${r.updated})`
            : r.text === ''
              ? `network ${r.net} has no policy: members reach members on every port`
              : `${r.text.trimEnd()}\n\n  version ${r.updated}, admin signature ${r.verified ? 'verified' : 'NOT verified'}`,
        );
      }),
    );
  net
    .command('audit <net>')
    .description('the network audit log (admin and members)')
    .option('--statements', 'also fetch and check each signed request')
    .action(
      run(async (_g, out, client, ref: string, o: { statements?: boolean }) => {
        const r = await client().call('network_audit', { net: ref, statements: o.statements === true });
        ok(out, r, () =>
          r.entries.length === 0
            ? 'no entries'
            : r.entries
                .map(
                  (e) =>
                    `${String(e.seq).padStart(5)}  ${new Date(e.ts).toISOString()}  ${e.actor.padEnd(18)} ${e.action.padEnd(14)} ${JSON.stringify(e.detail)}${e.verified === undefined ? '' : e.verified ? '  signed' : '  SIGNATURE BAD'}`,
                )
                .join('\n'),
        );
      }),
    );

  program
    .command('set-tags <tags...>')
    .description('self-declared capability tags, for discovery (pilotctl find --tag); never used by policies')
    .action(
      run(async (_g, out, client, tags: string[]) => {
        const r = await client().call('set_tags', { tags: await splitTags(tags) });
        ok(out, r, () => `Tags: ${tagsText(r.tags)}`);
      }),
    );
  program
    .command('clear-tags')
    .description('remove this node’s self-declared tags')
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('clear_tags');
        ok(out, r, () => 'Tags cleared');
      }),
    );
}

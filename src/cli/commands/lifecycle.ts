// pilotctl deregister (issue 18; upstream Pilot's `deregister`, Tailscale's `logout`): the
// daemon sends the signed deregister to the rendezvous, says goodbye to its peers and stops.
import type { Command } from 'commander';
import { ok } from '../output.ts';
import type { RunWrapper } from '../action.ts';

export function registerLifecycleCommands(program: Command, run: RunWrapper): void {
  program
    .command('deregister')
    .description('leave the rendezvous and stop the daemon: peers see it go at once')
    .addHelpText(
      'after',
      [
        '',
        'An ephemeral node (daemon start --ephemeral, or joined with an ephemeral invite) is removed:',
        'its address and hostname are released and the address is never handed out again.',
        'Any other node keeps its address bound to its key, hidden until it starts again (same key,',
        'same address); its hostname is released (set it again with --hostname).',
        "Its trust pairs stay; an ephemeral node's go with it, and so do its network memberships.",
        'If the rendezvous cannot be reached, nothing changes: the daemon keeps running.',
      ].join('\n'),
    )
    .action(
      run(async (_g, out, client) => {
        const r = await client().call('deregister');
        const { pidAlive } = await import('../../daemon/home-lock.ts'); // not at pilotctl startup
        // Wait until the process is gone, as daemon stop does: a following start must not race it.
        for (let i = 0; i < 100 && pidAlive(r.pid); i++) await new Promise((res) => setTimeout(res, 50));
        ok(out, r, () =>
          r.removed
            ? `Deregistered ${r.address} (ephemeral: removed, address and hostname released); daemon stopped (pid ${r.pid})`
            : `Deregistered ${r.address} (hidden; the address stays with this key, the hostname is released); daemon stopped (pid ${r.pid})`,
        );
      }),
    );
}

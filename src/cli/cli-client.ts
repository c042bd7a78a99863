// The IPC client pilotctl's commands get. Two jobs on top of IpcClient:
// - a request is checked against the daemon's contract (src/ipc/api.ts) before it
//   leaves, so a bad value is refused here, before anything was done (exit 2), with
//   the same message the daemon would give;
// - it records that pilotctl acted (a request went out): an error after that is a
//   failure of the run (exit 1), whatever its code (see exitCodeFor in output.ts).
import { IpcClient, type AnyEventHandler } from '../ipc/client.ts';
import { parseTarget } from '../daemon/targets.ts';

/** Methods whose `target` / `node` names an agent (an address, node id or hostname); expose's target is a local HOST:PORT. */
const AGENT_PARAMS: Record<string, 'target' | 'node'> = {
  find: 'target',
  ping: 'target',
  connect: 'target',
  send: 'target',
  bench: 'target',
  handshake: 'target',
  approve: 'node',
  reject: 'node',
  untrust: 'node',
  dial: 'target',
  gateway_map: 'target',
  send_message: 'target',
  send_file: 'target',
  publish: 'target',
  subscribe: 'target',
  task_submit: 'target',
};

export class CliClient extends IpcClient {
  /** A request was sent: the daemon may have done something. */
  sent = false;

  override async request(method: string, params: object = {}, onEvent?: AnyEventHandler): Promise<unknown> {
    // Methods without params (info, peers, ...) skip the check, and so the schema
    // library's load: the commands typed most often stay quick to start.
    if (Object.keys(params).length > 0) await checkParams(method, params);
    this.sent = true;
    return super.request(method, params, onEvent);
  }
}

async function checkParams(method: string, params: object): Promise<void> {
  const [{ PARAMS, isMethod }, v] = await Promise.all([import('../ipc/api.ts'), import('valibot')]);
  if (!isMethod(method)) return; // the daemon answers BAD_REQUEST for it
  const parsed = v.safeParse(PARAMS[method], params);
  if (!parsed.success) {
    const { paramsError } = await import('../ipc/api-fields.ts');
    throw paramsError(parsed.issues);
  }
  // The daemon's own syntax check of a target (BAD_ADDRESS), made here first; the
  // network of a bare node id does not matter to the syntax.
  const key = AGENT_PARAMS[method];
  const agent = key === undefined ? undefined : (params as Record<string, unknown>)[key];
  if (typeof agent === 'string') parseTarget(agent, 0);
}

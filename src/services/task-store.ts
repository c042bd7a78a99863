// Tasks on disk: $PILOT_HOME/tasks/{received,submitted}/<id>.json, one file
// per task, written atomically on every change, loaded at start.
//
// Lifecycle (the receiver drives it, the submitter's copy follows):
//   submitted -> accepted | declined
//   accepted  -> executing
//   executing -> completed (with results)
import fs from 'node:fs';
import path from 'node:path';
import { PilotError } from '../util/errors.ts';
import { readJsonFile, removeStaleTemps, writeJsonAtomic } from '../util/atomic-file.ts';
import type { DiskBudget } from './quota.ts';

export type TaskStatus = 'submitted' | 'accepted' | 'declined' | 'executing' | 'completed';
export type TaskRole = 'received' | 'submitted';

export const TASK_STATUSES: readonly TaskStatus[] = ['submitted', 'accepted', 'declined', 'executing', 'completed'];
export const MAX_DESCRIPTION = 64 * 1024;
export const MAX_RESULTS = 1024 * 1024;
export const MAX_REASON = 1024;

const NEXT: Record<TaskStatus, readonly TaskStatus[]> = {
  submitted: ['accepted', 'declined'],
  accepted: ['executing'],
  executing: ['completed'],
  declined: [],
  completed: [],
};
const RANK: Record<TaskStatus, number> = { submitted: 0, accepted: 1, declined: 1, executing: 2, completed: 3 };

export function canMove(from: TaskStatus, to: TaskStatus): boolean {
  return NEXT[from].includes(to);
}

/** The submitter may miss intermediate updates (only the latest is retried): any forward move is fine. */
export function canFollow(from: TaskStatus, to: TaskStatus): boolean {
  return NEXT[from].length > 0 && RANK[to] > RANK[from] && (to !== 'declined' || from === 'submitted');
}

export interface Task {
  id: string;
  role: TaskRole;
  /** The other side: who submitted it (received) or who runs it (submitted). */
  peer: string;
  description: string;
  status: TaskStatus;
  reason: string | null;
  results: string | null;
  createdAt: number;
  updatedAt: number;
  history: Array<{ status: TaskStatus; at: number }>;
  /** Receiver side: the submitter has not been told about the latest status yet. */
  notifyPending: boolean;
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface TaskStoreLimits {
  /** Received tasks kept, all peers together. */
  maxReceived: number;
  /** Open (not final) received tasks from one peer: its queue on this node. */
  maxPeerOpen?: number;
  /** Bytes of received tasks (descriptions, results) held in memory, all peers together. */
  maxReceivedBytes?: number;
  /** Disk floor and per-peer disk quota; none: not checked (tests of the lifecycle alone). */
  budget?: DiskBudget;
}

/** A task's size in memory and (roughly, before JSON escapes) on disk. */
function taskBytes(t: Task): number {
  return Buffer.byteLength(t.description) + (t.results ? Buffer.byteLength(t.results) : 0) + (t.reason ? Buffer.byteLength(t.reason) : 0) + 512;
}

function isOpen(t: Task): boolean {
  return t.status !== 'declined' && t.status !== 'completed';
}

export class TaskStore {
  private readonly dirs: Record<TaskRole, string>;
  private readonly tasks: Record<TaskRole, Map<string, Task>> = { received: new Map(), submitted: new Map() };
  private readonly maxReceived: number;
  private readonly maxPeerOpen: number;
  private readonly maxReceivedBytes: number;
  private readonly budget: DiskBudget | undefined;

  constructor(home: string, limits: TaskStoreLimits) {
    const root = path.join(home, 'tasks');
    this.dirs = { received: path.join(root, 'received'), submitted: path.join(root, 'submitted') };
    this.maxReceived = limits.maxReceived;
    this.maxPeerOpen = limits.maxPeerOpen ?? Number.MAX_SAFE_INTEGER;
    this.maxReceivedBytes = limits.maxReceivedBytes ?? Number.MAX_SAFE_INTEGER;
    this.budget = limits.budget;
    this.budget?.addUsage((peer) => this.receivedBytes(peer));
    for (const role of ['received', 'submitted'] as const) {
      fs.mkdirSync(this.dirs[role], { recursive: true, mode: 0o700 });
      removeStaleTemps(this.dirs[role]);
      for (const n of fs.readdirSync(this.dirs[role])) {
        if (!n.endsWith('.json') || n.startsWith('.')) continue;
        const t = readJsonFile(path.join(this.dirs[role], n)) as Task | undefined;
        if (t && typeof t.id === 'string' && UUID_RE.test(t.id) && TASK_STATUSES.includes(t.status)) this.tasks[role].set(t.id, { ...t, role });
      }
    }
  }

  private save(t: Task): void {
    writeJsonAtomic(path.join(this.dirs[t.role], `${t.id}.json`), t);
  }

  get(role: TaskRole, id: string): Task | undefined {
    return this.tasks[role].get(id);
  }

  /** By id or unique id prefix (ids are long to type). */
  find(role: TaskRole, idOrPrefix: string): Task {
    const exact = this.tasks[role].get(idOrPrefix);
    if (exact) return exact;
    const hits = idOrPrefix.length >= 4 ? [...this.tasks[role].values()].filter((t) => t.id.startsWith(idOrPrefix)) : [];
    if (hits.length === 1) return hits[0]!;
    throw new PilotError('NOT_FOUND', hits.length > 1 ? `task id ${idOrPrefix} is ambiguous` : `no ${role} task ${idOrPrefix}`, 'see: pilotctl task list');
  }

  list(role?: TaskRole): Task[] {
    const roles: TaskRole[] = role ? [role] : ['received', 'submitted'];
    return roles.flatMap((r) => [...this.tasks[r].values()]).sort((a, b) => a.createdAt - b.createdAt);
  }

  create(role: TaskRole, id: string, peer: string, description: string): Task {
    if (!UUID_RE.test(id)) throw new PilotError('BAD_REQUEST', 'task id must be a lowercase UUID');
    if (this.tasks[role].has(id)) throw new PilotError('BAD_REQUEST', `task ${id} already exists`);
    if (role === 'received') this.admit(peer, description);
    const now = Date.now();
    const t: Task = {
      id,
      role,
      peer,
      description,
      status: 'submitted',
      reason: null,
      results: null,
      createdAt: now,
      updatedAt: now,
      history: [{ status: 'submitted', at: now }],
      notifyPending: false,
    };
    this.save(t);
    this.tasks[role].set(id, t);
    return t;
  }

  /** Bytes of the received tasks of `peer` (all peers: undefined). */
  receivedBytes(peer?: string): number {
    let n = 0;
    for (const t of this.tasks.received.values()) if (peer === undefined || t.peer === peer) n += taskBytes(t);
    return n;
  }

  /** May `peer` queue one more task with us? Each refusal says which limit and how to lift it. */
  private admit(peer: string, description: string): void {
    if (this.tasks.received.size >= this.maxReceived) {
      throw new PilotError('RATE_LIMITED', `too many received tasks (${this.maxReceived})`, 'the receiver must work through its tasks');
    }
    let open = 0;
    for (const t of this.tasks.received.values()) if (t.peer === peer && isOpen(t)) open++;
    if (open >= this.maxPeerOpen) {
      throw new PilotError(
        'QUOTA_EXCEEDED',
        `the receiver is out of room for you: ${open} of your tasks are still open there (limit ${this.maxPeerOpen} per peer)`,
        'wait until the receiver accepts, declines or completes them (or it raises maxPeerOpenTasks in services.json)',
      );
    }
    const bytes = Buffer.byteLength(description) + 512;
    if (this.receivedBytes() + bytes > this.maxReceivedBytes) {
      throw new PilotError(
        'QUOTA_EXCEEDED',
        `the receiver's task store is full (${this.maxReceivedBytes} bytes of tasks)`,
        'the receiver must work through its tasks (or raise maxReceivedTaskBytes in services.json)',
      );
    }
    // on disk a description can grow by JSON escapes (\u0001 is 6 bytes)
    this.budget?.check(peer, bytes * 6, 'a task');
  }

  /** Move a task; throws BAD_ARGUMENT on a move the lifecycle does not allow. */
  move(t: Task, to: TaskStatus, extra: { reason?: string; results?: string; notifyPending?: boolean } = {}): Task {
    const ok = t.role === 'received' ? canMove(t.status, to) : canFollow(t.status, to);
    if (!ok) {
      throw new PilotError('BAD_ARGUMENT', `task ${t.id} is ${t.status}: cannot become ${to}`, hintFor(t.status));
    }
    const now = Date.now();
    const next: Task = {
      ...t,
      status: to,
      updatedAt: now,
      history: [...t.history, { status: to, at: now }],
      ...(extra.reason !== undefined ? { reason: extra.reason } : {}),
      ...(extra.results !== undefined ? { results: extra.results } : {}),
      ...(extra.notifyPending !== undefined ? { notifyPending: extra.notifyPending } : {}),
    };
    this.save(next);
    this.tasks[t.role].set(t.id, next);
    return next;
  }

  setNotified(t: Task, pending: boolean): Task {
    const cur = this.tasks[t.role].get(t.id);
    if (!cur || cur.notifyPending === pending) return cur ?? t;
    const next = { ...cur, notifyPending: pending };
    this.save(next);
    this.tasks[t.role].set(t.id, next);
    return next;
  }
}

function hintFor(status: TaskStatus): string {
  switch (status) {
    case 'submitted':
      return 'accept or decline it first: pilotctl task accept|decline <id>';
    case 'accepted':
      return 'start it first: pilotctl task execute <id>';
    case 'executing':
      return 'finish it: pilotctl task send-results <id> --results R';
    default:
      return `a ${status} task is final`;
  }
}

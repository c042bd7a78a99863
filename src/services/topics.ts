// Pub/sub topic names and patterns. A topic is dot-separated segments
// ("sensors.kitchen.temp"). In a pattern a `*` segment matches exactly one
// segment, and a trailing `*` matches one or more: "sensors.*" matches
// "sensors.kitchen" and "sensors.kitchen.temp"; "*" alone matches every topic;
// "sensors.*.temp" matches "sensors.kitchen.temp" only.
import { PilotError } from '../util/errors.ts';

export const MAX_TOPIC = 256;
const SEGMENT = /^[A-Za-z0-9_\-:/]+$/;

function segments(text: unknown, what: string, wildcards: boolean): string[] {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_TOPIC) {
    throw new PilotError('BAD_ARGUMENT', `${what} must be 1..${MAX_TOPIC} characters`);
  }
  const segs = text.split('.');
  for (const s of segs) {
    if (wildcards && s === '*') continue;
    if (!SEGMENT.test(s)) {
      throw new PilotError(
        'BAD_ARGUMENT',
        `invalid ${what} ${JSON.stringify(text)}`,
        `dot-separated segments of letters, digits, _ - : /${wildcards ? ', or * for any segment' : ''}`,
      );
    }
  }
  return segs;
}

export function validateTopic(text: unknown): string {
  segments(text, 'topic', false);
  return text as string;
}

export function validatePattern(text: unknown): string {
  segments(text, 'topic pattern', true);
  return text as string;
}

/** Both arguments already validated. */
export function topicMatches(pattern: string, topic: string): boolean {
  if (pattern === '*') return true;
  const p = pattern.split('.');
  const t = topic.split('.');
  for (let i = 0; i < p.length; i++) {
    const last = i === p.length - 1;
    if (p[i] === '*') {
      if (i >= t.length) return false;
      if (last) return true; // one or more remaining segments
      continue;
    }
    if (p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

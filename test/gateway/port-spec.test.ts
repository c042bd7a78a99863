// --ports / --port-offset parsing and the privileged-port check (pure functions).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPortSpec, parsePortSpec } from '../../src/gateway/port-spec.ts';
import { checkPortAllowed } from '../../src/gateway/privileges.ts';

test('ports: same numbers, local=virtual, offsets', () => {
  assert.deepEqual(parsePortSpec('80,443'), [
    { local: 80, virtual: 80 },
    { local: 443, virtual: 443 },
  ]);
  assert.deepEqual(parsePortSpec('8080=80, 81'), [
    { local: 8080, virtual: 80 },
    { local: 81, virtual: 81 },
  ]);
  assert.deepEqual(parsePortSpec('80,443', 8000), [
    { local: 8080, virtual: 80 },
    { local: 8443, virtual: 443 },
  ]);
  assert.deepEqual(parsePortSpec('9000=80', 8000), [{ local: 9000, virtual: 80 }], 'an explicit local port ignores the offset');
  assert.equal(formatPortSpec(parsePortSpec('8080=80,443')), '8080=80,443');
});

test('ports: bad input is a coded error', () => {
  for (const bad of ['', 'x', ',', '70000', '0=80', '80=70000', '80,80', '8080=80,8080=81', '-1']) {
    assert.throws(
      () => parsePortSpec(bad),
      (e: { code?: string }) => e.code === 'BAD_ARGUMENT',
      bad,
    );
  }
  assert.throws(() => parsePortSpec('80', 65500), /out of range/);
  assert.throws(() => parsePortSpec('80', -1), /offset/);
});

test('privileged ports: refused without the capability, allowed with it or above the threshold', () => {
  const none = { netAdmin: false, bindLow: false, unprivilegedPortStart: 1024 };
  assert.throws(
    () => checkPortAllowed('127.4.0.1', 80, 80, none),
    (e: { code?: string; message: string; hint?: string }) =>
      e.code === 'PERMISSION_DENIED' &&
      /127\.4\.0\.1:80/.test(e.message) &&
      /--port-offset 8000/.test(e.hint!) &&
      /--ports 8080=80/.test(e.hint!) &&
      /CAP_NET_BIND_SERVICE|cap_net_bind_service/.test(e.hint!),
  );
  checkPortAllowed('127.4.0.1', 8080, 80, none);
  checkPortAllowed('127.4.0.1', 80, 80, { ...none, bindLow: true });
  checkPortAllowed('127.4.0.1', 80, 80, { ...none, unprivilegedPortStart: 0 }); // e.g. a container with the sysctl lowered
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BLACK_HOLE_LOSSES, BLACK_HOLE_RETRY_MS, MAX_PROBES, MtuDiscoverer, RAISE_MS, SEARCH_DONE, TOP_TRIES } from '../../src/transport/mtu-discoverer.ts';
import { closePair, makePair, nextStream, readAll, withTimeout, writeRandom } from './link.ts';

const BASE = 1195;
const TOP = 1442;

/** A discoverer whose host confirms against a kernel PMTU the test controls (undefined: confirm says yes). */
function rig(kernelCeiling?: () => number | undefined) {
  const sizes: number[] = [];
  const d = new MtuDiscoverer(
    {
      setPacketSize: (s) => sizes.push(s),
      confirm: (size, done) => {
        const c = kernelCeiling?.();
        done(c === undefined || size <= c, c);
      },
    },
    BASE,
    TOP,
  );
  return { d, sizes };
}

/** Drives probes against a path that carries packets up to `limit`: acked if they fit, lost (timed out) otherwise. */
function search(d: MtuDiscoverer, limit: number, start = 0): { now: number; probes: number[] } {
  let now = start;
  const probes: number[] = [];
  for (let i = 0; i < 200; i++) {
    now += 10;
    const size = d.probeSize(now, 1, 1);
    if (size === 0) {
      if (d.status().state === 'done') break;
      continue;
    }
    probes.push(size);
    d.onProbeSent(size, now);
    if (size <= limit) d.onProbeAcked(size, now);
  }
  return { now, probes };
}

test('binary search settles within SEARCH_DONE below what the path carries, with few probes', () => {
  const { d, sizes } = rig();
  const { probes } = search(d, 1400);
  const s = d.status();
  assert.equal(s.state, 'done');
  assert.ok(d.packetSize <= 1400 && d.packetSize > 1400 - SEARCH_DONE, `settled at ${d.packetSize}`);
  assert.equal(sizes.at(-1), d.packetSize, 'the host was told the size');
  assert.ok(probes.length <= 12, `${probes.length} probes`);
  assert.deepEqual(probes.slice(0, TOP_TRIES), [TOP, TOP], 'the ceiling first, TOP_TRIES times');
  assert.equal(probes.filter((p) => p === TOP).length, TOP_TRIES);
  // a size that did not pass was tried exactly MAX_PROBES times before the ceiling came down
  const tooBig = probes.slice(TOP_TRIES).filter((p) => p > 1400);
  for (const p of new Set(tooBig)) assert.equal(tooBig.filter((x) => x === p).length, MAX_PROBES);
});

test('a clean 1500-byte path reaches the top with one probe', () => {
  const { d } = rig();
  const { probes } = search(d, 10_000);
  assert.equal(d.packetSize, TOP);
  assert.deepEqual(probes, [TOP]);
});

test('an acked probe the kernel says went out fragmented (smaller cached PMTU) is not taken', () => {
  const { d } = rig(() => 1300);
  search(d, 10_000); // every probe "arrives" (fragmented), but the route cache says 1300
  assert.equal(d.packetSize, 1300, 'the size the kernel learned, exactly');
});

test('no probes without a range to search; at most one in flight; re-search after RAISE_MS', () => {
  const off = new MtuDiscoverer({ setPacketSize: () => {}, confirm: () => {} }, BASE, BASE);
  assert.equal(off.probeSize(0, 1, 1), 0);
  assert.equal(off.status().state, 'disabled');
  const { d } = rig();
  const first = d.probeSize(0, 1, 1);
  d.onProbeSent(first, 0);
  assert.equal(d.probeSize(1, 1, 1), 0, 'one probe at a time');
  const { now } = search(d, 1400, 1);
  assert.equal(d.probeSize(now + 1000, 1, 1), 0, 'quiet once done');
  assert.ok(d.probeSize(now + RAISE_MS + 1, 1, 1) > d.packetSize, 'a fresh search later');
});

test('black hole: two probe timeouts in a row at a raised size fall back to the base at once, then search again', () => {
  const { d, sizes } = rig();
  const { now } = search(d, 1400);
  assert.ok(d.packetSize > BASE);
  d.onProbeTimeout(1, now, TOP, 1e6);
  assert.ok(d.packetSize > BASE, 'one timeout is not enough');
  d.onProbeTimeout(2, now, TOP, 1e6);
  assert.equal(d.packetSize, BASE);
  assert.equal(sizes.at(-1), BASE);
  assert.equal(d.status().state, 'black-hole');
  assert.equal(d.status().blackHoles, 1);
  assert.equal(d.probeSize(now + BLACK_HOLE_RETRY_MS / 2, 1, 1), 0, 'no probing right after');
  const again = search(d, 1300, now + BLACK_HOLE_RETRY_MS);
  assert.ok(again.probes.length > 0);
  assert.ok(d.packetSize <= 1300 && d.packetSize > 1300 - SEARCH_DONE, `re-settled at ${d.packetSize}`);
});

test('probe timeouts about a small packet are no black hole (a peer that sends only ACKs and credit, under random loss)', () => {
  const { d } = rig();
  const { now } = search(d, 10_000);
  d.onProbeTimeout(2, now, BASE, 1e6);
  d.onProbeTimeout(3, now, 100, 1e6);
  assert.equal(d.packetSize, TOP);
  assert.equal(d.status().blackHoles, 0);
  d.onProbeTimeout(4, now, TOP, 1e6);
  assert.equal(d.packetSize, BASE, 'a big one is');
});

test('a black hole is undone when a big packet sent after the suspect one is acked (random loss, not the size)', () => {
  const { d, sizes } = rig();
  const { now } = search(d, 10_000);
  d.onProbeTimeout(2, now, TOP, 500); // packet 500 timed out twice: a lost ACK, then a lost probe
  assert.equal(d.packetSize, BASE);
  d.onPacketAcked(TOP, 499);
  d.onPacketAcked(BASE, 600);
  assert.equal(d.packetSize, BASE, 'older big packets and small ones prove nothing');
  d.onPacketAcked(TOP, 501);
  assert.equal(d.packetSize, TOP, 'a later big packet got through');
  assert.equal(sizes.at(-1), TOP);
  assert.equal(d.status().state, 'done');
  assert.equal(d.status().blackHolesUndone, 1);
  assert.equal(d.probeSize(now + BLACK_HOLE_RETRY_MS, 1, 1), 0, 'no re-search: the search had finished');
  d.onPacketAcked(TOP, 502);
  assert.equal(d.status().blackHolesUndone, 1, 'undone once');
});

test('losses raise a black hole only above the largest big packet acked; later acks undo it', () => {
  const { d } = rig();
  const { now } = search(d, 10_000);
  d.onPacketAcked(TOP, 99);
  for (let pn = 100; pn < 100 + BLACK_HOLE_LOSSES; pn++) d.onPacketLost(TOP, pn, now);
  assert.equal(d.packetSize, BASE, 'nothing big got through after 99');
  d.onPacketAcked(TOP, 100 + BLACK_HOLE_LOSSES + 5);
  assert.equal(d.packetSize, TOP);
});

test('a false alarm (congestion, a starved receiver) costs one probe: the ceiling passes and the size is back', () => {
  const { d } = rig();
  const { now } = search(d, 10_000);
  d.onProbeTimeout(2, now, TOP, 1e6);
  assert.equal(d.packetSize, BASE);
  const again = search(d, 10_000, now + BLACK_HOLE_RETRY_MS);
  assert.deepEqual(again.probes, [TOP]);
  assert.equal(d.packetSize, TOP);
});

test('repeated black holes back off: the retry doubles', () => {
  const { d } = rig();
  let { now } = search(d, 10_000);
  for (const wait of [BLACK_HOLE_RETRY_MS, 2 * BLACK_HOLE_RETRY_MS, 4 * BLACK_HOLE_RETRY_MS]) {
    d.onProbeTimeout(2, now, TOP, 1e6);
    assert.equal(d.probeSize(now + wait - 1, 1, 1), 0, `quiet for ${wait} ms`);
    now = search(d, 10_000, now + wait).now;
    assert.equal(d.packetSize, TOP);
  }
});

test('black hole: big packets lost with none acked since fall back; an acked big packet clears the count', () => {
  const { d } = rig();
  const { now } = search(d, 1400);
  const big = d.packetSize;
  let pn = 100;
  for (let i = 0; i < BLACK_HOLE_LOSSES - 1; i++) d.onPacketLost(big, pn++, now);
  d.onPacketAcked(big, pn++);
  for (let i = 0; i < BLACK_HOLE_LOSSES - 1; i++) d.onPacketLost(big, pn++, now);
  assert.equal(d.packetSize, big, 'ordinary loss between acks is no black hole');
  for (let i = 0; i < 5; i++) d.onPacketLost(BASE, pn++, now);
  assert.equal(d.packetSize, big, 'small packets do not count');
  d.onPacketLost(big, pn++, now);
  assert.equal(d.packetSize, BASE);
});

test('random loss is no black hole: a big packet sent after the lost ones was acked', () => {
  // What an ACK after a few hundred packets in flight looks like under 5% random loss: the
  // packets it covers are acked first, then every hole below its largest is declared lost
  // (packet threshold), more than BLACK_HOLE_LOSSES of them at once.
  const { d } = rig();
  const { now } = search(d, 1400);
  const big = d.packetSize;
  let pn = 1000;
  for (let ack = 0; ack < 50; ack++) {
    const holes: number[] = [];
    for (let i = 0; i < 300; i++, pn++) {
      if (i % 20 === 7) holes.push(pn);
      else d.onPacketAcked(big, pn);
    }
    for (const h of holes) d.onPacketLost(big, h, now + ack);
  }
  assert.equal(d.packetSize, big, 'the size stays');
  assert.equal(d.status().blackHoles, 0);
});

test('a lost big packet re-checks the route cache: a PMTU lowered by ICMP shrinks the size before anything fragments', () => {
  let kernel: number | undefined;
  const { d } = rig(() => kernel);
  const { now } = search(d, 10_000);
  assert.ok(d.packetSize > 1400);
  kernel = 1350;
  d.onPacketLost(d.packetSize, 1, now);
  assert.ok(d.packetSize <= 1350, `now ${d.packetSize}`);
});

test('reset (a new path) starts over from the base; an old confirm answer is ignored', () => {
  let pending: ((ok: boolean) => void) | undefined;
  const d = new MtuDiscoverer({ setPacketSize: () => {}, confirm: (_s, done) => (pending = done) }, BASE, TOP);
  const size = d.probeSize(0, 1, 1);
  d.onProbeSent(size, 0);
  d.onProbeAcked(size, 1);
  d.reset(BASE, TOP, 2);
  pending!(true);
  assert.equal(d.packetSize, BASE, 'the answer was for the old path');
  assert.equal(d.status().state, 'searching');
});

test('two connections through a link that drops packets over 1400 bytes: probing settles below it and data flows', async () => {
  const pair = makePair({ maxSize: 1400 });
  try {
    for (const c of [pair.a, pair.b]) c.setPathMtu(BASE, TOP, (_size, done) => done(true));
    const got = nextStream(pair.b).then(readAll);
    const sent = writeRandom(pair.a.openStream(7), 4 << 20);
    const [hash, r] = await withTimeout(Promise.all([sent, got]), 20_000, 'transfer');
    assert.equal(r.hash, hash);
    const s = pair.a.mtuStatus()!;
    assert.ok(pair.a.maxPacketSize <= 1400 && pair.a.maxPacketSize > 1400 - SEARCH_DONE, `a at ${pair.a.maxPacketSize} (${JSON.stringify(s)})`);
    assert.ok(s.probesLost >= MAX_PROBES, 'probes over 1400 were lost');
    assert.equal(pair.ab.dropped, pair.ab.oversize, 'only probes were dropped');
  } finally {
    closePair(pair);
  }
});

test('a black hole mid-transfer (the link MTU drops, nothing says so): fallback to the base and the transfer completes', async () => {
  const pair = makePair({});
  try {
    for (const c of [pair.a, pair.b]) c.setPathMtu(BASE, TOP, (_size, done) => done(true));
    const got = nextStream(pair.b).then(readAll);
    const s = pair.a.openStream(7);
    const sent = writeRandom(s, 16 << 20);
    // once the size has grown, the link starts dropping anything over 1300 bytes
    await withTimeout(
      new Promise<void>((r) => {
        const t = setInterval(() => {
          if (pair.a.maxPacketSize > 1400) {
            clearInterval(t);
            r();
          }
        }, 1);
      }),
      10_000,
      'size grows',
    );
    pair.ab.opts.maxSize = 1300;
    const [hash, r] = await withTimeout(Promise.all([sent, got]), 30_000, 'transfer');
    assert.equal(r.hash, hash);
    const st = pair.a.mtuStatus()!;
    assert.equal(st.blackHoles, 1, JSON.stringify(st));
    assert.ok(pair.a.maxPacketSize <= 1300, `a at ${pair.a.maxPacketSize}`);
  } finally {
    closePair(pair);
  }
});

test('a black hole while a probe is being confirmed: the late answer does not raise the size again', () => {
  const answers: ((ok: boolean) => void)[] = [];
  const d = new MtuDiscoverer({ setPacketSize: () => {}, confirm: (_s, done) => answers.push(done) }, BASE, TOP);
  const top = d.probeSize(0, 1, 1);
  for (let i = 0; i < TOP_TRIES; i++) {
    assert.equal(d.probeSize(i * 100, 1, 1), top);
    d.onProbeSent(top, i * 100);
    d.onProbeLost(top, i * 100 + 1, 1); // the top does not pass: binary search
  }
  const mid = d.probeSize(1000, 1, 1);
  assert.ok(mid > BASE && mid < TOP);
  d.onProbeSent(mid, 1000);
  d.onProbeAcked(mid, 1001);
  answers.shift()!(true);
  assert.equal(d.packetSize, mid);
  const next = d.probeSize(1002, 1, 1);
  d.onProbeSent(next, 1002);
  d.onProbeAcked(next, 1003); // its confirmation is slow...
  d.onProbeTimeout(2, 1004, TOP, 1e6); // ...and a black hole comes first
  assert.equal(d.packetSize, BASE);
  answers.shift()!(true);
  assert.equal(d.packetSize, BASE, 'the stale answer was ignored');
});

test('a probe given up on and acked late still raises the size', () => {
  const { d } = rig();
  for (let i = 0; i < TOP_TRIES; i++) {
    const t = i * 1000;
    assert.equal(d.probeSize(t, 1, 1), TOP);
    d.onProbeSent(TOP, t);
    assert.equal(d.probeSize(t + 500, 1, 1), 0, 'retired as lost, the next one waits for the gap');
  }
  d.onProbeAcked(TOP, 2500);
  assert.equal(d.packetSize, TOP);
});

test('after a path change no probe leaves until the peer acked a packet sent on the new path', async () => {
  const pair = makePair({});
  try {
    const got = nextStream(pair.b).then(readAll);
    const s = pair.a.openStream(7);
    s.write(Buffer.alloc(10_000));
    await withTimeout(
      new Promise<void>((r) => {
        const t = setInterval(() => {
          if (pair.a.stats().bytesInFlight === 0 && pair.a.stats().packetsSent > 3) {
            clearInterval(t);
            r();
          }
        }, 2);
      }),
      5000,
      'first data acked',
    );
    // the new path does not carry our packets yet (a NAT not yet opened on the far side)
    pair.ab.enabled = false;
    pair.a.setPathMtu(BASE, TOP, (_size, done) => done(true));
    s.write(Buffer.alloc(10_000));
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(pair.a.mtuStatus()!.probesSent, 0, 'nothing proved the path yet');
    pair.ab.enabled = true;
    s.end(Buffer.alloc(200_000));
    await withTimeout(got, 10_000, 'transfer');
    await withTimeout(
      new Promise<void>((r) => {
        const t = setInterval(() => {
          if (pair.a.maxPacketSize === TOP) {
            clearInterval(t);
            r();
          }
        }, 5);
      }),
      10_000,
      `size grows (${JSON.stringify(pair.a.mtuStatus())})`,
    );
  } finally {
    closePair(pair);
  }
});

test('a host that answers twice (a bug there) cannot lower a size a later answer raised', () => {
  const answers: ((ok: boolean) => void)[] = [];
  const d = new MtuDiscoverer({ setPacketSize: () => {}, confirm: (_s, done) => answers.push(done) }, BASE, TOP);
  const top = d.probeSize(0, 1, 1);
  d.onProbeSent(top, 0);
  d.onProbeAcked(top, 1);
  answers[0]!(false);
  answers[0]!(true);
  assert.equal(d.packetSize, BASE, 'only the first answer counts');
});

test('Connection: the confirmation is asynchronous (the route cache is read by a child process): one answer per acked probe', async () => {
  const pair = makePair({});
  try {
    let calls = 0;
    pair.a.setPathMtu(BASE, TOP, (_size, done) => {
      calls++;
      setTimeout(() => done(true), 20);
    });
    const got = nextStream(pair.b).then(readAll);
    await writeRandom(pair.a.openStream(7), 1 << 20);
    await withTimeout(got, 10_000, 'transfer');
    // the answer comes 20 ms after the ACK: the transfer may be over by then
    for (let i = 0; i < 200 && pair.a.maxPacketSize !== TOP; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(pair.a.maxPacketSize, TOP, JSON.stringify(pair.a.mtuStatus()));
    assert.equal(calls, 1, 'the ceiling passed at once: one probe, one confirmation');
  } finally {
    closePair(pair);
  }
});

test('ACKs held up (a peer stalled on a busy box): the false black hole is undone as soon as they come', async () => {
  // What the NAT lab showed at load 2-3: a ~0.2 ms srtt, so a receiver that stalls a few ms lets
  // the probe timeout fire twice with full-size packets outstanding. The ACKs that come then cover
  // full-size packets sent after the one that timed out: the path carries the size after all.
  const pair = makePair({ delayMs: 1 }, {}, { delayMs: 1, seed: 5 });
  try {
    for (const c of [pair.a, pair.b]) c.setPathMtu(BASE, TOP, (_size, done) => done(true));
    const got = nextStream(pair.b).then(readAll);
    const s = pair.a.openStream(7);
    const sent = writeRandom(s, 8 << 20);
    await withTimeout(
      new Promise<void>((r) => {
        const t = setInterval(() => {
          if (pair.a.maxPacketSize === TOP && pair.a.stats().bytesSent > 1 << 20) {
            clearInterval(t);
            r();
          }
        }, 1);
      }),
      10_000,
      'size grows',
    );
    pair.ba.opts.delayMs = 300; // only the ACK direction: two probe timeouts at a ~3 ms RTT (or a loaded box's 30)
    await new Promise((r) => setTimeout(r, 250));
    pair.ba.opts.delayMs = 1;
    await new Promise((r) => setTimeout(r, 400)); // the held ACKs have come; the 1 s re-search has not
    const st = pair.a.mtuStatus()!;
    assert.ok(st.blackHoles >= 1, `the stall raised a black hole: ${JSON.stringify(st)}`);
    assert.equal(st.blackHolesUndone, st.blackHoles, JSON.stringify(st));
    assert.equal(pair.a.maxPacketSize, TOP, 'back to the full size without a new search');
    assert.equal(st.probesSent, 1, 'no probe was needed');
    const [hash, r] = await withTimeout(Promise.all([sent, got]), 30_000, 'transfer');
    assert.equal(r.hash, hash);
  } finally {
    closePair(pair);
  }
});

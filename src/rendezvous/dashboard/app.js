// Dashboard page: polls the public summary, and the admin API once a token is
// given (kept in sessionStorage only). Text goes in with textContent only, so
// a hostname can never inject markup.
'use strict';

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function bytes(n) {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

function ago(ms) {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}

function renderSummary(s) {
  $('online').textContent = String(s.online);
  $('paths-direct').textContent = String(s.paths.direct);
  $('paths-relay').textContent = String(s.paths.relay);
  $('relay-rate').textContent = `${bytes(s.relay.bytesPerSec)}/s`;
  $('relay-total').textContent = `${bytes(s.relay.bytesTotal)} relayed in total`;

  const body = $('nat').tBodies[0];
  body.replaceChildren();
  const max = Math.max(1, ...Object.values(s.nat));
  for (const [cls, n] of Object.entries(s.nat)) {
    const tr = el('tr');
    tr.dataset.nat = cls;
    tr.append(el('th', cls), el('td', n, 'count'));
    const bar = el('span', undefined, 'bar');
    bar.style.width = `${Math.round((n / max) * 200)}px`;
    const td = el('td');
    td.append(bar);
    tr.append(td);
    body.append(tr);
  }

  const list = $('public-nodes');
  list.replaceChildren(...(s.publicHostnames.length ? s.publicHostnames.map((h) => el('li', h)) : [el('li', 'none online', 'muted')]));
  $('status').textContent = `updated ${new Date(s.generatedAt).toLocaleTimeString()}`;
  $('status').classList.remove('error');
}

async function getJson(url, token) {
  const res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, cache: 'no-store' });
  if (!res.ok) {
    const err = new Error(`${url}: HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return res.json();
}

function renderNodes(nodes) {
  const body = $('nodes').tBodies[0];
  body.replaceChildren(
    ...nodes.map((n) => {
      const tr = el('tr');
      tr.dataset.address = n.address;
      tr.append(
        el('td', n.address),
        el('td', n.hostname ?? '–'),
        el('td', n.public ? 'yes' : 'no'),
        el('td', n.nat),
        el('td', n.online ? 'yes' : 'no'),
        el('td', ago(n.lastSeen)),
        el('td', n.link ?? '–'),
        el('td', n.paths ? `${n.paths.direct}/${n.paths.relay}` : '–'),
        el('td', n.punches ? `${n.punches.succeeded}/${n.punches.tried}` : '–'),
        el('td', n.endpoints.join(' ') || '–'),
      );
      return tr;
    }),
  );
  $('nodes').hidden = false;
}

async function pollAdmin() {
  const token = sessionStorage.getItem('pilot-admin-token');
  $('logout').hidden = !token;
  if (!token) {
    $('nodes').hidden = true;
    return;
  }
  try {
    const r = await getJson('/api/admin/nodes', token);
    renderNodes(r.nodes);
    $('admin-status').textContent = `${r.nodes.length} nodes`;
    $('admin-status').classList.remove('error');
  } catch (err) {
    if (err.status === 401) sessionStorage.removeItem('pilot-admin-token');
    $('nodes').hidden = true;
    $('admin-status').textContent = err.status === 401 ? 'wrong token' : err.message;
    $('admin-status').classList.add('error');
  }
}

async function poll() {
  try {
    renderSummary(await getJson('/api/summary'));
  } catch (err) {
    $('status').textContent = `cannot reach the rendezvous (${err.message})`;
    $('status').classList.add('error');
  }
  await pollAdmin();
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const t = $('token').value.trim();
  $('token').value = '';
  if (t) sessionStorage.setItem('pilot-admin-token', t);
  void pollAdmin();
});
$('logout').addEventListener('click', () => {
  sessionStorage.removeItem('pilot-admin-token');
  $('admin-status').textContent = '';
  void pollAdmin();
});

void poll();
setInterval(() => void poll(), POLL_MS);

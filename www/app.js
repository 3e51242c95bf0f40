// The demo page: one person's identity (kept in localStorage), simulated agents in Web Workers,
// and every coordination pattern derived from one ordered, verified feed.
import init, * as pkg from '/pkg/ants_coord.js';
import { normalizeEntry, relayClientClass } from './relay-client.js';
import { Model, bodyOf, WINDOW_MS, STAKE } from './model.js';
import { Plot } from './plot.js';

const TOPIC = new URLSearchParams(location.search).get('topic') ?? 'demo';
const params = new URLSearchParams(location.search);
const RELAY = params.get('relay') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const WITNESS = params.get('relay2') ?? RELAY;
const AGENTS = Number(params.get('agents') ?? 3);
const STORE = `ants-coord-demo/${TOPIC}`;

const $ = (id) => document.getElementById(id);
const hex = (bytes) => Array.from(bytes, (x) => x.toString(16).padStart(2, '0')).join('');
const unhex = (h) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
const encode = (body) => new TextEncoder().encode(JSON.stringify(body));
const short = (id) => (id ? id.slice(0, 8) : '?');
const names = new Map(); // agent id -> friendly name

/** A stable colour per agent id. */
export function colourOf(id) {
  const hue = parseInt(id.slice(0, 6), 16) % 360;
  return `hsl(${hue} 55% 38%)`;
}
function agentChip(id) {
  const span = document.createElement('span');
  span.className = 'agent';
  span.style.background = colourOf(id);
  span.textContent = names.get(id) ? `${names.get(id)} ${short(id)}` : short(id);
  span.title = id;
  span.dataset.agent = id;
  return span;
}

const state = { model: null, client: null, identity: null, me: '', pendingDoc: 0, docAwait: -1, docValue: '', myClaims: new Set(), shownCompensations: new Set() };
const ratePlot = new Plot($('plot-rate'), 'ops/s', '#1565c0');
const latencyPlot = new Plot($('plot-latency'), 'end-to-end latency, ms', '#c62828');
let second = { count: 0, latencies: [] };

function setStatus(kind, words) {
  const el = $('status');
  el.className = `status ${kind}`;
  el.textContent = words;
}

const statusWords = {
  connecting: 'Connecting to the relay…',
  live: 'Connected: entries arrive live and every signature is checked here.',
  verified: 'Connected and verified: signatures and the relay\'s checkpoints check out.',
  reconnecting: 'Connection lost; reconnecting…',
  closed: 'Disconnected.',
  misbehaviour: 'The relay sent something that does not verify: see the red entries.',
};

function loadIdentity() {
  let seed = localStorage.getItem(`${STORE}/seed`);
  if (!seed) {
    const fresh = pkg.Identity.generate();
    seed = hex(fresh.exportSeed());
    fresh.free();
    localStorage.setItem(`${STORE}/seed`, seed);
  }
  return pkg.Identity.fromSeed(unhex(seed));
}

// Prefer the package's own RelayClient (sans-IO session, full verification) when it is there.
const ClientClass = relayClientClass(params.get('client') === 'builtin');
async function connect(url, identity, onStatus) {
  const Client = await ClientClass;
  const client = await Client.connect(url, identity, { pkg, onStatus, WebSocket });
  // The package's RelayClient reports through on(type, handler).
  client.on?.('status', (status) => onStatus(status));
  return client;
}

const normalize = (item) => normalizeEntry(item, pkg.decodeOp);

// ---- feed -----------------------------------------------------------------------------------
function bodyText(op) {
  const b = bodyOf(op);
  if (op.kind === 'note') return b.text;
  return JSON.stringify(b, (k, v) => (typeof v === 'string' && v.length === 64 ? short(v) : v));
}

function addFeedRow(entry) {
  const tbody = $('feed').tBodies[0];
  const row = document.createElement('tr');
  row.dataset.seq = entry.seq;
  row.dataset.kind = entry.op.kind;
  row.dataset.author = entry.op.author;
  const cells = [String(entry.seq), agentChip(entry.op.author), entry.op.kind, bodyText(entry.op), new Date(entry.relayTimeMs).toISOString().slice(11, 23)];
  for (const c of cells) {
    const td = document.createElement('td');
    if (c instanceof Node) td.append(c);
    else td.textContent = c;
    row.append(td);
  }
  row.cells[3].className = 'body';
  const verified = document.createElement('td');
  verified.className = 'verified ok';
  verified.textContent = 'signature ✓';
  verified.title = 'The op\'s ed25519 signature was verified in this tab (wasm).';
  row.append(verified);
  if (entry.seq < (state.verifiedSize ?? 0)) { verified.dataset.checkpoint = 'yes'; verified.textContent += ' · checkpoint ✓'; }
  tbody.prepend(row);
  while (tbody.rows.length > 300) tbody.deleteRow(-1);
  $('feed-count').textContent = `${state.model.entries.size} entries`;
}

function addAlarm(item) {
  const tbody = $('feed').tBodies[0];
  const row = tbody.insertRow(0);
  row.className = 'alarm';
  const td = row.insertCell();
  td.colSpan = 6;
  td.textContent = `⚠ misbehaviour (${item.code}): ${item.evidence}`;
  setStatus('misbehaviour', statusWords.misbehaviour);
}

// ---- views ----------------------------------------------------------------------------------
function render() {
  const m = state.model;
  // election
  const offset = state.clockOffset ?? 0;
  const now = Date.now() + offset;
  const ranking = m.ranking(Math.max(now, m.relayTime));
  $('leader').replaceChildren(ranking[0] ? agentChip(ranking[0].agent) : 'nobody active');
  $('ranking').replaceChildren(...ranking.map((r) => { const li = document.createElement('li'); li.append(agentChip(r.agent), ` priority ${r.key}…`); return li; }));
  // tasks
  $('tasks').replaceChildren(...[...m.tasks].slice(-12).map(([id, t]) => {
    const li = document.createElement('li');
    li.dataset.task = id;
    li.dataset.state = t.state;
    li.append(`${t.title} — ${t.state}`);
    if (t.holder) li.append(' by ', agentChip(t.holder));
    if (t.slashed) li.append(` (slashed ${t.slashed}×)`);
    if (t.conflicts.length) { li.append(` · ${t.conflicts.length} conflict${t.conflicts.length > 1 ? 's' : ''}`); li.classList.add('flash'); }
    if (t.state === 'open') li.append(button('Claim', () => claim(id), 'claim'));
    if (t.state === 'claimed' && t.holder === state.me) li.append(button('Done', () => publish('task.done', { task: id }), 'done'));
    return li;
  }));
  // escrow
  $('balances').tBodies[0].replaceChildren(...[...m.balances].map(([agent, balance]) => {
    const tr = document.createElement('tr');
    const held = [...m.escrow.values()].filter((e) => e.agent === agent).reduce((n, e) => n + e.amount, 0);
    tr.insertCell().append(agentChip(agent));
    tr.insertCell().textContent = balance;
    tr.insertCell().textContent = held;
    return tr;
  }));
  $('ledger').replaceChildren(...m.ledger.slice(-15).reverse().map((l) => {
    const li = document.createElement('li');
    li.append(`${l.what} ${l.amount} `, agentChip(l.who), ` on ${l.task}${l.overridden ? ' (overridden)' : ''}`);
    return li;
  }));
  // doc
  const doc = $('doc');
  if (state.pendingDoc === 0 && m.next > state.docAwait && doc.value !== m.doc) {
    const at = doc.selectionStart;
    doc.value = m.doc;
    state.docValue = m.doc;
    if (document.activeElement === doc) doc.setSelectionRange(at, at);
  }
  // recovery
  const r = m.recovery;
  const request = [...r.requests.values()].at(-1);
  $('rec-approvals').textContent = r.guardians.length
    ? `${request ? request.approvals.size : 0} of ${r.threshold} (guardians: ${r.guardians.map(short).join(', ')})`
    : 'no guardians named yet';
  const rotated = r.rotated.at(-1);
  $('rec-result').textContent = rotated ? `Rotated at seq ${rotated.seq}: ${short(rotated.old)} → ${short(rotated.new)}; the new key holds the balance.` : 'Not rotated yet.';
  $('conflicts').replaceChildren(...m.compensations.slice(-4).reverse().map((c) => {
    const li = document.createElement('li');
    li.append('conflict on ', c.task, ': ', agentChip(c.loser), ` lost (seq ${c.seq}) to `, agentChip(c.winner), ` (seq ${c.winnerSeq}); compensation: claim rolled back, stake not taken`);
    return li;
  }));
  // compensations for me
  for (const c of m.compensations) {
    if (c.loser !== state.me || state.shownCompensations.has(c.seq)) continue;
    state.shownCompensations.add(c.seq);
    showCompensation(`Your claim on ${c.task} (seq ${c.seq}) lost to ${short(c.winner)} (seq ${c.winnerSeq}): rolled back, stake of ${c.refund} not taken.`);
  }
}

function showCompensation(words) {
  const div = document.createElement('div');
  div.className = 'compensation flash';
  div.textContent = `Compensation: ${words}`;
  $('compensations').prepend(div);
}

function showNote(words) {
  $('override-note').textContent = words;
}

function button(label, onClick, role) {
  const b = document.createElement('button');
  b.textContent = label;
  b.dataset.role = role;
  b.addEventListener('click', onClick);
  const wrap = document.createDocumentFragment();
  wrap.append(' ', b);
  return wrap;
}

async function publish(kind, body) {
  try {
    const receipt = await state.client.publish(TOPIC, kind, encode(body));
    return receipt;
  } catch (error) {
    setStatus('error', `The relay refused a ${kind}: ${error.code ?? ''} ${error.message}`);
    throw error;
  }
}

function claim(task) {
  state.myClaims.add(task);
  return publish('task.claim', { task });
}

// ---- the shared text: edits become insert/delete ops applied in sequence order ---------------
function docEdit() {
  const doc = $('doc');
  const before = state.docValue;
  const after = doc.value;
  let start = 0;
  while (start < before.length && start < after.length && before[start] === after[start]) start++;
  let endB = before.length;
  let endA = after.length;
  while (endB > start && endA > start && before[endB - 1] === after[endA - 1]) { endB--; endA--; }
  state.docValue = after;
  const ops = [];
  if (endB > start) ops.push(['doc.delete', { pos: start, len: endB - start }]);
  if (endA > start) ops.push(['doc.insert', { pos: start, text: after.slice(start, endA) }]);
  for (const [kind, body] of ops) {
    state.pendingDoc++;
    // The text box is left alone until the feed has caught up with this tab's own edits.
    publish(kind, body)
      .then((receipt) => { state.docAwait = Math.max(state.docAwait, Number(receipt?.seq ?? -1)); })
      .finally(() => { state.pendingDoc--; });
  }
}

// ---- agents (Web Workers) --------------------------------------------------------------------
const agents = [];
function addAgent(running = true) {
  const n = agents.length + 1;
  const key = `${STORE}/agent-${n}`;
  let seed = localStorage.getItem(key);
  if (!seed) { const id = pkg.Identity.generate(); seed = hex(id.exportSeed()); id.free(); localStorage.setItem(key, seed); }
  const worker = new Worker(new URL('./agent-worker.js', import.meta.url), { type: 'module' });
  const agent = { name: `agent-${n}`, worker, running, status: 'starting', actions: 0, id: '' };
  const li = document.createElement('li');
  agent.li = li;
  worker.onmessage = ({ data }) => {
    Object.assign(agent, data);
    if (agent.id) names.set(agent.id, agent.name);
    li.replaceChildren(agent.id ? agentChip(agent.id) : agent.name, ` ${agent.running ? 'running' : 'paused'} · ${agent.status} · ${agent.actions} ops`);
  };
  worker.onerror = (e) => { agent.status = `crashed: ${e.message}`; li.textContent = `${agent.name}: ${agent.status}`; };
  worker.postMessage({ type: 'start', seed, url: RELAY, topic: TOPIC, name: agent.name, running, builtin: params.get('client') === 'builtin' });
  $('agents').append(li);
  agents.push(agent);
}
$('agents-add').onclick = () => addAgent(true);
$('agents-start').onclick = () => agents.forEach((a) => { a.running = true; a.worker.postMessage({ type: 'run', running: true }); });
$('agents-pause').onclick = () => agents.forEach((a) => { a.running = false; a.worker.postMessage({ type: 'run', running: false }); });

// ---- relay honesty: an independent connection must see the same entry at every seq ----------
const witness = { seen: new Map(), agreedUpTo: -1, disagreement: null, logs: null };
// Each connection also folds its entries into an RFC 6962 Merkle tree (the package's
// MerkleLog): the tree head a relay signs in its checkpoints. Equal heads at equal sizes mean
// both saw the very same bytes.
function foldIntoLog(source, entry) {
  if (!pkg.MerkleLog || !entry.bytes) return;
  witness.logs ??= { main: new pkg.MerkleLog(), witness: new pkg.MerkleLog() };
  const log = witness.logs[source];
  try {
    if (log.size === entry.seq) log.append(entry.bytes);
  } catch (error) {
    // The honesty panel must never stop the feed.
    witness.disagreement ??= `cannot fold entry ${entry.seq} into the tree: ${error.message}`;
  }
}
function treeHeads() {
  const logs = witness.logs;
  if (!logs) return '';
  const size = Math.min(logs.main.size, logs.witness.size);
  if (!size) return '';
  const a = hex(logs.main.rootAt(size));
  const b = hex(logs.witness.rootAt(size));
  if (a !== b && !witness.disagreement) witness.disagreement = `the Merkle tree heads at size ${size} differ (${a.slice(0, 16)}… vs ${b.slice(0, 16)}…): the same seq carried different bytes`;
  return ` Merkle tree head at size ${size}: ${a.slice(0, 16)}… on both.`;
}
function compareWitness(seq, source, opId) {
  const slot = witness.seen.get(seq) ?? {};
  slot[source] = opId;
  witness.seen.set(seq, slot);
  if (slot.main && slot.witness) {
    if (slot.main !== slot.witness && !witness.disagreement) {
      witness.disagreement = `at seq ${seq} the main connection got op ${short(slot.main)} but the witness got ${short(slot.witness)}`;
    }
    while (witness.seen.get(witness.agreedUpTo + 1)?.main && witness.seen.get(witness.agreedUpTo + 1)?.witness) witness.agreedUpTo++;
  }
  const el = $('honesty');
  const heads = treeHeads();
  if (witness.disagreement) { el.className = 'alarm'; el.textContent = `⚠ The relays disagree: ${witness.disagreement}.`; }
  else { el.className = 'ok'; el.textContent = `✓ Both connections agree on every entry up to seq ${witness.agreedUpTo}.${heads}`; }
}
async function startWitness() {
  $('witness-url').textContent = WITNESS === RELAY ? 'same relay, separate connection' : WITNESS;
  const identity = pkg.Identity.generate();
  const client = await connect(WITNESS, identity, () => {});
  state.witness = client;
  for await (const item of client.subscribe(TOPIC, { from: 0 })) {
    const e = normalize(item);
    if (!e) break;
    if (!e.misbehaviour && !e.ignored) { foldIntoLog('witness', e); compareWitness(e.seq, 'witness', e.op.id); }
  }
}
// Entries below a checkpoint's tree size that the client verified get the second ✓.
function markCheckpoint(treeSize) {
  state.verifiedSize = Math.max(state.verifiedSize ?? 0, treeSize);
  $('checkpoint').textContent = `Signed checkpoint verified at tree size ${state.verifiedSize}.`;
  for (const row of document.querySelectorAll('#feed tbody tr[data-seq]')) {
    const cell = row.querySelector('.verified');
    if (Number(row.dataset.seq) < state.verifiedSize && !cell.dataset.checkpoint) {
      cell.dataset.checkpoint = 'yes';
      cell.textContent += ' · checkpoint ✓';
    }
  }
}
async function pollCheckpoint() {
  state.client.requestCheckpoint?.(TOPIC);
  if (!state.client.getCheckpoint) return;
  try {
    const bytes = await state.client.getCheckpoint(TOPIC);
    $('checkpoint').textContent = `Latest signed checkpoint: ${bytes.length} bytes, ${hex(bytes.subarray(0, 12))}…`;
  } catch (error) {
    $('checkpoint').textContent = `Signed checkpoints: the relay says “${error.message}” (${error.code}); entries are checked by signature and by comparing connections until it does.`;
  }
}

// ---- main ------------------------------------------------------------------------------------
async function main() {
  await init();
  state.model = new Model({ topic: TOPIC, core: pkg });
  state.identity = loadIdentity();
  state.me = state.identity.agentId;
  names.set(state.me, 'you');
  $('my-id').replaceWith(agentChip(state.me));
  $('doc-engine').textContent = pkg.Doc ? 'Edits travel as ops in the feed.' : 'Edits travel as insert/delete ops applied in sequence order (the Yrs document replaces this when the package exports Doc).';
  $('forget').onclick = () => { localStorage.removeItem(`${STORE}/seed`); location.reload(); };
  setStatus('connecting', statusWords.connecting);
  const onStatus = (reported, detail) => {
    // "connecting" after having been live is a reconnect, whichever client says it.
    const status = reported === 'connecting' && state.wasLive ? 'reconnecting' : reported;
    if (status === 'live' || status === 'verified') state.wasLive = true;
    setStatus(status === 'verified' ? 'live' : status, detail ? `${statusWords[status] ?? status} ${detail}` : statusWords[status] ?? status);
  };
  try {
    state.client = await connect(RELAY, state.identity, onStatus);
  } catch (error) {
    setStatus('error', `Cannot reach the relay at ${RELAY}: ${error.message}. Is ants-relay running? The page retries in 3 s.`);
    setTimeout(main, 3000);
    return;
  }
  setStatus('live', statusWords.live);
  state.client.on?.('misbehaviour', (m) => addAlarm({ code: m.code, evidence: m.detail }));
  state.client.on?.('error', (error) => setStatus('error', `The relay refused something: ${error.code ?? ''} ${error.message}`));
  state.client.on?.('verified', ({ treeSize }) => markCheckpoint(Number(treeSize)));
  state.client.onCompensation?.('claim', (event) => showCompensation(`the relay reports a lost claim at seq ${event.seq}`));
  $('post-form').onsubmit = (event) => {
    event.preventDefault();
    const text = $('post-text').value.trim();
    if (text) publish('note', { text }).then(() => { $('post-text').value = ''; });
  };
  $('task-open').onclick = () => publish('task.open', { task: `t${Date.now().toString(36).slice(-5)}`, title: `Task ${state.model.tasks.size + 1}`, reward: 5 });
  $('override').onclick = () => {
    const slash = state.model.ledger.findLast((l) => l.what === 'slash' && !l.overridden);
    const leader = state.model.leader(Date.now() + (state.clockOffset ?? 0))?.agent;
    if (!slash) showNote('There is no slash to override yet (a claim must be left undone for 20 s).');
    else if (leader !== state.me) showNote(`Only the current leader (${short(leader)}) may override; an override from anyone else is ignored by every replica.`);
    else publish('override', { task: slash.task });
  };
  $('doc').addEventListener('input', docEdit);
  $('rec-guardians').onclick = () => {
    const others = agents.map((a) => a.id).filter(Boolean).slice(0, 3);
    if (others.length < 3) { setStatus('error', 'Recovery needs three agents as guardians: add agents first.'); return; }
    publish('recovery.guardians', { guardians: others, threshold: 2 });
  };
  $('rec-lose').onclick = async () => {
    const next = pkg.Identity.generate();
    localStorage.setItem(`${STORE}/recovered-seed`, hex(next.exportSeed()));
    const client = await connect(RELAY, next, () => {});
    await client.publish(TOPIC, 'recovery.request', encode({ old: state.me }));
    client.close();
  };
  for (let i = 0; i < AGENTS; i++) addAgent(true);
  startWitness().catch((error) => { $('honesty').textContent = `Witness connection failed: ${error.message}`; });
  setInterval(pollCheckpoint, 5000);
  pollCheckpoint();
  setInterval(() => {
    ratePlot.push(second.count);
    latencyPlot.push(second.latencies.length ? second.latencies.reduce((a, b) => a + b, 0) / second.latencies.length : null);
    second = { count: 0, latencies: [] };
    render();
    const left = WINDOW_MS - ((Date.now() + (state.clockOffset ?? 0)) % WINDOW_MS);
    $('countdown').textContent = `${(left / 1000).toFixed(0)} s`;
  }, 1000);
  window.demo = { state, ready: true };
  for await (const item of state.client.subscribe(TOPIC, { from: 0 })) {
    const entry = normalize(item);
    if (!entry) break;
    if (entry.ignored) continue;
    if (entry.misbehaviour) { addAlarm(entry); continue; }
    if (!state.model.apply(entry)) continue; // never shown twice
    const now = Date.now();
    state.clockOffset = entry.relayTimeMs - now;
    second.count++;
    const latency = now - Number(entry.op.timeMs);
    if (latency >= 0 && latency < 60_000 && now - entry.relayTimeMs < 5000) second.latencies.push(latency);
    addFeedRow(entry);
    foldIntoLog('main', entry);
    compareWitness(entry.seq, 'main', entry.op.id);
    if (!state.renderQueued) { state.renderQueued = true; setTimeout(() => { state.renderQueued = false; render(); }, 50); }
  }
}

main().catch((error) => setStatus('error', `The demo stopped: ${error.message}`));

// The demo page: one person's identity (kept in localStorage), simulated agents in Web Workers,
// and every coordination pattern read from one ordered, verified feed. The connection is the
// package's RelayClient (ants-coord/client: the core's sans-IO Session in wasm does every
// check), the task board, balances and recovery come from the core's Replica, the shared text
// is the core's Yrs document.
import init, * as pkg from '/pkg/ants_coord.js';
import { RelayClient, RelayGroup } from '/pkg/client-web.mjs';
import { Model, GRANT, REWARD, STAKE, TASK_MS, WINDOW_MS, faucetSeed, opOf } from './model.js';
import { SharedText } from './text.js';
import { Plot } from './plot.js';
import { privatePanel } from './private.js';

const params = new URLSearchParams(location.search);
const TOPIC = params.get('topic') ?? 'demo';
const RELAY = params.get('relay') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const WITNESS = params.get('relay2') ?? RELAY;
const AGENTS = Number(params.get('agents') ?? 3);
const STORE = `ants-coord-demo/${TOPIC}`;

const $ = (id) => document.getElementById(id);
const hex = (bytes) => Array.from(bytes, (x) => x.toString(16).padStart(2, '0')).join('');
const unhex = (h) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
const short = (id) => (id ? id.slice(0, 8) : '?');
// Agents are named by their id's short form, the same in every tab; only this tab's own agent
// and the demo faucet get a word in front ("you 1a2b3c4d").
const names = new Map(); // agent id -> word before the short id

// Colours far apart in hue and lightness, all dark enough for white text; given out in the order
// agents first appear in this tab, so the first ten never share one.
const PALETTE = ['#1565c0', '#c62828', '#2e7d32', '#6a1b9a', '#ef6c00', '#00838f', '#ad1457', '#5d4037', '#455a64', '#827717'];
const colours = new Map(); // agent id -> colour
/** A colour per agent id, distinct from the others shown in this tab (up to ten of them). */
export function colourOf(id) {
  if (!colours.has(id)) colours.set(id, PALETTE[colours.size % PALETTE.length]);
  return colours.get(id);
}
/** "CODE: message" once, whether or not the message already starts with its code. */
function errorWords(error) {
  const message = error?.message ?? String(error);
  if (!error?.code || message.startsWith(error.code)) return message;
  return `${error.code}: ${message}`;
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

// The note form is never submitted natively (that would reload the page without its settings):
// its button is disabled in the HTML until the connection is up, and a submit is always stopped.
$('post-form').addEventListener('submit', (event) => event.preventDefault());

const state = { model: null, client: null, publisher: null, identity: null, me: '', text: null, caughtUp: false, verifiedSize: 0, shownCompensations: new Set() };
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
  verified: 'Connected and verified: signatures check out, and the relay\'s signed checkpoint matches the log this tab rebuilt.',
  reconnecting: 'Connection lost; reconnecting (the feed resumes where it stopped)…',
  closed: 'Disconnected.',
  misbehaviour: 'The relay sent something that does not verify: see the red entries.',
};

// What the client's misbehaviour codes mean, in plain words (`detail` is the session's own).
const faultWords = {
  INVALID_ENTRY: (d) => `the relay's entry at seq ${/\bseq (\d+)/.exec(d)?.[1] ?? '?'} does not verify (its op signature is wrong); this tab refused it`,
  GAP: () => 'the relay skipped entries; this tab asked again from where it was',
  DUPLICATE: () => 'the relay sent an entry twice',
  AUTHOR_ORDER: () => "an author's ops came out of the order its counters give",
  ACKNOWLEDGED_OP_MISSING: () => 'an op the relay acknowledged never appeared at its seq',
  HEAD_MISMATCH: () => "the relay's signed checkpoint does not match the entries it served",
  BAD_RECEIPT: () => 'a receipt from the relay does not verify',
  BAD_SUBSCRIPTION: () => 'the relay answered a subscription inconsistently',
  RELAY_KEY_CHANGED: () => 'the relay presented another key than the one pinned before',
};

/** The person's signing key and the agent it acts for (the same until a key recovery). */
function loadIdentity() {
  let seed = localStorage.getItem(`${STORE}/seed`);
  if (!seed) {
    const fresh = pkg.Identity.generate();
    seed = hex(fresh.exportSeed());
    fresh.free();
    localStorage.setItem(`${STORE}/seed`, seed);
  }
  const identity = pkg.Identity.fromSeed(unhex(seed));
  return { identity, agent: localStorage.getItem(`${STORE}/agent`) ?? identity.agentId };
}

// ---- feed -----------------------------------------------------------------------------------
/**
 * A checkpoint gossip body (kind `ants.checkpoint`, published by the RelayGroup with ?relay2=):
 * version 1 ‖ relay key [32] ‖ head kind (1 receipt, 2 checkpoint) ‖ u32 length ‖ the signed
 * statement (PROTOCOL.md section 5).
 */
function gossipText(body) {
  if (body.length < 38 || body[0] !== 1) return null;
  const relay = hex(body.subarray(1, 33));
  const statement = body.subarray(38);
  if (body[33] === 2) {
    try {
      const checkpoint = pkg.decodeCheckpoint(statement);
      return `gossip: relay ${short(relay)} signed tree size ${checkpoint.treeSize}, root ${hex(checkpoint.root).slice(0, 16)}…`;
    } catch {
      return null;
    }
  }
  return body[33] === 1 ? `gossip: relay ${short(relay)}'s signed receipt (${statement.length} bytes)` : null;
}

/** Bytes shown as text when they are UTF-8, else as their length and first bytes in hex. */
function bytesText(bytes) {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return `${bytes.length} bytes: ${hex(bytes.subarray(0, 12))}${bytes.length > 12 ? '…' : ''}`;
  }
}

function bodyText(entry) {
  if (entry.kind === 'doc.update') return `Yrs update, ${entry.body.length - 1} bytes`;
  if (entry.kind === 'ants.checkpoint') return gossipText(entry.body) ?? bytesText(entry.body);
  let op;
  try {
    op = pkg.ReplicaOp.decode(entry.kind, entry.body);
  } catch {
    return bytesText(entry.body);
  }
  if (entry.kind === 'post') return op.text;
  const { kind, ...fields } = op;
  const shown = (k, v) => {
    if (k === 'deadlineMs') return `deadline ${new Date(Number(v)).toISOString().slice(11, 19)}`;
    if (Array.isArray(v)) return `${k} ${v.map(short).join(', ')}`;
    return `${k} ${typeof v === 'string' && v.length === 64 ? short(v) : v}`;
  };
  // Zero fields are the defaults (e.g. leaseMs 0: the default lease).
  return Object.entries(fields).filter(([, v]) => v !== 0).map(([k, v]) => shown(k, v)).join(' · ');
}

function addFeedRow(entry) {
  const tbody = $('feed').tBodies[0];
  const row = document.createElement('tr');
  row.dataset.seq = entry.seq;
  row.dataset.kind = entry.kind;
  row.dataset.author = entry.author;
  const cells = [String(entry.seq), agentChip(state.model.agentOf(entry.author)), entry.kind, bodyText(entry), new Date(Number(entry.relayTimeMs)).toISOString().slice(11, 23)];
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
  if (entry.seq < state.verifiedSize) markRow(row);
  tbody.prepend(row);
  while (tbody.rows.length > 300) tbody.deleteRow(-1);
  $('feed-count').textContent = `${state.model.entries.size} entries`;
}

function markRow(row) {
  const cell = row.querySelector('.verified');
  if (!cell || cell.dataset.checkpoint) return;
  cell.dataset.checkpoint = 'yes';
  cell.textContent += ' · checkpoint ✓';
  cell.title += ' It is inside a tree the relay signed, and that tree\'s root matches the one this tab computed.';
}

function addAlarm(m) {
  const tbody = $('feed').tBodies[0];
  const row = tbody.insertRow(0);
  row.className = 'alarm';
  const td = row.insertCell();
  td.colSpan = 6;
  const words = faultWords[m.code]?.(m.detail) ?? `the relay broke a rule of the log (${m.code})`;
  const evidence = m.evidence ? `; signed evidence (${m.evidence.length} bytes, anyone holding the relay's key can check it): ${hex(m.evidence.subarray(0, 16))}…` : '';
  td.textContent = `⚠ misbehaviour (${m.code}): ${words}. Session report: ${m.detail}${evidence}`;
  setStatus('misbehaviour', statusWords.misbehaviour);
}

// ---- views ----------------------------------------------------------------------------------
function render() {
  const m = state.model;
  const me = state.me;
  // election
  const now = Date.now() + (state.clockOffset ?? 0);
  const ranking = m.ranking(Math.max(now, m.relayTime));
  $('leader').replaceChildren(ranking[0] ? agentChip(ranking[0].agent) : 'nobody active');
  $('ranking').replaceChildren(...ranking.map((r) => { const li = document.createElement('li'); li.append(agentChip(r.agent), ` priority ${r.key}…`); return li; }));
  // tasks
  $('tasks').replaceChildren(...[...m.tasks].slice(-12).map(([id, t]) => {
    const li = document.createElement('li');
    li.dataset.task = id;
    li.dataset.state = t.state;
    li.append(`${id} (reward ${t.reward}, by `, agentChip(t.poster), `) — ${t.state}`);
    if (t.holder && t.state === 'claimed') li.append(' by ', agentChip(t.holder), ` (stake ${t.stake})`);
    if (t.slashed) li.append(` (slashed ${t.slashed}×)`);
    if (t.conflicts.length) li.append(` · ${t.conflicts.length} conflict${t.conflicts.length > 1 ? 's' : ''}`);
    if (t.conflicts.length && m.relayTime - t.conflicts.at(-1).atMs < 2500) li.classList.add('flash'); // a fresh conflict flashes
    if (t.state === 'open') li.append(button(`Claim (stake ${STAKE})`, () => claim(id, STAKE), 'claim'));
    if (t.state === 'claimed' && t.holder !== me) li.append(button(`Outbid (stake ${Number(t.stake) + STAKE})`, () => claim(id, Number(t.stake) + STAKE), 'outbid'));
    if (t.state === 'claimed' && t.poster === me) li.append(button('Accept the work', () => publish('claim.complete', pkg.ReplicaOp.complete({ resource: id })), 'complete'));
    if (t.state === 'claimed' && t.holder === me) li.append(button('Give up (slash)', () => publish('claim.fail', pkg.ReplicaOp.fail({ resource: id })), 'fail'));
    return li;
  }));
  // escrow
  $('balances').tBodies[0].replaceChildren(...m.agents().map((agent) => {
    const tr = document.createElement('tr');
    tr.insertCell().append(agentChip(agent));
    tr.insertCell().textContent = m.balance(agent);
    tr.insertCell().textContent = m.escrowed(agent);
    return tr;
  }));
  const supply = m.replica.supply();
  $('supply').textContent = `Minted ${supply.minted}, burned ${supply.burned} (slashes go to the task poster), free ${supply.circulating}, in escrow ${supply.escrowed}: free + escrow = minted − burned, after every entry.`;
  $('ledger').replaceChildren(...m.ledger.slice(-15).reverse().map(ledgerItem));
  // doc
  if (document.activeElement !== $('doc') && $('doc').value !== state.text.value) $('doc').value = state.text.value;
  // recovery
  const r = m.recovery.get(me);
  $('rec-approvals').textContent = !r
    ? 'no guardians named yet'
    : !r.request
      ? r.rotated.length
        ? `done: ${r.threshold} of ${r.guardians.length} guardians approved`
        : `none pending (guardians: ${r.guardians.map(short).join(', ')}; ${r.threshold} needed)`
      : `${r.request.approvals} of ${r.threshold} for key ${short(r.request.newKey)}${r.request.effectiveAtMs ? `; rotation scheduled at ${new Date(Number(r.request.effectiveAtMs)).toISOString().slice(11, 19)} (the old key may veto until then)` : ''}`;
  const rotated = r?.rotated.at(-1);
  $('rec-result').textContent = rotated
    ? `Rotated at seq ${rotated.seq}: key ${short(rotated.oldKey)} → ${short(rotated.newKey)}. The agent ${short(me)} keeps its balance (${m.balance(me)}) and claims; ops signed by the old key are now rejected.`
    : 'Not rotated yet.';
  $('conflicts').replaceChildren(...m.compensations.slice(-4).reverse().map((c) => {
    const li = document.createElement('li');
    li.append(`${c.reason} on ${c.resource}: `, agentChip(c.loser), ` (seq ${c.losingSeq}) lost to `, agentChip(c.winner), ` (seq ${c.winningSeq}); refunded ${c.refunded}`);
    return li;
  }));
  $('rejections').textContent = m.rejections.length ? `Last refused by the replica: ${m.rejections.at(-1).kind} at seq ${m.rejections.at(-1).seq} (${m.rejections.at(-1).code}: ${m.rejections.at(-1).reason}).` : '';
}

function ledgerItem(e) {
  const li = document.createElement('li');
  switch (e.type) {
    case 'minted': li.append(`seq ${e.seq}: faucet minted ${e.amount} for `, agentChip(e.to)); break;
    case 'taskPosted': li.append(`seq ${e.seq}: `, agentChip(e.poster), ` escrowed reward ${e.reward} for ${e.task}`); break;
    case 'claimed': li.append(`seq ${e.seq}: `, agentChip(e.holder), ` staked ${e.stake} on ${e.resource}`); break;
    case 'compensation': li.append(`seq ${e.seq}: `, agentChip(e.loser), ` outbid on ${e.resource}, stake ${e.refunded} refunded`); break;
    case 'completed': li.append(`seq ${e.seq}: `, agentChip(e.holder), ` paid stake ${e.refunded} + reward ${e.reward} for ${e.resource}`); break;
    case 'failed': li.append(`seq ${e.seq}: `, agentChip(e.holder), ` slashed ${e.slashed} on ${e.resource} (to the poster)`); break;
    case 'taskExpired': li.append(`seq ${e.seq}: ${e.task} expired${e.holder ? `, holder ${short(e.holder)} slashed ${e.slashed}` : ''}; reward ${e.refunded} back to the poster`); break;
    default: li.append(`seq ${e.seq}: ${e.type} ${e.resource ?? ''}`); break;
  }
  return li;
}

function showCompensation(words) {
  const div = document.createElement('div');
  div.className = 'compensation flash';
  div.textContent = `Compensation: ${words}`;
  $('compensations').prepend(div);
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
    return await (state.publisher ?? state.client).publish(TOPIC, kind, body);
  } catch (error) {
    setStatus('error', `The relay refused a ${kind}: ${errorWords(error)}`);
    throw error;
  }
}

function claim(task, stake) {
  return publish('claim', pkg.ReplicaOp.claim({ resource: task, stake }));
}

// ---- the faucet: coins for newcomers (the demo topic's only issuer) ---------------------------
const faucet = { identity: null, client: null, pending: new Set() };
async function fund(id) {
  if (!id || !state.caughtUp || faucet.pending.has(id) || state.model.balance(id) >= STAKE) return;
  faucet.pending.add(id); // until the replica reports the mint
  try {
    faucet.client ??= RelayClient.connect(RELAY, faucet.identity, { WebSocket });
    const client = await faucet.client;
    // Other tabs sign with the same faucet key: a counter taken by one of them is retried.
    for (let attempt = 0; ; attempt++) {
      try {
        await client.publish(TOPIC, 'mint', pkg.ReplicaOp.mint({ to: id, amount: GRANT }));
        break;
      } catch (error) {
        if (attempt >= 3 || !/^COUNTER_/.test(error.code ?? '')) throw error;
      }
    }
  } catch (error) {
    faucet.pending.delete(id);
    setStatus('error', `The faucet could not mint for ${short(id)}: ${errorWords(error)}`);
  }
}
function fundEveryone() {
  fund(state.me);
  for (const agent of agents) fund(agent.id);
}

// ---- agents (Web Workers) --------------------------------------------------------------------
const agents = [];
function addAgent(running = true) {
  const n = agents.length + 1;
  const key = `${STORE}/agent-${n}`;
  let seed = localStorage.getItem(key);
  if (!seed) { const id = pkg.Identity.generate(); seed = hex(id.exportSeed()); id.free(); localStorage.setItem(key, seed); }
  const worker = new Worker(new URL('./agent-worker.js', import.meta.url), { type: 'module' });
  const agent = { worker, running, status: 'starting', actions: 0, id: '' };
  const li = document.createElement('li');
  agent.li = li;
  worker.onmessage = ({ data }) => {
    const fresh = !agent.id && data.id;
    Object.assign(agent, data);
    li.replaceChildren(agent.id ? agentChip(agent.id) : `agent ${n}`, ` ${agent.running ? 'running' : 'paused'} · ${agent.status} · ${agent.actions} ops`);
    if (fresh) fund(agent.id);
  };
  worker.onerror = (e) => { agent.status = `crashed: ${e.message}`; li.textContent = `agent ${agent.id ? short(agent.id) : n}: ${agent.status}`; };
  wasmModule.then((module) => worker.postMessage({ type: 'start', module, seed, url: RELAY, topic: TOPIC, running }));
  $('agents').append(li);
  agents.push(agent);
}
$('agents-add').onclick = () => addAgent(true);
$('agents-start').onclick = () => agents.forEach((a) => { a.running = true; a.worker.postMessage({ type: 'run', running: true }); });
$('agents-pause').onclick = () => agents.forEach((a) => { a.running = false; a.worker.postMessage({ type: 'run', running: false }); });

// ---- relay honesty: an independent connection must see the same entry at every seq ----------
const witness = { seen: new Map(), agreedUpTo: -1, disagreement: null, logs: { main: null, witness: null } };
// Each connection also folds its entries into an RFC 6962 Merkle tree (the package's
// MerkleLog): the tree head a relay signs in its checkpoints. Equal heads at equal sizes mean
// both saw the very same bytes.
function foldIntoLog(source, entry) {
  witness.logs[source] ??= new pkg.MerkleLog();
  const log = witness.logs[source];
  if (log.size === Number(entry.seq)) log.append(entry.bytes);
}
function treeHeads() {
  const { main, witness: other } = witness.logs;
  const size = Math.min(main?.size ?? 0, other?.size ?? 0);
  if (!size) return '';
  const a = hex(main.rootAt(size));
  const b = hex(other.rootAt(size));
  if (a !== b && !witness.disagreement) witness.disagreement = `the Merkle tree heads at size ${size} differ (${a.slice(0, 16)}… vs ${b.slice(0, 16)}…): the same seq carried different bytes`;
  return ` Merkle tree head at size ${size}: ${a.slice(0, 16)}… on both.`;
}
function compareWitness(seq, source, opId) {
  if (state.group) return; // two relays: the RelayGroup compares (startRelayGroup)
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
// ---- two different relays (?relay2=…): the package's RelayGroup ----------------------------
// Your ops go to both relays as one signed op (same id); the group reports an op one relay has
// and the other has not shown within the deadline, and gossips each relay's verified signed
// checkpoints through the other one, so a relay that shows two histories is caught.
async function startRelayGroup() {
  $('honesty-hint').textContent = `Two relays (${RELAY} and ${WITNESS}) carry this topic: what you publish goes to both as one signed op, each relay's signed checkpoints are gossiped through the other, and an op one relay acknowledged but the other never shows raises the alarm.`;
  const group = await RelayGroup.connect([RELAY, WITNESS], state.identity, { WebSocket, deadlineMs: 10_000, gossipMs: 3_000 });
  state.group = group;
  const seen = { both: 0, heads: [0, 0] };
  const show = () => {
    const el = $('honesty');
    if (witness.disagreement) { el.className = 'alarm'; el.textContent = `⚠ ${witness.disagreement}`; return; }
    el.className = 'ok';
    el.textContent = `✓ ${seen.both} of your ops acknowledged by both relays with the same op id; ` +
      `signed checkpoints verified at sizes ${seen.heads[0]} and ${seen.heads[1]}, gossiped to the other relay.`;
  };
  group.on('misbehaviour', (m) => { witness.disagreement ??= `${m.relay}: ${m.code} — ${m.detail ?? ''}`; show(); });
  group.clients.forEach((client, i) => client.on('verified', (e) => { seen.heads[i] = Math.max(seen.heads[i], Number(e.treeSize)); show(); }));
  group.subscribe(TOPIC, {});
  // From now on what you publish goes through the group (until a key recovery moves you to a new key).
  state.publisher ??= {
    publish: async (topic, kind, body) => {
      const receipts = await group.publish(topic, kind, body);
      seen.both += 1;
      show();
      return receipts[0];
    },
  };
  show();
}

async function startWitness() {
  if (WITNESS !== RELAY) return startRelayGroup();
  $('witness-url').textContent = 'same relay, separate connection';
  const client = await RelayClient.connect(WITNESS, pkg.Identity.generate(), { WebSocket });
  state.witness = client;
  client.on('misbehaviour', (m) => { witness.disagreement ??= `the witness connection reports ${m.code}`; });
  client.subscribe(TOPIC, {
    from: 0,
    replica: false,
    onEntry: (entry) => { foldIntoLog('witness', entry); compareWitness(Number(entry.seq), 'witness', entry.opId); },
  });
}

// ---- signed checkpoints: entries below a verified tree size get the second ✓ -----------------
function markCheckpoint(treeSize) {
  if (!state.caughtUp) { state.caughtUp = true; fundEveryone(); }
  if (treeSize <= state.verifiedSize) return;
  state.verifiedSize = treeSize;
  $('checkpoint').textContent = `Signed checkpoint verified at tree size ${treeSize}: the relay signed the root of its first ${treeSize} entries, and it equals the root this tab computed from what it received.`;
  for (const row of document.querySelectorAll('#feed tbody tr[data-seq]')) {
    if (Number(row.dataset.seq) < treeSize) markRow(row);
  }
}
let burst = null;
function checkpointSoon() {
  // After a burst of entries settles, ask for a checkpoint that covers it.
  clearTimeout(burst);
  burst = setTimeout(() => state.client.requestCheckpoint(TOPIC), 400);
}

// ---- main ------------------------------------------------------------------------------------
function onEntry(entry) {
  let events;
  try {
    events = state.model.apply(entry);
  } catch (error) {
    // After a refused entry the replica cannot go on: it never skips an entry (OUT_OF_ORDER).
    if (!state.replicaStopped) {
      state.replicaStopped = true;
      const row = $('feed').tBodies[0].insertRow(0);
      row.className = 'alarm';
      Object.assign(row.insertCell(), { colSpan: 6, textContent: `⚠ The board stopped at entry ${entry.seq} (${errorWords(error)}): the replica applies every entry in order and cannot skip one this tab refused.` });
    }
    return;
  }
  if (!events) return; // never shown twice
  const seq = Number(entry.seq);
  const relayTime = Number(entry.relayTimeMs);
  const now = Date.now();
  state.clockOffset = relayTime - now;
  second.count++;
  const latency = now - opOf(entry.bytes).timeMs;
  if (latency >= 0 && latency < 60_000 && now - relayTime < 5000) second.latencies.push(latency);
  if (entry.kind === 'doc.update') mergeText(entry, seq);
  for (const e of events) {
    if (e.type === 'minted') faucet.pending.delete(e.to);
    if (e.type === 'compensation' && e.loser === state.me && !state.shownCompensations.has(e.seq)) {
      state.shownCompensations.add(e.seq);
      showCompensation(e.reason === 'outbid'
        ? `Your claim on ${e.resource} (seq ${e.losingSeq}) lost to ${short(e.winner)}, who staked more at seq ${e.winningSeq}: your stake of ${e.refunded} was refunded.`
        : `Your claim on ${e.resource} (seq ${e.losingSeq}) lost to ${short(e.winner)} (seq ${e.winningSeq}): rolled back, nothing was staked.`);
    }
    if (e.type === 'keyRotated' && e.agent === state.me) switchKey(e.newKey);
  }
  addFeedRow({ ...entry, seq });
  foldIntoLog('main', entry);
  compareWitness(seq, 'main', entry.opId);
  checkpointSoon();
  if (!state.renderQueued) { state.renderQueued = true; setTimeout(() => { state.renderQueued = false; render(); }, 50); }
}

// A document update from the feed: merge it, and keep the person's caret where it was.
function mergeText(entry, seq) {
  const box = $('doc');
  const typing = document.activeElement === box;
  try {
    const { merged, caret } = state.text.apply(entry.bytes, typing ? box.selectionStart : undefined);
    if (!merged || box.value === state.text.value) return;
    box.value = state.text.value;
    if (typing && caret !== undefined) box.setSelectionRange(caret, caret);
  } catch (error) {
    setStatus('error', `A document update at seq ${seq} was refused: ${errorWords(error)}`);
  }
}

// After a recovery the new key signs for the person's agent: reconnect with it to publish.
async function switchKey(newKey) {
  const seed = localStorage.getItem(`${STORE}/next-seed`);
  if (!seed) return; // rotated from another browser
  const next = pkg.Identity.fromSeed(unhex(seed));
  if (next.agentId !== newKey) return;
  localStorage.setItem(`${STORE}/seed`, seed);
  localStorage.setItem(`${STORE}/agent`, state.me);
  localStorage.removeItem(`${STORE}/next-seed`);
  state.publisher = await RelayClient.connect(RELAY, next, { WebSocket });
}

// The package's .wasm, fetched and compiled once: the page instantiates it, and so does each agent
// worker, from this WebAssembly.Module posted to it (a module can be posted; an instance cannot).
const wasmModule = WebAssembly.compileStreaming(fetch(new URL('/pkg/ants_coord_bg.wasm', location.href)));

async function main() {
  await init({ module_or_path: await wasmModule });
  const { identity, agent } = loadIdentity();
  state.identity = identity;
  state.me = agent;
  names.set(state.me, 'you');
  faucet.identity = pkg.Identity.fromSeed(faucetSeed(TOPIC));
  names.set(faucet.identity.agentId, 'faucet');
  state.model = new Model(pkg, TOPIC, faucet.identity.agentId);
  $('my-id').replaceWith(agentChip(state.me));
  $('forget').onclick = () => { for (const k of ['seed', 'agent', 'next-seed']) localStorage.removeItem(`${STORE}/${k}`); location.reload(); };
  state.text = new SharedText(pkg, TOPIC, (kind, body) => publish(kind, body).catch(() => {}));
  $('doc').addEventListener('input', () => state.text.replace($('doc').value));
  setStatus('connecting', statusWords.connecting);
  try {
    state.client = await RelayClient.connect(RELAY, identity, { WebSocket });
  } catch (error) {
    setStatus('error', `Cannot reach the relay at ${RELAY} (${errorWords(error)}). Is ants-relay running? The page retries in 3 s.`);
    setTimeout(main, 3000);
    return;
  }
  let wasLive = false;
  const onStatus = (reported) => {
    // "connecting" after having been live is a reconnect.
    const status = reported === 'connecting' && wasLive ? 'reconnecting' : reported;
    if (status === 'live' || status === 'verified') wasLive = true;
    setStatus(status === 'verified' ? 'live' : status, statusWords[status] ?? status);
    if (status === 'live') state.client.requestCheckpoint(TOPIC);
  };
  state.client.on('status', onStatus);
  onStatus(state.client.status);
  state.client.on('misbehaviour', addAlarm);
  state.client.on('error', (error) => setStatus('error', `The relay refused something: ${errorWords(error)}`));
  state.client.on('verified', ({ treeSize }) => markCheckpoint(Number(treeSize)));
  $('post-form').onsubmit = () => {
    const text = $('post-text').value.trim();
    if (text) publish('post', pkg.ReplicaOp.post({ text })).then(() => { $('post-text').value = ''; });
  };
  $('post-form').querySelector('button').disabled = false;
  $('task-open').onclick = () => publish('task.post', pkg.ReplicaOp.taskPost({
    task: `t${Date.now().toString(36).slice(-5)}`,
    reward: REWARD,
    deadlineMs: Math.max(state.model.relayTime, Date.now() + (state.clockOffset ?? 0)) + TASK_MS,
  }));
  $('rec-guardians').onclick = () => {
    const guardians = agents.map((a) => a.id).filter(Boolean).slice(0, 3);
    if (guardians.length < 3) { setStatus('error', 'Recovery needs three agents as guardians: add agents first.'); return; }
    publish('guardians.set', pkg.ReplicaOp.guardiansSet({ guardians }));
  };
  $('rec-lose').onclick = () => {
    const r = state.model.recovery.get(state.me);
    if (!r) { setStatus('error', 'Name guardians first: only they can vouch for a new key.'); return; }
    // The new key cannot sign for the agent yet: the person asks the guardians out of band (here,
    // a message to their workers); one requests the rotation on chain, the others approve it.
    const next = pkg.Identity.generate();
    localStorage.setItem(`${STORE}/next-seed`, hex(next.exportSeed()));
    const helpers = agents.filter((a) => r.guardians.includes(a.id));
    helpers.forEach((a, i) => a.worker.postMessage({ type: 'recover', agent: state.me, newKey: next.agentId, request: i === 0 }));
  };
  for (let i = 0; i < AGENTS; i++) addAgent(true);
  startWitness().catch((error) => { $('honesty').textContent = `Witness connection failed: ${errorWords(error)}`; });
  setInterval(() => state.client.requestCheckpoint(TOPIC), 3000);
  setInterval(fundEveryone, 5000);
  setInterval(() => {
    ratePlot.push(second.count);
    latencyPlot.push(second.latencies.length ? second.latencies.reduce((a, b) => a + b, 0) / second.latencies.length : null);
    second = { count: 0, latencies: [] };
    render();
    const left = WINDOW_MS - ((Date.now() + (state.clockOffset ?? 0)) % WINDOW_MS);
    $('countdown').textContent = `${(left / 1000).toFixed(0)} s`;
  }, 1000);
  window.demo = { state, ready: true };
  // A throw inside the callback would stop the client's own processing: keep it here.
  const guarded = (entry) => { try { onEntry(entry); } catch (error) { setStatus('error', `The page failed on entry ${entry.seq}: ${error.message}`); } };
  state.client.subscribe(TOPIC, { from: 0, replica: false, onEntry: guarded });
  state.client.requestCheckpoint(TOPIC);
  privatePanel({
    pkg, RelayClient, WebSocket, relay: RELAY, topic: TOPIC, identity, client: state.client,
    chip: agentChip, names, errorWords, seedOf: (n) => localStorage.getItem(`${STORE}/agent-${n}`),
  });
}

main().catch((error) => setStatus('error', `The demo stopped: ${error.message}`));

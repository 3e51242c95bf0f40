// A simulated agent: its own key, its own connection, and a few habits — chat, open and claim
// tasks (racing the others), finish what it holds, edit the shared text, approve key recoveries
// it guards. It reads the same ordered feed as the page and derives the same state from it.
import init, * as pkg from '/pkg/ants_coord.js';
import { normalizeEntry, relayClientClass } from './relay-client.js';
import { Model } from './model.js';

const encode = (body) => new TextEncoder().encode(JSON.stringify(body));
const unhex = (h) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
const pick = (list) => list[Math.floor(Math.random() * list.length)];
const WORDS = ['ants', 'follow', 'the', 'trail', 'relay', 'orders', 'every', 'op', 'signed', 'claims', 'settle', 'fast'];

let running = true;
let me = {};
const report = (extra = {}) => { Object.assign(me, extra); postMessage({ id: me.id, status: me.status, actions: me.actions ?? 0, running }); };

onmessage = async ({ data }) => {
  if (data.type === 'run') { running = data.running; report(); return; }
  if (data.type !== 'start') return;
  running = data.running;
  await init();
  const identity = pkg.Identity.fromSeed(unhex(data.seed));
  me = { id: identity.agentId, status: 'connecting', actions: 0 };
  report();
  const Client = await relayClientClass(data.builtin);
  let client;
  for (;;) {
    try {
      client = await Client.connect(data.url, identity, { pkg, WebSocket, onStatus: (s) => report({ status: s }) });
      break;
    } catch (error) {
      report({ status: `cannot connect (${error.message}); retrying` });
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
  report({ status: 'live' });
  const model = new Model({ topic: data.topic, core: pkg });
  const approved = new Set();
  const act = async (kind, body) => {
    try {
      await client.publish(data.topic, kind, encode(body));
      report({ actions: me.actions + 1 });
    } catch (error) {
      report({ status: `refused: ${error.code ?? error.message}` });
    }
  };
  (async () => {
    for await (const raw of client.subscribe(data.topic, { from: 0 })) {
      const item = normalizeEntry(raw, pkg.decodeOp);
      if (!item) break;
      if (item.misbehaviour || item.ignored) continue;
      model.apply(item);
      // Eager agents race for a task the moment it opens: optimistic claims, some conflicts.
      if (running && item.op.kind === 'task.open' && item.op.author !== me.id && Math.random() < 0.5) {
        const { task } = JSON.parse(new TextDecoder().decode(Uint8Array.from(item.op.body)));
        setTimeout(() => act('task.claim', { task }), Math.random() * 40);
      }
      // Guardians approve recovery requests at once.
      for (const [newKey, request] of model.recovery.requests) {
        if (model.recovery.guardians.includes(me.id) && !request.approvals.has(me.id) && !approved.has(newKey) && running) {
          approved.add(newKey);
          act('recovery.approve', { old: request.old, new: newKey });
        }
      }
    }
  })();
  for (;;) {
    await new Promise((r) => setTimeout(r, 900 + Math.random() * 1800));
    if (!running) continue;
    const open = [...model.tasks].filter(([, t]) => t.state === 'open');
    const mine = [...model.tasks].filter(([, t]) => t.state === 'claimed' && t.holder === me.id);
    const roll = Math.random();
    if (mine.length && roll < 0.5) act('task.done', { task: mine[0][0] });
    else if (open.length && roll < 0.75) act('task.claim', { task: pick(open)[0] });
    else if (roll < 0.82 && open.length < 3) act('task.open', { task: `t${Date.now().toString(36).slice(-5)}${Math.floor(Math.random() * 99)}`, title: `${pick(WORDS)} ${pick(WORDS)}`, reward: 5 });
    else if (roll < 0.9 && model.doc.length < 300) act('doc.insert', { pos: model.doc.length, text: `${pick(WORDS)} ` });
    else act('note', { text: `${pick(WORDS)} ${pick(WORDS)} ${pick(WORDS)}` });
  }
};

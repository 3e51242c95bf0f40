// A simulated agent: its own key, its own connection (the package's RelayClient), its own
// Replica of the topic, and a few habits — chat, post tasks and race for others' tasks, accept
// the work done on its own tasks (or fail it: a slash), now and then outbid a holder, append to
// the shared text, and help recover a key it guards when asked.
import init, * as pkg from '/pkg/ants_coord.js';
import { RelayClient } from '/pkg/client-web.mjs';
import { Model, REWARD, STAKE, TASK_MS, faucetSeed } from './model.js';
import { SharedText } from './text.js';

const unhex = (h) => Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
const pick = (list) => list[Math.floor(Math.random() * list.length)];
const WORDS = ['ants', 'follow', 'the', 'trail', 'relay', 'orders', 'every', 'op', 'signed', 'claims', 'settle', 'fast'];
const Op = () => pkg.ReplicaOp;

let running = true;
let me = {};
let model;
const asked = new Map(); // agent -> { newKey, request }: recoveries the page asked this agent to help with
const report = (extra = {}) => { Object.assign(me, extra); postMessage({ id: me.id, status: me.status, actions: me.actions ?? 0, running }); };

let client;
let topic;
async function act(kind, body) {
  try {
    await client.publish(topic, kind, body);
    report({ actions: me.actions + 1 });
  } catch (error) {
    report({ status: `refused: ${error.code ?? error.message}` });
  }
}

function help(agent) {
  const ask = asked.get(agent);
  const r = model.recovery.get(agent);
  if (!ask || !r?.guardians.includes(me.id)) return;
  if (ask.request && !ask.sent) {
    ask.sent = true;
    act('recovery.request', Op().recoveryRequest({ agent, newKey: ask.newKey }));
  } else if (!ask.request && !ask.sent && r.request?.newKey === ask.newKey) {
    ask.sent = true;
    act('recovery.approve', Op().recoveryApprove({ agent, newKey: ask.newKey }));
  }
}

function react(entry, events) {
  if (!running) return;
  for (const e of events) {
    // Eager agents race for a task the moment it is posted: optimistic claims, some conflicts.
    if (e.type === 'taskPosted' && e.poster !== me.id && Math.random() < 0.5 && model.balance(me.id) >= STAKE) {
      setTimeout(() => act('claim', Op().claim({ resource: e.task, stake: STAKE })), Math.random() * 40);
    }
    if (e.type === 'recoveryRequested') help(e.agent);
  }
}

function habit() {
  const now = model.relayTime;
  const tasks = [...model.tasks];
  const balance = model.balance(me.id);
  const mine = tasks.find(([, t]) => t.poster === me.id && t.state === 'claimed' && now - t.claimedAt > 3000);
  const open = tasks.filter(([, t]) => t.state === 'open' && t.poster !== me.id);
  const held = tasks.filter(([, t]) => t.state === 'claimed' && t.holder !== me.id && t.poster !== me.id);
  const roll = Math.random();
  if (mine) {
    // The poster judges the work: mostly accepted (stake + reward to the holder), sometimes failed (slash).
    act(roll < 0.8 ? 'claim.complete' : 'claim.fail', (roll < 0.8 ? Op().complete : Op().fail)({ resource: mine[0] }));
  } else if (open.length && roll < 0.35 && balance >= STAKE) {
    act('claim', Op().claim({ resource: pick(open)[0], stake: STAKE }));
  } else if (held.length && roll < 0.4 && balance >= 2 * STAKE) {
    act('claim', Op().claim({ resource: pick(held)[0], stake: 2 * STAKE })); // outbid
  } else if (roll < 0.6 && open.length < 3 && balance >= REWARD) {
    const task = `t${Date.now().toString(36).slice(-5)}${Math.floor(Math.random() * 99)}`;
    act('task.post', Op().taskPost({ task, reward: REWARD, deadlineMs: Math.max(now, Date.now()) + TASK_MS }));
  } else if (roll < 0.75 && me.text.value.length < 300) {
    me.text.append(`${pick(WORDS)} `);
  } else {
    act('post', Op().post({ text: `${pick(WORDS)} ${pick(WORDS)} ${pick(WORDS)}` }));
  }
}

onmessage = async ({ data }) => {
  if (data.type === 'run') { running = data.running; report(); return; }
  if (data.type === 'recover') {
    asked.set(data.agent, { newKey: data.newKey, request: data.request });
    if (model) help(data.agent);
    return;
  }
  if (data.type !== 'start') return;
  running = data.running;
  topic = data.topic;
  // The page compiled the .wasm once and posted the module: instantiate it, no fetch, no compile.
  await init({ module_or_path: data.module });
  const identity = pkg.Identity.fromSeed(unhex(data.seed));
  me = { id: identity.agentId, status: 'connecting', actions: 0 };
  report();
  for (;;) {
    try {
      client = await RelayClient.connect(data.url, identity, { WebSocket });
      break;
    } catch (error) {
      report({ status: `cannot connect (${error.message}); retrying` });
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
  client.on('status', (status) => report({ status }));
  client.on('misbehaviour', (m) => report({ status: `relay misbehaved: ${m.code}` }));
  report({ status: client.status });
  const faucet = pkg.Identity.fromSeed(faucetSeed(topic));
  model = new Model(pkg, topic, faucet.agentId);
  me.text = new SharedText(pkg, topic, act);
  client.subscribe(topic, {
    from: 0,
    replica: false,
    onEntry: (entry) => {
      try {
        const events = model.apply(entry);
        if (entry.kind === 'doc.update') me.text.apply(entry.bytes);
        if (events) react(entry, events);
      } catch (error) {
        report({ status: `entry ${entry.seq} not applied: ${error.code ?? error.message}` });
      }
    },
  });
  for (;;) {
    await new Promise((r) => setTimeout(r, 900 + Math.random() * 1800));
    if (running && model.balance(me.id) > 0) habit();
  }
};

// An edge function that hands out tasks through an ants-coord relay.
//
// A Cloudflare-style module worker (runs under `workerd`, `wrangler dev`, or on Workers):
//
//   GET  /holder?task=build-42   who holds the task now, by the topic's replica
//   POST /claim?task=build-42    claim the task for this worker's agent; 200 if it is ours,
//                                409 (with the holder) if another agent has it
//
// Bindings (wrangler.toml `[vars]`, or `bindings` in a workerd config):
//   RELAY_URL   the relay's WebSocket URL, e.g. "wss://relay.example.org/ws" (required)
//   TOPIC       the topic the tasks live in (default "tasks"; `?topic=` overrides)
//   AGENT_SEED  64 hex characters: this worker's key. Keep it in a secret (`wrangler secret put
//               AGENT_SEED`). Without it every request signs with a fresh key.
//   CONNECT_TIMEOUT_MS  answer 503 when the relay is not reached within this (default 5000)
//
// Nothing here is trusted blindly: every entry the client receives is signature-checked, its
// place in the relay's Merkle log is verified, and the replica that answers "who holds this
// task?" is computed locally from those entries. The relay orders ops; it cannot pick a winner.
//
// It opens no document, so it loads the package's core build (`ants-coord/core`, no Yrs): a
// third smaller `.wasm` for the cold start.
//
// Outbound WebSockets: `new WebSocket(url)` works in workerd. A self-hosted workerd must allow
// the relay's address in its "internet" network service (private/local addresses are refused
// by default: "connecting to 127.0.0.1:… is not allowed").
import { Identity, ReplicaOp } from 'ants-coord/core';
import { RelayClient } from 'ants-coord/core/client';

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const topic = url.searchParams.get('topic') ?? env.TOPIC ?? 'tasks';
    const task = url.searchParams.get('task');
    if (!task) return json({ error: 'BAD_INPUT', message: 'missing ?task=' }, 400);
    const claiming = url.pathname === '/claim' && request.method === 'POST';
    if (!claiming && url.pathname !== '/holder') return json({ error: 'NOT_FOUND' }, 404);

    // Keys are made inside the handler: workerd forbids randomness at global scope.
    const identity = env.AGENT_SEED ? Identity.fromSeed(fromHex(env.AGENT_SEED)) : Identity.generate();
    // One connection per request: a WebSocket cannot outlive the request that opened it.
    let client;
    try {
      const connectTimeoutMs = Number(env.CONNECT_TIMEOUT_MS ?? 5_000);
      client = await RelayClient.connect(env.RELAY_URL, identity, { connectTimeoutMs });
    } catch (error) {
      return json({ error: error.code ?? 'UNAVAILABLE', message: error.message }, 503);
    }
    try {
      // Follow the topic from seq 0 (that builds the replica) and wait until it has every
      // entry the relay had when it answered: read the topic before deciding.
      const feed = client.subscribe(topic);
      await feed.caughtUp();
      const holder = client.claimHolder(topic, task) ?? null;
      const me = client.agentId;
      if (!claiming) return json({ topic, task, holder, cursor: client.cursor(topic) });
      if (holder && holder !== me) return json({ topic, task, agentId: me, won: false, holder }, 409);

      // Free (or ours already): publish the claim. Two workers may get here at once; the
      // relay's order decides, and every replica computes the same winner.
      const verified = largestVerifiedHead(client, topic);
      const receipt = await client.publish(topic, 'claim', ReplicaOp.claim({ resource: task }));
      await feed.delivered(receipt.seq); // our own entry is applied to the replica
      const winner = client.claimHolder(topic, task) ?? null;
      return json(
        {
          topic,
          task,
          agentId: me,
          won: winner === me,
          holder: winner,
          relay: client.relayId,
          // The relay's signed receipt, checked by the client against the log it replayed.
          receipt: {
            seq: Number(receipt.seq),
            opId: receipt.opId,
            signed: toHex(receipt.receipt),
            verifiedTreeSize: await verified(Number(receipt.seq) + 1),
          },
        },
        winner === me ? 200 : 409,
      );
    } catch (error) {
      // A refused op (e.g. RATE_LIMITED) or a relay caught misbehaving (evidence was emitted).
      return json({ error: error.code ?? 'ERROR', message: error.message }, 502);
    } finally {
      client.close();
    }
  },
};

// Tracks the relay-signed heads (receipts, checkpoints) of `topic` that matched the tree the
// client recomputed itself; the returned function resolves once one covers `size` entries, and
// rejects if the client caught the relay misbehaving (evidence in the event).
function largestVerifiedHead(client, topic) {
  let largest = 0;
  let fault = null;
  const waiters = [];
  const wake = () => waiters.splice(0).forEach((waiter) => waiter());
  client.on('verified', (event) => {
    if (event.topic === topic) largest = Math.max(largest, Number(event.treeSize));
    wake();
  });
  client.on('misbehaviour', (event) => {
    fault = Object.assign(new Error(`relay misbehaviour: ${event.code}`), { code: event.code });
    wake();
  });
  return async (size) => {
    if (largest < size) client.requestCheckpoint(topic);
    while (largest < size && !fault) await new Promise((resolve) => waiters.push(resolve));
    if (fault) throw fault;
    return largest;
  };
}

function json(body, status = 200) {
  return Response.json(body, { status });
}

function fromHex(hex) {
  return Uint8Array.from(hex.match(/../g) ?? [], (byte) => parseInt(byte, 16));
}

function toHex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

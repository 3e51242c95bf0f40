// The "Private topic" panel: you own the topic `@<your id>/private-<topic>`, grant a second agent
// (friend) read and write with a capability, present it in the topic's log, and friend writes;
// a third agent (stranger), holding no capability, is refused both reading and writing. Every
// step is a real relay round trip, and the refusals are the relay's own error codes.

const $ = (id) => document.getElementById(id);
const CAPABILITY_MS = 10 * 60_000;

/**
 * Wires the panel's button. `ctx`: the package (`pkg`), `RelayClient`, `WebSocket`, the relay
 * URL, the demo topic, your `identity` and its connected `client`, `chip(id)` (an agent's
 * coloured name), `names` (agent id -> word) and `errorWords(error)`. `seedOf(n)` gives the seed
 * (hex) of demo agent n if this browser has one, so that friend and stranger are the page's first
 * two agents when there are any.
 */
export function privatePanel(ctx) {
  const { pkg } = ctx;
  const button = $('private-start');
  button.disabled = false;
  button.onclick = () => {
    button.disabled = true;
    share(ctx).catch((error) => step(`Stopped: ${ctx.errorWords(error)}`, 'alarm'));
  };

  function step(words, className = '') {
    const li = document.createElement('li');
    if (className) li.className = className;
    li.append(...(Array.isArray(words) ? words : [words]));
    $('private-steps').append(li);
    return li;
  }

  /** A demo agent's identity if this browser has its seed, else a fresh one. */
  function agentIdentity(n) {
    const seed = ctx.seedOf(n);
    return seed ? pkg.Identity.fromSeed(Uint8Array.from(seed.match(/../g), (b) => parseInt(b, 16))) : pkg.Identity.generate();
  }

  function row(entry) {
    const tr = $('private-feed').tBodies[0].insertRow();
    const who = ctx.names.get(entry.author) ?? '';
    tr.dataset.seq = entry.seq;
    tr.dataset.kind = entry.kind;
    tr.dataset.who = who;
    tr.insertCell().textContent = String(entry.seq);
    tr.insertCell().append(ctx.chip(entry.author));
    tr.insertCell().textContent = entry.kind;
    tr.insertCell().textContent = bodyWords(entry);
  }

  function bodyWords(entry) {
    if (entry.kind === 'cap.present') {
      try {
        const cap = pkg.Capability.decode(entry.body.subarray(1));
        return `presents the capability of ${ctx.names.get(cap.audience) ?? cap.audience.slice(0, 8)}: ${cap.rights.join(' + ')} until ${new Date(Number(cap.expiresMs)).toISOString().slice(11, 19)}`;
      } catch (error) {
        return `a presentation that does not decode (${error.code})`;
      }
    }
    return new TextDecoder().decode(entry.body);
  }

  async function share({ RelayClient, WebSocket, relay, topic: demoTopic, identity, client }) {
    const topic = `@${identity.agentId}/private-${demoTopic}`;
    const friend = agentIdentity(1);
    const stranger = agentIdentity(2);
    ctx.names.set(friend.agentId, 'friend');
    ctx.names.set(stranger.agentId, 'stranger');
    $('private-topic').textContent = topic;
    client.subscribe(topic, { from: 0, replica: false, onEntry: row });
    step(['You own ', Object.assign(document.createElement('code'), { textContent: `${topic.slice(0, 10)}…/private-${demoTopic}` }), ': named by your id, so only you and holders of your capabilities may read or write it.']);
    await client.publish(topic, 'note', 'a note only friend may read');

    // 1. The grant: a signed statement, handed to friend any way you like (here, in memory).
    const cap = pkg.Capability.grant(identity, { audience: friend.agentId, topic, rights: ['read', 'write'], expiresMs: Date.now() + CAPABILITY_MS });
    step(['You grant ', ctx.chip(friend.agentId), ` read + write for 10 minutes: capability ${pkg.Capability.decode(cap).id.slice(0, 12)}…, ${cap.length} signed bytes.`]);
    // 2. Presented in the log, so that every replica counts friend's writes (PROTOCOL.md 10.8).
    const presented = await client.publish(topic, 'cap.present', pkg.Capability.presentation(cap));
    step(`You present it in the topic's log (cap.present at seq ${presented.seq}).`);

    // 3. Friend connects with the capability on its URL, reads and writes.
    const friendClient = await RelayClient.connect(relay, friend, { WebSocket, capabilities: [cap] });
    let read = 0;
    const reading = friendClient.subscribe(topic, { from: 0, replica: false, onEntry: () => { read += 1; } });
    await reading.caughtUp();
    const wrote = await friendClient.publish(topic, 'note', 'hello from friend');
    step(['', ctx.chip(friend.agentId), ` reads the ${read} entries so far and writes (seq ${wrote.seq}).`], 'ok');

    // 4. Stranger holds no capability: the relay refuses its subscription and its publish.
    const strangerClient = await RelayClient.connect(relay, stranger, { WebSocket });
    strangerClient.on('error', () => {}); // the refusal is shown below
    const readRefused = await strangerClient.subscribe(topic, { from: 0, replica: false }).caughtUp().then(() => 'read it (!)', (error) => error.code);
    const writeRefused = await strangerClient.publish(topic, 'note', 'let me in').then(() => 'wrote (!)', (error) => error.code);
    const refused = step(['', ctx.chip(stranger.agentId), ` holds no capability: reading refused ${readRefused}, writing refused ${writeRefused}.`], readRefused === 'NOT_AUTHORIZED' ? 'ok' : 'alarm');
    refused.id = 'private-stranger';
    strangerClient.close();
    friendClient.close();
  }
}

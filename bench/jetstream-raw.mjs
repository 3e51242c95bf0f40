// Raw JetStream: the peer figure of the relay's JetStream store (issue 23, BENCHMARKS.md).
//
// One 200-byte message per op, each publish waiting for its ack, over 64 subjects, from N
// concurrent publishers (async loops on one connection each), against a 3-node JetStream
// cluster on loopback that this script starts (three nats-server processes, a stream of file
// storage with 3 replicas), or against one given by URL. Prints acked msgs/s.
//
//   node bench/jetstream-raw.mjs [--publishers 16] [--seconds 10] [--url nats://a,b,c]
//
// Needs nats-server (scripts/setup.sh) unless --url is given, and the `nats` npm package
// (npm ci).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { connect, RetentionPolicy, StorageType } from 'nats';

const { values } = parseArgs({
  options: {
    publishers: { type: 'string', default: '16' },
    seconds: { type: 'string', default: '10' },
    url: { type: 'string' },
  },
});
const publishers = Number(values.publishers);
const seconds = Number(values.seconds);
const subjects = 64;
const payload = new Uint8Array(200).fill(0x61);

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts three nats-servers as one JetStream cluster; resolves when all answer /healthz. */
async function startCluster() {
  const dir = mkdtempSync(join(tmpdir(), 'ants-jetstream-raw-'));
  const ports = [];
  for (let i = 0; i < 9; i++) ports.push(await freePort());
  const [clients, routes, monitors] = [ports.slice(0, 3), ports.slice(3, 6), ports.slice(6)];
  const children = [];
  for (let i = 0; i < 3; i++) {
    const name = `n${i + 1}`;
    const others = routes.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p}`);
    const config = join(dir, `${name}.conf`);
    writeFileSync(
      config,
      `server_name: ${name}\nlisten: 127.0.0.1:${clients[i]}\nhttp: 127.0.0.1:${monitors[i]}\n` +
        `log_file: "${join(dir, `${name}.log`)}"\njetstream { store_dir: "${join(dir, name)}" }\n` +
        `cluster { name: bench, listen: 127.0.0.1:${routes[i]}, routes: [${others.join(', ')}] }\n`,
    );
    const child = spawn(process.env.NATS_SERVER ?? 'nats-server', ['-c', config], {
      stdio: 'ignore',
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin` },
    });
    children.push(child);
  }
  const deadline = Date.now() + 60_000;
  for (const port of monitors) {
    for (;;) {
      if (children.some((c) => c.exitCode !== null)) throw new Error(`a nats-server exited; logs in ${dir}`);
      if (Date.now() > deadline) throw new Error(`cluster not healthy in 60 s; logs in ${dir}`);
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false);
      if (ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const stop = () => {
    for (const child of children) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  return { servers: clients.map((p) => `127.0.0.1:${p}`), stop };
}

const cluster = values.url ? null : await startCluster();
const servers = values.url
  ? values.url.replace(/^nats:\/\//, '').split(',').map((s) => s.replace(/^nats:\/\//, ''))
  : cluster.servers;

try {
  const admin = await connect({ servers });
  const jsm = await admin.jetstreamManager();
  // JetStream may still be electing its meta leader right after /healthz: retry briefly.
  for (let attempt = 0; ; attempt++) {
    try {
      await jsm.streams.add({
        name: 'RAW',
        subjects: ['raw.*'],
        storage: StorageType.File,
        num_replicas: 3,
        retention: RetentionPolicy.Limits,
      });
      break;
    } catch (error) {
      if (attempt >= 100) throw error;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const connections = await Promise.all(
    Array.from({ length: publishers }, () => connect({ servers })),
  );
  // Warm-up: one acked publish per subject.
  const js0 = connections[0].jetstream();
  for (let s = 0; s < subjects; s++) await js0.publish(`raw.${s}`, payload);

  let acked = 0;
  const end = Date.now() + seconds * 1000;
  const started = process.hrtime.bigint();
  await Promise.all(
    connections.map(async (nc, p) => {
      const js = nc.jetstream();
      for (let i = 0; Date.now() < end; i++) {
        await js.publish(`raw.${(p + i * publishers) % subjects}`, payload);
        acked++;
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(
    `jetstream-raw: ${publishers} publishers, ${subjects} subjects, 200-byte messages, R3 file stream: ` +
      `${acked} acked in ${elapsed.toFixed(2)} s = ${Math.round(acked / elapsed)} msgs/s`,
  );
  await Promise.all(connections.map((nc) => nc.close()));
  await admin.close();
} finally {
  cluster?.stop();
}

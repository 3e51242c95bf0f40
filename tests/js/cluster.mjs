// A relay in cluster mode for the node:test suites (not a test file itself): three `nats-server`
// processes as one JetStream cluster on 127.0.0.1, and relay frontends on it sharing one key,
// like tests/common/nats.rs and scripts/cluster.sh. Every port is free; `stop()` ends it all.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';

import { freePort, relayBinary } from './helpers.mjs';

// How long a server may take to answer /healthz with 200 on a busy 2-core box.
const START_PATIENCE_MS = 60_000;

/** `nats-server`: `$NATS_SERVER`, on PATH, or Debian's /usr/sbin one (scripts/setup.sh). */
function natsServerBinary() {
  if (process.env.NATS_SERVER) return process.env.NATS_SERVER;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  const found = dirs.map((dir) => join(dir, 'nats-server')).find((path) => existsSync(path));
  if (!found) throw new Error('nats-server not found: run scripts/setup.sh');
  return found;
}

/** `count` distinct ports that were free a moment ago. */
async function freePorts(count) {
  const ports = new Set();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/** A child process, its exit as a promise, and whether it is still running. */
function launch(command, args) {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  const running = { child, alive: true };
  running.exited = new Promise((resolve) =>
    child.once('exit', () => {
      running.alive = false;
      resolve();
    }),
  );
  return running;
}

/** Polls `url` until it answers 200, while `running` (a `launch`ed process) runs. */
async function waitHealthy(url, running, what) {
  const deadline = Date.now() + START_PATIENCE_MS;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (!running.alive) throw new Error(`${what} exited before it was healthy`);
    try {
      const response = await fetch(url);
      if (response.status === 200) return;
      last = `${response.status} ${await response.text()}`;
    } catch (error) {
      last = String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what} not healthy within ${START_PATIENCE_MS} ms: ${last}`);
}

/**
 * Starts three NATS servers and `frontends` relay frontends on them (one key), each healthy.
 * Returns `{ frontends: [{ ws, yjs, origin, kill(), restart() }], stop() }`: `kill()` SIGKILLs
 * one frontend, `restart()` starts it again, `stop()` ends every process still running and
 * removes the directory.
 */
export async function startCluster(frontends = 2) {
  // Ports are picked free, but another test's process may bind one first: a process that
  // exits while starting makes the whole cluster start again on new ports (up to 5 times).
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startClusterOnce(frontends);
    } catch (error) {
      if (attempt === 5 || !/exited before it was healthy/.test(error.message)) throw error;
      console.error(`cluster start: ${error.message}; again on new ports`);
    }
  }
}

async function startClusterOnce(frontends) {
  const dir = mkdtempSync(join(tmpdir(), 'ants-js-cluster-'));
  const processes = [];
  const stop = async () => {
    for (const { child, alive } of processes) if (alive) child.kill('SIGTERM');
    await Promise.all(processes.map(({ exited }) => exited));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ports = await freePorts(9 + frontends);
    const [clients, routes, monitors] = [ports.slice(0, 3), ports.slice(3, 6), ports.slice(6, 9)];
    const nats = natsServerBinary();
    const servers = [];
    for (let i = 0; i < 3; i += 1) {
      const name = `n${i + 1}`;
      const others = routes.filter((_, j) => j !== i).map((port) => `nats-route://127.0.0.1:${port}`);
      const config = join(dir, `${name}.conf`);
      writeFileSync(
        config,
        `server_name: ${name}\nlisten: 127.0.0.1:${clients[i]}\nhttp: 127.0.0.1:${monitors[i]}\n` +
          `log_file: "${join(dir, `${name}.log`)}"\n` +
          `jetstream {\n  store_dir: "${join(dir, name)}"\n  max_memory_store: 64MB\n  max_file_store: 1GB\n}\n` +
          `cluster {\n  name: ants-js\n  listen: 127.0.0.1:${routes[i]}\n  routes: [${others.join(', ')}]\n}\n`,
      );
      const server = launch(nats, ['-c', config]);
      processes.push(server);
      servers.push(server);
    }
    for (let i = 0; i < 3; i += 1) {
      await waitHealthy(`http://127.0.0.1:${monitors[i]}/healthz`, servers[i], `nats-server n${i + 1}`);
    }
    const store = `nats://${clients.map((port) => `127.0.0.1:${port}`).join(',')}`;
    // One relay key for every frontend (README "Cluster mode"): a 32-byte seed as hex, 0600.
    const key = join(dir, 'relay.key');
    writeFileSync(key, randomBytes(32).toString('hex'), { mode: 0o600 });
    const relay = relayBinary('relay,nats');
    const started = [];
    // One after another: the first creates the stream and records the key.
    for (let i = 0; i < frontends; i += 1) {
      const port = ports[9 + i];
      const data = join(dir, `frontend-${i}`);
      mkdirSync(data);
      const args = ['--listen', `127.0.0.1:${port}`, '--data', data, '--key', key, '--store', store];
      let frontend = launch(relay, args);
      processes.push(frontend);
      const origin = `http://127.0.0.1:${port}`;
      await waitHealthy(`${origin}/healthz`, frontend, `frontend ${i}`);
      started.push({
        origin,
        ws: `ws://127.0.0.1:${port}/ws`,
        yjs: `ws://127.0.0.1:${port}/yjs`,
        kill: async () => {
          if (frontend.alive) frontend.child.kill('SIGKILL');
          await frontend.exited;
        },
        /** Starts the (killed) frontend again on its port and data directory; resolves healthy. */
        restart: async () => {
          if (frontend.alive) throw new Error(`frontend ${i} is still running`);
          frontend = launch(relay, args);
          processes.push(frontend);
          await waitHealthy(`${origin}/healthz`, frontend, `frontend ${i} (restarted)`);
        },
      });
    }
    return { frontends: started, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

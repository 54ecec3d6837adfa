// Test support shared by the compat suites: start the Switchboard binary on
// a free port with a given TOML configuration, stop it by PID, and a few
// waiting helpers. The binary is built by run.sh (`cargo build -p switchboard`).

import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
const BINARY = process.env.SWITCHBOARD_BIN || path.join(REPO, 'target/debug/switchboard');

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once `predicate()` is true; rejects after `ms`. */
export async function until(predicate, ms = 5000, what = 'condition') {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** The next `event` of an EventEmitter-like object (socket.io, ws). */
export function once(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args.length > 1 ? args : args[0]);
    });
  });
}

/** A port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts `switchboard serve --config <toml>` on a free port (in-memory
 * store unless the TOML says otherwise); `stop()` ends it by PID.
 */
export async function startServer(toml = '') {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-compat-'));
  const config = path.join(dir, 'switchboard.toml');
  const storeLine = /^store\s*=/m.test(toml) ? '' : 'store = "memory"\n';
  await writeFile(config, storeLine + `data_dir = ${JSON.stringify(dir)}\n` + toml);
  const port = await freePort();
  const args = ['serve', '--config', config, '--listen', `127.0.0.1:${port}`, '--log', 'warn'];
  const child = spawn(BINARY, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`switchboard exited (${child.exitCode}):\n${output}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`switchboard did not answer /healthz:\n${output}`);
    await sleep(50);
  }
  return {
    port,
    url,
    pid: child.pid,
    output: () => output,
    async stop() {
      if (child.exitCode === null) {
        process.kill(child.pid, 'SIGTERM');
        const killed = setTimeout(() => child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 3000);
        await exited;
        clearTimeout(killed);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

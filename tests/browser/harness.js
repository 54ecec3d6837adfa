// What the browser tests stand on: a Switchboard server process, a TCP proxy
// that can cut, block and refuse WebSocket upgrades, a tiny page server on
// another origin, and Debian's Chromium driven by playwright-core.

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '../..');
export const STATIC_DIR = path.join(here, 'static');
const BINARY = process.env.SWITCHBOARD_BIN || path.join(REPO, 'target/debug/switchboard');
const CLIENT_JS = path.join(REPO, 'clients/js/switchboard.js');

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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
 * Starts `switchboard serve` on a free port; `stop()` ends it by PID.
 * With `staticDir`, the server also serves the test page (same origin).
 */
export async function startServer({ staticDir = STATIC_DIR, env = {} } = {}) {
  const port = await freePort();
  // Its own history database: servers running side by side must not share one.
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-browser-'));
  const args = ['serve', '--listen', `127.0.0.1:${port}`, '--log', 'warn'];
  if (staticDir) args.push('--static-dir', staticDir);
  const child = spawn(BINARY, args, {
    env: { ...process.env, SWITCHBOARD_DATA_DIR: dataDir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 15000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`switchboard exited (${child.exitCode}):\n${output}`);
    try {
      const res = await fetch(`${origin}/healthz`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`switchboard did not answer /healthz:\n${output}`);
    await sleep(50);
  }
  return {
    port,
    origin,
    pid: child.pid,
    output: () => output,
    async stop() {
      if (child.exitCode !== null) return;
      process.kill(child.pid, 'SIGTERM');
      const killed = setTimeout(() => child.exitCode === null && process.kill(child.pid, 'SIGKILL'), 3000);
      await exited;
      clearTimeout(killed);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * A TCP proxy in front of `targetPort`. `cut()` drops every connection,
 * `block()` also refuses new ones until `unblock()`, and `upgrades` says
 * what happens to WebSocket upgrade requests: 'allow', 'slow' (forwarded
 * after `upgradeDelay` ms), 'refuse' (403) or 'hang' (no answer ever).
 */
export async function startProxy(targetPort) {
  const sockets = new Set();
  // `accepted`: when each browser connection arrived (Date.now()), blocked ones included.
  const state = { blocked: false, frozen: false, upgrades: 'allow', upgradeDelay: 500, cuts: 0, refusedUpgrades: 0, accepted: [] };
  const track = (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  };
  const server = net.createServer((client) => {
    track(client);
    state.accepted.push(Date.now());
    if (state.blocked) {
      client.resetAndDestroy();
      return;
    }
    client.once('data', (first) => {
      const head = first.toString('latin1');
      const upgrade = /^GET [^\r\n]*\r\n/.test(head) && /\r\nupgrade:\s*websocket/i.test(head);
      if (upgrade && state.upgrades === 'slow') {
        client.pause();
        setTimeout(() => forward(client, first), state.upgradeDelay);
        return;
      }
      if (upgrade && state.upgrades !== 'allow') {
        state.refusedUpgrades += 1;
        if (state.upgrades === 'refuse') {
          client.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: close\r\n\r\nupgrades refused here\n');
        }
        return; // 'hang': hold the connection, answer nothing
      }
      forward(client, first);
    });
  });
  const forward = (client, first) => {
    if (client.destroyed) return;
    const upstream = net.connect(targetPort, '127.0.0.1');
    track(upstream);
    upstream.write(first);
    client.pipe(upstream);
    // Server to browser: dropped on the floor while frozen.
    upstream.on('data', (chunk) => state.frozen || client.write(chunk));
    client.resume();
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  };
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    state,
    set upgrades(mode) {
      state.upgrades = mode;
    },
    /** Drops every open connection (both directions). */
    cut() {
      state.cuts += 1;
      for (const socket of sockets) socket.resetAndDestroy();
    },
    block() {
      state.blocked = true;
      this.cut();
    },
    /** Lets requests through but drops everything the server answers (until `cut()`). */
    freeze() {
      state.frozen = true;
    },
    unfreeze() {
      state.frozen = false;
    },
    unblock() {
      state.blocked = false;
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * With SB_TEST_CLIENT_FROM_DISK=1, test pages import the client from the
 * page server (clients/js as it is on disk) rather than from the server that
 * embeds it: to try a change to the client without rebuilding the server.
 */
let diskClient;

/**
 * Serves tests/browser/static on 127.0.0.1 (pages load it as
 * http://localhost:PORT: another origin, another site), and the client at
 * `/switchboard.js` for pages that must not depend on the server for it.
 * `otherOrigin` (http://127.0.0.1:PORT) is the same files on yet another
 * origin, for a page a server's allowlist does not name.
 */
export async function startPageServer() {
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/slow.gif') {
      // A 1x1 GIF that takes `ms` to arrive: holds the page's load event back.
      const gif = Buffer.from('R0lGODlhAQABAAAAACwAAAAAAQABAAA=', 'base64');
      setTimeout(() => res.writeHead(200, { 'content-type': 'image/gif' }).end(gif), Number(url.searchParams.get('ms')) || 0);
      return;
    }
    if (url.pathname === '/switchboard.js') {
      const body = await readFile(CLIENT_JS);
      res.writeHead(200, { 'content-type': types['.js'], 'cache-control': 'no-store', 'access-control-allow-origin': '*' }).end(body);
      return;
    }
    const name = url.pathname.replace(/^\/+/, '') || 'page.html';
    if (!/^[a-z0-9-]+\.(html|js)$/.test(name)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(path.join(STATIC_DIR, name));
      res.writeHead(200, { 'content-type': types[path.extname(name)], 'cache-control': 'no-store' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  if (process.env.SB_TEST_CLIENT_FROM_DISK) diskClient = `http://localhost:${port}`;
  return {
    origin: `http://localhost:${port}`,
    otherOrigin: `http://127.0.0.1:${port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Debian's Chromium, headless; never a downloaded browser. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Opens the test page (`static/page.html`) without waiting for its client.
 * `server` is the base URL the client talks to; `pageOrigin` where the page
 * itself comes from; `slow` ms its load event waits for an image (served
 * from `slowFrom`, a page server, if the page is not on one); `init` a script run in the page before its own
 * (`page.addInitScript`); `clientFrom` where the page imports the client
 * from (default: `server`); `page` a tab to use instead of a new one;
 * `waitUntil` what `page.goto` waits for.
 */
export async function openPage(context, { pageOrigin, server, transports, options = {}, slow, slowFrom, init, clientFrom, page, waitUntil = 'load' }) {
  clientFrom ??= diskClient;
  page ??= await context.newPage();
  const problems = [];
  page.on('pageerror', (error) => problems.push(String(error)));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(message.text());
  });
  if (init) await page.addInitScript(init);
  const query = new URLSearchParams({ server, options: JSON.stringify(options) });
  if (transports) query.set('transports', [].concat(transports).join(','));
  if (slow) query.set('slow', String(slow));
  if (slowFrom) query.set('slowFrom', slowFrom);
  if (clientFrom) query.set('client', clientFrom);
  await page.goto(`${pageOrigin}/page.html?${query}`, { waitUntil });
  page.problems = problems;
  return page;
}

/** Opens the test page and waits until its client is open and has joined "lobby" (see openPage). */
export async function openChat(context, settings) {
  const page = await openPage(context, settings);
  await page.waitForFunction(() => window.sbJoined === true, null, { timeout: 20000 }).catch(async (error) => {
    throw new Error(`chat did not open: ${error.message}\n${await describe(page)}`);
  });
  return page;
}

/** A page's client state and log, for failure messages. */
export async function describe(page) {
  try {
    const info = await page.evaluate(() => ({
      state: window.sb && window.sb.state,
      transport: window.sb && window.sb.transport,
      last: window.sb && window.sb.last,
      pending: window.sb && window.sb.pending,
      states: window.sbLog && window.sbLog.states,
      transports: window.sbLog && window.sbLog.transports,
      errors: window.sbLog && window.sbLog.errors,
      texts: window.sbLog && window.sbLog.messages.map((m) => m.data && m.data.text),
    }));
    return JSON.stringify({ ...info, problems: page.problems }, null, 1);
  } catch (error) {
    return `page not readable: ${error.message}`;
  }
}

/** The texts of the lobby messages a page received, in order. */
export function texts(page) {
  return page.evaluate(() => window.sbLog.messages.filter((m) => m.room === 'lobby').map((m) => m.data.text));
}

/** Sends one message and waits for the server's ack. */
export function say(page, text) {
  return page.evaluate((t) => window.sb.send('lobby', { text: t }).then(() => true), text);
}

/** Waits until a page received at least `count` lobby messages. */
export async function waitForCount(page, count, timeout = 20000) {
  try {
    await page.waitForFunction((n) => window.sbLog.messages.filter((m) => m.room === 'lobby').length >= n, count, {
      timeout,
      polling: 50,
    });
  } catch (error) {
    throw new Error(`expected ${count} messages: ${error.message}\n${await describe(page)}`);
  }
}

/**
 * Starts sending `count` messages `prefix1..prefixN` from a page, one every
 * `every` ms, without waiting for acks; `window.sbFlows[prefix]` resolves
 * when every one of them was acknowledged.
 */
export function startFlow(page, prefix, count, every) {
  return page.evaluate(
    ({ prefix, count, every }) => {
      window.sbFlows = window.sbFlows || {};
      window.sbFlows[prefix] = new Promise((resolve, reject) => {
        const acks = [];
        let i = 0;
        const timer = setInterval(() => {
          i += 1;
          acks.push(window.sb.send('lobby', { text: prefix + i }));
          if (i === count) {
            clearInterval(timer);
            Promise.all(acks).then(() => resolve(true), reject);
          }
        }, every);
      });
    },
    { prefix, count, every },
  );
}

/** Waits until a flow's messages were all acknowledged. */
export async function flowDone(page, prefix, timeout = 30000) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(async () => {
      reject(new Error(`flow ${prefix} not acknowledged within ${timeout} ms\n${await describe(page)}`));
    }, timeout);
  });
  try {
    await Promise.race([page.evaluate((p) => window.sbFlows[p], prefix), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** `prefix1..prefixN`. */
export function series(prefix, count) {
  return Array.from({ length: count }, (_, i) => prefix + (i + 1));
}

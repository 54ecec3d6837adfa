// The socket.io client's browser build in Debian's Chromium (headless, via
// playwright-core), on a page from another origin: CORS, the upgrade,
// ArrayBuffer binary, and recovery as a browser sees them. Skipped when
// /usr/bin/chromium is missing (tests/browser/run.sh installs it).

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { freePort, startServer } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const CLIENT = path.join(here, 'node_modules/socket.io-client/dist/socket.io.min.js');

/** A page server on its own origin: `/` loads the socket.io client. */
async function startPageServer() {
  const client = await readFile(CLIENT);
  const port = await freePort();
  const server = http.createServer((req, res) => {
    if (req.url === '/socket.io.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(client);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end('<!doctype html><title>socket.io compat</title><script src="/socket.io.min.js"></script>');
    }
  });
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  // Another origin than the Switchboard server's: "localhost" vs 127.0.0.1.
  return { url: `http://localhost:${port}`, close: () => new Promise((r) => server.close(r)) };
}

describe('socket.io client in Chromium, cross-origin', { skip: !existsSync(CHROMIUM) && 'no chromium' }, () => {
  let server;
  let pages;
  let browser;
  let page;

  before(async () => {
    pages = await startPageServer();
    // The page's origin by name: credentialed requests (withCredentials)
    // are answered only for origins the allowlist names, never under "*".
    server = await startServer(`
allowed_origins = [${JSON.stringify(pages.url)}]
[socketio]
ping_interval = "1s"
ping_timeout = "1s"
`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
    });
    page = await browser.newPage();
    await page.goto(pages.url + '/');
    await page.waitForFunction(() => typeof window.io === 'function');
  });

  after(async () => {
    await browser?.close();
    await pages?.close();
    await server?.stop();
  });

  it('upgrades to websocket and echoes ArrayBuffer binary through an ack', async () => {
    const result = await page.evaluate(async (url) => {
      const socket = io(url, { forceNew: true, reconnection: false });
      const upgraded = new Promise((resolve) => socket.io.engine.on('upgrade', (t) => resolve(t.name)));
      await new Promise((resolve, reject) => {
        socket.on('connect', resolve);
        socket.on('connect_error', reject);
      });
      const transport = await upgraded;
      const [text, bytes] = await new Promise((resolve) =>
        socket.emit('echo', 'hello', new Uint8Array([1, 2, 250]), (...args) => resolve(args)),
      );
      socket.disconnect();
      return { transport, text, isBuffer: bytes instanceof ArrayBuffer, bytes: [...new Uint8Array(bytes)] };
    }, server.url);
    assert.deepEqual(result, { transport: 'websocket', text: 'hello', isBuffer: true, bytes: [1, 2, 250] });
  });

  it('works over polling only, with credentials', async () => {
    const result = await page.evaluate(async (url) => {
      const socket = io(url, { forceNew: true, reconnection: false, transports: ['polling'], withCredentials: true });
      await new Promise((resolve, reject) => {
        socket.on('connect', resolve);
        socket.on('connect_error', reject);
      });
      const room = 'browser-' + Math.random();
      const joined = await socket.emitWithAck('join', room);
      const got = new Promise((resolve) => socket.on('message', resolve));
      await socket.emitWithAck('publish', { room, data: { from: 'browser' } });
      const message = await got;
      const transport = socket.io.engine.transport.name;
      socket.disconnect();
      return { joined, message, transport };
    }, server.url);
    assert.deepEqual(result, { joined: { ok: true }, message: { from: 'browser' }, transport: 'polling' });
  });

  it('recovers a cut connection with the missed messages', async () => {
    const result = await page.evaluate(async (url) => {
      const connect = (options) =>
        new Promise((resolve, reject) => {
          const s = io(url, { forceNew: true, ...options });
          s.once('connect', () => resolve(s));
          s.once('connect_error', reject);
        });
      const a = await connect({ reconnectionDelay: 200, reconnectionDelayMax: 200 });
      const b = await connect({ reconnection: false });
      const room = 'recover-' + Math.random();
      await a.emitWithAck('join', room);
      await b.emitWithAck('join', room);
      const got = [];
      a.on('message', (d) => got.push(d.n));
      await b.emitWithAck('publish', { room, data: { n: 1 } });
      while (got.length < 1) await new Promise((r) => setTimeout(r, 10));
      const id = a.id;
      const down = new Promise((resolve) => a.once('disconnect', resolve));
      a.io.engine.close();
      await down;
      await b.emitWithAck('publish', { room, data: { n: 2 } });
      const back = new Promise((resolve) => a.once('connect', resolve));
      await back;
      while (got.length < 2) await new Promise((r) => setTimeout(r, 10));
      await new Promise((r) => setTimeout(r, 200));
      const out = { recovered: a.recovered, sameId: a.id === id, got };
      a.disconnect();
      b.disconnect();
      return out;
    }, server.url);
    assert.deepEqual(result, { recovered: true, sameId: true, got: [1, 2] });
  });
});

// The SockJS endpoints against the official SockJS client (sockjs-client
// 1.6) in headless Chromium (Debian's, never a downloaded one), on every
// transport the client has in a browser: each one forced in turn, echo and
// the close service, from a page on the server's own origin and from a page
// on another origin (iframe transports, CORS). xdr-streaming and
// xdr-polling exist only in old Internet Explorer and are not offered by
// the client in Chromium.

import assert from 'node:assert/strict';
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { startServer } from './server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLIENT = path.join(here, 'node_modules/sockjs-client/dist/sockjs.min.js');

// Transports a page on the server's origin can use (htmlfile needs the same
// origin), and those a page on another origin can use.
const SAME_ORIGIN = [
  'websocket',
  'xhr-streaming',
  'eventsource',
  'iframe-eventsource',
  'htmlfile',
  'iframe-htmlfile',
  'xhr-polling',
  'iframe-xhr-polling',
  'jsonp-polling',
];
const CROSS_ORIGIN = SAME_ORIGIN.filter((t) => t !== 'htmlfile');

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><script src="/sockjs.min.js"></script></head>
<body><script>
// Opens a SockJS connection on one transport, sends every message, and
// resolves with what came back, or with the close event.
window.echo = (url, transport, messages) => new Promise((resolve) => {
  const sock = new SockJS(url, null, { transports: [transport], timeout: 8000 });
  const got = [];
  let used = null;
  const timer = setTimeout(() => resolve({ timeout: true, got, transport: used }), 10000);
  sock.onopen = () => {
    used = sock.transport;
    for (const m of messages) sock.send(m);
  };
  sock.onmessage = (e) => {
    got.push(e.data);
    if (got.length === messages.length) {
      clearTimeout(timer);
      sock.close();
      resolve({ got, transport: used });
    }
  };
  sock.onclose = (e) => { clearTimeout(timer); resolve({ got, transport: used, close: [e.code, e.reason] }); };
});
</script></body></html>`;

const MESSAGES = [
  'hello',
  '</script><script>window.pwned = 1</script>',
  '\u2028\u2029 separators',
  '\u200c\u2060\ufeff\uffff invisible',
  '%41 percent',
  'ünïcödé 😀',
  ...Array.from({ length: 40 }, (_, i) => `${i}:${'y'.repeat(120)}`),
];

let server;
let dir;
let browser;
let page;
let crossPage;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'switchboard-sockjs-'));
  await cp(CLIENT, path.join(dir, 'sockjs.min.js'));
  await writeFile(path.join(dir, 'index.html'), PAGE);
  // The iframe page loads the same client build the pages use; a small
  // response limit makes streaming responses reopen during the test.
  server = await startServer(`static_dir = ${JSON.stringify(dir)}
[sockjs]
sockjs_url = "/sockjs.min.js"
response_limit = 4096
`);
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
  const context = await browser.newContext();
  page = await context.newPage();
  await page.goto(`${server.url}/index.html`);
  // "localhost" and "127.0.0.1" are different origins on the same server.
  crossPage = await context.newPage();
  await crossPage.goto(`http://localhost:${server.port}/index.html`);
});

after(async () => {
  await browser?.close();
  await server?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function check(onPage, transport) {
  const url = `http://127.0.0.1:${server.port}`;
  const result = await onPage.evaluate(
    ([base, t, messages]) => window.echo(`${base}/sockjs/echo`, t, messages),
    [url, transport, MESSAGES],
  );
  assert.equal(result.transport, transport, JSON.stringify(result).slice(0, 600));
  assert.deepEqual(result.got, MESSAGES);
  assert.equal(await onPage.evaluate(() => window.pwned), undefined);
  const closed = await onPage.evaluate(
    ([base, t]) => window.echo(`${base}/sockjs/close`, t, ['never answered']),
    [url, transport],
  );
  assert.equal(closed.transport, transport);
  assert.deepEqual(closed.close, [3000, 'Go away!']);
}

describe('sockjs-client in Chromium, page on the server\'s origin', () => {
  for (const transport of SAME_ORIGIN) {
    it(`${transport}: echoes in order and is closed by the close service`, () => check(page, transport));
  }
});

describe('sockjs-client in Chromium, page on another origin', () => {
  for (const transport of CROSS_ORIGIN) {
    it(`${transport}: echoes in order and is closed by the close service`, () => check(crossPage, transport));
  }
});

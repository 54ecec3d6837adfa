// Cross-origin with an explicit allowlist: the server allows the page's
// origin only (SWITCHBOARD_ALLOWED_ORIGINS, docs/configuration.md). A page on
// that origin chats on every transport, the htmlfile bridge and the
// WebSocket included; a page on any other origin is refused on every one.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { TRANSPORTS } from '../../clients/js/switchboard.js';
import { describe, launchBrowser, openChat, openPage, say, sleep, startPageServer, startServer, texts, waitForCount } from './harness.js';

const FAST = { reconnectDelay: 200, reconnectDelayMax: 1000, connectTimeout: 1000 };
// Shortpoll answers at most once a second: give it time to show a duplicate.
const settle = (transport) => (transport === 'shortpoll' ? 2000 : 500);

let browser;
let server;
let pages;

before(async () => {
  pages = await startPageServer();
  [browser, server] = await Promise.all([
    launchBrowser(),
    startServer({ env: { SWITCHBOARD_ALLOWED_ORIGINS: JSON.stringify([pages.origin]) } }),
  ]);
});

after(async () => {
  await browser?.close();
  await Promise.all([server?.stop(), pages?.stop()]);
});

/** How many requests the server refused for their origin (403, counted as code 4403 in /metrics). */
async function refusals() {
  const text = await (await fetch(`${server.origin}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('switchboard_errors_total{code="4403"}'));
  return line ? Number(line.split(' ').pop()) : 0;
}

test('allowlist: the server names the listed origin in CORS answers and refuses another one (403)', async () => {
  const listed = await fetch(`${server.origin}/v1/poll?wait=0`, { headers: { origin: pages.origin } });
  assert.equal(listed.status, 200);
  assert.equal(listed.headers.get('access-control-allow-origin'), pages.origin);
  const before = await refusals();
  const other = await fetch(`${server.origin}/v1/poll?wait=0`, { headers: { origin: pages.otherOrigin } });
  assert.equal(other.status, 403);
  assert.equal(await refusals(), before + 1, 'a refusal is counted');
});

for (const transport of TRANSPORTS) {
  test(`allowlist, ${transport}: two pages on the listed origin chat both ways`, async () => {
    const context = await browser.newContext();
    try {
      const open = () => openChat(context, { pageOrigin: pages.origin, server: server.origin, transports: transport, options: FAST });
      const [a, b] = await Promise.all([open(), open()]);
      assert.notEqual(new URL(a.url()).origin, server.origin);
      await say(a, 'a1');
      await say(b, 'b1');
      await say(a, 'a2');
      await Promise.all([waitForCount(a, 3), waitForCount(b, 3)]);
      await sleep(settle(transport));
      for (const page of [a, b]) {
        assert.deepEqual(await texts(page), ['a1', 'b1', 'a2'], await describe(page));
        assert.deepEqual(await page.evaluate(() => window.sbLog.transports), [transport], await describe(page));
      }
    } finally {
      await context.close();
    }
  });
}

for (const transport of TRANSPORTS) {
  // For htmlfile the bridge page is refused: the server judges it by the
  // page that embeds it, as its stream comes from the server's own origin.
  test(`allowlist, ${transport}: a page on an origin not on the list is refused`, async () => {
    const context = await browser.newContext();
    try {
      // The page takes the client from its own server: the Switchboard
      // server answers 403 to this origin for /switchboard.js as well.
      const page = await openPage(context, {
        pageOrigin: pages.otherOrigin,
        clientFrom: pages.otherOrigin,
        server: server.origin,
        transports: transport,
        options: FAST,
      });
      const refusedBefore = await refusals();
      await page.waitForFunction(() => window.sb, null, { timeout: 10000 });
      await sleep(2500); // two attempts and a backoff
      const seen = await page.evaluate(() => ({ state: window.sb.state, sessions: window.sbLog.sessions, transports: window.sbLog.transports }));
      assert.deepEqual(seen, { state: 'connecting', sessions: [], transports: [] }, await describe(page));
      assert.notEqual(await page.evaluate(() => window.sbJoined), true);
      // And it was the server that said no (403), not a broken page.
      assert.ok((await refusals()) > refusedBefore, `the server refused nothing: ${JSON.stringify(page.problems)}`);
    } finally {
      await context.close();
    }
  });
}

// The transport ladder: each rung is tried only where the browser has what
// it needs, and a custom list is tried in its own order, fallback included.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { describe, launchBrowser, openChat, say, sleep, startPageServer, startProxy, startServer, texts, waitForCount } from './harness.js';

const FAST = { reconnectDelay: 200, reconnectDelayMax: 1000, connectTimeout: 3000, upgradeDelay: 300, upgradeDelayMax: 600 };

let browser;
let server;
let pages;

before(async () => {
  [browser, server, pages] = await Promise.all([launchBrowser(), startServer(), startPageServer()]);
});

after(async () => {
  await browser?.close();
  await Promise.all([server?.stop(), pages?.stop()]);
});

/** Page `a` (auto or `transports`) through a proxy, with `init` run before the page's scripts; page `b` straight to the server. */
async function pair({ transports, init, upgrades = 'allow' }) {
  const context = await browser.newContext();
  const proxy = await startProxy(server.port);
  proxy.upgrades = upgrades;
  const a = await openChat(context, { pageOrigin: pages.origin, server: proxy.origin, transports, options: FAST, init });
  const b = await openChat(context, { pageOrigin: pages.origin, server: server.origin, transports: 'longpoll', options: FAST });
  const close = async () => {
    await context.close();
    await proxy.stop();
  };
  return { a, b, proxy, close };
}

async function chats(a, b) {
  await say(a, 'from a');
  await say(b, 'from b');
  await Promise.all([waitForCount(a, 2), waitForCount(b, 2)]);
  await sleep(300);
  assert.deepEqual(await texts(a), ['from a', 'from b'], await describe(a));
  assert.deepEqual(await texts(b), ['from a', 'from b'], await describe(b));
}

const hidden = [
  {
    missing: ['WebSocket', 'EventSource'],
    ladder: ['stream', 'htmlfile', 'longpoll', 'jsonp', 'shortpoll'],
  },
  {
    missing: ['WebSocket', 'EventSource', 'ReadableStream'],
    ladder: ['htmlfile', 'longpoll', 'jsonp', 'shortpoll'],
  },
];

for (const { missing, ladder } of hidden) {
  test(`auto, only where supported: without ${missing.join(', ')} the client settles on ${ladder[0]} and chats`, async () => {
    // Runs before any script of the page, as if this browser never had them.
    const init = `for (const name of ${JSON.stringify(missing)}) delete window[name];`;
    const { a, b, proxy, close } = await pair({ init });
    try {
      assert.deepEqual(await a.evaluate(() => [typeof window.WebSocket, typeof window.EventSource]), ['undefined', 'undefined']);
      assert.deepEqual(await a.evaluate(() => window.sb.transports), ladder, 'the ladder leaves out what this browser lacks');
      assert.deepEqual(await a.evaluate(() => window.sbLog.transports), [ladder[0]], await describe(a));
      await chats(a, b);
      // Nothing to upgrade to: no WebSocket was ever attempted, not even as a probe.
      await sleep(1000);
      assert.equal(proxy.state.refusedUpgrades, 0);
      assert.deepEqual(await a.evaluate(() => window.sbLog.transports), [ladder[0]]);
    } finally {
      await close();
    }
  });
}

test('custom order: transports [longpoll, sse] ends up on longpoll, and never probes WebSocket', async () => {
  // Upgrades are counted (and refused) by the proxy: a probe would show.
  const { a, b, proxy, close } = await pair({ transports: ['longpoll', 'sse'], upgrades: 'refuse' });
  try {
    assert.deepEqual(await a.evaluate(() => window.sb.transports), ['longpoll', 'sse']);
    assert.deepEqual(await a.evaluate(() => window.sbLog.transports), ['longpoll'], await describe(a));
    await chats(a, b);
    await sleep(1000); // several upgradeDelays
    assert.equal(proxy.state.refusedUpgrades, 0, 'websocket is not in the list');
    assert.equal(await a.evaluate(() => window.sb.transport), 'longpoll');
  } finally {
    await close();
  }
});

test('custom order with a fallback: [websocket, longpoll, sse] with WebSocket refused falls back to longpoll, not SSE', async () => {
  const { a, b, proxy, close } = await pair({ transports: ['websocket', 'longpoll', 'sse'], upgrades: 'refuse' });
  try {
    assert.ok(proxy.state.refusedUpgrades >= 1, 'WebSocket was tried first');
    assert.deepEqual(await a.evaluate(() => window.sbLog.transports), ['longpoll'], await describe(a));
    await chats(a, b);
  } finally {
    await close();
  }
});

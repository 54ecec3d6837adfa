// Auto mode: the transport ladder falls back when WebSocket is blocked, and
// upgrades back to WebSocket in place (same session, nothing lost or doubled)
// once it works again.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  describe,
  flowDone,
  launchBrowser,
  openChat,
  say,
  series,
  sleep,
  startFlow,
  startPageServer,
  startProxy,
  startServer,
  texts,
  waitForCount,
} from './harness.js';

const FAST = { reconnectDelay: 200, reconnectDelayMax: 1000, upgradeDelay: 300, upgradeDelayMax: 1500 };

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

/** Page `a` through a proxy whose upgrades are `mode`, page `b` straight to the server; both auto. */
async function pair(mode, options = {}) {
  const context = await browser.newContext();
  const proxy = await startProxy(server.port);
  proxy.upgrades = mode;
  const started = Date.now();
  const a = await openChat(context, { pageOrigin: pages.origin, server: proxy.origin, options: { ...FAST, ...options } });
  const openedIn = Date.now() - started;
  const b = await openChat(context, { pageOrigin: pages.origin, server: server.origin, options: FAST });
  const close = async () => {
    await context.close();
    await proxy.stop();
  };
  return { a, b, proxy, openedIn, close };
}

const transportsOf = (page) => page.evaluate(() => window.sbLog.transports);

test('auto: WebSocket refused (403) → settles on SSE and chats; WebSocket allowed again → upgrades in place without loss', async () => {
  const { a, b, proxy, openedIn, close } = await pair('refuse');
  try {
    assert.deepEqual(await transportsOf(a), ['sse'], await describe(a));
    assert.ok(proxy.state.refusedUpgrades >= 1, 'the WebSocket was tried first');
    assert.ok(openedIn < 5000, `fell back in ${openedIn} ms`);
    assert.deepEqual(await transportsOf(b), ['websocket']);
    await say(a, 'hello from a');
    await say(b, 'hello from b');
    await Promise.all([waitForCount(a, 2), waitForCount(b, 2)]);
    const id = await a.evaluate(() => window.sb.id);

    // Probes keep failing while messages flow; then the proxy lets upgrades through.
    await startFlow(a, 'a', 40, 60);
    await startFlow(b, 'b', 20, 120);
    await sleep(1200);
    const refusedBefore = proxy.state.refusedUpgrades;
    assert.ok(refusedBefore >= 2, `background upgrade probes were refused (${refusedBefore})`);
    // The upgrade reaches the server 500 ms late: frames keep arriving on SSE
    // meanwhile, and the WebSocket replays them from the older `last`.
    proxy.upgrades = 'slow';
    await a.waitForFunction(() => window.sb.transport === 'websocket', null, { timeout: 10000 });
    await Promise.all([flowDone(a, 'a'), flowDone(b, 'b')]);
    const expected = 2 + 40 + 20;
    await Promise.all([waitForCount(a, expected), waitForCount(b, expected)]);
    await sleep(800);
    const [seenA, seenB] = await Promise.all([texts(a), texts(b)]);
    assert.deepEqual(seenA.slice(0, 2), ['hello from a', 'hello from b']);
    assert.deepEqual(seenA.filter((t) => /^a\d+$/.test(t)), series('a', 40), await describe(a));
    assert.deepEqual(seenA.filter((t) => /^b\d+$/.test(t)), series('b', 20), await describe(a));
    assert.equal(seenA.length, expected, await describe(a));
    assert.deepEqual(seenB, seenA, 'both pages see the room in the same order');
    assert.deepEqual(await transportsOf(a), ['sse', 'websocket']);
    // In place: the same session, and the state never left `open`.
    assert.equal(await a.evaluate(() => window.sb.id), id);
    assert.deepEqual(await a.evaluate(() => window.sbLog.states), ['connecting', 'open']);
  } finally {
    await close();
  }
});

test('auto: a WebSocket upgrade that never answers → falls back after the time limit and chats', async () => {
  const { a, b, proxy, openedIn, close } = await pair('hang', { connectTimeout: 1500, upgradeDelay: 60000 });
  try {
    assert.deepEqual(await transportsOf(a), ['sse'], await describe(a));
    assert.ok(proxy.state.refusedUpgrades >= 1, 'the WebSocket was tried first');
    assert.ok(openedIn >= 1400 && openedIn < 5000, `fell back in ${openedIn} ms`);
    await say(a, 'a1');
    await say(b, 'b1');
    await Promise.all([waitForCount(a, 2), waitForCount(b, 2)]);
    await sleep(500);
    assert.deepEqual(await texts(a), ['a1', 'b1']);
    assert.deepEqual(await texts(b), ['a1', 'b1']);
  } finally {
    await close();
  }
});

test('useTransports() moves a live session to another transport without loss', async () => {
  const context = await browser.newContext();
  try {
    const open = () => openChat(context, { pageOrigin: pages.origin, server: server.origin, options: FAST });
    const [a, b] = await Promise.all([open(), open()]);
    const id = await a.evaluate(() => window.sb.id);
    await startFlow(b, 'b', 30, 50);
    for (const transport of ['longpoll', 'htmlfile', 'stream']) {
      await sleep(300);
      await a.evaluate((t) => window.sb.useTransports(t), transport);
      await a.waitForFunction((t) => window.sb.transport === t && window.sb.state === 'open', transport, { timeout: 10000 });
    }
    await flowDone(b, 'b');
    await Promise.all([waitForCount(a, 30), waitForCount(b, 30)]);
    await sleep(800);
    assert.deepEqual(await texts(a), series('b', 30), await describe(a));
    assert.deepEqual(await transportsOf(a), ['websocket', 'longpoll', 'htmlfile', 'stream']);
    assert.equal(await a.evaluate(() => window.sb.id), id, 'the same session throughout');
  } finally {
    await context.close();
  }
});

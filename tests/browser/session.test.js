// Session-level recovery: an expired session (close 4004) is replaced by a
// new one that rejoins its rooms and sends what was queued; an overflowed
// outbox is reported as a `gap` event.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';

import { describe, launchBrowser, openChat, say, series, sleep, startPageServer, startProxy, startServer, texts, waitForCount } from './harness.js';

const FAST = { reconnectDelay: 200, reconnectDelayMax: 1000 };

let browser;
let pages;

before(async () => {
  [browser, pages] = await Promise.all([launchBrowser(), startPageServer()]);
});

after(async () => {
  await browser?.close();
  await pages?.stop();
});

/** A server with `env`, page `a` through a proxy, page `b` direct; both on `transport`. */
async function setup(env, transport) {
  const server = await startServer({ env });
  const proxy = await startProxy(server.port);
  const context = await browser.newContext();
  const a = await openChat(context, { pageOrigin: pages.origin, server: proxy.origin, transports: transport, options: FAST });
  const b = await openChat(context, { pageOrigin: pages.origin, server: server.origin, transports: transport, options: FAST });
  const close = async () => {
    await context.close();
    await proxy.stop();
    await server.stop();
  };
  return { a, b, proxy, close };
}

for (const transport of ['websocket', 'longpoll']) {
  test(`${transport}: an expired session is replaced; rooms are rejoined and queued sends go out once`, async () => {
    const { a, b, proxy, close } = await setup({ SWITCHBOARD_GRACE: '1s' }, transport);
    try {
      const oldId = await a.evaluate(() => window.sb.id);
      proxy.block();
      await a.waitForFunction(() => window.sb.state === 'reconnecting', null, { timeout: 10000 });
      await a.evaluate(() => {
        window.sbOffline = Promise.all(['q1', 'q2', 'q3'].map((text) => window.sb.send('lobby', { text })));
      });
      await sleep(3000); // past the grace period: the server ends the session
      proxy.unblock();
      await a.evaluate(() => window.sbOffline);
      const newId = await a.evaluate(() => window.sb.id);
      assert.notEqual(newId, oldId, 'a new session');
      assert.deepEqual(await a.evaluate(() => window.sbLog.sessions.map((s) => s.renewed)), [false, true]);
      await say(b, 'b after');
      await Promise.all([waitForCount(a, 4), waitForCount(b, 4)]);
      await sleep(800);
      assert.deepEqual(await texts(b), ['q1', 'q2', 'q3', 'b after'], await describe(b));
      assert.deepEqual(await texts(a), ['q1', 'q2', 'q3', 'b after'], await describe(a));
      const froms = await b.evaluate(() => window.sbLog.messages.slice(0, 3).map((m) => m.from));
      assert.deepEqual(froms, [newId, newId, newId]);
    } finally {
      await close();
    }
  });
}

test('an outbox that overflowed while disconnected is reported as a gap event, then delivery goes on', async () => {
  const { a, b, proxy, close } = await setup({ SWITCHBOARD_OUTBOX_MAX_FRAMES: '5' }, 'websocket');
  try {
    proxy.block();
    await a.waitForFunction(() => window.sb.state === 'reconnecting', null, { timeout: 10000 });
    for (const text of series('b', 10)) await say(b, text);
    proxy.unblock();
    await a.waitForFunction(() => window.sbLog.gaps.length > 0, null, { timeout: 10000 });
    await say(b, 'b11');
    await waitForCount(a, 1);
    await a.waitForFunction(() => window.sbLog.messages.some((m) => m.data.text === 'b11'), null, { timeout: 10000 });
    await sleep(500);
    const seen = await texts(a);
    const gaps = await a.evaluate(() => window.sbLog.gaps);
    assert.equal(gaps.length, 1, await describe(a));
    assert.ok(gaps[0].from <= gaps[0].to);
    // What survived is the newest part of what b sent, in order, once each.
    const all = series('b', 11);
    assert.ok(seen.length >= 2 && seen.length <= 6, await describe(a));
    assert.deepEqual(seen, all.slice(all.length - seen.length), await describe(a));
  } finally {
    await close();
  }
});

for (const transport of ['sse', 'stream', 'htmlfile']) {
  test(`${transport}: responses that end at the stream budget (close 4001) are resumed at once, nothing lost`, async () => {
    const { a, b, close } = await setup({ SWITCHBOARD_STREAM_BUDGET: '4096', SWITCHBOARD_SSE_BUDGET: '4096' }, transport);
    try {
      const path = { sse: '/v1/sse', stream: '/v1/stream', htmlfile: '/v1/htmlfile' }[transport];
      let attachments = 0;
      a.on('request', (request) => request.url().includes(path) && (attachments += 1));
      for (const text of series('m', 40)) await say(b, text);
      await Promise.all([waitForCount(a, 40), waitForCount(b, 40)]);
      await sleep(800);
      assert.deepEqual(await texts(a), series('m', 40), await describe(a));
      assert.deepEqual(await texts(b), series('m', 40), await describe(b));
      assert.ok(attachments >= 1, `page a re-attached ${attachments} times`);
      // A budget rollover is routine: no `reconnecting` shown for it.
      assert.deepEqual(await a.evaluate(() => window.sbLog.states), ['connecting', 'open']);
    } finally {
      await close();
    }
  });
}

/** An HS256 JWT, as an identity provider would sign it. */
function jwt(claims, secret) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

test('a token opens the session on every transport (the htmlfile bridge passes it on); a bad one closes for good', async () => {
  const server = await startServer({ env: { SWITCHBOARD_JWT_SECRET: 'browser-test-secret' } });
  const context = await browser.newContext();
  try {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const token = jwt({ sub: 'alice', name: 'Alice', exp }, 'browser-test-secret');
    for (const transport of ['websocket', 'sse', 'stream', 'htmlfile', 'longpoll', 'jsonp', 'shortpoll']) {
      const page = await openChat(context, { pageOrigin: pages.origin, server: server.origin, transports: transport, options: { ...FAST, token } });
      const who = await page.evaluate(() => ({ user: window.sb.user, name: window.sb.name, transport: window.sb.transport }));
      assert.deepEqual(who, { user: 'alice', name: 'Alice', transport }, transport);
      await page.close();
    }
    const bad = jwt({ sub: 'mallory', exp }, 'not-the-secret');
    const page = await context.newPage();
    const query = new URLSearchParams({ server: server.origin, transports: 'websocket', options: JSON.stringify({ ...FAST, token: bad }) });
    await page.goto(`${pages.origin}/page.html?${query}`);
    await page.waitForFunction(() => window.sb && window.sb.state === 'closed', null, { timeout: 10000 });
    assert.deepEqual(await page.evaluate(() => window.sbLog.states), ['connecting', 'closed'], await describe(page));
  } finally {
    await context.close();
    await server.stop();
  }
});

test('the same user on a reloaded page (a new session) has new messages delivered, not taken for retries', async () => {
  const server = await startServer(); // development mode: `name` is the user id
  const context = await browser.newContext();
  try {
    const open = (name) => openChat(context, { pageOrigin: pages.origin, server: server.origin, transports: 'websocket', options: { ...FAST, name } });
    const b = await open('bob');
    const a = await open('alice');
    await say(a, 'before reload');
    await a.reload();
    await a.waitForFunction(() => window.sbJoined === true);
    assert.equal(await a.evaluate(() => window.sb.user), 'alice');
    await say(a, 'after reload');
    await waitForCount(b, 2);
    await sleep(500);
    assert.deepEqual(await texts(b), ['before reload', 'after reload'], await describe(b));
  } finally {
    await context.close();
    await server.stop();
  }
});

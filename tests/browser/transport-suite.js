// The four promises the client makes on every transport, checked with that
// transport forced: chat both ways, across origins, through a cut, and with
// messages sent while disconnected. Each `<transport>.test.js` runs this.

import assert from 'node:assert/strict';
import { after, before, describe as suite, test } from 'node:test';

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

/** Client options that keep the tests short (backoff capped at 1 s). */
const FAST = { reconnectDelay: 200, reconnectDelayMax: 1000, connectTimeout: 3000 };

export function defineTransportSuite(transport) {
  // Shortpoll answers at most once a second: give it time to show a duplicate.
  const settle = transport === 'shortpoll' ? 2500 : 800;

  suite(`${transport} forced`, () => {
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

    /** Two chat pages in one browser (two tabs): `a` through proxy `pa`, `b` through `pb`. */
    async function twoPages({ crossOrigin, proxied }) {
      const context = await browser.newContext();
      const proxies = proxied ? await Promise.all([startProxy(server.port), startProxy(server.port)]) : [];
      const base = (i) => (proxied ? proxies[i].origin : server.origin);
      const pageOrigin = (i) => (crossOrigin ? pages.origin : base(i));
      const open = (i) => openChat(context, { pageOrigin: pageOrigin(i), server: base(i), transports: transport, options: FAST });
      const [a, b] = await Promise.all([open(0), open(1)]);
      const close = async () => {
        await context.close();
        await Promise.all(proxies.map((p) => p.stop()));
      };
      return { a, b, pa: proxies[0], pb: proxies[1], close };
    }

    /** Asserts both pages hold exactly `expected`, once each, after a pause for late duplicates. */
    async function assertBoth(a, b, expected) {
      await Promise.all([waitForCount(a, expected.length), waitForCount(b, expected.length)]);
      await sleep(settle);
      assert.deepEqual(await texts(a), expected, `page a:\n${await describe(a)}`);
      assert.deepEqual(await texts(b), expected, `page b:\n${await describe(b)}`);
    }

    async function assertTransport(page) {
      const seen = await page.evaluate(() => window.sbLog.transports);
      assert.deepEqual(seen, [transport], `transports used:\n${await describe(page)}`);
    }

    async function chatBothWays(a, b) {
      const expected = [];
      for (let i = 1; i <= 4; i += 1) {
        await say(a, `a${i}`);
        await say(b, `b${i}`);
        expected.push(`a${i}`, `b${i}`);
      }
      await assertBoth(a, b, expected);
      // `from` is the sender's public id, never its sid.
      const ids = await Promise.all([a, b].map((p) => p.evaluate(() => window.sb.id)));
      const froms = await a.evaluate(() => window.sbLog.messages.map((m) => m.from));
      assert.deepEqual(froms, expected.map((t) => (t.startsWith('a') ? ids[0] : ids[1])));
      await assertMessageShape(a);
    }

    /** A `message` event carries exactly the fields `Message` in switchboard.d.ts declares, with their types. */
    async function assertMessageShape(page) {
      const messages = await page.evaluate(() => window.sbLog.messages);
      const types = { room: 'string', id: 'number', ts: 'number', from: 'string', user: 'string', name: 'string', data: 'object', seq: 'number' };
      for (const m of messages) {
        assert.deepEqual(Object.keys(m).sort(), Object.keys(types).sort(), JSON.stringify(m));
        for (const [key, type] of Object.entries(types)) assert.equal(typeof m[key], type, `${key} of ${JSON.stringify(m)}`);
        assert.ok(Math.abs(m.ts - Date.now()) < 60000, `ts is milliseconds since the epoch: ${m.ts}`);
      }
      const ids = messages.map((m) => m.id);
      assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), `message ids increase within the room: ${ids}`);
    }

    test(`${transport}: two pages chat both ways, every message once and in order`, async () => {
      const { a, b, close } = await twoPages({ crossOrigin: false, proxied: false });
      try {
        await chatBothWays(a, b);
        await assertTransport(a);
        await assertTransport(b);
      } finally {
        await close();
      }
    });

    test(`${transport}: works with the page on another origin than the server`, async () => {
      const { a, b, close } = await twoPages({ crossOrigin: true, proxied: false });
      try {
        assert.notEqual(new URL(a.url()).origin, server.origin);
        await chatBothWays(a, b);
        await assertTransport(a);
        await assertTransport(b);
      } finally {
        await close();
      }
    });

    test(`${transport}: connections cut while messages flow, nothing lost or doubled`, async () => {
      const { a, b, pa, pb, close } = await twoPages({ crossOrigin: true, proxied: true });
      try {
        const ids = await Promise.all([a, b].map((p) => p.evaluate(() => window.sb.id)));
        await startFlow(a, 'a', 30, 60);
        await startFlow(b, 'b', 15, 120);
        await sleep(400);
        pa.block();
        await sleep(600);
        pa.unblock();
        await sleep(300);
        pb.block();
        await sleep(600);
        pb.unblock();
        await Promise.all([flowDone(a, 'a'), flowDone(b, 'b')]);
        await Promise.all([waitForCount(a, 45), waitForCount(b, 45)]);
        await sleep(settle);
        const [seenA, seenB] = await Promise.all([texts(a), texts(b)]);
        assert.deepEqual(seenA.filter((t) => t.startsWith('a')), series('a', 30), `page a:\n${await describe(a)}`);
        assert.deepEqual(seenA.filter((t) => t.startsWith('b')), series('b', 15), `page a:\n${await describe(a)}`);
        assert.equal(seenA.length, 45, `page a:\n${await describe(a)}`);
        assert.deepEqual(seenB, seenA, 'both pages see the room in the same order');
        for (const page of [a, b]) {
          const states = await page.evaluate(() => window.sbLog.states);
          assert.ok(states.includes('reconnecting'), `the cut was noticed:\n${await describe(page)}`);
          assert.equal(await page.evaluate(() => window.sb.state), 'open');
          await assertTransport(page);
        }
        // Resumed, not replaced: the same session (public id) all along.
        assert.deepEqual(await Promise.all([a, b].map((p) => p.evaluate(() => window.sb.id))), ids);
      } finally {
        await close();
      }
    });

    if (transport === 'htmlfile' || transport === 'jsonp') {
      test(`${transport}: the page's load event is not held; the ${transport} request starts after it`, async () => {
        const context = await browser.newContext();
        try {
          // A slow image keeps the page loading for 1.5 s while the client already wants to connect.
          const page = await openChat(context, { pageOrigin: pages.origin, server: server.origin, transports: transport, options: FAST, slow: 1500 });
          const { loadedAt, inserted, readyState } = await page.evaluate(() => ({
            loadedAt: window.sbLoadedAt,
            inserted: window.sbInserted.filter((i) => /\/v1\/|htmlfile-bridge/.test(i.src)),
            readyState: document.readyState,
          }));
          assert.equal(readyState, 'complete');
          assert.ok(loadedAt >= 1400, `load event at ${loadedAt} ms`);
          assert.ok(inserted.length >= 1, 'the transport added its element');
          assert.ok(inserted.every((i) => i.at >= loadedAt), `added before the load event: ${JSON.stringify({ loadedAt, inserted })}`);
          if (transport === 'htmlfile') {
            const hidden = await page.evaluate(() => [...document.querySelectorAll('iframe')].every((f) => getComputedStyle(f).visibility === 'hidden' && f.offsetWidth === 0));
            assert.ok(hidden, 'the iframe is invisible');
          }
        } finally {
          await context.close();
        }
      });
    }

    test(`${transport}: a send whose answer was lost is retried with its cid and applied once`, async () => {
      const { a, b, pa, close } = await twoPages({ crossOrigin: true, proxied: true });
      try {
        pa.freeze(); // the server gets the frame; its ack never reaches page a
        await a.evaluate(() => {
          window.sbLost = window.sb.send('lobby', { text: 'once' });
        });
        await waitForCount(b, 1);
        // Cut and stay unreachable for a moment, so the browser's own one
        // retry of a request on a reused connection fails too: the client
        // has to send the frame again itself.
        pa.block();
        pa.unfreeze();
        await sleep(500);
        pa.unblock();
        await a.evaluate(() => window.sbLost);
        await say(b, 'after');
        await assertBoth(a, b, ['once', 'after']);
      } finally {
        await close();
      }
    });

    test(`${transport}: messages sent while disconnected are delivered once after reconnect`, async () => {
      const { a, b, pa, close } = await twoPages({ crossOrigin: true, proxied: true });
      try {
        const id = await a.evaluate(() => window.sb.id);
        pa.block();
        await a.waitForFunction(() => window.sb.state === 'reconnecting', null, { timeout: 10000 });
        await a.evaluate(() => {
          window.sbOffline = Promise.all([1, 2, 3, 4, 5].map((i) => window.sb.send('lobby', { text: 'q' + i })));
        });
        await sleep(1500);
        assert.deepEqual(await texts(b), [], 'nothing arrives while a is cut off');
        assert.equal(await a.evaluate(() => window.sb.pending), 5);
        pa.unblock();
        await a.evaluate(() => window.sbOffline);
        await assertBoth(a, b, series('q', 5));
        assert.equal(await a.evaluate(() => window.sb.id), id, 'the session was resumed');
        await assertTransport(a);
      } finally {
        await close();
      }
    });
  });
}

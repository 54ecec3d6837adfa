// The htmlfile bridge across origins: the client takes frames only from its
// own bridge iframe (event.source) on the server's origin (event.origin).
// Messages of the right shape, with the live bridge's id, from any other
// window or origin deliver nothing and end nothing.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { describe, launchBrowser, openChat, say, sleep, startPageServer, startServer, texts, waitForCount } from './harness.js';

const FAST = { reconnectDelay: 200, reconnectDelayMax: 1000, connectTimeout: 3000 };

let browser;
let server;
let pages;

before(async () => {
  // The server serves tests/browser/static too: forge.html on the server's origin.
  [browser, server, pages] = await Promise.all([launchBrowser(), startServer(), startPageServer()]);
});

after(async () => {
  await browser?.close();
  await Promise.all([server?.stop(), pages?.stop()]);
});

/** The id the live bridge iframe relays under (from its URL's fragment). */
function bridgeKey(page) {
  return page.evaluate(() => {
    const frame = document.querySelector('iframe[src*="htmlfile-bridge.html"]');
    return frame && new URLSearchParams(frame.src.split('#')[1]).get('id');
  });
}

/** Waits until `count` forge.html pages posted their messages (they say so last, with `{forged}`). */
async function forged(page, count) {
  await page.waitForFunction((n) => window.sbForged.length >= n, count, { timeout: 10000 });
}

test('htmlfile bridge: forged postMessages (right shape and id, wrong source or origin) deliver nothing and end nothing', async () => {
  const context = await browser.newContext();
  try {
    const a = await openChat(context, { pageOrigin: pages.origin, server: server.origin, transports: 'htmlfile', options: FAST });
    const b = await openChat(context, { pageOrigin: pages.origin, server: server.origin, transports: 'longpoll', options: FAST });
    await a.evaluate(() => {
      window.sbForged = [];
      addEventListener('message', (event) => event.data && event.data.forged && window.sbForged.push(event.data.forged));
    });
    const key = await bridgeKey(a);
    assert.ok(key, 'a bridge iframe relays the frames');
    const forgery = (text) => new URLSearchParams({ key, text, seq: '0' });
    const seq = async () => (await a.evaluate(() => window.sb.last)) + 1;

    // 1. The page itself: wrong source (the top window), wrong origin (the page's).
    await a.evaluate(
      ({ key, seq }) => {
        const msg = { seq, type: 'msg', room: 'lobby', id: 999999, ts: Date.now(), from: 'forger', user: 'forger', name: 'forger', data: { text: 'forged by the page' } };
        window.postMessage({ switchboard: key, frame: msg }, '*');
        window.postMessage({ switchboard: key, frame: { type: 'close', code: 4005, reason: 'forged', reconnect: false } }, '*');
        window.postMessage({ switchboard: key, end: true }, '*');
      },
      { key, seq: await seq() },
    );

    // 2. Another iframe on the server's own origin: right origin, wrong source.
    const sibling = forgery('forged by a server-origin frame');
    sibling.set('seq', String(await seq()));
    await a.evaluate((src) => {
      const frame = document.createElement('iframe');
      frame.src = src;
      document.body.appendChild(frame);
    }, `${server.origin}/forge.html#${sibling}`);
    await forged(a, 1);
    await sleep(1500); // past the bridge's end grace: a taken `end` would have shown

    assert.deepEqual(await texts(a), [], await describe(a));
    assert.deepEqual(await a.evaluate(() => window.sbLog.states), ['connecting', 'open'], 'not closed, not reconnecting');
    assert.equal(await bridgeKey(a), key, 'the same bridge still relays');
    await say(b, 'real 1');
    await waitForCount(a, 1);

    // 3. The bridge's own window, navigated to the page's origin: right source, wrong origin.
    const inPlace = forgery('forged in the bridge window');
    inPlace.set('seq', String(await seq()));
    await a.evaluate((src) => {
      document.querySelector('iframe[src*="htmlfile-bridge.html"]').contentWindow.location.href = src;
    }, `${pages.origin}/forge.html#${inPlace}`);
    await forged(a, 2);
    await sleep(300);
    assert.deepEqual(await texts(a), ['real 1'], await describe(a));
    assert.ok(!(await a.evaluate(() => window.sbLog.states)).includes('closed'), await describe(a));
    // The bridge is gone, so the transport ends and the client resumes on a new one.
    await a.waitForFunction((old) => {
      const frame = document.querySelector('iframe[src*="htmlfile-bridge.html"]');
      return window.sb.state === 'open' && frame && !frame.src.includes('id=' + old + '&');
    }, key, { timeout: 10000 });
    await say(b, 'real 2');
    await Promise.all([waitForCount(a, 2), waitForCount(b, 2)]);
    await sleep(500);
    assert.deepEqual(await texts(a), ['real 1', 'real 2'], await describe(a));
    assert.deepEqual(await texts(b), ['real 1', 'real 2']);
    assert.ok(!(await a.evaluate(() => window.sbLog.states)).includes('closed'), await describe(a));
    assert.deepEqual(await a.evaluate(() => window.sbLog.transports), ['htmlfile']);
  } finally {
    await context.close();
  }
});

// The demo chat at `/`: two tabs sign in and talk, the close/reconnect button
// queues and then delivers, the transport picker moves the session, the
// indicators follow, a cut connection shows "reconnecting…". (The messenger
// features: im.test.js.)

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { launchBrowser, sleep, startProxy, startServer } from './harness.js';

let browser;
let server;

before(async () => {
  [browser, server] = await Promise.all([launchBrowser(), startServer({ staticDir: null })]);
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

const bubbles = (page) => page.$$eval('#messages li.msg', (items) => items.map((li) => li.querySelector('.text').textContent));
const count = (n) => document.querySelectorAll('#messages li.msg').length === n;

test('demo chat: two tabs, close/reconnect with a queued message, transport picker', async () => {
  const context = await browser.newContext();
  try {
    const [a, b] = await Promise.all([context.newPage(), context.newPage()]);
    await Promise.all([a.goto(`${server.origin}/`), b.goto(`${server.origin}/?transport=sse`)]);
    for (const [page, name] of [[a, 'ann'], [b, 'ben']]) {
      await page.fill('#nick', name);
      await page.click('#login-nick');
    }
    for (const page of [a, b]) await page.waitForFunction(() => document.querySelector('#state').dataset.state === 'open');
    assert.equal(await a.textContent('#whoami'), 'ann');
    assert.equal(await b.textContent('#transport'), 'sse');
    assert.match(await a.textContent('#id'), /^[0-9a-f]{16}$/);

    await a.fill('#text', 'hello from a');
    await a.click('#send');
    await b.waitForFunction(count, 1);
    assert.deepEqual(await bubbles(b), ['hello from a']);

    await b.click('#toggle');
    assert.equal(await b.getAttribute('#state', 'data-state'), 'closed');
    await b.fill('#text', 'queued in b');
    await b.click('#send');
    assert.equal(await b.textContent('#pending'), '1');
    await b.click('#toggle'); // reconnect
    await a.waitForFunction(count, 2);
    await b.waitForFunction(() => document.querySelector('#pending').textContent === '0');
    assert.deepEqual(await bubbles(a), ['hello from a', 'queued in b']);
    assert.deepEqual(await bubbles(b), ['hello from a', 'queued in b']);

    await a.selectOption('#picker', 'jsonp');
    await a.waitForFunction(() => document.querySelector('#transport').textContent === 'jsonp');
    await b.fill('#text', 'after the switch');
    await b.click('#send');
    await a.waitForFunction(count, 3);
    assert.deepEqual(await bubbles(a), ['hello from a', 'queued in b', 'after the switch']);
    assert.ok(Number(await a.textContent('#last')) >= 3);
  } finally {
    await context.close();
  }
});

test('demo chat: a cut connection shows a visible "reconnecting…" until the chat is back', async () => {
  const context = await browser.newContext();
  // The demo talks to the origin it came from: here, a proxy that can cut it off.
  const proxy = await startProxy(server.port);
  try {
    const page = await context.newPage();
    await page.goto(`${proxy.origin}/`);
    await page.fill('#nick', 'cut');
    await page.click('#login-nick');
    await page.waitForFunction(() => document.querySelector('#state').dataset.state === 'open', null, { timeout: 15000 });
    assert.equal(await page.textContent('#state'), 'open');

    proxy.block();
    await page.waitForFunction(() => document.querySelector('#state').textContent === 'reconnecting…', null, { timeout: 10000 });
    assert.ok(await page.isVisible('#state'), 'the state indicator is on screen');
    assert.equal(await page.getAttribute('#state', 'data-state'), 'reconnecting');
    const box = await page.locator('#state').boundingBox();
    assert.ok(box && box.width > 0 && box.height > 0, `the text takes room on screen: ${JSON.stringify(box)}`);
    await sleep(1500);
    assert.equal(await page.textContent('#state'), 'reconnecting…', 'stays while the server is unreachable');

    proxy.unblock();
    await page.waitForFunction(() => document.querySelector('#state').textContent === 'open', null, { timeout: 15000 });
  } finally {
    await context.close();
    await proxy.stop();
  }
});

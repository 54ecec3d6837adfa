// The demo chat at `/` as an instant messenger: sign in, rooms both ways,
// direct messages, presence, typing, read receipts, unread counts, history
// paging, catching up after a replaced session. Two or three pages per test,
// each test on its own server (its own temp data dir).

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, test } from 'node:test';

import { launchBrowser, sleep, startProxy, startServer } from './harness.js';

const KEY = 'im-test-key';
/** A short grace, so a closed page leaves its rooms within a second or two. */
const ENV = { SWITCHBOARD_GRACE: '1s', SWITCHBOARD_API_KEY: KEY };
/** DEMO_DIR=crates/switchboard/static serves the demo's files as they are on disk (no rebuild). */
const STATIC = process.env.DEMO_DIR || null;

let browser;

before(async () => {
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
});

/** A server and a browser context for one test; `close()` ends both. */
async function setup(env = ENV) {
  const server = await startServer({ staticDir: STATIC, env });
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const pages = [];
  return {
    server,
    context,
    pages,
    /** Opens the demo signed in as `name` (by the form, or by `?name=`), on `transport` (default auto). */
    async login(name, { form = false, transport } = {}) {
      const page = await context.newPage();
      page.problems = [];
      page.on('pageerror', (error) => page.problems.push(String(error)));
      page.on('console', (message) => message.type() === 'error' && page.problems.push(message.text()));
      pages.push(page);
      const query = new URLSearchParams(transport ? { transport } : {});
      if (form) {
        await page.goto(`${server.origin}/?${query}`);
        assert.equal(await page.isVisible('#chat'), false, 'the chat waits for a sign in');
        await page.fill('#nick', name);
        await page.click('#login-nick');
      } else {
        query.set('name', name);
        await page.goto(`${server.origin}/?${query}`);
      }
      await waitFor(page, (n) => document.querySelector('#state').dataset.state === 'open' && document.querySelector('#whoami').textContent === n, name);
      if (transport) assert.equal(await page.textContent('#transport'), transport);
      await waitFor(page, () => /^(This is the beginning|No messages)/.test(document.querySelector('#history-top')?.textContent));
      return page;
    },
    async close() {
      const problems = pages.flatMap((page) => page.problems);
      await context.close();
      await server.stop();
      assert.deepEqual(problems, [], 'no errors in the pages');
    },
  };
}

/** Waits for a condition in the page; on timeout, says what the page shows. */
async function waitFor(page, fn, arg, timeout = 10000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
  } catch (error) {
    throw new Error(`${error.message}\n${await describe(page)}`);
  }
}

async function describe(page) {
  try {
    return JSON.stringify(
      await page.evaluate(() => ({
        who: document.querySelector('#whoami')?.textContent,
        state: document.querySelector('#state')?.textContent,
        room: document.querySelector('#room-title')?.textContent,
        top: document.querySelector('#history-top')?.textContent,
        messages: [...document.querySelectorAll('#messages li.msg')].map((li) => `${li.dataset.id}:${li.querySelector('.text').textContent}`),
        rooms: [...document.querySelectorAll('#rooms button, #dms button')].map((b) => b.dataset.room + ':' + b.textContent),
        presence: [...document.querySelectorAll('#presence li')].map((li) => li.dataset.user),
        notice: document.querySelector('#notice')?.textContent,
        log: [...document.querySelectorAll('#log li')].map((li) => li.textContent),
      })),
      null,
      1,
    );
  } catch (error) {
    return `page not readable: ${error.message}`;
  }
}

/** The messages on screen, oldest first (not the ones still being sent). */
const shown = (page) =>
  page.$$eval('#messages li.msg:not(.pending)', (items) =>
    items.map((li) => ({ id: Number(li.dataset.id), user: li.dataset.user, text: li.querySelector('.text').textContent })),
  );
const texts = async (page) => (await shown(page)).map((m) => m.text);

/** Waits until the page shows exactly `expected` (texts, in order). */
async function waitForTexts(page, expected) {
  await waitFor(page, (want) => JSON.stringify([...document.querySelectorAll('#messages li.msg:not(.pending) .text')].map((t) => t.textContent)) === JSON.stringify(want), expected);
}

/** Sends a message with the composer and waits until the server has it. */
async function say(page, text) {
  await page.fill('#text', text);
  await page.click('#send');
  await waitFor(page, (t) => !document.querySelector('#messages li.pending') && [...document.querySelectorAll('#messages li.msg .text')].some((n) => n.textContent === t), text);
}

async function joinWithForm(page, room) {
  await page.fill('#join-room', room);
  await page.click('#join');
  await waitFor(page, (r) => document.querySelector('#room-title').textContent === '#' + r && /^(This is the beginning|No messages|Scroll up)/.test(document.querySelector('#history-top')?.textContent), room);
}

const presence = (page) => page.$$eval('#presence li', (items) => items.map((li) => li.dataset.user));
const badge = (page, room) => page.$eval(`button[data-room="${room}"] .badge`, (b) => b.textContent);

/** Posts with the server's HTTP API (as the back-end of an application would). */
async function post(server, room, body) {
  const response = await fetch(`${server.origin}/api/v1/rooms/${encodeURIComponent(room)}/messages`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  assert.equal(response.status, 201, text);
  return JSON.parse(text);
}

test('sign in by nickname; a room chat both ways, the same list on both pages', async () => {
  const t = await setup();
  try {
    const alice = await t.login('alice', { form: true });
    assert.equal(await alice.textContent('#room-title'), '#lobby');
    assert.equal(await alice.isVisible('#me'), true);
    const bob = await t.login('bob', { form: true, transport: 'longpoll' });

    // A nickname the server would refuse is refused on the page already.
    const bad = await t.context.newPage();
    bad.problems = [];
    await bad.goto(`${t.server.origin}/`);
    await bad.fill('#nick', 'not <ok>');
    await bad.click('#login-nick');
    assert.match(await bad.textContent('#login-error'), /nickname/);
    assert.equal(await bad.isVisible('#chat'), false);
    await bad.close();

    await say(alice, 'hello bob');
    await waitForTexts(bob, ['hello bob']);
    await say(bob, 'hi alice <b>not bold</b>');
    await say(alice, 'how are you?');
    const expected = [
      { id: 1, user: 'alice', text: 'hello bob' },
      { id: 2, user: 'bob', text: 'hi alice <b>not bold</b>' },
      { id: 3, user: 'alice', text: 'how are you?' },
    ];
    await waitForTexts(bob, expected.map((m) => m.text));
    assert.deepEqual(await shown(alice), expected);
    assert.deepEqual(await shown(bob), expected);
    // Content is text, never markup; mine on my side only.
    assert.equal(await bob.$$eval('#messages b', (b) => b.length), 0);
    assert.deepEqual(await alice.$$eval('#messages li.mine', (items) => items.map((li) => li.dataset.id)), ['1', '3']);
    assert.deepEqual(await bob.$$eval('#messages li.mine', (items) => items.map((li) => li.dataset.id)), ['2']);
  } finally {
    await t.close();
  }
});

test('a direct message between two users that a third cannot see', async () => {
  const t = await setup();
  try {
    const alice = await t.login('alice');
    const bob = await t.login('bob', { transport: 'sse' });
    const carol = await t.login('carol', { transport: 'jsonp' });
    await waitFor(alice, () => document.querySelectorAll('#presence li').length === 3);

    await alice.click('#presence li[data-user="bob"] button');
    await waitFor(alice, () => document.querySelector('#room-title').textContent === 'bob');
    await say(alice, 'psst, bob');
    assert.equal(await alice.textContent('#dms button[data-room="dm:alice:bob"] .label'), 'bob');

    // Bob sees the conversation appear, named after alice, with one unread.
    await waitFor(bob, () => document.querySelector('#dms button[data-room="dm:alice:bob"] .badge')?.textContent === '1');
    assert.equal(await bob.textContent('#dms button[data-room="dm:alice:bob"] .label'), 'alice');
    await bob.click('#dms button[data-room="dm:alice:bob"]');
    await waitForTexts(bob, ['psst, bob']);
    await say(bob, 'only you see this');
    await waitForTexts(alice, ['psst, bob', 'only you see this']);

    // Carol: not in her list, and the server refuses her.
    assert.equal(await carol.$('button[data-room="dm:alice:bob"]'), null);
    await carol.fill('#join-room', 'dm:alice:bob');
    await carol.click('#join');
    await waitFor(carol, () => /only for its two users/.test(document.querySelector('#notice').textContent));
    await waitFor(carol, () => document.querySelector('#room-title').textContent === '#lobby');
    assert.equal(await carol.$('button[data-room="dm:alice:bob"]'), null);
    const body = await carol.textContent('body');
    assert.ok(!body.includes('psst') && !body.includes('only you see this'), body);

    // Carol's own DM with alice, started by user id.
    await carol.fill('#dm-user', 'alice');
    await carol.click('#dm-start');
    await waitFor(carol, () => document.querySelector('#room-title').textContent === 'alice');
    await say(carol, 'hi alice, carol here');
    await waitFor(alice, () => document.querySelector('#dms button[data-room="dm:alice:carol"] .badge')?.textContent === '1');
    assert.deepEqual(await alice.$$eval('#dms button', (items) => items.map((b) => b.querySelector('.label').textContent)), ['bob', 'carol']);
    await waitForTexts(alice, ['psst, bob', 'only you see this']);
    assert.deepEqual(await texts(bob), ['psst, bob', 'only you see this']);
  } finally {
    await t.close();
  }
});

test('presence: each user once (two tabs too); a closed page drops out', async () => {
  const t = await setup();
  try {
    const alice = await t.login('alice');
    const bob1 = await t.login('bob');
    const bob2 = await t.login('bob');
    await waitFor(alice, () => document.querySelectorAll('#presence li').length === 2);
    await sleep(300);
    assert.deepEqual(await presence(alice), ['alice', 'bob']);
    assert.deepEqual(await presence(bob2), ['alice', 'bob']);
    assert.equal(await alice.textContent('#here'), '2');
    assert.match(await alice.textContent('#presence li[data-user="alice"]'), /\(you\)/);

    await bob1.close();
    await sleep(2000); // past the 1 s grace (reaped within 1.25 s): bob1's session is gone, bob2's is not
    assert.deepEqual(await presence(alice), ['alice', 'bob']);
    await bob2.close();
    await waitFor(alice, () => document.querySelectorAll('#presence li').length === 1);
    assert.deepEqual(await presence(alice), ['alice']);
    assert.equal(await alice.textContent('#here'), '1');
  } finally {
    await t.close();
  }
});

test('typing shows on the other page and goes away', async () => {
  const t = await setup();
  try {
    const alice = await t.login('alice');
    const bob = await t.login('bob');
    assert.equal(await alice.textContent('#typing'), '');
    await bob.type('#text', 'hel', { delay: 30 });
    await waitFor(alice, () => document.querySelector('#typing').textContent === 'bob is typing…');
    const since = Date.now();
    await waitFor(alice, () => document.querySelector('#typing').textContent === '', undefined, 6000);
    const lasted = Date.now() - since;
    assert.ok(lasted > 1500 && lasted < 4500, `shown for about 3 s, was ${lasted} ms more`);
    assert.equal(await bob.textContent('#typing'), '', 'never shown to the typist');
    // A message ends it at once.
    await bob.type('#text', 'lo', { delay: 30 });
    await waitFor(alice, () => document.querySelector('#typing').textContent === 'bob is typing…');
    await bob.click('#send');
    await waitFor(alice, () => document.querySelector('#typing').textContent === '' && document.querySelectorAll('#messages li.msg').length === 1);
  } finally {
    await t.close();
  }
});

test('unread counts grow for a room not on screen; reading it shows a receipt to the sender', async () => {
  const t = await setup();
  try {
    const alice = await t.login('alice');
    const bob = await t.login('bob');
    await joinWithForm(bob, 'side');
    assert.equal(await badge(bob, 'lobby'), '');

    await say(alice, 'first');
    await waitFor(bob, () => document.querySelector('button[data-room="lobby"] .badge').textContent === '1');
    await say(alice, 'second');
    await waitFor(bob, () => document.querySelector('button[data-room="lobby"] .badge').textContent === '2');
    assert.match(await bob.title(), /^\(2\) /);
    assert.deepEqual(await alice.$$eval('#messages li.msg .receipt', (r) => r.map((n) => n.textContent)), ['Sent', 'Sent']);

    // Alice in the side room too: bob's side room does not count what he sees.
    await joinWithForm(alice, 'side');
    await say(alice, 'in side');
    await waitForTexts(bob, ['in side']);
    assert.equal(await badge(bob, 'side'), '');
    await waitFor(alice, () => document.querySelector('#messages li.msg .receipt').textContent === 'Read by bob');
    await alice.click('button[data-room="lobby"]');

    await bob.click('button[data-room="lobby"]');
    await waitForTexts(bob, ['first', 'second']);
    assert.equal(await badge(bob, 'lobby'), '');
    assert.equal(await badge(bob, 'side'), '');
    await waitFor(alice, () => [...document.querySelectorAll('#messages li.msg')].every((li) => li.dataset.readBy === 'bob'));
    // Said once, under the newest of the run.
    assert.equal(await alice.textContent('#messages li.msg[data-id="2"] .receipt:not(.same)'), 'Read by bob');
    assert.equal(await alice.isVisible('#messages li.msg[data-id="1"] .receipt'), false);

    // Bob leaves the side room; his read marks hold for a reload: nothing unread.
    await bob.click('button[data-room="side"]');
    await waitFor(bob, () => document.querySelector('#room-title').textContent === '#side');
    await bob.click('#leave');
    await waitFor(bob, () => document.querySelector('#room-title').textContent === '#lobby' && !document.querySelector('button[data-room="side"]'));
    await bob.reload();
    await waitFor(bob, () => document.querySelector('#state').dataset.state === 'open' && document.querySelectorAll('#messages li.msg').length === 2);
    await sleep(300);
    assert.deepEqual(await bob.$$eval('#rooms button', (items) => items.map((b) => b.dataset.room)), ['lobby']);
    assert.equal(await badge(bob, 'lobby'), '');
  } finally {
    await t.close();
  }
});

test('history: the newest 50, then older pages on scrolling up; a replaced session catches up, nothing twice', async () => {
  const t = await setup();
  try {
    for (let i = 1; i <= 120; i += 1) await post(t.server, 'archive', { data: { text: 'm' + i }, user: 'bot', name: 'Archive bot' });
    const alice = await t.login('alice');
    await joinWithForm(alice, 'archive');
    const ids = async () => (await shown(alice)).map((m) => m.id);
    const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
    await waitFor(alice, () => document.querySelectorAll('#messages li.msg').length === 50);
    assert.deepEqual(await ids(), range(71, 120));
    assert.equal(await alice.$eval('#messages', (list) => list.scrollTop + list.clientHeight >= list.scrollHeight - 2), true, 'starts at the bottom');

    const scrollUp = () => alice.$eval('#messages', (list) => (list.scrollTop = 0));
    await scrollUp();
    await waitFor(alice, () => document.querySelectorAll('#messages li.msg').length === 100);
    assert.deepEqual(await ids(), range(21, 120));
    // The view stayed on the message that was at the top.
    assert.ok((await alice.$eval('#messages', (list) => list.scrollTop)) > 200);

    // One arrives live meanwhile: shown once, at the bottom.
    await post(t.server, 'archive', { data: { text: 'live 121' }, user: 'bot', name: 'Archive bot' });
    await waitFor(alice, () => document.querySelectorAll('#messages li.msg').length === 101);
    await scrollUp();
    await waitFor(alice, () => /beginning/.test(document.querySelector('#history-top').textContent));
    assert.deepEqual(await ids(), range(1, 121));
    assert.deepEqual((await texts(alice)).slice(0, 3), ['m1', 'm2', 'm3']);
    assert.equal((await texts(alice)).at(-1), 'live 121');

    // Close, let the session expire (grace 1 s), miss four messages, come back.
    await alice.click('#toggle');
    await waitFor(alice, () => document.querySelector('#state').dataset.state === 'closed');
    for (let i = 122; i <= 125; i += 1) await post(t.server, 'archive', { data: { text: 'missed ' + i }, user: 'bot', name: 'Archive bot' });
    await sleep(2000); // the grace is 1 s, the server reaps every 250 ms
    await alice.click('#toggle');
    await waitFor(alice, () => document.querySelectorAll('#messages li.msg').length >= 125);
    await waitFor(alice, () => [...document.querySelectorAll('#log li')].some((li) => /old session expired/.test(li.textContent)));
    await sleep(500); // the offline replay and the history page both came: still once each
    assert.deepEqual(await ids(), range(1, 125));
    assert.equal((await texts(alice)).at(-1), 'missed 125');
  } finally {
    await t.close();
  }
});

test('frames lost to an overflowing outbox (a gap) are fetched from history', async () => {
  const server = await startServer({ staticDir: STATIC, env: { SWITCHBOARD_API_KEY: KEY, SWITCHBOARD_OUTBOX_MAX_FRAMES: '5' } });
  const proxy = await startProxy(server.port);
  const context = await browser.newContext();
  try {
    // The page talks to the server through a proxy that can cut it off.
    const page = await context.newPage();
    await page.goto(`${proxy.origin}/?name=alice`);
    await waitFor(page, () => document.querySelector('#state').dataset.state === 'open' && /No messages/.test(document.querySelector('#history-top')?.textContent));
    await post(server, 'lobby', { data: { text: 'before' } });
    await waitForTexts(page, ['before']);
    proxy.block();
    await waitFor(page, () => document.querySelector('#state').dataset.state === 'reconnecting');
    const missed = Array.from({ length: 12 }, (_, i) => 'while away ' + (i + 1));
    for (const text of missed) await post(server, 'lobby', { data: { text } });
    proxy.unblock();
    await waitFor(page, () => [...document.querySelectorAll('#log li')].some((li) => /missed frames/.test(li.textContent)), undefined, 20000);
    await post(server, 'lobby', { data: { text: 'after' } });
    await waitForTexts(page, ['before', ...missed, 'after']);
    await sleep(300);
    assert.deepEqual((await shown(page)).map((m) => m.id), Array.from({ length: 14 }, (_, i) => i + 1));
  } finally {
    await context.close();
    await proxy.stop();
    await server.stop();
  }
});

/** An HS256 JWT, as an identity provider would sign it. */
function jwt(claims, secret) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const body = `${part({ alg: 'HS256', typ: 'JWT' })}.${part(claims)}`;
  return `${body}.${createHmac('sha256', secret).update(body).digest('base64url')}`;
}

test('sign in with a pasted token; a refused one goes back to the form', async () => {
  const secret = 'im-test-secret';
  const t = await setup({ SWITCHBOARD_JWT_SECRET: secret });
  try {
    const page = await t.context.newPage();
    page.problems = [];
    t.pages.push(page);
    const exp = Math.floor(Date.now() / 1000) + 600;
    await page.goto(`${t.server.origin}/`);
    await page.fill('#token', jwt({ sub: 'u-42', name: 'Ada', exp }, 'wrong-secret'));
    await page.click('#login-jwt');
    await waitFor(page, () => /refused/.test(document.querySelector('#login-error').textContent) && !document.querySelector('#login').hidden);
    await page.fill('#token', jwt({ sub: 'u-42', name: 'Ada', exp }, secret));
    await page.click('#login-jwt');
    await waitFor(page, () => document.querySelector('#whoami').textContent === 'Ada' && document.querySelector('#state').dataset.state === 'open');
    assert.equal(await page.textContent('#whoid'), '(u-42)');
    await waitFor(page, () => document.querySelector('#presence li[data-user="u-42"]'));
  } finally {
    await t.close();
  }
});

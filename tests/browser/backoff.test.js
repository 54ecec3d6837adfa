// Reconnecting backs off exponentially, with jitter, up to a cap: a client
// whose server stays unreachable does not hammer it, and many clients cut
// at once do not come back in lockstep.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { describe, launchBrowser, openChat, sleep, startPageServer, startProxy, startServer } from './harness.js';

const DELAY = 200;
const DELAY_MAX = 1600;
const OPTIONS = { reconnectDelay: DELAY, reconnectDelayMax: DELAY_MAX, randomization: 0.5, connectTimeout: 3000 };
/** How late a timer and a refused connection may make an attempt on a busy machine (ms). */
const LATE = 400;

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

test('reconnect: while the server stays unreachable, the gaps between attempts grow exponentially with jitter, up to reconnectDelayMax', async () => {
  const context = await browser.newContext();
  // Two clients, each through its own proxy, which records every connection attempt.
  const proxies = await Promise.all([startProxy(server.port), startProxy(server.port)]);
  try {
    const clients = await Promise.all(
      proxies.map((proxy) => openChat(context, { pageOrigin: pages.origin, server: proxy.origin, transports: 'websocket', options: OPTIONS })),
    );
    const id = await clients[0].evaluate(() => window.sb.id);
    const cutAt = Date.now();
    for (const proxy of proxies) proxy.block();
    await sleep(7000);
    const schedules = proxies.map((proxy) => proxy.state.accepted.filter((t) => t >= cutAt));
    for (const page of clients) assert.equal(await page.evaluate(() => window.sb.state), 'reconnecting', await describe(page));
    for (const proxy of proxies) proxy.unblock();

    for (const [i, attempts] of schedules.entries()) {
      const times = [cutAt, ...attempts];
      const gaps = times.slice(1).map((t, k) => t - times[k]);
      const context = `client ${i}: attempts ${JSON.stringify(attempts.map((t) => t - cutAt))} ms after the cut`;
      // 7 s hold at least 6 attempts (0.2 + 0.4 + 0.8 + 1.6 + 1.6 + 1.6 s at the most;
      // 5 leave room for a slow machine) and at most 10 (0.1 + 0.2 + 0.4 + 0.8, then
      // 0.8 s each, the capped wait halved: 6.3 s at the least for 10, 7.1 s for 11).
      assert.ok(attempts.length >= 5 && attempts.length <= 10, context);
      for (const [k, gap] of gaps.entries()) {
        // The k-th wait is reconnectDelay·2^k, capped, shortened by up to half at random.
        const base = Math.min(DELAY_MAX, DELAY * 2 ** k);
        assert.ok(gap >= base / 2 - 5, `wait ${k} is ${gap} ms, below ${base / 2}: ${context}`);
        assert.ok(gap <= base + LATE, `wait ${k} is ${gap} ms, above ${base} + ${LATE}: ${context}`);
      }
      // Grows: the jitter cannot undo a doubling (a late timer may, by a little), let alone two.
      for (let k = 1; k < 4; k += 1) assert.ok(gaps[k] >= gaps[k - 1] - 100, `not growing: ${gaps} (${context})`);
      for (let k = 2; k < 4; k += 1) assert.ok(gaps[k] > gaps[k - 2], `not growing: ${gaps} (${context})`);
      // Jitter: the waits are not simply the doublings.
      const shortened = gaps.filter((gap, k) => gap < 0.9 * Math.min(DELAY_MAX, DELAY * 2 ** k));
      assert.ok(shortened.length >= 1, `no jitter in ${gaps} (${context})`);
    }
    // Two clients cut at the same instant do not retry in lockstep.
    const [first, second] = schedules.map((s) => s.map((t) => t - cutAt));
    const apart = first.slice(0, 4).map((t, k) => Math.abs(t - second[k]));
    assert.ok(Math.max(...apart) >= 30, `attempts in lockstep: ${first} vs ${second}`);

    // The server is back: within the capped delay the session resumes.
    await clients[0].waitForFunction(() => window.sb.state === 'open', null, { timeout: DELAY_MAX + 3000 });
    assert.equal(await clients[0].evaluate(() => window.sb.id), id, 'the same session');
  } finally {
    await context.close();
    await Promise.all(proxies.map((p) => p.stop()));
  }
});

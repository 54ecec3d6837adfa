// Loading indicators. The issue asks for no loading spinner from the iframe
// transport. Two things are measured, with the htmlfile stream open:
//
// 1. The page itself (Chrome DevTools Protocol): its document is complete,
//    the main frame fired `load` and stopped loading, and did not start
//    again. The client opens the htmlfile iframe only after the load event,
//    so the page finishes loading normally.
// 2. The browser tab (chrome.tabs status, read by a small extension in
//    tab-status-extension/): Chromium reports the tab "loading" while any
//    frame in it is, and a frame whose response never ends never stops.
//    Every other transport leaves the tab "complete"; htmlfile does not, and
//    no iframe arrangement tried (nested helper frames, document.write,
//    <object>, sandboxing) changes that in Chromium: a todo, documented in
//    clients/js/README.md.

import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe as suite, test } from 'node:test';

import { chromium } from 'playwright-core';

import { TRANSPORTS } from '../../clients/js/switchboard.js';
import { describe, launchBrowser, openChat, say, sleep, startPageServer, startServer, waitForCount } from './harness.js';

const EXTENSION = path.join(path.dirname(fileURLToPath(import.meta.url)), 'tab-status-extension');
const FAST = { reconnectDelay: 200, reconnectDelayMax: 1000, connectTimeout: 3000 };

let server;
let pages;

before(async () => {
  [server, pages] = await Promise.all([startServer(), startPageServer()]);
});

after(async () => {
  await Promise.all([server?.stop(), pages?.stop()]);
});

suite('the page itself, while the htmlfile stream is open (CDP)', () => {
  let browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });

  for (const crossOrigin of [false, true]) {
    const where = crossOrigin ? 'across origins (the bridge)' : 'same origin';
    test(`htmlfile, ${where}: document complete, main frame loaded and stopped loading, not restarted`, async () => {
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        const cdp = await context.newCDPSession(page);
        const events = [];
        for (const name of ['Page.lifecycleEvent', 'Page.frameStartedLoading', 'Page.frameStoppedLoading']) {
          cdp.on(name, (params) => events.push({ event: name.slice(5), frameId: params.frameId, name: params.name }));
        }
        await cdp.send('Page.enable');
        await cdp.send('Page.setLifecycleEventsEnabled', { enabled: true });
        // A slow image holds the load event for 800 ms while the client already wants to connect.
        const pageOrigin = crossOrigin ? pages.origin : server.origin;
        // Not waiting for the load event: whether it comes is what is tested.
        await openChat(context, { page, pageOrigin, server: server.origin, transports: 'htmlfile', options: FAST, slow: 800, slowFrom: pages.origin, waitUntil: 'domcontentloaded' });

        // The stream is open and delivering.
        await say(page, 'through the stream');
        await waitForCount(page, 1);
        assert.equal(await page.evaluate(() => window.sb.transport), 'htmlfile');
        await sleep(500);

        const { frameTree } = await cdp.send('Page.getFrameTree');
        const main = frameTree.frame.id;
        const mainEvents = events.filter((e) => e.frameId === main);
        // From the navigation to the test page on (lifecycle `init` starts a document).
        const start = mainEvents.map((e) => e.name).lastIndexOf('init');
        const lifecycle = mainEvents.slice(start);
        assert.ok(lifecycle.some((e) => e.name === 'load'), `main frame load: ${JSON.stringify(lifecycle)}`);
        const lastStarted = mainEvents.map((e) => e.event).lastIndexOf('frameStartedLoading');
        const lastStopped = mainEvents.map((e) => e.event).lastIndexOf('frameStoppedLoading');
        assert.ok(lastStopped > lastStarted, `main frame stopped loading after it last started: ${JSON.stringify(mainEvents)}`);
        assert.equal(await page.evaluate(() => document.readyState), 'complete');
        const { loadedAt, inserted } = await page.evaluate(() => ({
          loadedAt: window.sbLoadedAt,
          inserted: window.sbInserted.filter((i) => /\/v1\/htmlfile|htmlfile-bridge/.test(i.src)),
        }));
        assert.ok(loadedAt >= 700, `the slow image held the load event (${loadedAt} ms)`);
        assert.ok(inserted.length >= 1 && inserted.every((i) => i.at >= loadedAt), `iframe added before load: ${JSON.stringify({ loadedAt, inserted })}`);

        // And the stream's own frame is still loading: the stream is what is open.
        const frames = page.frames().map((f) => f.url());
        assert.ok(frames.some((u) => /\/v1\/htmlfile|htmlfile-bridge/.test(u)), JSON.stringify(frames));
        if (!crossOrigin) {
          // Same origin, same process: CDP sees the stream frame, started and never stopped.
          const child = frameTree.childFrames.find((c) => c.frame.url.includes('/v1/htmlfile'));
          assert.ok(child, JSON.stringify(frameTree));
          const childEvents = events.filter((e) => e.frameId === child.frame.id).map((e) => e.event);
          assert.ok(childEvents.includes('frameStartedLoading') && !childEvents.includes('frameStoppedLoading'), JSON.stringify(childEvents));
        }
      } finally {
        await context.close();
      }
    });
  }
});

suite("the browser tab's loading state (chrome.tabs status)", () => {
  let context;
  let worker;
  let profile;

  before(async () => {
    // Extensions need a persistent context (a profile of its own).
    profile = await mkdtemp(path.join(os.tmpdir(), 'switchboard-tabs-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', `--disable-extensions-except=${EXTENSION}`, `--load-extension=${EXTENSION}`],
    });
    [worker] = context.serviceWorkers();
    worker ??= await context.waitForEvent('serviceworker', { timeout: 10000 }).catch(() => {
      throw new Error(`the tab-status extension did not load (${EXTENSION}); this Chromium may not allow --load-extension`);
    });
  });

  after(async () => {
    await context?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  /** chrome.tabs status of `page`'s tab, sampled `times` times 200 ms apart. */
  async function statuses(page, times = 5) {
    const seen = [];
    for (let i = 0; i < times; i += 1) {
      if (i) await sleep(200);
      const tabs = await worker.evaluate(() => self.tabStatus());
      seen.push(tabs.find((t) => t.url === page.url())?.status);
    }
    return seen;
  }

  test('control: a tab whose page is still loading (an image on the way) is reported "loading", then "complete"', async () => {
    const page = await context.newPage();
    try {
      // The page's own load waits 2.5 s for its image.
      await page.goto(`${pages.origin}/page.html?slow=2500`, { waitUntil: 'domcontentloaded' });
      assert.deepEqual(await statuses(page, 3), ['loading', 'loading', 'loading']);
      await page.waitForFunction(() => document.readyState === 'complete', null, { timeout: 10000 });
      await sleep(300);
      assert.deepEqual(await statuses(page, 2), ['complete', 'complete']);
    } finally {
      await page.close();
    }
  });

  for (const transport of TRANSPORTS) {
    const todo =
      transport === 'htmlfile'
        ? 'Chromium counts the stream iframe (its response never ends) as loading, in any arrangement of frames; see clients/js/README.md'
        : undefined;
    test(`${transport}, across origins: the tab is not shown loading while connected`, { todo }, async () => {
      const page = await openChat(context, { pageOrigin: pages.origin, server: server.origin, transports: transport, options: FAST });
      try {
        await say(page, 'hello');
        await waitForCount(page, 1);
        await sleep(500); // a held poll or an open stream by now
        assert.equal(await page.evaluate(() => window.sb.transport), transport);
        assert.deepEqual(await statuses(page), Array(5).fill('complete'), await describe(page));
      } finally {
        await page.close();
      }
    });
  }
});

// Takes docs/demo.png: the demo chat in two "tabs" side by side, after a
// short conversation. Run: node tests/browser/screenshot.js (after cargo build).

import path from 'node:path';

import { REPO, launchBrowser, sleep, startServer } from './harness.js';

const server = await startServer({ staticDir: null });
const browser = await launchBrowser();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 640 } });
  const frame = (name) => `<iframe name="${name}" src="${server.origin}/?${name === 'left' ? '' : 'transport=longpoll'}"></iframe>`;
  await page.setContent(`<!doctype html><style>
      body { margin: 0; display: flex; gap: 8px; background: #c9ced8; }
      iframe { flex: 1; height: 640px; border: 0; }
    </style>${frame('left')}${frame('right')}`);
  const [left, right] = await Promise.all(
    ['left', 'right'].map(async (name) => {
      const handle = await page.waitForSelector(`iframe[name=${name}]`);
      const f = await handle.contentFrame();
      await f.waitForFunction(() => window.switchboard && window.switchboard.state === 'open' && window.switchboard.rooms.length === 1);
      return f;
    }),
  );
  await left.fill('#name', 'ada');
  await right.fill('#name', 'grace');
  for (const f of [left, right]) await f.dispatchEvent('#name', 'change');
  const say = async (f, text) => {
    await f.fill('#text', text);
    await f.click('#send');
    await f.waitForFunction(() => window.switchboard.pending === 0);
    await sleep(150);
  };
  await say(left, 'Hi! I am on a WebSocket.');
  await say(right, 'Hello — I am long polling, and I see you fine.');
  await say(left, 'Close your connection, send something, then reconnect.');
  await right.click('#toggle');
  await right.fill('#text', 'This one waits in the queue…');
  await right.click('#send');
  await sleep(300);
  await say(left, 'Nothing yet on my side.');
  await right.click('#toggle');
  await right.waitForFunction(() => window.switchboard.pending === 0);
  await sleep(1200);
  const out = path.join(REPO, 'docs/demo.png');
  await page.screenshot({ path: out });
  console.log('wrote', out);
} finally {
  await browser.close();
  await server.stop();
}

// Takes docs/demo.png: the demo chat as ada sees it after a short
// conversation with grace and linus: rooms with unread counts, a direct
// message, who is here, read receipts and linus typing.
// Run: node tests/browser/screenshot.js (after cargo build; DEMO_DIR=crates/switchboard/static
// serves the demo's files from disk instead of the ones built in).

import path from 'node:path';

import { REPO, launchBrowser, sleep, startServer } from './harness.js';

const server = await startServer({ staticDir: process.env.DEMO_DIR || null });
const browser = await launchBrowser();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const open = async (name) => {
    const page = await context.newPage();
    await page.goto(`${server.origin}/?name=${name}`);
    await page.waitForFunction(() => document.querySelector('#state').dataset.state === 'open' && /beginning|No messages/.test(document.querySelector('#history-top')?.textContent));
    return page;
  };
  const say = async (page, text) => {
    await page.fill('#text', text);
    await page.click('#send');
    await page.waitForFunction(() => !document.querySelector('#messages li.pending'));
    await sleep(250);
  };
  const join = async (page, room) => {
    await page.fill('#join-room', room);
    await page.click('#join');
    await page.waitForFunction((r) => document.querySelector('#room-title').textContent === '#' + r, room);
  };
  const ada = await open('ada');
  const grace = await open('grace');
  const linus = await open('linus');
  await join(ada, 'design');
  await join(grace, 'design');
  await ada.click('button[data-room="lobby"]');
  await grace.click('button[data-room="lobby"]');
  await say(grace, 'Morning! Is the new build up?');
  await say(ada, 'It is — WebSocket here, and it falls back to SSE or long polling by itself.');
  await say(linus, 'Same on my side. Reconnects are seamless, nothing lost.');
  await say(grace, 'Nice. I left notes on the layout in #design.');
  await say(ada, 'Great, reading them after lunch.');
  await grace.click('button[data-room="design"]');
  await say(grace, 'Sidebar: 250 px feels right.');
  await say(grace, 'And the unread badges could be a bit bolder?');
  await grace.click('#presence li[data-user="ada"] button');
  await grace.waitForFunction(() => document.querySelector('#room-title').textContent === 'ada');
  await say(grace, 'Lunch at 12:30?');
  await linus.type('#text', 'Let me check the', { delay: 40 });
  await ada.waitForFunction(() => document.querySelector('#typing').textContent !== '');
  await sleep(300);
  const out = path.join(REPO, 'docs/demo.png');
  await ada.screenshot({ path: out });
  console.log('wrote', out);
} finally {
  await browser.close();
  await server.stop();
}

// Which ways of holding a never-ending HTML stream in a frame leave the
// browser tab "complete"? The evidence behind the htmlfile paragraph of
// clients/js/README.md. Not a test: it reports what this Chromium does.
// Run: node tests/browser/iframe-loading-probe.js
//
// A local server streams `<script>` chunks forever (like /v1/htmlfile); each
// arrangement is loaded in its own tab after the page's load event, and the
// tab's chrome.tabs status is read through tab-status-extension/. `scripts`
// counts the chunks that ran in the last 600 ms: an arrangement that stops
// the spinner by stopping the stream is no answer.

import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { sleep } from './harness.js';

const EXTENSION = path.join(path.dirname(new URL(import.meta.url).pathname), 'tab-status-extension');

/** Each arrangement: a script run in the page once it has loaded. */
const ARRANGEMENTS = {
  'iframe (what the client does)': `const f = document.createElement('iframe'); f.src = '/stream'; document.body.appendChild(f);`,
  'iframe in an about:blank helper iframe': `const h = document.createElement('iframe'); document.body.appendChild(h);
    setTimeout(() => { const f = h.contentDocument.createElement('iframe'); f.src = location.origin + '/stream'; h.contentDocument.body.appendChild(f); }, 100);`,
  'helper iframe written with document.write': `const h = document.createElement('iframe'); document.body.appendChild(h);
    h.contentDocument.open(); h.contentDocument.write('<iframe src="' + location.origin + '/stream"></iframe>'); h.contentDocument.close();`,
  '<object type=text/html>': `const o = document.createElement('object'); o.type = 'text/html'; o.data = '/stream'; document.body.appendChild(o);`,
  'sandboxed iframe': `const f = document.createElement('iframe'); f.sandbox = 'allow-scripts allow-same-origin'; f.src = '/stream'; document.body.appendChild(f);`,
  'iframe whose stream calls window.stop()': `const f = document.createElement('iframe'); f.src = '/stream?stop=1'; document.body.appendChild(f);`,
  'iframe in a document.implementation document': `const d = document.implementation.createHTMLDocument(''); const f = d.createElement('iframe'); f.src = location.origin + '/stream'; d.body.appendChild(f); window.keep = d;`,
};

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/stream') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.write(`<!doctype html><body>${' '.repeat(1024)}${url.searchParams.get('stop') ? '<script>window.stop()</script>' : ''}`);
    const timer = setInterval(() => res.write('<script>window.top.chunks = (window.top.chunks || 0) + 1</script>\n'), 100);
    req.on('close', () => clearInterval(timer));
    return;
  }
  const script = ARRANGEMENTS[decodeURIComponent(url.pathname.slice(1))];
  if (!script) return res.writeHead(404).end();
  res.writeHead(200, { 'content-type': 'text/html' }).end(`<!doctype html><body><script>addEventListener('load', () => setTimeout(() => { ${script} }, 0));</script></body>`);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;
const profile = await mkdtemp(path.join(os.tmpdir(), 'switchboard-probe-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', `--disable-extensions-except=${EXTENSION}`, `--load-extension=${EXTENSION}`],
});
try {
  const worker = context.serviceWorkers()[0] ?? (await context.waitForEvent('serviceworker', { timeout: 10000 }));
  console.log(`${context.browser()?.version() ?? 'chromium'}: tab status with the stream open`);
  for (const name of Object.keys(ARRANGEMENTS)) {
    const page = await context.newPage();
    await page.goto(`${origin}/${encodeURIComponent(name)}`);
    await sleep(1500);
    const before = await page.evaluate(() => window.chunks || 0);
    await sleep(600);
    const scripts = (await page.evaluate(() => window.chunks || 0)) - before;
    const tab = (await worker.evaluate(() => self.tabStatus())).find((t) => t.url === page.url());
    console.log(`  ${tab?.status.padEnd(8)}  scripts ${String(scripts).padStart(2)}  ${name}`);
    await page.close();
  }
} finally {
  await context.close();
  server.closeAllConnections();
  server.close();
  await rm(profile, { recursive: true, force: true });
}

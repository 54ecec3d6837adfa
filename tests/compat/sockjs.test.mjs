// The SockJS endpoints against the official SockJS client (sockjs-client
// 1.6, in Node: the transports it has there are websocket, xhr-streaming,
// eventsource and xhr-polling): echo across the response limit, the close
// service, odd characters, and a room shared by a SockJS, a socket.io and a
// native client. The browser transports are in sockjs.browser.test.mjs.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import SockJS from 'sockjs-client';
import { io } from 'socket.io-client';

import { once, sleep, startServer, until } from './server.mjs';

// A small response limit makes streaming responses end (and the client
// reopen them) several times within one test.
const CONFIG = `
[sockjs]
response_limit = 4096
heartbeat = "2s"
disconnect_delay = "1s"
`;

const NODE_TRANSPORTS = ['websocket', 'xhr-streaming', 'eventsource', 'xhr-polling'];

let server;
const sockets = [];

before(async () => {
  server = await startServer(CONFIG);
});

after(async () => {
  for (const s of sockets) s.close?.() ?? s.disconnect?.();
  await server?.stop();
});

/** Opens a SockJS connection forced onto `transport`; resolves once open. */
function open(prefix, transport) {
  const sock = new SockJS(server.url + prefix, null, { transports: [transport], timeout: 10000 });
  sockets.push(sock);
  const received = [];
  sock.received = received;
  sock.onmessage = (e) => received.push(e.data);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${transport}: no open within 10 s`)), 10000);
    sock.onopen = () => {
      clearTimeout(timer);
      resolve(sock);
    };
    sock.onclose = (e) => {
      clearTimeout(timer);
      sock.closed = e;
      reject(new Error(`${transport}: closed before open: ${e.code} ${e.reason}`));
    };
  });
}

/** Resolves with the close event of `sock`. */
function closed(sock, ms = 10000) {
  if (sock.closed) return Promise.resolve(sock.closed);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no close event')), ms);
    sock.onclose = (e) => {
      clearTimeout(timer);
      resolve(e);
    };
  });
}

const ODD = [
  'plain',
  '</script><!-- & "quotes" \\ back',
  '\u2028\u2029 line separators',
  '\u200c\u200f\u2060\ufeff\ufff0\uffff invisible',
  '%41%zz percent',
  'ünïcödé 日本語 😀',
  '\u0000\u0001\n\r\t controls',
  '',
];

for (const transport of NODE_TRANSPORTS) {
  describe(`sockjs-client ${transport} (Node)`, () => {
    it('echoes every message once, in order, across response limits', async () => {
      const sock = await open('/sockjs/echo', transport);
      assert.equal(sock.transport, transport);
      const sent = [];
      for (let i = 0; i < 120; i++) sent.push(`${i}:${'x'.repeat(100)}`);
      sent.push(...ODD);
      for (const m of sent) sock.send(m);
      await until(() => sock.received.length >= sent.length, 15000, `${sent.length} echoes`);
      await sleep(100);
      assert.deepEqual(sock.received, sent);
      sock.close();
      const e = await closed(sock);
      assert.equal(e.code, 1000);
    });

    it('is closed by the close service with 3000 "Go away!"', async () => {
      const sock = new SockJS(`${server.url}/sockjs/close`, null, { transports: [transport] });
      sockets.push(sock);
      let opened = false;
      sock.onopen = () => (opened = true);
      const e = await closed(sock);
      assert.equal(opened, true);
      assert.equal(e.code, 3000);
      assert.equal(e.reason, 'Go away!');
    });
  });
}

describe('the SockJS rooms service', () => {
  it('shows a SockJS, a socket.io and a native client each other\'s messages', async () => {
    const room = `mix-${Math.random().toString(36).slice(2, 8)}`;
    const sock = await open('/sockjs/chat', 'xhr-streaming');
    const sockMsgs = () =>
      sock.received.map((t) => JSON.parse(t)).filter((m) => m.type === 'msg' && m.room === room);
    sock.send(JSON.stringify({ type: 'join', room, cid: 'j' }));
    await until(() => sock.received.some((t) => JSON.parse(t).cid === 'j'), 5000, 'the SockJS join ack');

    const sio = io(server.url, { forceNew: true, reconnection: false, transports: ['websocket'] });
    sockets.push(sio);
    await once(sio, 'connect');
    const sioMsgs = [];
    sio.on('message', (d) => sioMsgs.push(d));
    await new Promise((resolve) => sio.emit('join', room, resolve));

    const welcome = (await (await fetch(`${server.url}/v1/poll?name=nat`)).json())[0];
    const send = (frames) =>
      fetch(`${server.url}/v1/send?sid=${welcome.sid}`, { method: 'POST', body: JSON.stringify(frames) });
    assert.equal((await send([{ type: 'join', room, cid: 'j1' }])).status, 200);
    let last = 0;
    const nativeMsgs = [];
    const pollNative = async () => {
      const frames = await (await fetch(`${server.url}/v1/poll?sid=${welcome.sid}&last=${last}&wait=100`)).json();
      for (const f of frames) {
        if (f.seq) last = Math.max(last, f.seq);
        if (f.type === 'msg' && f.room === room) nativeMsgs.push(f.data);
      }
    };

    sock.send(JSON.stringify({ type: 'publish', room, data: { text: 'from sockjs' }, cid: 'p1' }));
    await until(() => sockMsgs().length === 1, 5000, 'the SockJS message at its sender');
    await new Promise((resolve) => sio.emit('publish', { room, data: { text: 'from socket.io' } }, resolve));
    await send([{ type: 'publish', room, data: { text: 'from native' }, cid: 'p2' }]);

    const expected = [{ text: 'from sockjs' }, { text: 'from socket.io' }, { text: 'from native' }];
    const deadline = Date.now() + 5000;
    while (nativeMsgs.length < 3 && Date.now() < deadline) await pollNative();
    await until(() => sockMsgs().length >= 3 && sioMsgs.length >= 3, 5000, 'every message everywhere');
    await sleep(200);
    await pollNative();
    assert.deepEqual(sockMsgs().map((m) => m.data), expected);
    assert.deepEqual(sioMsgs, expected);
    assert.deepEqual(nativeMsgs, expected);
    const fromSockjs = sockMsgs()[0];
    assert.equal(typeof fromSockjs.from, 'string');
    assert.equal(fromSockjs.seq, undefined);
  });
});

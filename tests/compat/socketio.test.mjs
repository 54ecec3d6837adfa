// The socket.io endpoint against the official socket.io client (v4, in
// Node) and against raw engine.io requests: transports and upgrade, acks
// both ways, binary, rooms, namespaces and auth, connection state recovery,
// a room shared with a native client, and malformed input.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';

import { io } from 'socket.io-client';
import WebSocket from 'ws';

import { freePort, once, sleep, startServer, until } from './server.mjs';

const REDIS = process.env.REDIS_SERVER || '/usr/bin/redis-server';

const PING_INTERVAL = 1000;
const PING_TIMEOUT = 1000;
const CONFIG = `
[socketio]
ping_interval = "${PING_INTERVAL}ms"
ping_timeout = "${PING_TIMEOUT}ms"
namespaces = ["/", "/chat"]
`;

let server;
const clients = [];

before(async () => {
  server = await startServer(CONFIG);
});

after(async () => {
  for (const c of clients) c.disconnect();
  await server?.stop();
});

const unique = (prefix) => `${prefix}-${Math.random().toString(36).slice(2, 10)}`;

/** A socket.io client on its own connection (no multiplexing between tests). */
function client(namespace = '/', options = {}) {
  const socket = io(server.url + namespace, { forceNew: true, reconnection: false, ...options });
  clients.push(socket);
  return socket;
}

async function connected(socket) {
  if (!socket.connected) await once(socket, 'connect');
  return socket;
}

/** Emits with an ack callback; resolves with every argument of the ack. */
function emitAck(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ack for ${event}`)), 5000);
    socket.emit(event, ...args, (...answer) => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

// Raw engine.io over HTTP long polling.
const pollUrl = (query = '') => `${server.url}/socket.io/?EIO=4&transport=polling${query}`;
const rawGet = (sid) => fetch(pollUrl(`&sid=${sid}`));
const rawPost = (sid, body) => fetch(pollUrl(`&sid=${sid}`), { method: 'POST', body });
async function rawHandshake() {
  const text = await (await fetch(pollUrl())).text();
  return JSON.parse(text.slice(1)).sid;
}

describe('engine.io handshake and errors', () => {
  it('answers the handshake with exactly the protocol fields', async () => {
    const res = await fetch(pollUrl());
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/plain/);
    const text = await res.text();
    assert.equal(text[0], '0');
    const open = JSON.parse(text.slice(1));
    assert.deepEqual(Object.keys(open), ['sid', 'upgrades', 'pingInterval', 'pingTimeout', 'maxPayload']);
    assert.equal(typeof open.sid, 'string');
    assert.deepEqual(open.upgrades, ['websocket']);
    assert.equal(open.pingInterval, PING_INTERVAL);
    assert.equal(open.pingTimeout, PING_TIMEOUT);
    assert.equal(open.maxPayload, 1000000);
  });

  it('refuses bad requests with the engine.io error codes', async () => {
    const cases = [
      [`${server.url}/socket.io/?transport=polling`, {}, 400, { code: 5, message: 'Unsupported protocol version' }],
      [`${server.url}/socket.io/?EIO=3&transport=polling`, {}, 400, { code: 5, message: 'Unsupported protocol version' }],
      [`${server.url}/socket.io/?EIO=4&transport=abc`, {}, 400, { code: 0, message: 'Transport unknown' }],
      [`${server.url}/socket.io/?EIO=4`, {}, 400, { code: 0, message: 'Transport unknown' }],
      [pollUrl(), { method: 'POST', body: '40' }, 400, { code: 2, message: 'Bad handshake method' }],
      [pollUrl('&sid=nope'), {}, 400, { code: 1, message: 'Session ID unknown' }],
      [`${server.url}/socket.io/?EIO=4&transport=websocket`, {}, 400, { code: 3, message: 'Bad request' }],
    ];
    for (const [url, init, status, body] of cases) {
      const res = await fetch(url, init);
      assert.equal(res.status, status, url);
      assert.deepEqual(await res.json(), body, url);
    }
  });

  it('refuses an origin that is not allowed with 403 "Forbidden"', async () => {
    const restricted = await startServer(`allowed_origins = ["http://good.example"]\n`);
    try {
      const url = `${restricted.url}/socket.io/?EIO=4&transport=polling`;
      const bad = await fetch(url, { headers: { origin: 'http://evil.example' } });
      assert.equal(bad.status, 403);
      assert.deepEqual(await bad.json(), { code: 4, message: 'Forbidden' });
      const good = await fetch(url, { headers: { origin: 'http://good.example' } });
      assert.equal(good.status, 200);
      assert.equal(good.headers.get('access-control-allow-origin'), 'http://good.example');
      assert.equal(good.headers.get('access-control-allow-credentials'), 'true');
    } finally {
      await restricted.stop();
    }
  });
});

/**
 * Upgrades polling session `sid` of the server on `port` to a WebSocket:
 * `2probe` → `3probe`, polls until the held one answers `noop` (answering
 * pings meanwhile), then the caller sends `5`. Returns the WebSocket.
 */
async function probeUpgrade(port, sid) {
  const poll = `http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);
  ws.on('error', () => {});
  await once(ws, 'open');
  ws.send('2probe');
  const [probe] = await once(ws, 'message');
  assert.equal(probe.toString(), '3probe');
  for (;;) {
    const text = await (await fetch(poll)).text();
    if (text === '6') break;
    await fetch(poll, { method: 'POST', body: '3' }); // a ping came first: answer it and poll again
  }
  return ws;
}

describe('engine.io heartbeat, close and upgrade', () => {
  it('pings over polling and closes the session when the pong is late', async () => {
    const sid = await rawHandshake();
    assert.equal(await (await rawGet(sid)).text(), '2');
    assert.equal(await (await rawPost(sid, '3')).text(), 'ok');
    assert.equal(await (await rawGet(sid)).text(), '2');
    await sleep(PING_TIMEOUT + 500);
    assert.equal((await rawGet(sid)).status, 400);
  });

  it('closes the session on a second concurrent poll', async () => {
    const sid = await rawHandshake();
    const first = rawGet(sid);
    await sleep(50);
    const second = await rawGet(sid);
    assert.equal(second.status, 400);
    assert.equal(await (await first).text(), '1');
    assert.equal((await rawGet(sid)).status, 400);
  });

  it('ends a held poll with noop when the client sends close', async () => {
    const sid = await rawHandshake();
    const held = rawGet(sid);
    await sleep(50);
    assert.equal(await (await rawPost(sid, '1')).text(), 'ok');
    assert.equal(await (await held).text(), '6');
    assert.equal((await rawGet(sid)).status, 400);
  });

  it('upgrades a polling session by probe, noop and upgrade', async () => {
    const sid = await rawHandshake();
    const ws = await probeUpgrade(server.port, sid);
    ws.send('5');
    const packets = [];
    ws.on('message', (data) => {
      const text = data.toString();
      if (text === '2') ws.send('3');
      else packets.push(text);
    });
    ws.send('40');
    await until(() => packets.length > 0, 3000, 'the CONNECT answer');
    assert.match(packets[0], /^40\{"sid":"[^"]+","pid":"[0-9a-f]{32}"\}$/);
    assert.equal((await rawGet(sid)).status, 400, 'polling is refused after the upgrade');
    const second = new WebSocket(`ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);
    second.on('error', () => {});
    await once(second, 'close');
    ws.close();
  });
});

describe('engine.io timeouts on a websocket', () => {
  const TIMED = { ping_interval: 400, ping_timeout: 300, connect_timeout: 1000 };
  let timed;

  before(async () => {
    timed = await startServer(`
[socketio]
ping_interval = "${TIMED.ping_interval}ms"
ping_timeout = "${TIMED.ping_timeout}ms"
connect_timeout = "${TIMED.connect_timeout}ms"
`);
  });

  after(async () => {
    await timed?.stop();
  });

  /**
   * A raw WebSocket that records what it receives (with the time since its
   * open packet), answers pings when `pong` is set, and resolves `closed`
   * with the time of the close.
   */
  async function rawSocket({ pong, connect }) {
    const ws = new WebSocket(`ws://127.0.0.1:${timed.port}/socket.io/?EIO=4&transport=websocket`);
    ws.on('error', () => {});
    const log = [];
    let start;
    ws.on('message', (data) => {
      const text = data.toString();
      start ??= Date.now();
      log.push([Date.now() - start, text]);
      if (text === '2' && pong) ws.send('3');
    });
    const closed = new Promise((resolve) => ws.on('close', () => resolve(Date.now() - start)));
    await until(() => log.length === 1, 3000, 'the open packet');
    if (connect) {
      ws.send('40');
      await until(() => log.length === 2, 3000, 'the CONNECT answer');
      assert.match(log[1][1], /^40\{/);
    }
    return { ws, log, closed };
  }

  it('closes a websocket that joins no namespace within connect_timeout, though it answers pings', async () => {
    const idle = await rawSocket({ pong: true, connect: false });
    const joined = await rawSocket({ pong: true, connect: true });
    const at = await idle.closed;
    assert.ok(at >= TIMED.connect_timeout - 50 && at < TIMED.connect_timeout + 600, `closed after ${at} ms`);
    const pings = idle.log.filter(([, text]) => text === '2').length;
    assert.ok(pings >= 2, `it answered ${pings} pings: not a ping timeout`);
    // The socket that connected to a namespace outlives the connect timeout.
    await sleep(TIMED.connect_timeout);
    assert.equal(joined.ws.readyState, WebSocket.OPEN);
    joined.ws.close();
  });

  it('keeps the heartbeat of a connection upgraded from polling, on its websocket', async () => {
    // The polling connection's driver moves into the WebSocket's task at
    // the upgrade: the pings must go on from there, and a missing pong
    // must still close the connection.
    const base = `http://127.0.0.1:${timed.port}/socket.io/?EIO=4&transport=polling`;
    const open = JSON.parse((await (await fetch(base)).text()).slice(1));
    const poll = `${base}&sid=${open.sid}`;
    const ws = await probeUpgrade(timed.port, open.sid);
    let pong = true;
    const log = [];
    const start = Date.now();
    ws.on('message', (data) => {
      const text = data.toString();
      log.push([Date.now() - start, text]);
      if (text === '2' && pong) ws.send('3');
    });
    const closed = new Promise((resolve) => ws.on('close', () => resolve(Date.now() - start)));
    ws.send('5');
    ws.send('40');
    await until(() => log.some(([, text]) => text.startsWith('40{')), 3000, 'the CONNECT answer');
    await sleep(3 * TIMED.ping_interval);
    const answered = log.filter(([, text]) => text === '2').length;
    assert.ok(answered >= 2, `${answered} pings over the upgraded websocket`);
    assert.equal(ws.readyState, WebSocket.OPEN, 'answered pings keep it open');
    pong = false;
    const silentFrom = Date.now() - start;
    const at = await closed;
    const due = TIMED.ping_interval + TIMED.ping_timeout;
    assert.ok(at - silentFrom < due + 600, `closed ${at - silentFrom} ms after the pongs stopped (due within ${due} ms)`);
    assert.equal((await fetch(poll)).status, 400, 'the connection is gone');
  });

  it('closes a websocket that does not answer a ping within ping_timeout', async () => {
    const silent = await rawSocket({ pong: false, connect: true });
    const at = await silent.closed;
    const due = TIMED.ping_interval + TIMED.ping_timeout;
    assert.ok(at >= due - 50 && at < due + 600, `closed after ${at} ms, due after ${due} ms`);
    const pings = silent.log.filter(([, text]) => text === '2');
    assert.equal(pings.length, 1, 'one unanswered ping');
    assert.ok(pings[0][0] >= TIMED.ping_interval - 50, `the ping came after ${pings[0][0]} ms`);
  });
});

for (const transports of [['polling'], ['websocket']]) {
  describe(`socket.io over ${transports[0]} only`, () => {
    it('connects, acks both ways and carries binary', async () => {
      const socket = await connected(client('/', { transports, upgrade: false }));
      assert.equal(socket.io.engine.transport.name, transports[0]);
      const [n, s, obj, buf] = await emitAck(socket, 'echo', 1, 'two', { three: [3] }, Buffer.from([1, 2, 255]));
      assert.deepEqual([n, s, obj], [1, 'two', { three: [3] }]);
      assert.ok(Buffer.isBuffer(buf));
      assert.deepEqual([...buf], [1, 2, 255]);

      socket.on('question', (x, ack) => ack(x * 2, Buffer.from('ok')));
      const answer = once(socket, 'answer');
      await emitAck(socket, 'ask', 21);
      const [doubled, bytes] = await answer;
      assert.equal(doubled, 42);
      assert.equal(Buffer.from(bytes).toString(), 'ok');

      const echoed = once(socket, 'echo');
      socket.emit('echo', Buffer.from([9, 8]), 'x');
      const [back, x] = await echoed;
      assert.deepEqual([...back], [9, 8]);
      assert.equal(x, 'x');
      assert.equal(socket.io.engine.transport.name, transports[0]);
    });
  });
}

describe('socket.io with the upgrade', () => {
  it('starts on polling and moves to websocket', async () => {
    const socket = client('/');
    const upgraded = once(socket.io.engine, 'upgrade');
    await connected(socket);
    const transport = await upgraded;
    assert.equal(transport.name, 'websocket');
    const [v] = await emitAck(socket, 'echo', 'after upgrade');
    assert.equal(v, 'after upgrade');
  });
});

describe('rooms and namespaces', () => {
  it('delivers a room publish and a room broadcast to every member once', async () => {
    const room = unique('room');
    const a = await connected(client('/', { transports: ['polling'] }));
    const b = await connected(client('/', { transports: ['websocket'] }));
    assert.deepEqual(await emitAck(a, 'join', room), [{ ok: true }]);
    assert.deepEqual(await emitAck(b, 'join', room), [{ ok: true }]);
    const seen = { a: [], b: [] };
    a.on('message', (d) => seen.a.push(d));
    b.on('message', (d) => seen.b.push(d));
    const [published] = await emitAck(a, 'publish', { room, data: { text: 'hi' } });
    assert.equal(published.ok, true);
    assert.ok(published.id > 0);
    await until(() => seen.a.length === 1 && seen.b.length === 1, 3000, 'both members');
    assert.deepEqual(seen.a, [{ text: 'hi' }]);
    assert.deepEqual(seen.b, [{ text: 'hi' }]);

    const custom = once(a, 'custom');
    const [result] = await emitAck(b, 'broadcast', room, 'custom', { x: 1 }, Buffer.from([7]));
    assert.equal(result.ok, true);
    const [x, bin] = await custom;
    assert.deepEqual(x, { x: 1 });
    assert.deepEqual([...Buffer.from(bin)], [7]);
    await sleep(200);
    assert.equal(seen.a.length, 1, 'no duplicate');

    const [refused] = await emitAck(a, 'publish', { room: unique('other'), data: 1 });
    assert.match(refused.error, /join room/);
  });

  it('connects to a custom namespace with auth, and refuses bad auth and unknown namespaces', async () => {
    const alice = await connected(client('/chat', { auth: { name: 'alice' } }));
    const [v] = await emitAck(alice, 'echo', 'in chat');
    assert.equal(v, 'in chat');

    const bad = client('/chat', { auth: { token: 'bad' } });
    const err = await once(bad, 'connect_error');
    assert.match(err.message, /development mode/);
    assert.equal(err.data.code, 4401);

    const nowhere = client('/nope');
    const err2 = await once(nowhere, 'connect_error');
    assert.equal(err2.message, 'Invalid namespace');
  });

  it('multiplexes two namespaces on one connection', async () => {
    const manager = io(server.url, { forceNew: true, reconnection: false }).io;
    const main = manager.socket('/');
    const chat = manager.socket('/chat', { auth: { name: 'bob' } });
    main.connect();
    chat.connect();
    clients.push(main, chat);
    await connected(main);
    await connected(chat);
    assert.notEqual(main.id, chat.id);
    const [a] = await emitAck(main, 'echo', 'main');
    const [b] = await emitAck(chat, 'echo', 'chat');
    assert.deepEqual([a, b], ['main', 'chat']);
  });
});

describe('connection state recovery', () => {
  const cuts = {
    'a closed websocket': ['websocket', (socket) => socket.io.engine.close()],
    'a closed polling session': ['polling', (socket) => socket.io.engine.close()],
    // The TCP connection dies under the WebSocket: no close frame at all.
    'a reset TCP connection': ['websocket', (socket) => socket.io.engine.transport.ws._socket.destroy()],
  };
  for (const [name, [transport, cut]] of Object.entries(cuts)) {
    it(`replays what ${name} missed, with the same socket id`, async () => {
      const room = unique('recover');
      const a = await connected(
        client('/', { transports: [transport], reconnection: true, reconnectionDelay: 300, reconnectionDelayMax: 300 }),
      );
      const b = await connected(client('/', { transports: ['websocket'] }));
      await emitAck(a, 'join', room);
      await emitAck(b, 'join', room);
      const got = [];
      a.on('message', (d) => got.push(d.n));
      await emitAck(b, 'publish', { room, data: { n: 1 } });
      await until(() => got.length === 1, 3000, 'the first message');
      const id = a.id;
      assert.equal(a.recovered, false);

      const down = once(a, 'disconnect');
      cut(a);
      await down;
      await emitAck(b, 'publish', { room, data: { n: 2 } });
      await emitAck(b, 'publish', { room, data: { n: 3 } });
      await once(a, 'connect');
      assert.equal(a.recovered, true);
      assert.equal(a.id, id);
      await until(() => got.length >= 3, 3000, 'the missed messages');
      await sleep(200);
      assert.deepEqual(got, [1, 2, 3]);

      await emitAck(b, 'publish', { room, data: { n: 4 } });
      await until(() => got.length === 4, 3000, 'a message after recovery');
    });
  }

  it('gives a fresh socket when the pid is unknown', async () => {
    const socket = client('/', { auth: { pid: '0'.repeat(32), offset: '5' } });
    await connected(socket);
    assert.equal(socket.recovered, false);
  });
});

describe('a room shared with a native client', () => {
  it('shows each side the other side\'s messages once', async () => {
    const room = unique('mix');
    const welcome = (await (await fetch(`${server.url}/v1/poll?name=nat`)).json())[0];
    const sid = welcome.sid;
    let last = 0;
    const nativeMsgs = [];
    const pollNative = async () => {
      const frames = await (await fetch(`${server.url}/v1/poll?sid=${sid}&last=${last}&wait=100`)).json();
      for (const f of frames) {
        if (f.seq) last = Math.max(last, f.seq);
        if (f.type === 'msg' && f.room === room) nativeMsgs.push(f.data);
      }
    };
    const send = (frames) =>
      fetch(`${server.url}/v1/send?sid=${sid}`, { method: 'POST', body: JSON.stringify(frames) });
    assert.equal((await send([{ type: 'join', room, cid: 'j1' }])).status, 200);

    const socket = await connected(client('/', { transports: ['websocket'] }));
    await emitAck(socket, 'join', room);
    const sioMsgs = [];
    socket.on('message', (d) => sioMsgs.push(d));

    const [ok] = await emitAck(socket, 'publish', { room, data: { text: 'from socket.io' } });
    assert.equal(ok.ok, true);
    await send([{ type: 'publish', room, data: { text: 'from native' }, cid: 'p1' }]);

    const deadline = Date.now() + 5000;
    while (nativeMsgs.length < 2 && Date.now() < deadline) await pollNative();
    await until(() => sioMsgs.length >= 2, 3000, 'both messages at the socket.io client');
    await sleep(200);
    await pollNative();
    assert.deepEqual(nativeMsgs, [{ text: 'from socket.io' }, { text: 'from native' }]);
    assert.deepEqual(sioMsgs, [{ text: 'from socket.io' }, { text: 'from native' }]);
  });
});

describe('malformed input', () => {
  it('closes the session on a bad polling payload or packet and keeps serving', async () => {
    for (const body of ['abc', '4abc', '42["connect"]', 'b!!!', '40\x1e4{"x":1', '451-["a",{"_placeholder":true,"num":0}]\x1e40']) {
      const sid = await rawHandshake();
      const res = await rawPost(sid, body);
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.deepEqual(await res.json(), { code: 3, message: 'Bad request' });
      assert.equal((await rawGet(sid)).status, 400, `session closed after ${JSON.stringify(body)}`);
    }
    const sid = await rawHandshake();
    const big = await rawPost(sid, '4' + 'x'.repeat(1_000_001));
    assert.equal(big.status, 413);
    assert.equal((await rawGet(sid)).status, 400);

    const early = await rawHandshake();
    assert.equal((await rawPost(early, '42["echo",1]')).status, 400, 'an event before any CONNECT');
    assert.equal((await rawGet(early)).status, 400);

    const orphan = await rawHandshake();
    assert.equal((await rawPost(orphan, 'bAQID')).status, 400, 'binary without a binary packet');

    const socket = await connected(client('/'));
    const [v] = await emitAck(socket, 'echo', 'still serving');
    assert.equal(v, 'still serving');
  });

  it('closes a websocket that sends a bad packet', async () => {
    for (const bad of ['abc', '4abc', '40', '42{}']) {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket`);
      ws.on('error', () => {});
      const [open] = await once(ws, 'message');
      assert.equal(open.toString()[0], '0');
      ws.send(bad);
      if (bad === '40') {
        // A valid CONNECT first: then the bad packet.
        await once(ws, 'message');
        ws.send('42');
      }
      await once(ws, 'close');
    }
  });

  it('takes a websocket message of maxPayload bytes and closes with 1009 on a valid event over it', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket`);
    ws.on('error', () => {});
    const received = [];
    ws.on('message', (data) => {
      const text = data.toString();
      if (text === '2') ws.send('3');
      else received.push(text);
    });
    await until(() => received.length === 1, 3000, 'the open packet');
    ws.send('40');
    await until(() => received.length === 2, 3000, 'the CONNECT answer');
    assert.match(received[1], /^40\{/);

    const [head, tail] = ['421["echo","', '"]'];
    const exactly = head + 'x'.repeat(1_000_000 - head.length - tail.length) + tail;
    assert.equal(Buffer.byteLength(exactly), 1_000_000);
    ws.send(exactly);
    await until(() => received.length === 3, 5000, 'the ack of a message of maxPayload bytes');
    assert.equal(received[2], `431["${'x'.repeat(1_000_000 - head.length - tail.length)}"]`);

    const closed = once(ws, 'close');
    ws.send('42["echo","' + 'x'.repeat(1e6) + '"]');
    const [code] = await closed;
    assert.equal(code, 1009, 'WebSocket close 1009: message too big');
    assert.equal(received.length, 3, 'no echo of the oversized event');
  });

  it('ignores events for a namespace the connection did not join', async () => {
    const sid = await rawHandshake();
    assert.equal((await rawPost(sid, '40')).status, 200);
    assert.match(await (await rawGet(sid)).text(), /^40\{/);
    assert.equal((await rawPost(sid, '42/chat,["echo",1]\x1e421["echo","main"]')).status, 200);
    let text = '';
    while (!text.includes('431')) {
      const chunk = await (await rawGet(sid)).text();
      if (chunk === '2') await rawPost(sid, '3');
      text += chunk;
    }
    assert.equal(text, '431["main"]');
  });
});

describe('many nodes', { skip: !existsSync(REDIS) && 'no redis-server' }, () => {
  it('relays engine.io requests that land on another node to the connection\'s home node', async () => {
    const redisPort = await freePort();
    const redis = spawn(REDIS, ['--port', String(redisPort), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    const prefix = unique('sio');
    const config = `broker = "redis"\nredis_url = "redis://127.0.0.1:${redisPort}"\nredis_key_prefix = "${prefix}:"\n${CONFIG}`;
    const nodes = [];
    try {
      await until(() => redis.exitCode === null, 1000);
      for (let i = 0; i < 2; i++) nodes.push(await startServer(config));
      const [home, other] = nodes;
      const text = await (await fetch(`${home.url}/socket.io/?EIO=4&transport=polling`)).text();
      const sid = JSON.parse(text.slice(1)).sid;
      const at = (node) => `${node.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
      assert.equal(await (await fetch(at(other), { method: 'POST', body: '40' })).text(), 'ok');
      assert.match(await (await fetch(at(other))).text(), /^40\{"sid"/);
      assert.equal(await (await fetch(at(home), { method: 'POST', body: '421["echo","across"]' })).text(), 'ok');
      let answer = '';
      while (!answer.includes('431')) {
        const chunk = await (await fetch(at(other))).text();
        if (chunk === '2') await fetch(at(home), { method: 'POST', body: '3' });
        answer += chunk;
      }
      assert.equal(answer, '431["across"]');
    } finally {
      for (const node of nodes) await node.stop();
      redis.kill('SIGTERM');
    }
  });
});

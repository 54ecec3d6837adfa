// The official socket.io protocol v5 test suite, case by case, against
// Switchboard's socket.io endpoint.
//
// The cases, their names, the packets they send and what they expect follow
// the suite published with socket.io (socket.io repository,
// docs/socket.io-protocol/v5-test-suite/test-suite.js; MIT License,
// copyright Guillermo Rauch and Socket.IO contributors). The suite itself
// runs under mocha and chai; this file re-states its cases for the test
// runner of tests/compat (node:test, the `ws` client), in our own code. Where
// a case of the original only starts waiting for a close without awaiting
// it, it is awaited here, so that it can fail. Otherwise nothing is added,
// and the time limits are the original's (mocha's 2 s, 5 s for the
// heartbeat cases).
//
// The server is the suite's reference setup, built from the library alone:
// crates/switchboard-socketio/examples/protocol_suite_server.rs (pingInterval
// 300 ms, pingTimeout 200 ms, connectTimeout 1 s, maxPayload 1e6, the `/` and
// `/custom` namespaces echoing `auth`, `message` and `message-with-ack`).
// run.sh builds it.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it as test } from 'node:test';

import WebSocket from 'ws';

import { freePort, REPO, sleep } from './server.mjs';

const FIXTURE =
  process.env.PROTOCOL_SUITE_SERVER || path.join(REPO, 'target/debug/examples/protocol_suite_server');

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
// mocha's default limit per test, and the heartbeat cases' own.
const TIMEOUT = 2000;
const HEARTBEAT_TIMEOUT = 5000;

/** A case, failing after mocha's limit unless given another. */
const it = (name, fn, timeout = TIMEOUT) => test(name, { timeout }, fn);

let URL;
let WS_URL;
let fixture;
const sockets = [];

before(async () => {
  const port = await freePort();
  fixture = spawn(FIXTURE, [`127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`fixture did not start: ${out}`)), 15000);
    fixture.on('exit', (code) => reject(new Error(`fixture exited (${code}): ${out}`)));
    fixture.stdout.on('data', (d) => {
      out += d;
      if (out.includes('listening on')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  URL = `http://127.0.0.1:${port}`;
  WS_URL = URL.replace('http', 'ws');
});

after(async () => {
  for (const s of sockets) s.terminate();
  if (fixture && fixture.exitCode === null) {
    const exited = new Promise((resolve) => fixture.on('exit', resolve));
    process.kill(fixture.pid, 'SIGTERM');
    await exited;
  }
});

/**
 * A raw WebSocket client; its error events are expected and ignored. Like a
 * browser's WebSocket (the suite runs in browsers too), it delivers each
 * message in a task of its own, so a case that awaits one message has its
 * listener for the next in place before that one is delivered.
 */
function open(query) {
  const ws = new WebSocket(`${WS_URL}/socket.io/?${query}`, { allowSynchronousEvents: false });
  ws.on('error', () => {});
  sockets.push(ws);
  return ws;
}

/**
 * The next event `type` of `ws`: for `message`, the text of a text message
 * or the bytes (a Buffer) of a binary one.
 */
function waitFor(ws, type) {
  return new Promise((resolve) => {
    ws.once(type, (data, isBinary) => {
      if (type === 'message') resolve(isBinary ? data : data.toString());
      else resolve(data);
    });
  });
}

/** The next `count` messages that are not pings. */
function waitForPackets(ws, count) {
  const packets = [];
  return new Promise((resolve) => {
    const handler = (data, isBinary) => {
      const packet = isBinary ? data : data.toString();
      if (packet === '2') return;
      packets.push(packet);
      if (packets.length === count) {
        ws.off('message', handler);
        resolve(packets);
      }
    };
    ws.on('message', handler);
  });
}

async function initLongPollingSession() {
  const response = await fetch(`${URL}/socket.io/?EIO=4&transport=polling`);
  const content = await response.text();
  return JSON.parse(content.substring(1)).sid;
}

/** A WebSocket connected to the main namespace, its `auth` event read. */
async function initSocketIOConnection() {
  const ws = open('EIO=4&transport=websocket');
  await waitFor(ws, 'message'); // engine.io handshake
  ws.send('40');
  await waitFor(ws, 'message'); // socket.io handshake
  await waitFor(ws, 'message'); // the "auth" event
  return ws;
}

function assertOpenPacket(value, upgrades) {
  assert.deepEqual(Object.keys(value).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
  assert.equal(typeof value.sid, 'string');
  assert.deepEqual(value.upgrades, upgrades);
  assert.equal(value.pingInterval, PING_INTERVAL);
  assert.equal(value.pingTimeout, PING_TIMEOUT);
  assert.equal(value.maxPayload, 1000000);
}

function assertConnectAnswer(data, prefix) {
  assert.ok(data.startsWith(prefix), data);
  const handshake = JSON.parse(data.substring(prefix.length));
  assert.deepEqual(Object.keys(handshake), ['sid']);
  assert.equal(typeof handshake.sid, 'string');
}

describe('Engine.IO protocol', () => {
  describe('handshake', () => {
    describe('HTTP long-polling', () => {
      it('should successfully open a session', async () => {
        const response = await fetch(`${URL}/socket.io/?EIO=4&transport=polling`);
        assert.equal(response.status, 200);
        const content = await response.text();
        assert.ok(content.startsWith('0'), content);
        assertOpenPacket(JSON.parse(content.substring(1)), ['websocket']);
      });

      it("should fail with an invalid 'EIO' query parameter", async () => {
        assert.equal((await fetch(`${URL}/socket.io/?transport=polling`)).status, 400);
        assert.equal((await fetch(`${URL}/socket.io/?EIO=abc&transport=polling`)).status, 400);
      });

      it("should fail with an invalid 'transport' query parameter", async () => {
        assert.equal((await fetch(`${URL}/socket.io/?EIO=4`)).status, 400);
        assert.equal((await fetch(`${URL}/socket.io/?EIO=4&transport=abc`)).status, 400);
      });

      it('should fail with an invalid request method', async () => {
        const url = `${URL}/socket.io/?EIO=4&transport=polling`;
        assert.equal((await fetch(url, { method: 'post' })).status, 400);
        assert.equal((await fetch(url, { method: 'put' })).status, 400);
      });
    });

    describe('WebSocket', () => {
      it('should successfully open a session', async () => {
        const ws = open('EIO=4&transport=websocket');
        const data = await waitFor(ws, 'message');
        assert.ok(data.startsWith('0'), data);
        assertOpenPacket(JSON.parse(data.substring(1)), []);
        ws.close();
      });

      it("should fail with an invalid 'EIO' query parameter", async () => {
        await Promise.all([
          waitFor(open('transport=websocket'), 'close'),
          waitFor(open('EIO=abc&transport=websocket'), 'close'),
        ]);
      });

      it("should fail with an invalid 'transport' query parameter", async () => {
        await Promise.all([waitFor(open('EIO=4'), 'close'), waitFor(open('EIO=4&transport=abc'), 'close')]);
      });
    });
  });

  describe('heartbeat', () => {
    describe('HTTP long-polling', () => {
      it('should send ping/pong packets', async () => {
        const sid = await initLongPollingSession();
        const url = `${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
        for (let i = 0; i < 3; i++) {
          const pollResponse = await fetch(url);
          assert.equal(pollResponse.status, 200);
          assert.equal(await pollResponse.text(), '2');
          const pushResponse = await fetch(url, { method: 'post', body: '3' });
          assert.equal(pushResponse.status, 200);
        }
      }, HEARTBEAT_TIMEOUT);

      it('should close the session upon ping timeout', async () => {
        const sid = await initLongPollingSession();
        await sleep(PING_INTERVAL + PING_TIMEOUT);
        const pollResponse = await fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`);
        assert.equal(pollResponse.status, 400);
      }, HEARTBEAT_TIMEOUT);
    });

    describe('WebSocket', () => {
      it('should send ping/pong packets', async () => {
        const ws = open('EIO=4&transport=websocket');
        await waitFor(ws, 'message'); // handshake
        for (let i = 0; i < 3; i++) {
          assert.equal(await waitFor(ws, 'message'), '2');
          ws.send('3');
        }
        ws.close();
      }, HEARTBEAT_TIMEOUT);

      it('should close the session upon ping timeout', async () => {
        const ws = open('EIO=4&transport=websocket');
        await waitFor(ws, 'close');
      }, HEARTBEAT_TIMEOUT);
    });
  });

  describe('close', () => {
    describe('HTTP long-polling', () => {
      it('should forcefully close the session', async () => {
        const sid = await initLongPollingSession();
        const url = `${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
        const [pollResponse] = await Promise.all([fetch(url), fetch(url, { method: 'post', body: '1' })]);
        assert.equal(pollResponse.status, 200);
        assert.equal(await pollResponse.text(), '6');
        assert.equal((await fetch(url)).status, 400);
      });
    });

    describe('WebSocket', () => {
      it('should forcefully close the session', async () => {
        const ws = open('EIO=4&transport=websocket');
        await waitFor(ws, 'message'); // handshake
        ws.send('1');
        await waitFor(ws, 'close');
      });
    });
  });

  describe('upgrade', () => {
    it('should successfully upgrade from HTTP long-polling to WebSocket', async () => {
      const sid = await initLongPollingSession();
      const ws = open(`EIO=4&transport=websocket&sid=${sid}`);
      await waitFor(ws, 'open');
      ws.send('2probe');
      assert.equal(await waitFor(ws, 'message'), '3probe');
      ws.send('5');
    });

    it('should ignore HTTP requests with same sid after upgrade', async () => {
      const sid = await initLongPollingSession();
      const ws = open(`EIO=4&transport=websocket&sid=${sid}`);
      await waitFor(ws, 'open');
      ws.send('2probe');
      ws.send('5');
      const pollResponse = await fetch(`${URL}/socket.io/?EIO=4&transport=polling&sid=${sid}`);
      assert.equal(pollResponse.status, 400);
    });

    it('should ignore WebSocket connection with same sid after upgrade', async () => {
      const sid = await initLongPollingSession();
      const ws = open(`EIO=4&transport=websocket&sid=${sid}`);
      await waitFor(ws, 'open');
      ws.send('2probe');
      ws.send('5');
      const ws2 = open(`EIO=4&transport=websocket&sid=${sid}`);
      await waitFor(ws2, 'close');
    });
  });
});

describe('Socket.IO protocol', () => {
  describe('connect', () => {
    it('should allow connection to the main namespace', async () => {
      const ws = open('EIO=4&transport=websocket');
      await waitFor(ws, 'message'); // engine.io handshake
      ws.send('40');
      assertConnectAnswer(await waitFor(ws, 'message'), '40');
      assert.equal(await waitFor(ws, 'message'), '42["auth",{}]');
    });

    it('should allow connection to the main namespace with a payload', async () => {
      const ws = open('EIO=4&transport=websocket');
      await waitFor(ws, 'message');
      ws.send('40{"token":"123"}');
      assertConnectAnswer(await waitFor(ws, 'message'), '40');
      assert.equal(await waitFor(ws, 'message'), '42["auth",{"token":"123"}]');
    });

    it('should allow connection to a custom namespace', async () => {
      const ws = open('EIO=4&transport=websocket');
      await waitFor(ws, 'message');
      ws.send('40/custom,');
      assertConnectAnswer(await waitFor(ws, 'message'), '40/custom,');
      assert.equal(await waitFor(ws, 'message'), '42/custom,["auth",{}]');
    });

    it('should allow connection to a custom namespace with a payload', async () => {
      const ws = open('EIO=4&transport=websocket');
      await waitFor(ws, 'message');
      ws.send('40/custom,{"token":"abc"}');
      assertConnectAnswer(await waitFor(ws, 'message'), '40/custom,');
      assert.equal(await waitFor(ws, 'message'), '42/custom,["auth",{"token":"abc"}]');
    });

    it('should disallow connection to an unknown namespace', async () => {
      const ws = open('EIO=4&transport=websocket');
      await waitFor(ws, 'message');
      ws.send('40/random');
      assert.equal(await waitFor(ws, 'message'), '44/random,{"message":"Invalid namespace"}');
    });

    it('should disallow connection with an invalid handshake', async () => {
      const ws = open('EIO=4&transport=websocket');
      await waitFor(ws, 'message');
      ws.send('4abc');
      await waitFor(ws, 'close');
    });

    it('should close the connection if no handshake is received', async () => {
      const ws = open('EIO=4&transport=websocket');
      await waitFor(ws, 'close');
    });
  });

  describe('disconnect', () => {
    it('should disconnect from the main namespace', async () => {
      const ws = await initSocketIOConnection();
      ws.send('41');
      assert.equal(await waitFor(ws, 'message'), '2');
    });

    it('should connect then disconnect from a custom namespace', async () => {
      const ws = await initSocketIOConnection();
      await waitFor(ws, 'message'); // ping
      ws.send('40/custom');
      await waitFor(ws, 'message'); // socket.io handshake
      await waitFor(ws, 'message'); // the "auth" event
      ws.send('41/custom');
      ws.send('42["message","message to main namespace"]');
      assert.equal(await waitFor(ws, 'message'), '42["message-back","message to main namespace"]');
    });
  });

  describe('message', () => {
    it('should send a plain-text packet', async () => {
      const ws = await initSocketIOConnection();
      ws.send('42["message",1,"2",{"3":[true]}]');
      assert.equal(await waitFor(ws, 'message'), '42["message-back",1,"2",{"3":[true]}]');
    });

    it('should send a packet with binary attachments', async () => {
      const ws = await initSocketIOConnection();
      ws.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      ws.send(Uint8Array.from([1, 2, 3]));
      ws.send(Uint8Array.from([4, 5, 6]));
      const packets = await waitForPackets(ws, 3);
      assert.equal(packets[0], '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      assert.deepEqual([...packets[1]], [1, 2, 3]);
      assert.deepEqual([...packets[2]], [4, 5, 6]);
      ws.close();
    });

    it('should send a plain-text packet with an ack', async () => {
      const ws = await initSocketIOConnection();
      ws.send('42456["message-with-ack",1,"2",{"3":[false]}]');
      assert.equal(await waitFor(ws, 'message'), '43456[1,"2",{"3":[false]}]');
    });

    it('should send a packet with binary attachments and an ack', async () => {
      const ws = await initSocketIOConnection();
      ws.send('452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      ws.send(Uint8Array.from([1, 2, 3]));
      ws.send(Uint8Array.from([4, 5, 6]));
      const packets = await waitForPackets(ws, 3);
      assert.equal(packets[0], '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
      assert.deepEqual([...packets[1]], [1, 2, 3]);
      assert.deepEqual([...packets[2]], [4, 5, 6]);
      ws.close();
    });

    it('should close the connection upon invalid format (unknown packet type)', async () => {
      const ws = await initSocketIOConnection();
      ws.send('4abc');
      await waitFor(ws, 'close');
    });

    it('should close the connection upon invalid format (invalid payload format)', async () => {
      const ws = await initSocketIOConnection();
      ws.send('42{}');
      await waitFor(ws, 'close');
    });

    it('should close the connection upon invalid format (invalid ack id)', async () => {
      const ws = await initSocketIOConnection();
      ws.send('42abc["message-with-ack",1,"2",{"3":[false]}]');
      await waitFor(ws, 'close');
    });
  });
});

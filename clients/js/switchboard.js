// Switchboard JavaScript client: one session over whichever transport works.
//
// Implements the native protocol (docs/protocol.md, version 1). The client
// keeps one *session*; transports come and go under it. Every downstream
// frame has a seq; the client remembers the last one it processed and hands
// it back on every reconnect, so nothing is lost or seen twice. Upstream
// frames carry a cid and stay queued until the server answers them, so a
// retry is applied once.
//
// Layout of this file (one file so the server can serve it as is):
//   1. constants and small helpers
//   2. transports: one class per way of reaching the server
//   3. the Client: connection ladder, reconnect, upgrade, upstream queue
//
// No dependencies, no build step: an ES module for browsers (and Node with
// fetch/WebSocket for the transports that need no DOM).

/** Every transport, in the order `auto` tries them. */
export const TRANSPORTS = Object.freeze(['websocket', 'sse', 'stream', 'htmlfile', 'longpoll', 'jsonp', 'shortpoll']);

/** Defaults of every option; see README.md for what each one does. */
export const DEFAULTS = Object.freeze({
  transports: TRANSPORTS,
  connectTimeout: 4000,
  reconnectDelay: 500,
  reconnectDelayMax: 10000,
  randomization: 0.5,
  upgradeDelay: 3000,
  upgradeDelayMax: 60000,
  pollWait: 20000,
  shortPollInterval: 1000,
  ackInterval: 1000,
  ackEvery: 64,
  maxBatch: 64,
  sendTimeout: 15000,
  withCredentials: false,
  autoConnect: true,
  token: null,
  name: null,
  retries: 5,
});

/** An error the server answered (an `error` frame or an HTTP error). */
export class SwitchboardError extends Error {
  /**
   * @param {number} code a protocol code (docs/protocol.md §6)
   * @param {string} message what went wrong
   */
  constructor(code, message) {
    super(message);
    this.name = 'SwitchboardError';
    this.code = code;
  }
}

const CODE_SUPERSEDED = 4000;
const CODE_BUDGET = 4001;
const CODE_SHUTTING_DOWN = 4002;
const CODE_NO_SESSION = 4004;
/** Close codes after which the client must not reconnect by itself. */
const CODES_FINAL = new Set([4005, 4401]);
/** Sequenced frames that are events of their own (any frame is also a `frame` event). */
const FRAME_EVENTS = new Set(['presence', 'typing', 'read', 'rooms']);
/** Error codes of a frame that may simply be sent again later (same cid). */
const CODES_RETRY = new Set([4429, 4500]);
const HAS_DOM = typeof document !== 'undefined' && typeof window !== 'undefined';
/** Global object holding JSONP and htmlfile callbacks (`__switchboard.j1`). */
const REGISTRY = '__switchboard';
/** Per module instance, so two copies of this file never share a name. */
const KEY_PREFIX = 'k' + Math.random().toString(36).slice(2, 8);
let keyCounter = 0;

function registry() {
  if (!globalThis[REGISTRY]) globalThis[REGISTRY] = Object.create(null);
  return globalThis[REGISTRY];
}

function nextKey(kind) {
  keyCounter += 1;
  return kind + KEY_PREFIX + keyCounter;
}

/** Frees a callback slot later: a script or frame may still call it. */
function retireKey(key) {
  const reg = registry();
  reg[key] = () => {};
  setTimeout(() => delete reg[key], 120000);
}

function noop() {}

/** 16 random hex digits (64 bits). */
function randomId() {
  const bytes = new Uint8Array(8);
  if (globalThis.crypto && globalThis.crypto.getRandomValues) globalThis.crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i += 1) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** Resolves once the page's load event has passed: iframes and scripts
 * started before it would hold the load event back, and the page in "loading". */
function afterPageLoad() {
  if (!HAS_DOM || document.readyState === 'complete') return Promise.resolve();
  return new Promise((resolve) => window.addEventListener('load', () => setTimeout(resolve, 0), { once: true }));
}

function validRoom(room) {
  // 1 to 128 characters, none of them a control character (protocol §1.3).
  // eslint-disable-next-line no-control-regex
  return typeof room === 'string' && room.length >= 1 && [...room].length <= 128 && !/[\u0000-\u001f\u007f-\u009f]/.test(room);
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** fetch with a time limit and an optional outer abort signal. */
async function httpRequest(method, url, { body, timeout, credentials, signal }) {
  const controller = new AbortController();
  const abort = () => controller.abort();
  const timer = setTimeout(abort, timeout);
  if (signal) signal.addEventListener('abort', abort, { once: true });
  try {
    const response = await fetch(url, { method, body, credentials, signal: controller.signal });
    return { status: response.status, text: await response.text() };
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener('abort', abort);
  }
}

/** Loads `url` as a script whose answer calls a fresh global callback. */
function jsonpRequest(url, { timeout, signal }) {
  return new Promise((resolve, reject) => {
    const key = nextKey('j');
    const script = document.createElement('script');
    let done = false;
    const finish = (error, frames) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      retireKey(key);
      script.remove();
      if (error) reject(error);
      else resolve(frames);
    };
    const onAbort = () => finish(new Error('aborted'));
    const timer = setTimeout(() => finish(new Error('jsonp request timed out')), timeout);
    signal.addEventListener('abort', onAbort, { once: true });
    registry()[key] = (frames) => finish(null, frames);
    script.async = true;
    script.onerror = () => finish(new Error('jsonp request failed'));
    // Runs after the script executed: if it did not call back, it was no answer.
    script.onload = () => finish(new Error('jsonp answer did not call back'));
    script.src = url + '&callback=' + REGISTRY + '.' + key;
    (document.head || document.documentElement).appendChild(script);
  });
}

// ---------------------------------------------------------------------------
// 2. Transports
//
// A transport carries one *attachment* of the session. It reports to the
// client through `ctx`: `frame(t, f)` for every frame, `open(t)` once it
// knows it is attached (streams: with `welcome`; polls: on the first
// answer), `end(t, info)` when it stopped on its own. `stop()` abandons it
// silently. Only the WebSocket carries upstream frames itself (`send`); the
// others use `POST /v1/send`, which the client does.
// ---------------------------------------------------------------------------

class Transport {
  constructor(ctx, name) {
    this.name = name;
    this.ctx = ctx;
    this.opened = false;
    this.stopped = false;
    /** Sends `{"type":"ack"}` frames (streams); polls acknowledge with `last`. */
    this.acks = true;
    /** Expects a frame at least every heartbeat (ping), so silence means dead. */
    this.watched = true;
    /** When a frame last arrived. */
    this.rx = Date.now();
  }

  deliver(frame) {
    if (this.stopped) return;
    if (!frame || typeof frame !== 'object') {
      this.fail('malformed frame');
      return;
    }
    this.ctx.frame(this, frame);
  }

  fail(reason, code) {
    if (!this.stopped) this.ctx.end(this, { reason, code });
  }

  stop() {
    this.stopped = true;
  }
}

class WebSocketTransport extends Transport {
  constructor(ctx) {
    super(ctx, 'websocket');
    this.ws = null;
  }

  start() {
    const ws = new WebSocket(this.ctx.url('/v1/ws', this.ctx.params(), true));
    this.ws = ws;
    ws.onmessage = (event) => this.deliver(parseJson(event.data));
    ws.onclose = (event) => this.fail(event.reason || 'websocket closed', event.code);
  }

  /** Sends upstream frames as one message; false when the socket is gone. */
  send(frames) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    this.ws.send(JSON.stringify(frames.length === 1 ? frames[0] : frames));
    return true;
  }

  stop() {
    super.stop();
    if (this.ws) {
      this.ws.onmessage = this.ws.onclose = null;
      try {
        this.ws.close(1000);
      } catch {
        // Closing a socket that never opened may throw in old browsers.
      }
    }
  }
}

class EventSourceTransport extends Transport {
  constructor(ctx) {
    super(ctx, 'sse');
    // EventSource hides the `: hb` heartbeat comments from scripts.
    this.watched = false;
    this.es = null;
  }

  start() {
    const es = new EventSource(this.ctx.url('/v1/sse', this.ctx.params()), {
      withCredentials: this.ctx.options.withCredentials,
    });
    this.es = es;
    es.onmessage = (event) => this.deliver(parseJson(event.data));
    // The browser would reconnect by itself, but the client decides when
    // and where (and names its `last`), so any error ends this attachment.
    es.onerror = () => this.fail('event stream failed');
  }

  stop() {
    super.stop();
    if (this.es) {
      this.es.onmessage = this.es.onerror = null;
      this.es.close();
    }
  }
}

class StreamTransport extends Transport {
  constructor(ctx) {
    super(ctx, 'stream');
    this.controller = new AbortController();
  }

  async start() {
    const { ctx } = this;
    try {
      const response = await fetch(ctx.url('/v1/stream', ctx.params()), {
        credentials: ctx.credentials,
        signal: this.controller.signal,
      });
      if (!response.ok || !response.body) {
        this.fail('stream answered HTTP ' + response.status);
        return;
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffered = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (this.stopped) return;
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          if (line.trim()) this.deliver(parseJson(line));
          if (this.stopped) return;
        }
      }
      this.fail('stream ended');
    } catch (error) {
      this.fail('stream failed: ' + (error && error.message));
    }
  }

  stop() {
    super.stop();
    this.controller.abort();
  }
}

/** How long after the bridge iframe loaded its `end` message may still come (ms). */
const BRIDGE_END_GRACE = 1000;

/**
 * A hidden iframe loading `/v1/htmlfile`, whose `<script>` chunks call a
 * function of its parent. Across origins the parent cannot be called, so
 * the iframe loads the server's small bridge page instead; the bridge loads
 * the stream in its own iframe and relays each frame with `postMessage` to
 * the page's origin only. The page itself finishes loading (the iframe comes
 * after its load event), but Chromium shows the tab as loading while the
 * stream is open, whatever the frames are nested in (README.md).
 */
class HtmlFileTransport extends Transport {
  constructor(ctx) {
    super(ctx, 'htmlfile');
    this.key = nextKey('h');
    this.iframe = null;
    this.onMessage = null;
  }

  start() {
    const { ctx, key } = this;
    const iframe = document.createElement('iframe');
    iframe.setAttribute('aria-hidden', 'true');
    iframe.tabIndex = -1;
    iframe.loading = 'eager';
    iframe.style.cssText = 'position:absolute;width:0;height:0;border:0;visibility:hidden';
    const params = ctx.params();
    if (ctx.sameOrigin) {
      registry()[key] = (frame) => this.deliver(frame);
      iframe.src = ctx.url('/v1/htmlfile', { ...params, callback: REGISTRY + '.' + key });
    } else {
      // The bridge adds these to its own /v1/htmlfile request.
      const fragment = new URLSearchParams({ origin: location.origin, id: key });
      for (const [name, value] of Object.entries(params)) if (value !== null && value !== undefined) fragment.set(name, String(value));
      this.onMessage = (event) => {
        if (event.origin !== ctx.serverOrigin || event.source !== iframe.contentWindow) return;
        const data = event.data;
        if (!data || data.switchboard !== key) return;
        if (data.frame) this.deliver(data.frame);
        else if (data.end) this.fail('htmlfile stream ended');
      };
      window.addEventListener('message', this.onMessage);
      iframe.src = ctx.url('/htmlfile-bridge.html') + '#' + fragment;
    }
    // Fires when the stream (or the bridge holding it) finished loading, or
    // failed to: either way this attachment is over. The bridge runs in
    // another process, so its load can overtake the frames it relayed just
    // before (a close 4001, say): there, wait for the bridge's own `end`,
    // which comes after them, and only fall back to the load event.
    iframe.onload = ctx.sameOrigin
      ? () => this.fail('htmlfile stream ended')
      : () => setTimeout(() => this.fail('htmlfile bridge ended'), BRIDGE_END_GRACE);
    this.iframe = iframe;
    document.body.appendChild(iframe);
  }

  stop() {
    super.stop();
    retireKey(this.key);
    if (this.onMessage) window.removeEventListener('message', this.onMessage);
    if (this.iframe) {
      this.iframe.onload = null;
      this.iframe.remove();
    }
  }
}

/** How long a short poll right after an upstream send may wait for its answer (ms). */
const HURRIED_POLL_WAIT = 250;

/** Long polling, JSONP and short polling: one request per answer. */
class PollTransport extends Transport {
  constructor(ctx, name) {
    super(ctx, name);
    this.acks = false;
    this.watched = false;
    this.controller = new AbortController();
    this.timer = null;
    this.wake = null;
    /** Upstream was sent: the next short poll goes at once and waits briefly for its answer. */
    this.hurry = false;
  }

  /** Upstream was just sent: a short poll fetches its answer now, not in a second. */
  nudge() {
    this.hurry = true;
    if (this.wake) this.wake();
  }

  async start() {
    const { ctx, name } = this;
    const options = ctx.options;
    const short = name === 'shortpoll';
    let first = true;
    while (!this.stopped) {
      const params = ctx.params();
      const sid = params.sid;
      // The first request of a resume answers at once, so a working
      // transport is known within the connect time limit.
      let wait = first || short || !sid ? 0 : options.pollWait;
      if (short && this.hurry && sid) wait = HURRIED_POLL_WAIT;
      this.hurry = false;
      const timeout = wait ? wait + 10000 : options.connectTimeout + 5000;
      let frames;
      try {
        if (name === 'jsonp') {
          const url = ctx.url('/v1/jsonp', { ...params, wait });
          frames = await jsonpRequest(url, { timeout, signal: this.controller.signal });
        } else {
          const url = ctx.url('/v1/poll', { ...params, wait });
          const answer = await httpRequest('GET', url, { timeout, credentials: ctx.credentials, signal: this.controller.signal });
          if (answer.status !== 200) throw new Error('poll answered HTTP ' + answer.status);
          frames = parseJson(answer.text);
        }
      } catch (error) {
        this.fail(error.message);
        return;
      }
      if (this.stopped) return;
      if (!Array.isArray(frames)) {
        this.fail('poll answer is not a list of frames');
        return;
      }
      this.rx = Date.now();
      // A resume carries no welcome: a good answer is the proof of life.
      if (!this.opened && !frames.some((f) => f && (f.type === 'welcome' || f.type === 'close'))) ctx.open(this);
      for (const frame of frames) this.deliver(frame);
      first = false;
      // Answers may come a frame at a time: while some are awaited and
      // frames keep coming, keep polling promptly.
      if (short && frames.length > 0 && ctx.awaitingAnswers()) this.hurry = true;
      if (short && !this.stopped && !this.hurry) {
        await new Promise((resolve) => {
          this.wake = resolve;
          this.timer = setTimeout(resolve, options.shortPollInterval);
        });
        clearTimeout(this.timer);
        this.wake = null;
      }
    }
  }

  stop() {
    super.stop();
    clearTimeout(this.timer);
    this.controller.abort();
  }
}

const TRANSPORT_CLASSES = {
  websocket: WebSocketTransport,
  sse: EventSourceTransport,
  stream: StreamTransport,
  htmlfile: HtmlFileTransport,
  longpoll: PollTransport,
  jsonp: PollTransport,
  shortpoll: PollTransport,
};

/** Transports that must wait for the page's load event (they would hold it). */
const NEEDS_PAGE_LOAD = new Set(['htmlfile', 'jsonp']);

/** Whether this environment can run a transport. */
function supported(name, sameOrigin) {
  const hasFetch = typeof fetch === 'function' && typeof AbortController === 'function';
  switch (name) {
    case 'websocket':
      return typeof WebSocket === 'function';
    case 'sse':
      return typeof EventSource === 'function';
    case 'stream':
      return hasFetch && typeof ReadableStream === 'function' && typeof TextDecoder === 'function';
    case 'htmlfile':
      return HAS_DOM && (sameOrigin || typeof window.postMessage === 'function');
    case 'jsonp':
      return HAS_DOM && hasFetch;
    case 'longpoll':
    case 'shortpoll':
      return hasFetch;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------
// 3. The client
// ---------------------------------------------------------------------------

/**
 * Connects to a Switchboard server.
 * @param {string|URL|object} [url] the server's base URL (default: this page's origin)
 * @param {object} [options] see DEFAULTS and README.md
 */
export function connect(url, options) {
  return new Client(url, options);
}

export class Client {
  #base;
  #options;
  #ladder = [];
  #listeners = new Map();
  #state = 'closed';
  #transportName = null;
  #sid = null;
  #id = null;
  #user = null;
  #name = null;
  /** The token of the session being opened (options.token, resolved). */
  #token = null;
  #last = 0;
  #acked = 0;
  #heartbeat = 25000;
  #rooms = new Set();
  /** Upstream frames not yet answered: {cid, frame, state, via, resolve, reject}. */
  #queue = [];
  #cids = 0;
  /**
   * Random per client: the server recognises a retried publish by (room,
   * user, cid) across all sessions of a user, so a bare counter would make
   * a reloaded page's or another tab's messages look like old retries.
   */
  #cidPrefix = randomId();
  #posting = false;
  #oneAtATime = false;
  /** The transport in use or being tried. */
  #conn = null;
  /** A background WebSocket that will take over when it attaches. */
  #probe = null;
  #probeFailures = 0;
  /** The current transport was superseded by the probe, which has not answered yet. */
  #supersededByProbe = false;
  /** Ladder index of the transport that last worked (-1: none yet). */
  #good = -1;
  #round = null;
  #failedRounds = 0;
  #everOpen = false;
  #timers = { attempt: null, retry: null, probe: null, tick: null, post: null };
  #ctx;
  #onOnline = () => {
    if (this.#timers.retry && this.#state === 'reconnecting') {
      clearTimeout(this.#timers.retry);
      this.#timers.retry = null;
      this.#startRound();
    }
  };

  constructor(url, options) {
    if (url !== undefined && typeof url !== 'string' && !(url instanceof URL)) {
      options = url;
      url = undefined;
    }
    if (url === undefined) {
      if (typeof location === 'undefined') throw new TypeError('connect(url): a server URL is needed outside a page');
      url = location.origin;
    }
    this.#base = new URL(String(url), typeof location === 'undefined' ? undefined : location.href);
    this.#options = { ...DEFAULTS, ...(options || {}) };
    const serverOrigin = this.#base.origin;
    const sameOrigin = typeof location !== 'undefined' && location.origin === serverOrigin;
    const client = this;
    this.#ctx = {
      options: this.#options,
      serverOrigin,
      sameOrigin,
      get credentials() {
        return client.#options.withCredentials ? 'include' : 'same-origin';
      },
      url: (path, params, ws) => this.#url(path, params, ws),
      // Credentials only open a session; a resume is proven by its sid.
      params: () => (this.#sid ? { sid: this.#sid, last: this.#last } : { last: 0, token: this.#token, name: this.#options.name }),
      awaitingAnswers: () => this.#queue.some((item) => item.state === 'taken'),
      frame: (t, frame) => this.#frame(t, frame),
      open: (t) => this.#opened(t),
      end: (t, info) => this.#ended(t, info),
    };
    this.#ladder = this.#buildLadder(this.#options.transports);
    if (this.#options.autoConnect) {
      // Connect after the caller had a chance to add listeners, so they
      // see the `connecting` state too.
      this.#state = 'connecting';
      queueMicrotask(() => {
        if (this.#state !== 'connecting' || this.#round || this.#conn) return;
        this.#state = 'closed';
        this.open();
      });
    }
  }

  // --- public API -----------------------------------------------------------

  /** `connecting`, `open`, `reconnecting` or `closed`. */
  get state() {
    return this.#state;
  }

  /** The transport in use (the last one that opened), or null. */
  get transport() {
    return this.#transportName;
  }

  /** This session's public id (what others see as `from`), once known. */
  get id() {
    return this.#id;
  }

  /** The user this session belongs to (from the server's welcome). */
  get user() {
    return this.#user;
  }

  /** The user's display name (from the server's welcome). */
  get name() {
    return this.#name;
  }

  /** The highest seq processed. */
  get last() {
    return this.#last;
  }

  /** Rooms this client is in (or is joining). */
  get rooms() {
    return [...this.#rooms];
  }

  /** Upstream frames waiting for the server's answer. */
  get pending() {
    return this.#queue.filter((item) => !item.loose).length;
  }

  /** The transports this client may use, in order, as filtered for this browser. */
  get transports() {
    return [...this.#ladder];
  }

  /** Listens to `message`, `state`, `transport`, `gap`, `session` or `error`. */
  on(event, fn) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(fn);
    return this;
  }

  /** Stops listening. */
  off(event, fn) {
    this.#listeners.get(event)?.delete(fn);
    return this;
  }

  /** Listens to the next `event` only. */
  once(event, fn) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      fn.apply(this, args);
    };
    return this.on(event, wrapper);
  }

  /** Joins a room; resolves when the server acknowledged it. Rejoined by itself on a new session. */
  join(room) {
    if (!validRoom(room)) return Promise.reject(new TypeError('room must be 1 to 128 characters, no control characters'));
    this.#rooms.add(room);
    return this.request({ type: 'join', room }).catch((error) => {
      this.#rooms.delete(room); // refused: not to be rejoined either
      throw error;
    });
  }

  /** Leaves a room; resolves when the server acknowledged it. */
  leave(room) {
    if (!validRoom(room)) return Promise.reject(new TypeError('room must be 1 to 128 characters, no control characters'));
    this.#rooms.delete(room);
    return this.request({ type: 'leave', room });
  }

  /** Publishes JSON `data` to a joined room; resolves on the server's ack, rejects on an error frame. */
  send(room, data) {
    if (!validRoom(room)) return Promise.reject(new TypeError('room must be 1 to 128 characters, no control characters'));
    if (JSON.stringify(data) === undefined) return Promise.reject(new TypeError('data must be a JSON value'));
    return this.request({ type: 'publish', room, data });
  }

  /** Asks the server to echo `data` back; resolves with it. */
  echo(data) {
    if (JSON.stringify(data) === undefined) return Promise.reject(new TypeError('data must be a JSON value'));
    return this.request({ type: 'echo', data }).then((answer) => answer.data);
  }

  /** A page of a room's history (`{before}`, `{after}`, `{limit}`); resolves with its messages, oldest first. */
  history(room, { before, after, limit } = {}) {
    if (!validRoom(room)) return Promise.reject(new TypeError('room must be 1 to 128 characters, no control characters'));
    const frame = { type: 'history', room };
    if (before !== undefined) frame.before = before;
    if (after !== undefined) frame.after = after;
    if (limit !== undefined) frame.limit = limit;
    return this.request(frame).then((answer) => answer.messages);
  }

  /** Who is present in a room; resolves with `[{user, name}]`. */
  who(room) {
    if (!validRoom(room)) return Promise.reject(new TypeError('room must be 1 to 128 characters, no control characters'));
    return this.request({ type: 'who', room }).then((answer) => answer.users);
  }

  /** Marks a room read up to message `id`; resolves on the server's ack. */
  read(room, id) {
    if (!validRoom(room)) return Promise.reject(new TypeError('room must be 1 to 128 characters, no control characters'));
    return this.request({ type: 'read', room, id });
  }

  /** Tells the room you are typing. Best effort: dropped (false) when not connected. */
  typing(room) {
    if (!validRoom(room) || this.#state !== 'open' || !this.#sid) return false;
    this.#queue.push({ cid: null, frame: { type: 'typing', room }, state: 'queued', via: null, loose: true });
    this.#pump();
    return true;
  }

  /**
   * Sends any upstream frame with a fresh cid (kept queued, and retried,
   * until answered); resolves with the answering frame, rejects on `error`.
   */
  request(frame) {
    return new Promise((resolve, reject) => {
      this.#enqueue(frame, resolve, reject);
      this.#pump();
    });
  }

  /**
   * Stops every transport. The session stays on the server for its grace
   * period and queued frames stay queued: `open()` resumes both.
   */
  close() {
    if (this.#state === 'closed') return;
    this.#stopAll();
    this.#setState('closed');
  }

  /** Connects (again) after `close()` or with `autoConnect: false`. */
  open() {
    if (this.#state !== 'closed') return;
    if (typeof window !== 'undefined' && window.addEventListener) window.addEventListener('online', this.#onOnline);
    this.#setState(this.#everOpen ? 'reconnecting' : 'connecting');
    this.#startRound();
  }

  /**
   * Changes the transports allowed (a name, or a list in order of
   * preference). The session is kept: when the transport in use is no
   * longer allowed, the client resumes on an allowed one.
   */
  useTransports(transports) {
    this.#ladder = this.#buildLadder(transports);
    this.#options.transports = this.#ladder;
    this.#good = -1;
    this.#cancelProbe();
    const conn = this.#conn;
    if (this.#state === 'closed') return;
    const index = conn ? this.#ladder.indexOf(conn.name) : -1;
    if (conn && conn.opened && index >= 0) {
      conn.index = index;
      this.#good = index;
      this.#scheduleProbe();
      return;
    }
    if (conn) this.#drop(conn);
    this.#reconnect({ delay: 0 });
  }

  // --- connecting -----------------------------------------------------------

  #buildLadder(transports) {
    const wanted = typeof transports === 'string' ? [transports] : [...(transports || TRANSPORTS)];
    for (const name of wanted) {
      if (!TRANSPORTS.includes(name)) throw new TypeError('unknown transport ' + JSON.stringify(name) + '; known: ' + TRANSPORTS.join(', '));
    }
    const ladder = wanted.filter((name) => supported(name, this.#ctx.sameOrigin));
    if (ladder.length === 0) throw new Error('none of the transports ' + wanted.join(', ') + ' works in this environment');
    return ladder;
  }

  #url(path, params, ws) {
    const url = new URL(this.#base.href);
    url.pathname = url.pathname.replace(/\/+$/, '') + path;
    url.hash = '';
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== '') query.set(key, String(value));
    }
    url.search = query.toString();
    if (ws) url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    return url.href;
  }

  /** A round tries each transport once, starting with the last one that worked. */
  #startRound() {
    this.#round = { next: Math.max(this.#good, 0), left: this.#ladder.length };
    this.#attemptNext();
  }

  #attemptNext() {
    const round = this.#round;
    if (!round || round.left === 0) {
      this.#failedRounds += 1;
      this.#round = null;
      this.#timers.retry = setTimeout(() => {
        this.#timers.retry = null;
        this.#startRound();
      }, this.#backoff(this.#failedRounds));
      return;
    }
    const index = round.next;
    round.next = (index + 1) % this.#ladder.length;
    round.left -= 1;
    const name = this.#ladder[index];
    const t = new TRANSPORT_CLASSES[name](this.#ctx, name);
    t.index = index;
    this.#conn = t;
    const begin = () => {
      if (this.#conn !== t || t.stopped) return;
      this.#timers.attempt = setTimeout(() => this.#ended(t, { reason: name + ' did not connect in time' }), this.#options.connectTimeout);
      this.#start(t);
    };
    const waits = [];
    if (NEEDS_PAGE_LOAD.has(name)) waits.push(afterPageLoad());
    // A new session needs credentials; a function gives fresh ones each time.
    if (!this.#sid && typeof this.#options.token === 'function') {
      waits.push(
        Promise.resolve()
          .then(() => this.#options.token())
          .then((token) => {
            this.#token = token || null;
          }),
      );
    } else {
      this.#token = this.#options.token || null;
    }
    if (waits.length === 0) begin();
    else
      Promise.all(waits).then(begin, (error) => {
        if (this.#conn === t) this.#ended(t, { reason: 'no token: ' + (error && error.message) });
      });
  }

  /** Exponential backoff with jitter: attempt 0 waits about reconnectDelay. */
  #backoff(attempt) {
    const { reconnectDelay, reconnectDelayMax, randomization } = this.#options;
    const base = Math.min(reconnectDelayMax, reconnectDelay * 2 ** Math.min(attempt, 20));
    return Math.round(base * (1 - randomization * Math.random()));
  }

  /** Starts over after a lost connection (not after a failed attempt). */
  #reconnect({ delay, quiet = false } = {}) {
    clearTimeout(this.#timers.retry);
    this.#cancelProbe();
    if (!quiet) this.#setState(this.#everOpen ? 'reconnecting' : 'connecting');
    const wait = delay ?? this.#backoff(0);
    this.#timers.retry = setTimeout(() => {
      this.#timers.retry = null;
      this.#startRound();
    }, wait);
  }

  /** A transport is attached: the one being tried, or the WebSocket probe. */
  #opened(t) {
    if (t.opened || t.stopped) return;
    if (t === this.#probe) {
      clearTimeout(this.#timers.probe);
      this.#timers.probe = null;
      this.#probe = null;
      this.#probeFailures = 0;
      this.#supersededByProbe = false;
      // The server has moved the session's downstream here; the old
      // transport ends (close 4000) and the probe replays after its `last`.
      if (this.#conn) this.#drop(this.#conn);
      this.#conn = t;
      t.index = this.#ladder.indexOf('websocket');
    }
    if (t !== this.#conn) return;
    t.opened = true;
    clearTimeout(this.#timers.attempt);
    this.#timers.attempt = null;
    this.#round = null;
    this.#failedRounds = 0;
    this.#good = t.index;
    this.#everOpen = true;
    t.rx = Date.now();
    if (this.#transportName !== t.name) {
      this.#transportName = t.name;
      this.#emit('transport', t.name);
    }
    this.#setState('open');
    if (!this.#timers.tick) this.#timers.tick = setInterval(() => this.#tick(), this.#options.ackInterval);
    this.#pump();
    this.#scheduleProbe();
  }

  /** A transport stopped on its own (or its time limit passed). */
  #ended(t, info = {}) {
    if (t === this.#probe) {
      this.#drop(t);
      this.#probe = null;
      clearTimeout(this.#timers.probe);
      this.#timers.probe = null;
      this.#probeFailures += 1;
      if (this.#supersededByProbe) {
        this.#supersededByProbe = false;
        this.#reconnect({ delay: 0 });
      } else {
        this.#scheduleProbe();
      }
      return;
    }
    if (t !== this.#conn || t.stopped) return;
    if ([CODE_SUPERSEDED, CODE_BUDGET, CODE_SHUTTING_DOWN, CODE_NO_SESSION].includes(info.code)) {
      // A WebSocket closed with a protocol code but no close frame before it.
      this.#closeFrame(t, { code: info.code, reason: info.reason, reconnect: info.code !== CODE_SUPERSEDED });
      return;
    }
    this.#drop(t);
    this.#conn = null;
    if (this.#state === 'closed') return;
    if (!t.opened) {
      clearTimeout(this.#timers.attempt);
      if (this.#state === 'open') this.#setState('reconnecting'); // a quiet resume failed
      this.#attemptNext();
    } else {
      this.#reconnect();
    }
  }

  /** Abandons a transport; frames it carried upstream unanswered go again. */
  #drop(t) {
    t.stop();
    for (const item of this.#queue) {
      if (item.state === 'sent' && item.via === t) item.state = 'queued';
    }
    if (t === this.#conn) {
      clearTimeout(this.#timers.attempt);
      this.#timers.attempt = null;
    }
  }

  #stopAll() {
    if (this.#conn) this.#drop(this.#conn);
    this.#conn = null;
    this.#cancelProbe();
    this.#round = null;
    for (const key of Object.keys(this.#timers)) {
      clearTimeout(this.#timers[key]);
      clearInterval(this.#timers[key]);
      this.#timers[key] = null;
    }
    if (typeof window !== 'undefined' && window.removeEventListener) window.removeEventListener('online', this.#onOnline);
  }

  // --- upgrading to WebSocket -------------------------------------------------

  #scheduleProbe() {
    const conn = this.#conn;
    if (this.#probe || this.#timers.probe || !conn || !conn.opened || this.#state !== 'open') return;
    const wsIndex = this.#ladder.indexOf('websocket');
    if (wsIndex < 0 || wsIndex >= conn.index) return;
    const { upgradeDelay, upgradeDelayMax, randomization } = this.#options;
    const base = Math.min(upgradeDelayMax, upgradeDelay * 2 ** Math.min(this.#probeFailures, 20));
    this.#timers.probe = setTimeout(() => this.#startProbe(), Math.round(base * (1 - randomization * Math.random())));
  }

  #startProbe() {
    this.#timers.probe = null;
    const conn = this.#conn;
    if (!conn || !conn.opened || !this.#sid || conn.name === 'websocket') return;
    const probe = new WebSocketTransport(this.#ctx);
    this.#probe = probe;
    this.#timers.probe = setTimeout(() => this.#ended(probe, { reason: 'upgrade timed out' }), this.#options.connectTimeout);
    this.#start(probe);
  }

  /** Starts a transport; a constructor that throws (a blocked URL, say) is a failed attempt. */
  #start(t) {
    try {
      t.start();
    } catch (error) {
      this.#ended(t, { reason: String(error && error.message) });
    }
  }

  #cancelProbe() {
    clearTimeout(this.#timers.probe);
    this.#timers.probe = null;
    if (this.#probe) this.#drop(this.#probe);
    this.#probe = null;
    this.#supersededByProbe = false;
  }

  // --- downstream -------------------------------------------------------------

  #frame(t, frame) {
    if (t !== this.#conn && t !== this.#probe) return;
    t.rx = Date.now();
    if (typeof frame.seq === 'number') {
      if (t === this.#probe) return; // nothing sequenced precedes welcome
      this.#sequenced(frame);
      return;
    }
    switch (frame.type) {
      case 'welcome':
        this.#welcome(t, frame);
        break;
      case 'ping':
        break;
      case 'gap':
        this.#last = Math.max(this.#last, frame.to);
        this.#emit('gap', { from: frame.from, to: frame.to });
        break;
      case 'close':
        this.#closeFrame(t, frame);
        break;
      case 'error':
        this.#emit('error', new SwitchboardError(frame.code, frame.message));
        break;
      default:
        break;
    }
  }

  #welcome(t, frame) {
    if (typeof frame.heartbeat === 'number' && frame.heartbeat > 0) this.#heartbeat = frame.heartbeat;
    if (frame.sid !== this.#sid) {
      const renewed = this.#id !== null;
      this.#sid = frame.sid;
      this.#id = frame.id;
      this.#user = frame.user ?? null;
      this.#name = frame.name ?? null;
      this.#last = 0;
      this.#acked = 0;
      if (renewed) this.#renewQueue();
      this.#emit('session', { id: frame.id, user: this.#user, name: this.#name, renewed });
    }
    this.#opened(t);
  }

  #sequenced(frame) {
    if (frame.seq <= this.#last) return; // already processed before a resume
    this.#last = frame.seq;
    const { type, cid } = frame;
    const item = cid === undefined ? undefined : this.#queue.find((i) => i.cid === cid);
    if (type === 'msg') {
      const { type: _type, ...message } = frame;
      this.#emit('message', message);
    } else if (item && type === 'error' && CODES_RETRY.has(frame.code) && item.retries < this.#options.retries) {
      // Rate limited (4429) or the store failed (4500): nothing was applied;
      // the same cid goes again a little later.
      item.retries += 1;
      item.state = 'waiting';
      setTimeout(() => {
        if (item.state !== 'waiting') return;
        item.state = 'queued';
        this.#pump();
      }, this.#backoff(item.retries));
    } else if (item) {
      this.#queue.splice(this.#queue.indexOf(item), 1);
      if (type === 'error') item.reject(new SwitchboardError(frame.code, frame.message));
      else item.resolve(frame);
    } else if (type === 'error') {
      this.#emit('error', new SwitchboardError(frame.code, frame.message));
    } else if (FRAME_EVENTS.has(type)) {
      this.#emit(type, frame);
    }
    this.#emit('frame', frame);
    if (this.#conn?.acks && this.#last - this.#acked >= this.#options.ackEvery) this.#pump();
  }

  #closeFrame(t, frame) {
    if (t === this.#probe) {
      this.#ended(t, { reason: frame.reason });
      return;
    }
    this.#drop(t);
    this.#conn = null;
    switch (frame.code) {
      case CODE_SUPERSEDED:
        if (this.#probe) {
          // Our own upgrade took over; its welcome is on the way.
          this.#supersededByProbe = true;
          return;
        }
        this.#stopAll();
        this.#setState('closed', { code: frame.code, reason: frame.reason });
        this.#emit('error', new SwitchboardError(frame.code, frame.reason || 'another connection took over this session'));
        return;
      case CODE_BUDGET:
        this.#reconnect({ delay: 0, quiet: true });
        return;
      case CODE_SHUTTING_DOWN:
        this.#reconnect({ delay: this.#backoff(1) });
        return;
      case CODE_NO_SESSION:
        this.#sid = null;
        this.#last = 0;
        this.#acked = 0;
        this.#reconnect({ delay: 0 });
        return;
      default:
        if (frame.reconnect === false || CODES_FINAL.has(frame.code)) {
          this.#stopAll();
          this.#setState('closed', { code: frame.code, reason: frame.reason });
        } else {
          this.#reconnect();
        }
    }
  }

  /** Every second: acknowledge what streams delivered; notice a silent death. */
  #tick() {
    const t = this.#conn;
    if (!t || !t.opened) return;
    if (t.acks && this.#last > this.#acked) this.#pump();
    if (t.watched && Date.now() - t.rx > this.#heartbeat * 1.5 + 5000) this.#ended(t, { reason: 'no heartbeat' });
  }

  // --- upstream ---------------------------------------------------------------

  #enqueue(frame, resolve, reject) {
    const cid = this.#nextCid();
    this.#queue.push({ cid, frame: { ...frame, cid }, state: 'queued', via: null, retries: 0, resolve, reject });
  }

  #nextCid() {
    this.#cids += 1;
    return this.#cidPrefix + '-' + this.#cids.toString(36);
  }

  /** A new session: everything unanswered goes again, after rejoining the rooms. */
  #renewQueue() {
    this.#forgetLoose(this.#queue);
    for (const item of this.#queue) item.state = 'queued';
    const joining = new Set(this.#queue.filter((i) => i.frame.type === 'join').map((i) => i.frame.room));
    const rejoins = [];
    for (const room of this.#rooms) {
      if (joining.has(room)) continue;
      const cid = this.#nextCid();
      rejoins.push({ cid, frame: { type: 'join', room, cid }, state: 'queued', via: null, retries: 0, resolve: noop, reject: noop });
    }
    this.#queue.unshift(...rejoins);
  }

  /** Drops best-effort frames (no cid, no answer) once they went out, or could not. */
  #forgetLoose(items) {
    if (items.some((item) => item.loose)) this.#queue = this.#queue.filter((item) => !(item.loose && items.includes(item)));
  }

  /** Sends what is queued (and an ack when due) over the current transport. */
  #pump() {
    const t = this.#conn;
    if (!t || !t.opened || t.stopped || !this.#sid) return;
    const ack = t.acks && this.#last > this.#acked ? this.#last : 0;
    if (t.name === 'websocket') {
      const items = this.#queue.filter((item) => item.state === 'queued');
      const frames = items.map((item) => item.frame);
      if (ack) frames.push({ type: 'ack', seq: ack });
      for (let i = 0; i < frames.length; i += this.#options.maxBatch) {
        if (!t.send(frames.slice(i, i + this.#options.maxBatch))) return;
      }
      for (const item of items) {
        item.state = 'sent';
        item.via = t;
      }
      this.#forgetLoose(items);
      if (ack) this.#acked = ack;
      return;
    }
    if (this.#posting) return;
    const queued = this.#queue.filter((item) => item.state === 'queued');
    if (queued.length === 0) this.#oneAtATime = false;
    const items = queued.slice(0, this.#oneAtATime ? 1 : this.#options.maxBatch);
    if (items.length === 0 && !ack) return;
    const frames = items.map((item) => item.frame);
    if (ack) frames.push({ type: 'ack', seq: ack });
    for (const item of items) item.state = 'sending';
    this.#post(this.#sid, items, frames, ack);
  }

  async #post(sid, items, frames, ack) {
    this.#posting = true;
    let answer = null;
    try {
      answer = await httpRequest('POST', this.#url('/v1/send', { sid }), {
        body: JSON.stringify(frames.length === 1 ? frames[0] : frames),
        timeout: this.#options.sendTimeout,
        credentials: this.#ctx.credentials,
      });
    } catch {
      answer = null;
    }
    this.#posting = false;
    this.#forgetLoose(items); // typing frames are not worth a retry
    items = items.filter((item) => !item.loose);
    const requeue = () => {
      for (const item of items) if (item.state === 'sending') item.state = 'queued';
    };
    if (sid !== this.#sid) {
      requeue(); // answered for a session this client has left
    } else if (answer && answer.status === 200) {
      for (const item of items) if (item.state === 'sending') item.state = 'taken';
      if (ack) this.#acked = Math.max(this.#acked, ack);
      if (items.length) this.#conn?.nudge?.();
    } else if (answer && answer.status === 404) {
      requeue(); // the session expired: the downstream learns it (close 4004) and starts a new one
      if (this.#conn) this.#closeFrame(this.#conn, { code: CODE_NO_SESSION, reconnect: true });
    } else if (answer && (answer.status === 400 || answer.status === 413) && items.length > 1) {
      requeue(); // one of them is refused: find which by sending them one by one
      this.#oneAtATime = true;
    } else if (answer && answer.status >= 400 && answer.status < 500 && items.length > 0) {
      const body = parseJson(answer.text) || {};
      const error = new SwitchboardError(body.code || 4400, body.message || 'refused with HTTP ' + answer.status);
      for (const item of items) {
        const index = this.#queue.indexOf(item);
        if (index >= 0) this.#queue.splice(index, 1);
        item.reject(error);
      }
    } else {
      // No answer (network) or a server error: try again a little later,
      // and have a short poll check at once whether the downstream is gone too.
      requeue();
      this.#conn?.nudge?.();
      clearTimeout(this.#timers.post);
      this.#timers.post = setTimeout(() => {
        this.#timers.post = null;
        this.#pump();
      }, this.#backoff(0));
      return;
    }
    this.#pump();
  }

  // --- events -----------------------------------------------------------------

  #setState(state, detail) {
    if (state === this.#state) return;
    this.#state = state;
    if (state !== 'open') {
      clearInterval(this.#timers.tick);
      this.#timers.tick = null;
    }
    this.#emit('state', state, detail || {});
  }

  #emit(event, ...args) {
    const listeners = this.#listeners.get(event);
    if (!listeners) return;
    for (const fn of [...listeners]) {
      try {
        fn.apply(this, args);
      } catch (error) {
        // A listener's bug must not break the connection; report it anyway.
        setTimeout(() => {
          throw error;
        });
      }
    }
  }
}

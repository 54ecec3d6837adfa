// The Switchboard demo chat: rooms with unread counts, direct messages,
// presence, typing, read receipts and history, on the JavaScript client
// (clients/js/switchboard.js, served at /switchboard.js).
//
// Every piece of user content goes into the page with textContent or as a
// text node, never as markup.

import { connect, TRANSPORTS } from '/switchboard.js';

const $ = (id) => document.getElementById(id);
/** The room every page joins. */
const HOME = 'lobby';
/** Messages per history page: the first screen of a room, and each scroll up. */
const PAGE = 50;
/** Messages per page when catching up after a gap or a new session. */
const FILL_PAGE = 500;
/** Pages of catching up before giving up and reloading the room's newest page. */
const FILL_PAGES = 4;
/** `before` for the newest page of a room. */
const NEWEST = Number.MAX_SAFE_INTEGER;
/** Send `typing` at most this often (ms); the server allows 2/s. */
const TYPING_EVERY = 2000;
/** Show someone as typing this long after their last `typing` (ms). */
const TYPING_SHOWN = 3000;
/** Messages of one author closer than this share one header (ms). */
const GROUP_WITHIN = 5 * 60 * 1000;
/** DM rooms joined ahead of time per page (see considerDm). */
const MAX_DM_WATCH = 25;
const NICKNAME = /^[\p{L}\p{N}._@-]{1,32}$/u;
const LOGIN_KEY = 'switchboard-login';
const ROOM_KEY = 'switchboard-room';
const ERROR_KEY = 'switchboard-login-error';

/** Per-tab storage; may be denied (an embedded or private page). */
const tabStore = {
  get(key) {
    try {
      return sessionStorage.getItem(key);
    } catch {
      return null;
    }
  },
  set(key, value) {
    try {
      if (value === null) sessionStorage.removeItem(key);
      else sessionStorage.setItem(key, value);
    } catch {
      // Not kept: the page still works, it just forgets on reload.
    }
  },
};

/** A DOM element; strings among `children` become text nodes. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') node.className = value;
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function avatar(user, label) {
  let hash = 0;
  for (const c of user) hash = (hash * 31 + c.codePointAt(0)) >>> 0;
  const node = el('span', { class: 'avatar', 'aria-hidden': 'true', text: [...(label || user || '?')][0] });
  node.style.setProperty('--hue', String(hash % 360));
  return node;
}

/** UTF-8 byte order, which is code point order: how the server sorts DM ids. */
function compareIds(a, b) {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i += 1) {
    const d = x[i].codePointAt(0) - y[i].codePointAt(0);
    if (d) return d;
  }
  return x.length - y.length;
}

/** The DM room of two users: `dm:<a>:<b>`, ids in ascending order. */
function dmRoom(a, b) {
  return compareIds(a, b) < 0 ? `dm:${a}:${b}` : `dm:${b}:${a}`;
}

function canDm(user) {
  return Boolean(me && user && user !== me.user && !user.includes(':') && dmRoom(me.user, user).length <= 128);
}

/** The other user of one of my DM rooms, or null. */
function dmPeer(room) {
  if (!me || !room.startsWith('dm:')) return null;
  const rest = room.slice(3);
  const cut = rest.indexOf(':');
  if (cut <= 0) return null;
  const a = rest.slice(0, cut);
  const b = rest.slice(cut + 1);
  if (!b || b.includes(':')) return null;
  if (a === me.user) return b;
  if (b === me.user) return a;
  return null;
}

const nameOf = (user) => names.get(user) || user;
const time = (ts) => new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
const list = $('messages');

// --- state --------------------------------------------------------------------

let client = null;
/** Who this page is signed in as: {user, name}, from the server's welcome. */
let me = null;
/** Display names by user id, learned from messages, presence and queries. */
const names = new Map();
/** Every room this page knows, by name (see roomState). */
const rooms = new Map();
/** The room on screen. */
let current = null;
/** The current room's message elements, by message id. */
const nodes = new Map();
/** Rooms left in this tab: late frames about them are ignored, DMs are not watched again. */
const left = new Set();
let dmWatched = 0;
let lastTyping = { room: null, at: 0 };

function roomState(room) {
  let st = rooms.get(room);
  if (!st) {
    st = {
      room,
      joined: false, // member (joined here, or by the server for the user)
      joining: null, // the join in flight
      opened: false, // shown on screen in this page
      lastId: 0, // newest message id known
      mark: 0, // my read mark
      sentRead: 0, // newest read mark sent
      unread: 0,
      // idle: nothing held (unread counted only); loading / loaded: messages held, kept up to date.
      status: 'idle',
      messages: new Map(), // id → {id, ts, user, name, data}
      order: [], // message ids, ascending
      complete: false, // the oldest message is held
      loadingOlder: false,
      catchingUp: false,
      present: null, // user → name, once asked
      typing: new Map(), // user → time until which they show as typing
      readers: new Map(), // user → read mark, from `read` events
      pending: new Map(), // nonce → {text, ts, error}: my messages not yet back from the server
    };
    rooms.set(room, st);
  }
  return st;
}

// --- sign in ------------------------------------------------------------------

const params = new URLSearchParams(location.search);
const forced = params.get('transport');
if (forced && TRANSPORTS.includes(forced)) $('picker').value = forced;
const pick = () => ($('picker').value === 'auto' ? TRANSPORTS : [$('picker').value]);

function loginError(text) {
  $('login-error').textContent = text;
}

function start(credentials) {
  tabStore.set(LOGIN_KEY, JSON.stringify(credentials));
  $('login').hidden = true;
  $('chat').hidden = false;
  $('toggle').disabled = false;
  client = connect(location.origin, { transports: pick(), ...credentials });
  window.switchboard = client; // for the console
  wire(client);
  refresh();
  const saved = tabStore.get(ROOM_KEY);
  joinRoom(HOME, { quiet: saved && saved !== HOME });
  if (saved && saved !== HOME) joinRoom(saved, { show: true });
  else show(HOME);
}

/** Back to the sign-in form (a fresh page: nothing of the old session stays). */
function signOut(error) {
  if (client) client.close();
  tabStore.set(LOGIN_KEY, null);
  tabStore.set(ROOM_KEY, null);
  tabStore.set(ERROR_KEY, error || null);
  const query = forced ? '?transport=' + encodeURIComponent(forced) : '';
  location.replace(location.pathname + query);
}

$('login-name').addEventListener('submit', (event) => {
  event.preventDefault();
  const nick = $('nick').value.trim();
  if (!NICKNAME.test(nick)) {
    loginError('A nickname is 1 to 32 letters or digits, or “.”, “_”, “-”, “@”.');
    return;
  }
  start({ name: nick });
});
$('login-token').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('token').value.trim();
  if (!/^[\w-]+\.[\w-]+\.[\w-]*$/.test(token)) {
    loginError('That does not look like a JWT (three base64url parts separated by dots).');
    return;
  }
  start({ token });
});
$('logout').addEventListener('click', () => signOut(null));

// --- connection ---------------------------------------------------------------

function refresh() {
  if (!client) return;
  const state = client.state;
  $('state').dataset.state = state;
  $('state').textContent = state === 'reconnecting' ? 'reconnecting…' : state;
  $('transport').textContent = client.transport || '–';
  $('last').textContent = client.last;
  $('pending').textContent = client.pending;
  $('id').textContent = client.id || '…';
  $('toggle').textContent = state === 'closed' ? 'Reconnect' : 'Close';
}

function note(text) {
  const log = $('log');
  log.append(el('li', { text: time(Date.now()) + ' ' + text }));
  while (log.children.length > 60) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

let noticeTimer = null;
/** Tells the user something went wrong (for a few seconds). */
function notice(text) {
  note(text);
  $('notice').textContent = text;
  $('notice').hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => ($('notice').hidden = true), 8000);
}

/** Chores that may wait for the connection (read marks, unread counts): run when open, not queued while closed. */
const deferred = new Map();
function whenOpen(key, fn) {
  if (client && client.state === 'open') fn();
  else deferred.set(key, fn);
}

function wire(c) {
  c.on('state', (state, { code, reason } = {}) => {
    if (state === 'open') {
      const chores = [...deferred.values()];
      deferred.clear();
      for (const fn of chores) fn();
    }
    if (state === 'reconnecting') note('reconnecting…');
    if (state === 'closed') {
      if (code === 4401) {
        signOut('The server refused to sign you in: ' + (reason || 'unauthorized') + '.');
        return;
      }
      if (code === 4005) notice('The server disconnected you.');
      else if (code === 4000) notice('Another connection took this session over.');
      else note('closed: what you send now waits in the queue until you reconnect');
    }
    refresh();
  });
  c.on('transport', (transport) => {
    note('using ' + transport);
    refresh();
  });
  c.on('session', ({ id, user, name, renewed }) => {
    me = { user, name: name || user };
    names.set(user, me.name);
    $('me').hidden = false;
    $('whoami').textContent = me.name;
    $('whoid').textContent = me.name === user ? '' : '(' + user + ')';
    $('my-avatar').replaceWith(Object.assign(avatar(user, me.name), { id: 'my-avatar' }));
    if (renewed) recover('the old session expired; new session ' + id);
    else {
      note('session ' + id);
      if (current) refreshWho(current);
    }
    renderRooms();
    renderHead();
    refresh();
  });
  c.on('gap', ({ from, to }) => recover('missed frames ' + from + '–' + to + '; catching up from history'));
  c.on('error', (error) => note('error: ' + error.message));
  c.on('frame', refresh);
  c.on('message', onMessage);
  c.on('presence', onPresence);
  c.on('typing', onTyping);
  c.on('read', onRead);
  c.on('rooms', ({ rooms: summary }) => applyRooms(summary));
}

/** After a gap or a new session: fetch what the rooms held here missed. */
function recover(why) {
  note(why);
  for (const st of rooms.values()) if (st.status !== 'idle') catchUp(st);
  refreshRooms();
  if (current) refreshWho(current);
}

$('picker').addEventListener('change', () => client && client.useTransports(pick()));
$('toggle').addEventListener('click', () => {
  if (!client) return;
  if (client.state === 'closed') client.open();
  else client.close();
  refresh();
});

// --- rooms --------------------------------------------------------------------

function joinRoom(room, { show: showIt = false, quiet = false } = {}) {
  left.delete(room);
  const st = roomState(room);
  if (showIt) show(room);
  if (!st.joining) {
    st.joining = client.join(room).then(
      () => {
        st.joined = true;
        refreshRooms();
        renderRooms();
      },
      (error) => {
        st.joining = null;
        if (!quiet) notice('Could not join ' + roomLabel(room) + ': ' + error.message);
        if (!st.joined) forget(room);
        throw error;
      },
    );
    st.joining.catch(() => {});
  }
  return st.joining;
}

function leaveRoom(room) {
  client.leave(room).catch((error) => notice('Could not leave ' + roomLabel(room) + ': ' + error.message));
  left.add(room);
  forget(room);
}

/** Drops a room from this page (left, or refused). */
function forget(room) {
  rooms.delete(room);
  if (current === room) {
    const next = rooms.has(HOME) ? HOME : [...rooms.values()].find((st) => st.joined)?.room;
    if (next) show(next);
    else {
      current = null;
      tabStore.set(ROOM_KEY, null);
      renderView();
      renderHead();
      renderPresence();
      renderTyping();
    }
  }
  renderRooms();
}

/** Asks the server for the user's rooms and unread counts (a few at once become one). */
let roomsTimer = null;
function refreshRooms() {
  clearTimeout(roomsTimer);
  roomsTimer = setTimeout(() => {
    whenOpen('rooms', () => client.request({ type: 'rooms' }).then((answer) => applyRooms(answer.rooms), () => {}));
  }, 200);
}

function applyRooms(summary) {
  for (const r of summary || []) {
    if (left.has(r.room)) continue;
    const st = roomState(r.room);
    st.joined = true;
    st.lastId = Math.max(st.lastId, r.last_id);
    st.mark = Math.max(st.mark, r.read);
    st.unread = r.unread;
    if (r.room === current) {
      st.unread = 0;
      if (r.unread > 0) scheduleRead();
    }
  }
  // Nothing on screen (the home room was refused, say): the first room.
  const first = !current && (summary || []).find((r) => !left.has(r.room) && !r.room.startsWith('dm:'));
  if (first) show(first.room);
  renderRooms();
}

function roomLabel(room) {
  const peer = dmPeer(room);
  return peer === null ? '#' + room : nameOf(peer);
}

function show(room) {
  const previous = current && rooms.get(current);
  if (previous && previous.room !== room) previous.unread = Math.max(0, previous.lastId - Math.max(previous.mark, previous.sentRead));
  current = room;
  tabStore.set(ROOM_KEY, room);
  const st = roomState(room);
  st.opened = true;
  st.unread = 0;
  lastTyping = { room: null, at: 0 };
  renderView();
  renderHead();
  renderPresence();
  renderTyping();
  renderRooms();
  if (st.status === 'idle') loadLatest(st);
  else scheduleRead();
  if (client.id) refreshWho(room);
}

/** A room as a button in the side list, updated in place. */
const roomButtons = new Map();
function roomButton(st, peer) {
  let li = roomButtons.get(st.room);
  if (!li) {
    const button = el('button', { type: 'button', dataset: { room: st.room } }, el('span', { class: 'sigil', 'aria-hidden': 'true' }), el('span', { class: 'label' }), el('span', { class: 'badge' }));
    button.addEventListener('click', () => show(st.room));
    li = el('li', {}, button);
    roomButtons.set(st.room, li);
  }
  const button = li.firstElementChild;
  const unread = st.room === current ? 0 : st.unread;
  const label = peer === null ? st.room : nameOf(peer);
  button.querySelector('.sigil').textContent = peer === null ? '#' : '@';
  button.querySelector('.label').textContent = label;
  button.querySelector('.badge').textContent = unread > 0 ? String(unread) : '';
  button.classList.toggle('unread', unread > 0);
  button.setAttribute('aria-current', String(st.room === current));
  button.setAttribute('aria-label', label + (unread > 0 ? ', ' + unread + ' unread' : ''));
  return li;
}

function renderRooms() {
  const regular = [];
  const dms = [];
  for (const st of rooms.values()) {
    if (!st.joined && st.room !== current) continue;
    const peer = dmPeer(st.room);
    if (peer !== null) {
      // Watched DMs show up once they have a message, or when opened.
      if (st.lastId > 0 || st.opened) dms.push([nameOf(peer).toLowerCase(), roomButton(st, peer)]);
    } else if (!st.room.startsWith('dm:')) {
      regular.push([st.room.toLowerCase(), roomButton(st, null)]);
    }
  }
  for (const [target, items] of [[$('rooms'), regular], [$('dms'), dms]]) {
    items.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    const wanted = items.map((item) => item[1]);
    const same = wanted.length === target.children.length && wanted.every((li, i) => target.children[i] === li);
    if (!same) target.replaceChildren(...wanted);
  }
  for (const [room, li] of roomButtons) {
    if (rooms.has(room)) continue;
    roomButtons.delete(room);
    li.remove();
  }
  let total = 0;
  for (const st of rooms.values()) if (st.room !== current && st.joined) total += st.unread;
  document.title = (total ? '(' + total + ') ' : '') + (current ? roomLabel(current) + ' · ' : '') + 'Switchboard demo chat';
}

function renderHead() {
  const st = current && rooms.get(current);
  $('room-title').textContent = current ? roomLabel(current) : 'No room';
  $('leave').disabled = !current;
  $('text').disabled = $('send').disabled = !current;
  $('text').placeholder = current ? 'Message ' + roomLabel(current) + '…' : 'Join a room first';
  const here = st && st.present ? st.present.size : null;
  $('here').textContent = here === null ? '–' : String(here);
  $('room-sub').textContent = here === null ? '' : here + ' here';
}

$('join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const room = $('join-room').value.trim();
  if (!room) return;
  // A DM room may be joined by its name too: the server refuses other people's.
  joinRoom(room, { show: true });
  $('join-room').value = '';
});
$('dm-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const user = $('dm-user').value.trim();
  if (!user) return;
  if (!canDm(user)) {
    notice(user === me?.user ? 'That is you.' : 'Cannot start a direct message with ' + JSON.stringify(user) + '.');
    return;
  }
  startDm(user);
  $('dm-user').value = '';
});
$('leave').addEventListener('click', () => current && leaveRoom(current));

function startDm(user) {
  joinRoom(dmRoom(me.user, user), { show: true });
}

/**
 * The server makes a user a member of a DM room only when that user joins
 * it, and nothing tells them someone wrote there. So the demo joins, ahead
 * of time, the DM rooms with people it sees in its rooms: a message there
 * then arrives like any other, and the room shows up in the list with its
 * unread count (an empty one stays hidden).
 */
function considerDm(user) {
  if (!canDm(user) || dmWatched >= MAX_DM_WATCH) return;
  const room = dmRoom(me.user, user);
  const st = rooms.get(room);
  if ((st && (st.joined || st.joining)) || left.has(room)) return;
  dmWatched += 1;
  joinRoom(room, { quiet: true });
}

// --- messages -----------------------------------------------------------------

function onMessage(m) {
  const { room, id, user, name, data } = m;
  if (typeof id !== 'number' || left.has(room)) return; // not a stored chat message, or a late one
  if (user) names.set(user, name || user);
  const st = roomState(room);
  st.joined = true;
  const fresh = id > st.lastId;
  st.lastId = Math.max(st.lastId, id);
  const own = Boolean(me && user === me.user);
  if (own) {
    // The server counts my own messages as read.
    st.mark = Math.max(st.mark, id);
    st.unread = 0;
  }
  if (st.typing.delete(user) && room === current) renderTyping();
  if (st.status !== 'idle') addMessages(st, [m]);
  if (fresh && !own && id > st.mark) {
    if (room === current && document.visibilityState === 'visible') scheduleRead();
    else st.unread += 1;
  }
  renderRooms();
}

/** Adds messages (live, or pages of history) to a room, each id once. */
function addMessages(st, messages) {
  const added = [];
  for (const m of messages) {
    if (typeof m.id !== 'number' || st.messages.has(m.id)) continue;
    st.messages.set(m.id, { id: m.id, ts: m.ts, user: m.user, name: m.name, data: m.data });
    if (m.user) names.set(m.user, m.name || m.user);
    // Writing in a room marks it read up to there (the server counts one's
    // own messages as read, without a `read` event).
    if (m.user && m.user !== 'system') st.readers.set(m.user, Math.max(st.readers.get(m.user) || 0, m.id));
    added.push(m.id);
    // My message is back from the server: its greyed copy goes.
    if (me && m.user === me.user && m.data && typeof m.data.nonce === 'string' && st.pending.delete(m.data.nonce) && st.room === current) {
      list.querySelector(`li.pending[data-nonce="${CSS.escape(m.data.nonce)}"]`)?.remove();
    }
  }
  if (added.length === 0) return;
  st.order = [...st.messages.keys()].sort((a, b) => a - b);
  if (st.room !== current) return;
  keepingScroll(() => {
    for (const id of added) insertNode(st, id);
    regroup();
    renderTop(st);
  });
  renderReceipts();
  scheduleRead();
}

function messageNode(m) {
  const mine = Boolean(me && m.user === me.user);
  const text = m.data && typeof m.data.text === 'string' ? m.data.text : null;
  const li = el(
    'li',
    { class: 'msg' + (mine ? ' mine' : ''), dataset: { id: String(m.id), user: m.user || '', ts: String(m.ts || 0) } },
    avatar(m.user || '?', m.name),
    el(
      'div',
      { class: 'bubble' },
      el(
        'div',
        { class: 'meta' },
        el('span', { class: 'author', text: m.name || m.user || 'someone' }),
        el('time', { datetime: new Date(m.ts || 0).toISOString(), text: time(m.ts || 0) }),
        el('span', { class: 'mid', text: '#' + m.id }),
      ),
      el('div', { class: 'text' + (text === null ? ' data' : ''), text: text === null ? JSON.stringify(m.data) : text }),
      el('div', { class: 'receipt' }),
    ),
  );
  return li;
}

function pendingNode(nonce, p) {
  const li = el(
    'li',
    { class: 'msg mine pending', dataset: { nonce } },
    avatar(me ? me.user : '?', me && me.name),
    el(
      'div',
      { class: 'bubble' },
      el('div', { class: 'meta' }, el('span', { class: 'author', text: me ? me.name : 'you' }), el('time', { text: time(p.ts) })),
      el('div', { class: 'text', text: p.text }),
      el('div', { class: 'receipt', text: p.error ? 'not sent: ' + p.error : 'sending…' }),
    ),
  );
  if (p.error) li.classList.add('failed');
  return li;
}

/** The first element after the last message: the pending ones go below the others. */
const firstPending = () => list.querySelector('li.pending');

function insertNode(st, id) {
  const node = messageNode(st.messages.get(id));
  nodes.set(id, node);
  const index = st.order.indexOf(id);
  let next = null;
  for (let i = index + 1; i < st.order.length && !next; i += 1) next = nodes.get(st.order[i]) || null;
  list.insertBefore(node, next || firstPending());
}

/** Consecutive messages of one author share a header. */
function regroup() {
  let previous = null;
  for (const li of list.children) {
    if (!li.classList.contains('msg')) {
      previous = null;
      continue;
    }
    const user = li.dataset.user ?? (me && me.user);
    const ts = Number(li.dataset.ts || Date.now());
    li.classList.toggle('cont', Boolean(previous && previous.user === user && ts - previous.ts < GROUP_WITHIN && !li.classList.contains('pending')));
    previous = { user, ts };
  }
}

const nearBottom = () => list.scrollTop + list.clientHeight >= list.scrollHeight - 40;

/** Runs a change to the list keeping the view: at the bottom, or on the same message. */
function keepingScroll(change) {
  const stick = nearBottom();
  let anchor = null;
  let offset = 0;
  if (!stick) {
    for (const li of list.querySelectorAll('li.msg')) {
      if (li.offsetTop + li.offsetHeight > list.scrollTop) {
        anchor = li;
        offset = li.offsetTop - list.scrollTop;
        break;
      }
    }
  }
  change();
  if (stick) list.scrollTop = list.scrollHeight;
  else if (anchor && anchor.isConnected) list.scrollTop = anchor.offsetTop - offset;
}

/** The top line of the list: loading, or the beginning of the room. */
function renderTop(st) {
  let top = $('history-top');
  if (!top) {
    top = el('li', { class: 'note', id: 'history-top' });
    list.prepend(top);
  }
  if (!st || st.status === 'idle' || st.status === 'loading') top.textContent = 'Loading messages…';
  else if (st.loadingOlder) top.textContent = 'Loading older messages…';
  else if (st.complete) top.textContent = st.order.length ? 'This is the beginning of ' + roomLabel(st.room) + '.' : 'No messages in ' + roomLabel(st.room) + ' yet. Say hello!';
  else top.textContent = 'Scroll up for older messages';
}

function renderView() {
  nodes.clear();
  list.replaceChildren();
  const st = current && rooms.get(current);
  if (!st) {
    list.append(el('li', { class: 'note', text: 'Join a room to start chatting.' }));
    return;
  }
  renderTop(st);
  for (const id of st.order) {
    const node = messageNode(st.messages.get(id));
    nodes.set(id, node);
    list.append(node);
  }
  for (const [nonce, p] of st.pending) list.append(pendingNode(nonce, p));
  regroup();
  renderReceipts();
  list.scrollTop = list.scrollHeight;
}

async function loadLatest(st) {
  if (st.status !== 'idle') return;
  st.status = 'loading';
  if (st.room === current) renderTop(st);
  try {
    if (st.joining) await st.joining; // who may not join may not read either
    const page = await client.history(st.room, { before: NEWEST, limit: PAGE });
    if (rooms.get(st.room) !== st) return; // left meanwhile
    st.complete = page.length < PAGE;
    st.status = 'loaded';
    addMessages(st, page);
  } catch (error) {
    if (rooms.get(st.room) !== st) return;
    st.status = 'idle';
    note('could not load ' + roomLabel(st.room) + ': ' + error.message);
  }
  if (st.room !== current) return;
  renderTop(st);
  list.scrollTop = list.scrollHeight;
  fillScreen(st);
  scheduleRead();
}

async function loadOlder(st) {
  if (st.status !== 'loaded' || st.complete || st.loadingOlder) return;
  if (st.order.length === 0) {
    st.complete = true;
    renderTop(st);
    return;
  }
  st.loadingOlder = true;
  if (st.room === current) renderTop(st);
  try {
    const page = await client.history(st.room, { before: st.order[0], limit: PAGE });
    if (page.length < PAGE) st.complete = true;
    addMessages(st, page);
  } catch (error) {
    note('could not load older messages: ' + error.message);
  } finally {
    st.loadingOlder = false;
  }
  if (st.room !== current) return;
  keepingScroll(() => renderTop(st));
  fillScreen(st);
}

/** Loads older pages while the list does not fill its box (nothing to scroll). */
function fillScreen(st) {
  if (st.room === current && !st.complete && list.scrollHeight <= list.clientHeight + 8) loadOlder(st);
}

/** Fetches what came after the newest message held (after a gap or a new session). */
async function catchUp(st) {
  if (st.catchingUp || st.status === 'idle') return;
  st.catchingUp = true;
  // Read now, before any later live message moves it: the hole is right above it.
  let after = st.order.length ? st.order[st.order.length - 1] : 0;
  try {
    for (let pages = 1; ; pages += 1) {
      const page = await client.history(st.room, { after, limit: FILL_PAGE });
      if (rooms.get(st.room) !== st) return;
      addMessages(st, page);
      if (page.length < FILL_PAGE) break;
      after = page[page.length - 1].id;
      if (pages >= FILL_PAGES) {
        // Too much missed: start the room over from its newest page.
        st.messages.clear();
        st.order = [];
        st.complete = false;
        st.status = 'idle';
        if (st.room === current) {
          renderView();
          loadLatest(st);
        }
        break;
      }
    }
  } catch (error) {
    note('could not catch up ' + roomLabel(st.room) + ': ' + error.message);
  } finally {
    st.catchingUp = false;
  }
}

list.addEventListener('scroll', () => {
  const st = current && rooms.get(current);
  if (!st) return;
  if (list.scrollTop < 60) loadOlder(st);
  scheduleRead();
});

// --- sending, typing ----------------------------------------------------------

$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('text').value.trim();
  const room = current;
  if (!text || !room || !client) return;
  $('text').value = '';
  lastTyping = { room: null, at: 0 }; // typing again after a send shows again
  const st = roomState(room);
  const nonce = Math.random().toString(36).slice(2) + Date.now().toString(36);
  const p = { text, ts: Date.now(), error: null };
  st.pending.set(nonce, p);
  list.append(pendingNode(nonce, p));
  list.scrollTop = list.scrollHeight;
  client.send(room, { text, nonce }).catch((error) => {
    if (!st.pending.has(nonce)) return;
    p.error = error.message;
    const old = room === current && list.querySelector(`li.pending[data-nonce="${CSS.escape(nonce)}"]`);
    if (old) old.replaceWith(pendingNode(nonce, p));
  });
  refresh();
});

$('text').addEventListener('input', () => {
  if (!client || !current || !$('text').value.trim()) return;
  const now = Date.now();
  if (lastTyping.room === current && now - lastTyping.at < TYPING_EVERY) return;
  if (client.typing(current)) lastTyping = { room: current, at: now };
});

function onTyping({ room, user, name }) {
  if (me && user === me.user) return;
  names.set(user, name || user);
  const st = rooms.get(room);
  if (!st) return;
  st.typing.set(user, Date.now() + TYPING_SHOWN);
  if (room === current) renderTyping();
}

let typingTimer = null;
function renderTyping() {
  clearTimeout(typingTimer);
  const st = current && rooms.get(current);
  const now = Date.now();
  const who = [];
  let next = Infinity;
  if (st) {
    for (const [user, until] of st.typing) {
      if (until <= now) st.typing.delete(user);
      else {
        who.push(nameOf(user));
        next = Math.min(next, until);
      }
    }
  }
  who.sort();
  let text = '';
  if (who.length === 1) text = who[0] + ' is typing…';
  else if (who.length === 2) text = who[0] + ' and ' + who[1] + ' are typing…';
  else if (who.length > 2) text = who.length + ' people are typing…';
  if ($('typing').textContent !== text) $('typing').textContent = text;
  if (next !== Infinity) typingTimer = setTimeout(renderTyping, next - now + 20);
}

// --- read receipts --------------------------------------------------------------

let readTimer = null;
function scheduleRead() {
  clearTimeout(readTimer);
  readTimer = setTimeout(markRead, 150);
}

/** Marks the current room read up to the newest message on screen. */
function markRead() {
  const st = current && rooms.get(current);
  if (!st || !client || document.visibilityState !== 'visible') return;
  if (client.state !== 'open') {
    whenOpen('read', scheduleRead);
    return;
  }
  const bottom = list.scrollTop + list.clientHeight;
  let newest = 0;
  for (let i = st.order.length - 1; i >= 0; i -= 1) {
    const node = nodes.get(st.order[i]);
    if (node && node.offsetTop < bottom) {
      newest = st.order[i];
      break;
    }
  }
  if (newest > Math.max(st.mark, st.sentRead)) {
    st.sentRead = newest;
    client.read(st.room, newest).catch((error) => note('could not mark read: ' + error.message));
  }
}
document.addEventListener('visibilitychange', scheduleRead);

function onRead({ room, user, id }) {
  const st = rooms.get(room);
  if (!st) return;
  if (me && user === me.user) {
    st.mark = Math.max(st.mark, id);
    if (room !== current) st.unread = Math.max(0, st.lastId - st.mark);
    renderRooms();
    return;
  }
  st.readers.set(user, Math.max(st.readers.get(user) || 0, id));
  if (room === current) renderReceipts();
}

/**
 * Under each of my messages: who has read it. Known from `read` events and
 * from people's own messages (writing marks a room read up to there), so
 * from what this page has seen. Runs of my messages read by the same people
 * say it once, under the newest.
 */
function renderReceipts() {
  const st = current && rooms.get(current);
  if (!st || !me) return;
  const readers = [...st.readers].filter(([user]) => user !== me.user);
  let newer = null;
  for (let i = st.order.length - 1; i >= 0; i -= 1) {
    const id = st.order[i];
    const node = nodes.get(id);
    if (!node || !node.classList.contains('mine')) continue;
    const who = readers.filter(([, mark]) => mark >= id).map(([user]) => user);
    const shown = who.map(nameOf).sort();
    let text = 'Sent';
    if (shown.length > 3) text = 'Read by ' + shown.length;
    else if (shown.length) text = 'Read by ' + shown.join(', ');
    const receipt = node.querySelector('.receipt');
    receipt.textContent = text;
    receipt.title = shown.length ? 'Read by ' + shown.join(', ') : 'Delivered to the server';
    receipt.classList.toggle('read', shown.length > 0);
    receipt.classList.toggle('same', text === newer);
    node.dataset.readBy = who.sort().join(' ');
    newer = text;
  }
}

// --- presence -------------------------------------------------------------------

async function refreshWho(room) {
  try {
    const users = await client.who(room);
    const st = rooms.get(room);
    if (!st) return;
    st.present = new Map(users.map((u) => [u.user, u.name || u.user]));
    for (const u of users) {
      names.set(u.user, u.name || u.user);
      if (!room.startsWith('dm:')) considerDm(u.user);
    }
  } catch (error) {
    note('could not ask who is in ' + roomLabel(room) + ': ' + error.message);
    return;
  }
  if (room === current) {
    renderPresence();
    renderHead();
  }
}

function onPresence({ room, user, name, state }) {
  names.set(user, name || user);
  const st = rooms.get(room);
  if (!st) return;
  if (st.present) {
    if (state === 'join') st.present.set(user, name || user);
    else st.present.delete(user);
  }
  if (state === 'leave' && st.typing.delete(user) && room === current) renderTyping();
  if (state === 'join' && !room.startsWith('dm:')) considerDm(user);
  if (room === current) {
    renderPresence();
    renderHead();
  }
}

function renderPresence() {
  const st = current && rooms.get(current);
  const people = st && st.present ? [...st.present] : [];
  people.sort((a, b) => compareIds(a[1].toLowerCase(), b[1].toLowerCase()));
  $('presence').replaceChildren(
    ...people.map(([user, name]) => {
      const mine = Boolean(me && user === me.user);
      const li = el('li', { dataset: { user } }, avatar(user, name), el('span', { class: 'pname', text: name, title: user }, mine ? el('span', { class: 'you', text: ' (you)' }) : null));
      if (canDm(user) && dmPeer(current) !== user) {
        const button = el('button', { type: 'button', class: 'secondary small', 'aria-label': 'Message ' + name, text: 'Message' });
        button.addEventListener('click', () => startDm(user));
        li.append(button);
      }
      return li;
    }),
  );
}

// --- start ------------------------------------------------------------------------

// For the console.
window.demo = {
  rooms,
  names,
  get current() {
    return current;
  },
};

const error = tabStore.get(ERROR_KEY);
tabStore.set(ERROR_KEY, null);
let saved = null;
try {
  saved = JSON.parse(tabStore.get(LOGIN_KEY) || 'null');
} catch {
  saved = null;
}
const asked = params.get('name');
if (error) loginError(error);
if (asked && NICKNAME.test(asked) && !error) start({ name: asked });
else if (saved && (typeof saved.name === 'string' || typeof saved.token === 'string') && !error) start(saved);
else $('nick').focus();

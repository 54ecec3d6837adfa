// Compiled with `tsc --noEmit` by tests/browser/run.sh: the declarations in
// clients/js/switchboard.d.ts must accept what a user of the client writes,
// give the fields every frame carries (docs/protocol.md) their real types,
// and refuse what the client refuses. Lines marked `@ts-expect-error` must
// stay errors: if a declaration became too loose, tsc fails on them.

import {
  connect,
  Client,
  DEFAULTS,
  SwitchboardError,
  TRANSPORTS,
  type ClientOptions,
  type ConnectionState,
  type Gap,
  type Message,
  type SequencedFrame,
  type SessionInfo,
  type StoredMessage,
  type TransportName,
} from '../../../clients/js/switchboard.js';

const options: ClientOptions = {
  transports: ['longpoll', 'sse'],
  connectTimeout: 1000,
  reconnectDelay: 200,
  reconnectDelayMax: 1000,
  randomization: 0.5,
  token: async () => 'a.b.c',
  name: 'ann',
};
const client: Client = connect('https://chat.example.com', options);
connect({ transports: 'websocket' });
connect(new URL('https://chat.example.com'));
new Client({ autoConnect: false }).open();
// @ts-expect-error: not a transport
connect({ transports: ['carrier-pigeon'] });
// @ts-expect-error: not an option
connect({ reconectDelay: 5 });

const ladder: readonly TransportName[] = TRANSPORTS;
const defaultDelay: number = DEFAULTS.reconnectDelay;
void ladder;
void defaultDelay;

// A `msg` frame, as the `message` event hands it over.
client.on('message', (message: Message) => {
  const room: string = message.room;
  const from: string = message.from;
  const seq: number = message.seq;
  const id: number = message.id;
  const ts: number = message.ts;
  const user: string = message.user;
  const name: string = message.name;
  const when: Date = new Date(message.ts);
  void [room, from, seq, id, ts, user, name, when, message.data];
  // @ts-expect-error: the client takes `type` off before emitting
  const type: string = message.type;
  void type;
});

client.on('state', (state: ConnectionState, detail) => {
  const code: number | undefined = detail.code;
  const reason: string | undefined = detail.reason;
  void [state, code, reason];
});
client.on('transport', (transport: TransportName) => void transport);
client.on('gap', ({ from, to }: Gap) => void (to - from));
client.on('session', ({ id, user, name, renewed }: SessionInfo) => void [id, user, name, renewed]);
client.on('error', (error: SwitchboardError) => void [error.code, error.message]);
client.on('frame', (frame: SequencedFrame) => void [frame.seq, frame.type, frame.cid]);
client.on('presence', (frame) => {
  const state: 'join' | 'leave' = frame.state;
  void [frame.room, frame.user, frame.name, state];
});
client.on('typing', (frame) => void [frame.room, frame.user, frame.name]);
client.on('read', (frame) => {
  const id: number = frame.id;
  void [frame.room, frame.user, id];
});
client.on('rooms', (frame) => {
  for (const r of frame.rooms) void [r.room, r.last_id, r.read, r.unread];
});
// @ts-expect-error: no such event
client.on('mesage', () => {});
// @ts-expect-error: a state listener gets a state, not a message
client.on('state', (message: Message) => void message);

async function chat(): Promise<void> {
  const joined = await client.join('lobby');
  const joinedCid: string = joined.cid;
  const ack = await client.send('lobby', { text: 'hi', n: 1, tags: ['a'], nothing: null });
  // For a publish, the ack names the stored message id.
  const stored: number | undefined = ack.id;
  const echoed: { n: number[] } = await client.echo({ n: [1, 2] });
  const page: StoredMessage[] = await client.history('lobby', { after: 10, limit: 50 });
  for (const m of page) void [m.id, m.ts, m.user, m.name, m.data];
  const present: { user: string; name: string }[] = await client.who('lobby');
  await client.read('lobby', 12);
  await client.leave('lobby');
  const typed: boolean = client.typing('lobby');
  const answer = await client.request({ type: 'rooms' });
  void [joinedCid, stored, echoed, present, typed, answer.seq];
  // @ts-expect-error: data must be JSON
  await client.send('lobby', { when: new Date() });
  // @ts-expect-error: a function is no JSON value
  await client.send('lobby', () => 1);
  try {
    await client.send('lobby', 'x');
  } catch (error) {
    if (error instanceof SwitchboardError) void error.code;
  }
}
void chat;

const state: ConnectionState = client.state;
const transport: TransportName | null = client.transport;
const facts: [string | null, string | null, string | null, number, string[], number, TransportName[]] = [
  client.id,
  client.user,
  client.name,
  client.last,
  client.rooms,
  client.pending,
  client.transports,
];
void [state, transport, facts];
client.useTransports(['sse', 'longpoll']);
client.useTransports('websocket');
client.close();

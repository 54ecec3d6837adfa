// Type declarations of the Switchboard JavaScript client (switchboard.js).

/** The ways the client can reach the server, in the order `auto` tries them. */
export type TransportName = 'websocket' | 'sse' | 'stream' | 'htmlfile' | 'longpoll' | 'jsonp' | 'shortpoll';

/** Every transport, in ladder order. */
export const TRANSPORTS: readonly TransportName[];

/** Connection state, reported by the `state` event. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface ClientOptions {
  /** Transports allowed, in order of preference; one name forces it. Default: all of TRANSPORTS. */
  transports?: TransportName | readonly TransportName[];
  /** Time limit of one connection attempt, in ms (default 4000). */
  connectTimeout?: number;
  /** First reconnect delay, in ms; doubles per failed round (default 500). */
  reconnectDelay?: number;
  /** Longest reconnect delay, in ms (default 10000). */
  reconnectDelayMax?: number;
  /** Jitter: each delay is shortened by up to this fraction, at random (default 0.5). */
  randomization?: number;
  /** Wait before probing WebSocket when on a fallback, in ms; doubles per failed probe (default 3000). */
  upgradeDelay?: number;
  /** Longest wait between WebSocket probes, in ms (default 60000). */
  upgradeDelayMax?: number;
  /** How long the server may hold a long poll, in ms (default 20000). */
  pollWait?: number;
  /** Interval of short polls, in ms (default 1000). */
  shortPollInterval?: number;
  /** Acknowledge streamed frames at least this often, in ms (default 1000). */
  ackInterval?: number;
  /** ...or after this many frames (default 64). */
  ackEvery?: number;
  /** Most upstream frames per WebSocket message or POST (default 64). */
  maxBatch?: number;
  /** Time limit of one POST /v1/send, in ms (default 15000). */
  sendTimeout?: number;
  /** Send cookies on cross-origin fetch and EventSource requests (default false). */
  withCredentials?: boolean;
  /** Connect at once (default true); otherwise call open(). */
  autoConnect?: boolean;
  /** JWT for a new session: a string, or a function giving one (called before each attempt to open a session). */
  token?: string | null | (() => string | null | Promise<string | null>);
  /** Nickname on a server in development mode (no JWT key). */
  name?: string | null;
  /** Times a frame refused with 4429 or 4500 is sent again before its promise rejects (default 5). */
  retries?: number;
}

/** Defaults of every option. */
export const DEFAULTS: Readonly<Required<ClientOptions>>;

/**
 * A message published to a room this client has joined: a `msg` frame
 * (docs/protocol.md §1.1) without its `type`.
 */
export interface Message<T = Json> {
  room: string;
  /** The message id, increasing within the room: what `history()` pages by. */
  id: number;
  /** When the server accepted it, in milliseconds since the epoch. */
  ts: number;
  /**
   * Public id of the publishing session (the sender sees its own messages
   * too); `system` for a message from the HTTP API, empty in offline replay.
   */
  from: string;
  /** The user who sent it, and the user's display name. */
  user: string;
  name: string;
  data: T;
  /** Sequence number of the frame within this session. */
  seq: number;
  /** Any further fields a newer server adds to `msg` frames. */
  [extra: string]: unknown;
}

/** A sequenced downstream frame (msg, ack, echo, error, or a newer kind). */
export interface SequencedFrame {
  seq: number;
  type: string;
  cid?: string;
  [field: string]: unknown;
}

/** The server's answer to join, leave, send and read: the frame was applied. */
export interface Ack extends SequencedFrame {
  type: 'ack';
  cid: string;
  /** For a publish, the stored message id (an ack means durable). */
  id?: number;
}

export interface StateDetail {
  /** The close code, when the server ended the connection for good. */
  code?: number;
  reason?: string;
}

export interface SessionInfo {
  /** The new session's public id. */
  id: string;
  /** The user the session belongs to, and the user's display name. */
  user: string | null;
  name: string | null;
  /** True when an expired session was replaced (rooms are rejoined, unanswered frames resent). */
  renewed: boolean;
}

export interface Gap {
  /** First seq dropped by the server. */
  from: number;
  /** Last seq dropped. */
  to: number;
}

export interface ClientEvents {
  message: (message: Message) => void;
  state: (state: ConnectionState, detail: StateDetail) => void;
  transport: (transport: TransportName) => void;
  gap: (gap: Gap) => void;
  session: (session: SessionInfo) => void;
  error: (error: SwitchboardError) => void;
  frame: (frame: SequencedFrame) => void;
  presence: (frame: SequencedFrame & { room: string; user: string; name: string; state: 'join' | 'leave' }) => void;
  typing: (frame: SequencedFrame & { room: string; user: string; name: string }) => void;
  read: (frame: SequencedFrame & { room: string; user: string; id: number }) => void;
  rooms: (frame: SequencedFrame & { rooms: { room: string; last_id: number; read: number; unread: number }[] }) => void;
}

/** A stored message, as `history()` returns it. */
export interface StoredMessage<T = Json> {
  id: number;
  ts: number;
  user: string;
  name: string;
  data: T;
  [extra: string]: unknown;
}

/** An error the server answered: an `error` frame, or an HTTP error of POST /v1/send. */
export class SwitchboardError extends Error {
  constructor(code: number, message: string);
  /** Protocol code (docs/protocol.md §6), e.g. 4403. */
  readonly code: number;
}

export class Client {
  constructor(url?: string | URL, options?: ClientOptions);
  constructor(options?: ClientOptions);
  readonly state: ConnectionState;
  /** The transport in use (the last one that opened). */
  readonly transport: TransportName | null;
  /** This session's public id, once known. */
  readonly id: string | null;
  /** The user the session belongs to (from the server's welcome). */
  readonly user: string | null;
  /** The user's display name (from the server's welcome). */
  readonly name: string | null;
  /** Highest seq processed. */
  readonly last: number;
  /** Rooms joined (or being joined). */
  readonly rooms: string[];
  /** Upstream frames still waiting for the server's answer. */
  readonly pending: number;
  /** Transports this client may use here, in order. */
  readonly transports: TransportName[];

  on<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): this;
  off<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): this;
  once<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): this;

  /** Joins a room; resolves on the server's ack. */
  join(room: string): Promise<Ack>;
  /** Leaves a room; resolves on the server's ack. */
  leave(room: string): Promise<Ack>;
  /** Publishes to a joined room; resolves on the server's ack (with the message id), rejects with SwitchboardError. */
  send(room: string, data: Json): Promise<Ack>;
  /** Round trip through the server; resolves with the same data. */
  echo<T extends Json>(data: T): Promise<T>;
  /** A page of a room's history, oldest first. */
  history(room: string, page?: { before?: number; after?: number; limit?: number }): Promise<StoredMessage[]>;
  /** Users present in a room. */
  who(room: string): Promise<{ user: string; name: string }[]>;
  /** Marks a room read up to message `id`; resolves on the server's ack. */
  read(room: string, id: number): Promise<Ack>;
  /** Tells the room you are typing; false (nothing sent) while disconnected. */
  typing(room: string): boolean;
  /** Sends any upstream frame with a fresh cid; resolves with the answering frame. */
  request(frame: { type: string; [field: string]: Json | undefined }): Promise<SequencedFrame>;
  /** Stops all transports; the session and the queue are kept for open(). */
  close(): void;
  /** Connects again after close(), resuming the session while the server keeps it. */
  open(): void;
  /** Changes the allowed transports, keeping the session. */
  useTransports(transports: TransportName | readonly TransportName[]): void;
}

/** Connects to a Switchboard server (default: this page's origin). */
export function connect(url?: string | URL, options?: ClientOptions): Client;
export function connect(options?: ClientOptions): Client;

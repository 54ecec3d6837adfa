//! The heart of Switchboard: sessions, their outboxes, and rooms.
//!
//! # Layout
//!
//! - [`id`]: session ids (128-bit random secrets) and public ids.
//! - [`json`]: the one JSON writer every server frame goes through; it makes
//!   the bytes safe for every transport at once (no raw newlines, `<`, `>`,
//!   `&`, U+2028, U+2029).
//! - [`frame`]: the native protocol's frames: parsing upstream frames,
//!   encoding downstream ones. Sequenced frames are stored as a shared body
//!   (`Bytes`) so a broadcast is encoded once for all recipients.
//! - [`outbox`]: the bounded, seq-numbered queue of one session.
//! - [`publication`]: a room message, encoded at most once per wire format
//!   (native, socket.io, SockJS) and shared by every member of that format.
//! - [`session`]: one client's logical connection: outbox, downstream
//!   attachment (at most one), cid de-duplication, rooms.
//! - [`registry`]: every live session by id, the grace-period reaper and
//!   shutdown.
//! - [`hub`]: rooms and fan-out; one lock per room gives every member the
//!   same order.
//! - [`identity`]: users, credentials, the development-mode authenticator.
//! - [`retention`]: how much history each room keeps, and how often that
//!   is applied.
//! - [`store`]: the durable side (history, rooms, memberships, read marks)
//!   behind a narrow trait, with an in-memory implementation.
//! - `dispatch`: applying upstream frames (chat, receipts, typing, queries).
//! - [`broker`]: fan-out across nodes behind a narrow trait; the local
//!   broker hands publications straight to the hub.
//! - [`codes`]: the documented error and close codes.
//! - [`stats`]: the metrics counted per message or per frame, kept cheap
//!   (the delivery histogram, rendered by [`stats::render_delivery`]).
//!
//! Nothing here knows HTTP: transports call [`Core::attach`],
//! [`Core::handle_upstream`] and the [`session::Attachment`] API.

pub mod broker;
pub mod codes;
pub mod frame;
pub mod hub;
pub mod id;
pub mod identity;
pub mod json;
pub mod limits;
pub mod outbox;
pub mod publication;
pub mod registry;
pub mod retention;
pub mod session;
pub mod stats;
pub mod store;

mod core;
mod dispatch;
#[cfg(test)]
mod proptests;

pub use crate::core::{
    AttachError, Attached, BrokerFactory, Core, CoreOptions, UpstreamError, OFFLINE_REPLAY_PER_ROOM,
};
pub use crate::dispatch::{dm_members, dm_room, DM_PREFIX};
pub use limits::SessionLimits;

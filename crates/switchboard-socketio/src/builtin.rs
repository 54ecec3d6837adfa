//! The built-in events, so a socket.io client can use rooms without any
//! server code: `join`, `leave`, `publish` (a durable chat message, the
//! same as a native client's), `broadcast` (any event to a room), `echo`
//! and `ask` (the server asks the client for an acknowledgement). Each
//! answers through the client's acknowledgement when it asked for one.

use std::sync::Arc;

use serde_json::{json, Value};
use switchboard_core::publication::Publication;
use switchboard_core::session::Rate;
use switchboard_core::store::{now_ms, Appended, NewMessage};
use switchboard_core::DM_PREFIX;

use crate::config::SocketIoConfig;
use crate::endpoint::{InvalidNamespace, SocketIo};
use crate::namespace::Namespace;
use crate::protocol::packet::Payload;
use crate::socket::{AckSender, Socket};

/// Registers the configured namespaces, with the built-in events when
/// configured.
pub fn install(io: &SocketIo, config: &SocketIoConfig) -> Result<(), InvalidNamespace> {
    for name in &config.namespaces {
        let namespace = io.of(name)?;
        if config.builtin_events {
            install_events(&namespace);
        }
    }
    Ok(())
}

fn answer(ack: Option<AckSender>, value: Value) {
    if let Some(ack) = ack {
        ack.send(Payload::new(vec![value]));
    }
}

fn refuse(ack: Option<AckSender>, message: &str) {
    answer(ack, json!({ "error": message }));
}

fn room_arg(payload: &Payload) -> Option<&str> {
    payload.args.first().and_then(Value::as_str)
}

/// Registers the built-in events on `namespace`.
pub fn install_events(namespace: &Namespace) {
    namespace.on("join", join);
    namespace.on("leave", |socket, payload, ack| match room_arg(&payload).map(|r| socket.leave(r)) {
        Some(Ok(())) => answer(ack, json!({ "ok": true })),
        Some(Err(e)) => refuse(ack, &e.to_string()),
        None => refuse(ack, "leave takes the room name"),
    });
    namespace.on("publish", publish);
    namespace.on("broadcast", broadcast);
    namespace.on("echo", |socket, payload, ack| match ack {
        Some(ack) => {
            ack.send(payload);
        }
        None => {
            socket.emit("echo", payload);
        }
    });
    namespace.on("ask", |socket, payload, ack| {
        let asker = Arc::clone(socket);
        socket.emit_with_ack("question", payload, move |answer| {
            asker.emit("answer", answer);
        });
        answer(ack, json!({ "ok": true }));
    });
}

/// `join(room)`: the same permission rules as a native join (private rooms
/// need membership; direct-message rooms are for their two users).
fn join(socket: &Arc<Socket>, payload: Payload, ack: Option<AckSender>) {
    let Some(room) = room_arg(&payload) else {
        return refuse(ack, "join takes the room name");
    };
    let core_room = match socket.core_room(room) {
        Ok(core_room) => core_room,
        Err(e) => return refuse(ack, &e.to_string()),
    };
    if !socket.session().allow(Rate::Joins) {
        return refuse(ack, "too many joins; slow down");
    }
    if core_room.starts_with(DM_PREFIX) {
        return refuse(ack, "direct-message rooms are not open to socket.io clients");
    }
    let socket = Arc::clone(socket);
    tokio::spawn(async move {
        let core = Arc::clone(socket.namespace().core());
        match core.may_join(socket.session(), &core_room).await {
            Ok(()) => {
                core.join(socket.session(), &core_room);
                answer(ack, json!({ "ok": true }));
            }
            Err((_, message)) => refuse(ack, &message),
        }
    });
}

/// `publish({room, data})`: a chat message to a joined room, stored in the
/// room's history like a native publish; the ack (`{ok, id}`) comes once it
/// is durable. Every member receives it (socket.io members as `message`).
fn publish(socket: &Arc<Socket>, payload: Payload, ack: Option<AckSender>) {
    let arg = payload.args.first();
    let (Some(room), Some(data)) =
        (arg.and_then(|a| a.get("room")).and_then(Value::as_str), arg.and_then(|a| a.get("data")))
    else {
        return refuse(ack, "publish takes {room, data}");
    };
    let Ok(core_room) = socket.core_room(room) else {
        return refuse(ack, "invalid room name");
    };
    if !socket.session().in_room(&core_room) {
        return refuse(ack, &format!("join room {room:?} before publishing to it"));
    }
    if !socket.session().allow(Rate::Messages) {
        return refuse(ack, "too many messages; slow down");
    }
    let Ok(data) = serde_json::value::to_raw_value(data) else {
        return refuse(ack, "data is not JSON");
    };
    let core = Arc::clone(socket.namespace().core());
    let identity = socket.session().identity();
    let message = NewMessage {
        room: core_room,
        user: identity.user.clone(),
        name: identity.name.clone(),
        from: socket.id().to_owned(),
        data,
        ts: now_ms(),
        cid: None,
    };
    let from = socket.id().to_owned();
    let store = Arc::clone(core.store());
    store.append(
        message,
        Box::new(move |result| match result {
            Ok(Appended { message, fresh }) => {
                if fresh {
                    core.publish(Publication::stored(&message, &from));
                }
                answer(ack, json!({ "ok": true, "id": message.id }));
            }
            Err(e) => refuse(ack, &format!("{e}; nothing was stored, try again")),
        }),
    );
}

/// `broadcast(room, event, ...args)`: emits `event` with `args` (binary
/// included) to every member of a joined room.
fn broadcast(socket: &Arc<Socket>, mut payload: Payload, ack: Option<AckSender>) {
    if payload.args.len() < 2 {
        return refuse(ack, "broadcast takes the room, the event name, then its arguments");
    }
    let (Some(room), Some(event)) =
        (payload.args[0].as_str().map(str::to_owned), payload.args[1].as_str().map(str::to_owned))
    else {
        return refuse(ack, "broadcast takes the room, the event name, then its arguments");
    };
    if !socket.in_room(&room) {
        return refuse(ack, &format!("join room {room:?} before broadcasting to it"));
    }
    if !socket.session().allow(Rate::Messages) {
        return refuse(ack, "too many messages; slow down");
    }
    payload.args.drain(..2);
    let delivered = socket.to(&room).emit(&event, payload);
    answer(ack, json!({ "ok": true, "delivered": delivered }));
}

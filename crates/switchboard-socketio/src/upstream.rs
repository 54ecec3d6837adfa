//! What a client sends: engine.io packets from either transport, the
//! socket.io packets inside them, and what each one does (connect with
//! recovery, disconnect, events, acknowledgements).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use switchboard_core::frame::Downstream;
use switchboard_core::identity::{AuthError, Credentials};
use switchboard_core::session::{Attachment, Session};

use crate::body::{self, Tag, FORMAT};
use crate::connection::{CloseReason, Connection};
use crate::driver::{Command, Link};
use crate::endpoint::Inner;
use crate::namespace::{Admission, ConnectError, Namespace};
use crate::protocol::engine::{kind, Incoming, Outgoing};
use crate::protocol::packet::{self, Packet, PacketError, PacketType, Payload};
use crate::socket::{AckSender, Socket};

/// A binary packet waiting for its attachments.
#[derive(Debug)]
pub struct Partial {
    packet: Packet,
    binary: Vec<Bytes>,
}

/// Handles one engine.io packet; `Err` means the client broke the protocol
/// and the connection must close.
pub fn handle(inner: &Arc<Inner>, conn: &Arc<Connection>, incoming: Incoming) -> Result<(), PacketError> {
    match incoming {
        Incoming::Close => conn.close(CloseReason::ClientClose),
        Incoming::Ping(data) => conn.send([Outgoing::text(kind::PONG, &data)]),
        Incoming::Pong(_) => conn.pong_received(),
        Incoming::Upgrade | Incoming::Noop => {}
        Incoming::Message(text) => {
            if conn.with_partial(|p| p.is_some()) {
                return Err(PacketError("text packet while binary attachments were expected"));
            }
            let packet = packet::decode(&text)?;
            if !conn.allows_packet(packet.kind == PacketType::Connect) {
                return Err(PacketError("the first packet must be a CONNECT"));
            }
            if packet.attachments > 0 {
                let binary = Vec::with_capacity(packet.attachments);
                conn.with_partial(|p| *p = Some(Box::new(Partial { packet, binary })));
            } else {
                dispatch(inner, conn, packet, Vec::new());
            }
        }
        Incoming::Binary(bytes) => {
            let outcome = conn.with_partial(|slot| {
                let partial = slot.as_mut().ok_or(PacketError("binary data without a binary packet"))?;
                partial.binary.push(bytes);
                let complete = partial.binary.len() == partial.packet.attachments;
                Ok(if complete { slot.take() } else { None })
            })?;
            if let Some(partial) = outcome {
                let Partial { packet, binary } = *partial;
                if !packet.data.as_ref().is_some_and(|d| packet::placeholders_valid(d, binary.len())) {
                    return Err(PacketError("illegal attachments"));
                }
                dispatch(inner, conn, packet, binary);
            }
        }
    }
    Ok(())
}

fn dispatch(inner: &Arc<Inner>, conn: &Arc<Connection>, packet: Packet, binary: Vec<Bytes>) {
    let Packet { kind, namespace, id, data, .. } = packet;
    match kind {
        PacketType::Connect => connect(inner, conn, &namespace, data),
        PacketType::Disconnect => {
            if conn.remove_socket(&namespace, None).is_some() {
                conn.command(Command::Remove(namespace));
            }
        }
        PacketType::Event | PacketType::BinaryEvent => {
            let (Some(socket), Some(Value::Array(mut args))) = (conn.socket(&namespace), data) else {
                return;
            };
            let name = match args.remove(0) {
                Value::String(name) => name,
                other => other.to_string(),
            };
            let ack = id.map(|id| AckSender::new(Arc::clone(&socket), id));
            socket.namespace().dispatch(&socket, &name, Payload::with_binary(args, binary), ack);
        }
        PacketType::Ack | PacketType::BinaryAck => {
            let (Some(socket), Some(Value::Array(args)), Some(id)) = (conn.socket(&namespace), data, id) else {
                return;
            };
            if let Some(callback) = socket.take_ack(id) {
                callback(Payload::with_binary(args, binary));
            }
        }
        PacketType::ConnectError => {}
    }
}

fn connect_error(conn: &Connection, namespace: &str, error: &ConnectError) {
    let text = packet::encode(PacketType::ConnectError, namespace, None, 0, Some(&error.to_json()));
    conn.send([Outgoing::text(kind::MESSAGE, &text)]);
}

fn connect(inner: &Arc<Inner>, conn: &Arc<Connection>, name: &str, auth: Option<Value>) {
    let auth = auth.unwrap_or_else(|| Value::Object(Default::default()));
    if conn.socket(name).is_some() {
        return; // already connected: socket.io ignores it
    }
    let Some(namespace) = inner.namespace(name) else {
        return connect_error(conn, name, &ConnectError::new("Invalid namespace"));
    };
    let admission = match namespace.check(&auth) {
        Ok(admission) => admission,
        Err(e) => return connect_error(conn, name, &e),
    };
    let token = auth.get("token").and_then(Value::as_str).map(str::to_owned);
    let nickname = auth.get("name").and_then(Value::as_str).map(str::to_owned);
    let presented = token.is_some() || nickname.is_some();
    let credentials = Credentials { token, name: nickname };
    let refused =
        |e: AuthError| ConnectError { message: e.0, data: Some(serde_json::json!({ "code": AuthError::CODE })) };
    let mut resumed = if namespace.recovery() { recover(inner, &namespace, &auth) } else { None };
    if let Some((session, ..)) = &resumed {
        // The pid is the secret; a user named again must be the same one.
        let owner = &session.identity().user;
        match &admission {
            Admission::ByCore if presented => match inner.core.authenticate(&credentials) {
                Ok(identity) if identity.user == *owner => {}
                Ok(_) => resumed = None,
                Err(e) => return connect_error(conn, name, &refused(e)),
            },
            Admission::ByNamespace(Some(identity)) if identity.user != *owner => resumed = None,
            _ => {}
        }
    }
    let (session, attachment, replay, recovered) = match resumed {
        Some((session, attachment, replay)) => (session, attachment, replay, true),
        None => {
            let identity = match admission {
                Admission::ByCore => match inner.core.authenticate(&credentials) {
                    Ok(identity) => identity,
                    Err(e) => return connect_error(conn, name, &refused(e)),
                },
                Admission::ByNamespace(Some(identity)) => identity,
                Admission::ByNamespace(None) => crate::namespace::guest(),
            };
            if inner.core.check_capacity().is_err() {
                let full = ConnectError {
                    message: "server full; retry later".into(),
                    data: Some(serde_json::json!({ "code": switchboard_core::codes::SERVER_FULL })),
                };
                return connect_error(conn, name, &full);
            }
            let session = inner.core.create_session_for(identity, Arc::clone(&inner.encoder));
            inner.core.join_quiet(&session, &body::all_room(name));
            inner.core.join_quiet(&session, &body::core_room(name, session.public_id()));
            let Ok(attachment) = session.attach(0) else {
                return connect_error(conn, name, &ConnectError::new("server shutting down"));
            };
            (session, attachment, Vec::new(), false)
        }
    };
    let socket = Socket::new(Arc::clone(&namespace), Arc::clone(&session), auth, recovered);
    if !conn.add_socket(name, Arc::clone(&socket)) {
        return;
    }
    // `sid` first, then `pid`, as in the protocol document.
    let mut answer = format!("{{\"sid\":{}", Value::from(session.public_id()));
    if namespace.recovery() {
        answer.push_str(&format!(",\"pid\":\"{}\"", session.id()));
    }
    answer.push('}');
    let text = packet::encode(PacketType::Connect, name, None, 0, Some(&answer));
    conn.send([Outgoing::text(kind::MESSAGE, &text)]);
    let mut forwarded = 0;
    for (seq, packets) in replay {
        conn.send(packets);
        forwarded = seq;
    }
    tracing::debug!(sid = %conn.sid(), namespace = name, socket = socket.id(), recovered, "socket connected");
    conn.command(Command::Add(Link { socket: Arc::clone(&socket), attachment, forwarded, proven: 0 }));
    namespace.connected(&socket);
}

type Replay = Vec<(u64, Vec<Outgoing>)>;

/// Connection state recovery: the session named by `auth.pid`, attached
/// after `auth.offset`, with the events it missed. `None` when it cannot be
/// recovered exactly (unknown or expired, another namespace, or events
/// dropped by an outbox overflow); the client then gets a new socket.
fn recover(inner: &Inner, namespace: &Namespace, auth: &Value) -> Option<(Arc<Session>, Attachment, Replay)> {
    let pid = auth.get("pid")?.as_str()?;
    let offset: u64 = auth.get("offset")?.as_str()?.parse().ok()?;
    let session = inner.core.session(pid)?;
    if session.encoder().format() != FORMAT || !session.in_room(&body::all_room(namespace.name())) {
        return None;
    }
    let mut attachment = session.attach(offset).ok()?;
    let mut replay = Vec::new();
    while let Some(batch) = attachment.try_batch(usize::MAX) {
        for frame in batch.ok()? {
            match frame {
                Downstream::Sequenced { seq, body } => {
                    // Only events are replayed, as socket.io does: acks and
                    // events waiting for an ack belonged to the old link.
                    let mut packets = Vec::new();
                    if body::decode_into(&body, Some(seq), &mut packets) == Some(Tag::Event) {
                        replay.push((seq, packets));
                    }
                }
                Downstream::Control(_) => {
                    drop(attachment);
                    let core = Arc::clone(&inner.core);
                    let id = session.id();
                    tokio::spawn(async move { core.end_session(id).await });
                    return None;
                }
            }
        }
    }
    Some((session, attachment, replay))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use switchboard_core::publication::Publication;

    use super::*;
    use crate::testing::{connect_answer, next, open, send, setup};

    #[tokio::test]
    async fn connect_answers_with_socket_id_and_private_id() {
        let (io, conn) = setup().await;
        send(&io, &conn, "0");
        let answer = connect_answer(&next(&conn, 1).await[0]);
        assert_eq!(answer["sid"].as_str().unwrap().len(), 16);
        assert_eq!(answer["pid"].as_str().unwrap().len(), 32);
    }

    #[tokio::test]
    async fn unknown_namespace_gets_connect_error() {
        let (io, conn) = setup().await;
        send(&io, &conn, "0/random");
        assert_eq!(next(&conn, 1).await, vec!["44/random,{\"message\":\"Invalid namespace\"}"]);
    }

    #[tokio::test]
    async fn events_reach_their_handler_and_acks_go_back_in_order() {
        let (io, conn) = setup().await;
        io.of("/").unwrap().on("hi", |socket, payload, ack| {
            socket.emit("before", Payload::default());
            ack.unwrap().send(payload);
        });
        send(&io, &conn, "0");
        next(&conn, 1).await;
        send(&io, &conn, "27[\"hi\",{\"a\":1},2]");
        assert_eq!(next(&conn, 2).await, vec!["42[\"before\",\"1\"]", "437[{\"a\":1},2]"]);
    }

    #[tokio::test]
    async fn binary_events_are_assembled_from_their_attachments() {
        let (io, conn) = setup().await;
        let got = Arc::new(parking_lot::Mutex::new(None));
        let sink = Arc::clone(&got);
        io.of("/").unwrap().on("bin", move |_, payload, _| *sink.lock() = Some(payload));
        send(&io, &conn, "0");
        next(&conn, 1).await;
        send(&io, &conn, "52-[\"bin\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]");
        assert!(got.lock().is_none(), "waits for the attachments");
        handle(&io.inner, &conn, Incoming::Binary(Bytes::from_static(&[1, 2]))).unwrap();
        handle(&io.inner, &conn, Incoming::Binary(Bytes::from_static(&[3]))).unwrap();
        let payload = got.lock().take().unwrap();
        assert_eq!(payload.attachment(&payload.args[1]).unwrap().as_ref(), &[3]);
        assert_eq!(payload.binary.len(), 2);
        send(&io, &conn, "51-[\"bin\",{\"_placeholder\":true,\"num\":3}]");
        assert!(
            handle(&io.inner, &conn, Incoming::Binary(Bytes::new())).is_err(),
            "a placeholder without its attachment"
        );
        assert!(handle(&io.inner, &conn, Incoming::Binary(Bytes::new())).is_err(), "a stray attachment");
        assert!(handle(&io.inner, &conn, Incoming::Message("9".into())).is_err(), "an invalid packet");
    }

    #[tokio::test]
    async fn recovery_replays_missed_events_with_the_same_socket_id() {
        let (io, conn) = setup().await;
        send(&io, &conn, "0");
        let answer = connect_answer(&next(&conn, 1).await[0]);
        conn.socket("/").unwrap().join("r").unwrap();
        let core = Arc::clone(io.core());
        let publish =
            |n: u32| core.publish(Publication::new("r", "x", serde_json::value::to_raw_value(&json!(n)).unwrap()));
        publish(1);
        let first = next(&conn, 1).await;
        assert_eq!(first, vec!["42[\"message\",1,\"1\"]"]);
        conn.close(CloseReason::TransportClose);
        publish(2);
        publish(3);

        let again = open(&io).await;
        let auth = json!({ "pid": answer["pid"], "offset": "1" });
        send(&io, &again, &format!("0{auth}"));
        let packets = next(&again, 3).await;
        assert_eq!(connect_answer(&packets[0])["sid"], answer["sid"]);
        assert_eq!(&packets[1..], ["42[\"message\",2,\"2\"]", "42[\"message\",3,\"3\"]"]);
        assert!(again.socket("/").unwrap().recovered());

        let fresh = open(&io).await;
        send(&io, &fresh, "0{\"pid\":\"00000000000000000000000000000000\",\"offset\":\"1\"}");
        let other = connect_answer(&next(&fresh, 1).await[0]);
        assert_ne!(other["sid"], answer["sid"]);
        assert!(!fresh.socket("/").unwrap().recovered());
    }
}

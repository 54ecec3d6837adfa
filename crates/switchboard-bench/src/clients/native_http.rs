//! The native protocol's plain-HTTP downstreams: Server-Sent Events
//! (`/v1/sse`), NDJSON streaming (`/v1/stream`) and long polling
//! (`/v1/poll`). These clients only receive: idle ones hold the
//! connection, subscribers join the room first (`POST /v1/send`) and then
//! measure every message. A stream that ends itself at its byte budget
//! (`close` 4001) is resumed at once with `sid` and `last`, which also
//! acknowledges what arrived; each long poll carries `last` too.

use std::rc::Rc;

use anyhow::{anyhow, bail, Context};
use http::Method;

use super::{measure, Client, Running, Shared};
use crate::clock::{max_native_seq, native_seq};
use crate::net::{Http, Lines};
use crate::plan::{Protocol, Role};

fn sid_of(welcome: &str) -> anyhow::Result<String> {
    let at = welcome.find("\"sid\":\"").ok_or_else(|| anyhow!("no sid in {welcome}"))? + 7;
    let end = welcome[at..].find('"').ok_or_else(|| anyhow!("bad sid in {welcome}"))?;
    Ok(welcome[at..at + end].to_owned())
}

async fn new_session(http: &mut Http) -> anyhow::Result<String> {
    let (status, body) = http.get_text("/v1/poll").await?;
    if !status.is_success() {
        bail!("GET /v1/poll: {status} {body}");
    }
    sid_of(&body)
}

async fn join(http: &mut Http, sid: &str, room: &str) -> anyhow::Result<()> {
    let frame = format!("{{\"type\":\"join\",\"room\":{},\"cid\":\"join\"}}", serde_json::to_string(room)?);
    let (status, body) = http.post_text(&format!("/v1/send?sid={sid}"), frame).await?;
    if !status.is_success() {
        bail!("join: {status} {body}");
    }
    Ok(())
}

fn stream_path(protocol: Protocol, sid: Option<&str>, last: u64) -> String {
    let base = if protocol == Protocol::NativeSse { "/v1/sse" } else { "/v1/stream" };
    match sid {
        Some(sid) => format!("{base}?sid={sid}&last={last}"),
        None => base.to_owned(),
    }
}

/// The frame on a line of the stream, if the line carries one.
fn frame_of(protocol: Protocol, line: &str) -> Option<&str> {
    if protocol == Protocol::NativeSse {
        line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:"))
    } else {
        (!line.is_empty()).then_some(line)
    }
}

async fn attach(http: &mut Http, protocol: Protocol, sid: Option<&str>, last: u64) -> anyhow::Result<Lines> {
    let accept = if protocol == Protocol::NativeSse { "text/event-stream" } else { "*/*" };
    let response = http.send(Method::GET, &stream_path(protocol, sid, last), &[("accept", accept)], "").await?;
    if !response.status().is_success() {
        bail!("{}: {}", stream_path(protocol, sid, last), response.status());
    }
    Ok(Lines::new(response.into_body()))
}

/// Reads frames until the welcome; returns its sid.
async fn until_welcome(lines: &mut Lines, protocol: Protocol) -> anyhow::Result<String> {
    while let Some(line) = lines.next().await? {
        if let Some(frame) = frame_of(protocol, &line) {
            if frame.contains("\"type\":\"welcome\"") {
                return sid_of(frame);
            }
        }
    }
    bail!("the stream ended before its welcome")
}

/// One churn cycle: a new session's first answer, then the connection is
/// dropped.
pub async fn handshake(protocol: Protocol, shared: &Rc<Shared>) -> anyhow::Result<()> {
    let mut http = shared.net.http().await?;
    if protocol == Protocol::NativeLongpoll {
        new_session(&mut http).await?;
    } else {
        let mut lines = attach(&mut http, protocol, None, 0).await?;
        until_welcome(&mut lines, protocol).await?;
    }
    Ok(())
}

/// Opens an idle client or a subscriber.
pub async fn open(protocol: Protocol, client: Client) -> anyhow::Result<Running> {
    if !matches!(client.role, Role::Idle | Role::Subscriber) {
        bail!("{protocol:?} clients only receive; publish over native-ws");
    }
    let shared = Rc::clone(&client.shared);
    let mut http = shared.net.http().await?;
    let subscriber = client.role == Role::Subscriber;
    if protocol == Protocol::NativeLongpoll {
        let sid = new_session(&mut http).await?;
        if subscriber {
            join(&mut http, &sid, &shared.room).await?;
        }
        return Ok(Box::pin(long_poll(shared, http, sid, subscriber)));
    }
    let (lines, sid) = if subscriber {
        let sid = new_session(&mut http).await?;
        join(&mut http, &sid, &shared.room).await?;
        let mut lines = attach(&mut http, protocol, Some(&sid), 0).await?;
        until_welcome(&mut lines, protocol).await?;
        (lines, sid)
    } else {
        let mut lines = attach(&mut http, protocol, None, 0).await?;
        let sid = until_welcome(&mut lines, protocol).await?;
        (lines, sid)
    };
    Ok(Box::pin(async move {
        if let Err(e) = stream(&shared, protocol, http, lines, sid, subscriber).await {
            tracing_error(&e);
        }
        shared.recorder.disconnected();
    }))
}

fn tracing_error(e: &anyhow::Error) {
    if std::env::var_os("BENCH_DEBUG").is_some() {
        eprintln!("client ended: {e:#}");
    }
}

/// Reads the stream, resuming it whenever the server ends it with a
/// `close` that asks to reconnect. Returns when it may not resume.
async fn stream(
    shared: &Shared,
    protocol: Protocol,
    mut http: Http,
    mut lines: Lines,
    sid: String,
    subscriber: bool,
) -> anyhow::Result<()> {
    let mut last = 0;
    loop {
        let mut resume = false;
        while let Some(line) = lines.next().await? {
            let Some(frame) = frame_of(protocol, &line) else {
                continue;
            };
            if let Some(seq) = native_seq(frame) {
                last = last.max(seq);
                if subscriber {
                    measure(shared, frame);
                }
            } else if frame.contains("\"type\":\"close\"") {
                resume = frame.contains("\"reconnect\":true");
            }
        }
        if !resume {
            bail!("the server ended the stream");
        }
        if !http.is_open() {
            http = shared.net.http().await.context("reconnect")?;
        }
        lines = attach(&mut http, protocol, Some(&sid), last).await?;
    }
}

async fn long_poll(shared: Rc<Shared>, mut http: Http, sid: String, subscriber: bool) {
    let mut last = 0;
    loop {
        if !http.is_open() {
            match shared.net.http().await {
                Ok(h) => http = h,
                Err(_) => break,
            }
        }
        let (status, body) = match http.get_text(&format!("/v1/poll?sid={sid}&last={last}")).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing_error(&e);
                break;
            }
        };
        if !status.is_success() {
            break;
        }
        if subscriber {
            measure(&shared, &body);
        }
        if let Some(seq) = max_native_seq(&body) {
            last = last.max(seq);
        }
        if body.contains("\"type\":\"close\"") && !body.contains("\"reconnect\":true") {
            break;
        }
    }
    shared.recorder.disconnected();
}

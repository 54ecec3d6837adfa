//! One soak session: connect from a source address, join a room, publish
//! at a steady pace, read and acknowledge everything, leave when told.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_websockets::{ClientBuilder, Message, WebSocketStream};

/// What every client of the process shares.
#[derive(Debug)]
pub struct Plan {
    /// The server.
    pub server: SocketAddr,
    /// Interval between two publishes of one client.
    pub publish_every: Duration,
    /// Filler text in each message.
    pub filler: String,
    /// Turns true when every client must leave.
    pub stop: tokio::sync::watch::Sender<bool>,
}

/// Counters of the whole process.
#[derive(Debug, Default)]
pub struct Totals {
    /// Sessions open now.
    pub open: AtomicU64,
    /// Sessions that could not be opened.
    pub failed: AtomicU64,
    /// Sessions opened and already closed again.
    pub finished: AtomicU64,
    /// Messages published.
    pub sent: AtomicU64,
    /// Publishes acknowledged (stored).
    pub acked: AtomicU64,
    /// Room messages received.
    pub received: AtomicU64,
    /// `gap` frames received (an outbox overflowed).
    pub gaps: AtomicU64,
    /// `error` frames received.
    pub errors: AtomicU64,
    /// Sessions the server closed before the end.
    pub dropped: AtomicU64,
    /// Turns true once every client of the process is connected: publishes
    /// sent before it shared the machine with the ramp's connects.
    pub holding: AtomicBool,
    /// Publish-to-ack times during the hold, in microseconds.
    ack_micros: Mutex<Vec<u32>>,
    /// Publish-to-ack times of publishes sent during the ramp.
    ramp_ack_micros: Mutex<Vec<u32>>,
}

impl Totals {
    /// Clients that are open, failed or done.
    pub fn settled(&self) -> u64 {
        self.open.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed) + self.finished.load(Ordering::Relaxed)
    }

    /// A progress line.
    pub fn line(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "open {} failed {} dropped {} sent {} acked {} received {} gaps {} errors {}",
            get(&self.open),
            get(&self.failed),
            get(&self.dropped),
            get(&self.sent),
            get(&self.acked),
            get(&self.received),
            get(&self.gaps),
            get(&self.errors)
        )
    }

    /// The totals as JSON, with ack latency percentiles in milliseconds
    /// (`ack_ms_*` of publishes sent during the hold, `ramp_ack_ms_*` of
    /// those sent while clients were still connecting).
    pub fn summary(&self) -> Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut summary = json!({
            "opened": get(&self.finished) + get(&self.open),
            "failed": get(&self.failed),
            "dropped": get(&self.dropped),
            "sent": get(&self.sent),
            "acked": get(&self.acked),
            "received": get(&self.received),
            "gaps": get(&self.gaps),
            "errors": get(&self.errors),
        });
        for (prefix, times) in [("ack_ms", &self.ack_micros), ("ramp_ack_ms", &self.ramp_ack_micros)] {
            let mut times = times.lock().map(|v| v.clone()).unwrap_or_default();
            times.sort_unstable();
            let at = |q: f64| {
                times
                    .get(((times.len() as f64 - 1.0) * q).round().max(0.0) as usize)
                    .map_or(0.0, |&us| f64::from(us) / 1000.0)
            };
            summary[format!("{prefix}_count")] = times.len().into();
            summary[format!("{prefix}_p50")] = at(0.5).into();
            summary[format!("{prefix}_p99")] = at(0.99).into();
            summary[format!("{prefix}_max")] = at(1.0).into();
        }
        summary
    }

    fn ack_took(&self, took: Duration, during_ramp: bool) {
        let times = if during_ramp { &self.ramp_ack_micros } else { &self.ack_micros };
        if let Ok(mut v) = times.lock() {
            v.push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
        }
    }
}

async fn connect(server: SocketAddr, source: Ipv4Addr, name: &str) -> anyhow::Result<WebSocketStream<TcpStream>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind((source, 0).into())?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let uri = format!("ws://{server}/v1/ws?name={name}");
    let (ws, _) = ClientBuilder::new().uri(&uri)?.connect_on(stream).await?;
    Ok(ws)
}

/// One session, from connect to leave.
pub async fn run(
    plan: Arc<Plan>,
    totals: Arc<Totals>,
    source: Ipv4Addr,
    name: String,
    room: String,
    first_publish: Duration,
) {
    let mut ws = match tokio::time::timeout(Duration::from_secs(30), connect(plan.server, source, &name)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            eprintln!("{name}: {e:#}");
            totals.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(_) => {
            totals.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    totals.open.fetch_add(1, Ordering::Relaxed);
    let mut stop = plan.stop.subscribe();
    let join = json!({"type":"join","room":room,"cid":"join"}).to_string();
    let mut ended_by_server = ws.send(Message::text(join)).await.is_err();
    let mut last = 0u64;
    let mut unacked = 0u32;
    let mut n = 0u64;
    let mut pending: Vec<(String, Instant, bool)> = Vec::new();
    let mut next = tokio::time::Instant::now() + first_publish;
    // Once told to leave: no more publishes, but the acks of those in
    // flight are awaited (up to five seconds) before the socket closes.
    let mut leaving: Option<tokio::time::Instant> = None;
    while !ended_by_server {
        if leaving.is_none() && *stop.borrow() {
            leaving = Some(tokio::time::Instant::now() + Duration::from_secs(5));
        }
        if leaving.is_some() && pending.is_empty() {
            break;
        }
        let leave_by = leaving.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = stop.changed(), if leaving.is_none() => {}
            () = tokio::time::sleep_until(leave_by), if leaving.is_some() => break,
            () = tokio::time::sleep_until(next), if leaving.is_none() => {
                next += plan.publish_every;
                n += 1;
                let cid = format!("m{n}");
                let frame = json!({"type":"publish","room":room,"data":{"n":n,"fill":plan.filler},"cid":cid});
                pending.push((cid, Instant::now(), !totals.holding.load(Ordering::Relaxed)));
                totals.sent.fetch_add(1, Ordering::Relaxed);
                ended_by_server = ws.send(Message::text(frame.to_string())).await.is_err();
            }
            message = ws.next() => {
                let Some(Ok(message)) = message else {
                    ended_by_server = true;
                    continue;
                };
                let Some(text) = message.as_text() else { continue };
                let Ok(frame) = serde_json::from_str::<Value>(text) else { continue };
                if let Some(seq) = frame["seq"].as_u64() {
                    last = seq;
                    unacked += 1;
                }
                match frame["type"].as_str() {
                    Some("msg") => { totals.received.fetch_add(1, Ordering::Relaxed); }
                    Some("gap") => { totals.gaps.fetch_add(1, Ordering::Relaxed); }
                    Some("error") => { totals.errors.fetch_add(1, Ordering::Relaxed); }
                    Some("close") => ended_by_server = true,
                    Some("ack") => {
                        if let Some(i) = pending.iter().position(|(cid, _, _)| frame["cid"] == cid.as_str()) {
                            let (_, sent, during_ramp) = pending.swap_remove(i);
                            totals.acked.fetch_add(1, Ordering::Relaxed);
                            totals.ack_took(sent.elapsed(), during_ramp);
                        }
                    }
                    _ => {}
                }
                if unacked >= 64 {
                    unacked = 0;
                    let ack = json!({"type":"ack","seq":last}).to_string();
                    ended_by_server = ws.send(Message::text(ack)).await.is_err();
                }
            }
        }
    }
    if ended_by_server {
        totals.dropped.fetch_add(1, Ordering::Relaxed);
    }
    let _ = ws.close().await;
    totals.open.fetch_sub(1, Ordering::Relaxed);
    totals.finished.fetch_add(1, Ordering::Relaxed);
}

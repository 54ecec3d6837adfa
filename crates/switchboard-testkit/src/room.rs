//! Room-level helpers: a [`Publisher`] that feeds a room from another
//! session, and a strict [`Subscriber`] that checks every frame it reads.
//!
//! The subscriber does not repair anything: each sequenced frame must be
//! exactly the next one expected, so a lost, repeated or reordered frame
//! fails the test at the frame where it happened, with both sides printed.

use std::net::SocketAddr;
use std::ops::Range;

use serde_json::{json, Value};

use crate::downstream::{Attach, Downstream, PollDownstream, PollKind, Transport};
use crate::frame::Frame;
use crate::upstream::Upstream;

/// How many frames a helper puts in one `POST /v1/send`.
pub const BATCH: usize = 50;

/// Creates a session with one short poll (`[welcome]`) and returns its
/// `sid` and public `id`. The session then lives for the grace period.
pub async fn create_session(addr: SocketAddr) -> anyhow::Result<(String, String)> {
    let mut poll = PollDownstream::new(addr, PollKind::Short, &Attach::new(None, 0));
    let frames = poll.poll_once().await?;
    anyhow::ensure!(
        frames.len() == 1 && frames[0].typ() == "welcome",
        "a new poll session must answer [welcome], got {frames:?}"
    );
    let welcome = &frames[0];
    Ok((welcome.str("sid").unwrap_or_default().to_owned(), welcome.str("id").unwrap_or_default().to_owned()))
}

/// The payload of the `n`th numbered message.
pub fn numbered(n: u64) -> Value {
    json!({ "n": n })
}

/// A session that publishes into a room and never reads.
pub struct Publisher {
    upstream: Upstream,
    id: String,
}

impl Publisher {
    /// Creates a session and joins `room`.
    pub async fn join(addr: SocketAddr, room: &str) -> anyhow::Result<Self> {
        let (sid, id) = create_session(addr).await?;
        let upstream = Upstream::new(addr, &sid).with_prefix("pub");
        upstream.join(room).await?;
        Ok(Self { upstream, id })
    }

    /// The public id subscribers see as `from`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The upstream of the publishing session.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// Publishes `{"n": n}` for every `n` in `range`, [`BATCH`] per request.
    pub async fn publish_numbered(&self, room: &str, range: Range<u64>) -> anyhow::Result<()> {
        let frames: Vec<Value> =
            range.map(|n| json!({ "type": "publish", "room": room, "data": numbered(n) })).collect();
        for batch in frames.chunks(BATCH) {
            self.upstream.send(batch.to_vec()).await?;
        }
        Ok(())
    }
}

/// A session attached over one transport, joined to one room, that checks
/// every frame against what must come next.
pub struct Subscriber {
    addr: SocketAddr,
    room: String,
    downstream: Option<Box<dyn Downstream>>,
    sid: String,
    id: String,
    last: u64,
    upstream: Upstream,
}

impl Subscriber {
    /// Creates a session over `transport`, checks its `welcome`, joins
    /// `room` and reads the join's `ack`.
    pub async fn join(addr: SocketAddr, transport: Transport, room: &str) -> anyhow::Result<Self> {
        let mut downstream = transport.attach(addr, None, 0).await?;
        let welcome = downstream.next_frame().await?;
        check_new_welcome(&welcome)?;
        let sid = welcome.str("sid").unwrap_or_default().to_owned();
        let id = welcome.str("id").unwrap_or_default().to_owned();
        let upstream = Upstream::new(addr, &sid).with_prefix("sub");
        let mut subscriber =
            Self { addr, room: room.to_owned(), downstream: Some(downstream), sid, id, last: 0, upstream };
        let cid = subscriber.upstream.join(room).await?;
        let ack = subscriber.next_sequenced().await?;
        anyhow::ensure!(
            ack.typ() == "ack" && ack.cid() == Some(cid.as_str()),
            "join must be answered by ack cid {cid}, got {ack}"
        );
        Ok(subscriber)
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The public id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The highest `seq` read.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The session's upstream.
    pub fn upstream(&self) -> &Upstream {
        &self.upstream
    }

    /// The current attachment.
    pub fn downstream(&mut self) -> &mut dyn Downstream {
        self.downstream.as_deref_mut().expect("attached")
    }

    /// Drops the attachment (and its TCP connection) without a word.
    pub fn cut(&mut self) {
        self.downstream = None;
    }

    /// Attaches over `transport` with `sid` + `last`. A streaming transport
    /// must start with `welcome` (`resumed: true`, same `sid` and `id`).
    pub async fn resume(&mut self, transport: Transport) -> anyhow::Result<()> {
        self.resume_with(transport, Attach::new(Some(&self.sid), self.last)).await
    }

    /// [`Subscriber::resume`] with explicit attachment options.
    pub async fn resume_with(&mut self, transport: Transport, attach: Attach) -> anyhow::Result<()> {
        self.downstream = None;
        let mut downstream = transport.attach_with(self.addr, &attach).await?;
        if transport.is_streaming() {
            let welcome = downstream.next_frame().await?;
            anyhow::ensure!(
                welcome.typ() == "welcome"
                    && welcome.bool("resumed") == Some(true)
                    && welcome.str("sid") == Some(self.sid.as_str())
                    && welcome.str("id") == Some(self.id.as_str()),
                "a {transport} resume must start with welcome resumed:true for the same session, got {welcome}"
            );
        }
        self.downstream = Some(downstream);
        Ok(())
    }

    /// The next sequenced frame, which must have `seq == last + 1`. `ping`s
    /// are skipped; any other control frame is an error. Incidental frames
    /// (room events such as `presence`, see [`Frame::is_incidental`]) are
    /// checked for their `seq` and stepped over.
    pub async fn next_sequenced(&mut self) -> anyhow::Result<Frame> {
        loop {
            let frame = self.downstream().next_frame().await?;
            if frame.typ() == "ping" {
                continue;
            }
            let Some(seq) = frame.seq() else {
                anyhow::bail!("expected seq {}, got control frame {frame}", self.last + 1);
            };
            anyhow::ensure!(
                seq == self.last + 1,
                "expected seq {}, got {frame} (a {})",
                self.last + 1,
                if seq <= self.last { "duplicate" } else { "skip" }
            );
            self.last = seq;
            if frame.is_incidental() {
                continue;
            }
            return Ok(frame);
        }
    }

    /// Reads `msg` frames from `from` with data `{"n": n}` for every `n` in
    /// `range`, each the next `seq`.
    pub async fn expect_msgs(&mut self, from: &str, range: Range<u64>) -> anyhow::Result<()> {
        for n in range {
            let frame = self.next_sequenced().await?;
            anyhow::ensure!(
                frame.typ() == "msg"
                    && frame.str("room") == Some(self.room.as_str())
                    && frame.str("from") == Some(from)
                    && frame.data() == Some(&numbered(n)),
                "expected msg n={n} from {from} in {}, got {frame}",
                self.room
            );
        }
        Ok(())
    }
}

impl Subscriber {
    /// Reads a `gap` frame that must name exactly `from..=to`, with `from`
    /// right after `last`; `last` then moves to `to`.
    pub async fn expect_gap(&mut self, from: u64, to: u64) -> anyhow::Result<()> {
        let frame = crate::downstream::next_non_ping(self.downstream()).await?;
        anyhow::ensure!(
            frame.typ() == "gap"
                && frame.u64("from") == Some(from)
                && frame.u64("to") == Some(to)
                && frame.seq().is_none(),
            "expected gap from {from} to {to} after last {}, got {frame}",
            self.last
        );
        self.last = to;
        Ok(())
    }
}

/// Checks the `welcome` of a new session (§1.2).
pub fn check_new_welcome(welcome: &Frame) -> anyhow::Result<()> {
    let hex =
        |s: Option<&str>, len: usize| s.is_some_and(|s| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()));
    anyhow::ensure!(
        welcome.typ() == "welcome"
            && hex(welcome.str("sid"), 32)
            && hex(welcome.str("id"), 16)
            && welcome.str("sid") != welcome.str("id")
            && welcome.bool("resumed") == Some(false)
            && welcome.u64("heartbeat").is_some()
            && welcome.u64("version") == Some(1)
            && welcome.seq().is_none(),
        "not a valid welcome of a new session: {welcome}"
    );
    Ok(())
}

//! [`ResumingClient`]: a well-behaved client of §2 on any transport.
//!
//! It keeps `last`, resumes with `sid` + `last` whenever an attachment
//! breaks or ends with `reconnect: true`, acknowledges streaming
//! attachments every [`ACK_EVERY_FRAMES`] frames or [`ACK_INTERVAL`], and
//! hands the caller the sequenced frames (and `gap`s) in order.
//!
//! What a real client would silently repair it *records* in a
//! [`DeliveryReport`] instead: a replayed `seq <= last`, a jump in `seq`
//! without a `gap`, a resume whose `welcome` names another session. Tests
//! assert the report is clean, so a server that loses or repeats a frame
//! fails them even though the client survived it.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::downstream::{Attach, Downstream, Ended, Refused, Transport};
use crate::frame::Frame;
use crate::upstream::Upstream;

/// Acknowledge a streaming attachment after this many frames...
pub const ACK_EVERY_FRAMES: u64 = 64;
/// ...or after this long, whichever comes first (§2).
pub const ACK_INTERVAL: Duration = Duration::from_secs(1);
/// How many attachment attempts in a row may fail before the client gives
/// up (the chaos proxy makes many of them fail).
const MAX_ATTACH_ATTEMPTS: usize = 2_000;
/// The pause after a failed attachment attempt.
const REATTACH_PAUSE: Duration = Duration::from_millis(2);
/// The pause before resuming after `close` 4002 ("after a short pause").
const SHUTDOWN_PAUSE: Duration = Duration::from_millis(50);

/// Everything the client noticed that the protocol does not allow.
#[derive(Clone, Debug, Default)]
pub struct DeliveryReport {
    /// Sequenced frames received again (`seq <= last`).
    pub duplicates: Vec<u64>,
    /// `(expected, got)`: a `seq` (or `gap.from`) past `last + 1`.
    pub skipped: Vec<(u64, u64)>,
    /// `(from, to)` of every `gap` frame.
    pub gaps: Vec<(u64, u64)>,
    /// Anything else: bad `welcome`s, stray control errors, unknown frames.
    pub other: Vec<String>,
    /// Incidental frames (room events, see [`Frame::is_incidental`])
    /// stepped over.
    pub incidental_frames: u64,
    /// `close` 4000 frames on the client's only live attachment that it
    /// resumed after (see [`ResumingClient::resume_when_superseded`]).
    pub superseded_resumes: u64,
    /// Attachments opened (the first one included).
    pub attachments: u64,
    /// Attachments that broke (a connection error, not an orderly end).
    pub broken: u64,
}

impl DeliveryReport {
    /// True when nothing was lost, repeated or malformed (gaps count: a test
    /// that expects gaps reads [`DeliveryReport::gaps`] instead).
    pub fn is_clean(&self) -> bool {
        self.duplicates.is_empty() && self.skipped.is_empty() && self.gaps.is_empty() && self.other.is_empty()
    }
}

impl fmt::Display for DeliveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} attachments ({} broken, {} superseded by a stale request); duplicates {:?}; \
             skipped {:?}; gaps {:?}; other {:?}; {} incidental frames",
            self.attachments,
            self.broken,
            self.superseded_resumes,
            self.duplicates,
            self.skipped,
            self.gaps,
            self.other,
            self.incidental_frames
        )
    }
}

/// The session is over for this client: `close` with `reconnect: false`
/// (4000, superseded) or 4004 (the session ended).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionClosed {
    /// The close code.
    pub code: u64,
}

impl fmt::Display for SessionClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session closed by the server with code {}", self.code)
    }
}

impl std::error::Error for SessionClosed {}

/// A client of one session that survives broken transports.
pub struct ResumingClient {
    addr: SocketAddr,
    transport: Transport,
    sid: String,
    id: String,
    last: u64,
    downstream: Option<Box<dyn Downstream>>,
    fresh_attachment: bool,
    upstream: Upstream,
    acked: u64,
    acked_at: Instant,
    report: DeliveryReport,
    resume_when_superseded: bool,
}

impl ResumingClient {
    /// Creates a session over `transport` through `addr` (a server or a
    /// proxy in front of one). Retries while connections break.
    pub async fn connect(addr: SocketAddr, transport: Transport) -> anyhow::Result<Self> {
        let mut last_error = None;
        for _ in 0..MAX_ATTACH_ATTEMPTS {
            match Self::try_create(addr, transport).await {
                Ok(client) => return Ok(client),
                Err(e) if e.is::<Refused>() => return Err(e),
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(REATTACH_PAUSE).await;
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no attempt made")).context("could not create a session"))
    }

    async fn try_create(addr: SocketAddr, transport: Transport) -> anyhow::Result<Self> {
        let mut downstream = transport.attach(addr, None, 0).await?;
        let welcome = downstream.next_frame().await?;
        anyhow::ensure!(
            welcome.typ() == "welcome",
            "a new session on {transport} did not start with welcome: {welcome}"
        );
        anyhow::ensure!(welcome.bool("resumed") == Some(false), "new session welcome: {welcome}");
        let sid = welcome.str("sid").unwrap_or_default().to_owned();
        let id = welcome.str("id").unwrap_or_default().to_owned();
        Ok(Self {
            addr,
            transport,
            upstream: Upstream::new(addr, &sid),
            sid,
            id,
            last: 0,
            downstream: Some(downstream),
            fresh_attachment: false,
            acked: 0,
            acked_at: Instant::now(),
            report: DeliveryReport { attachments: 1, ..DeliveryReport::default() },
            resume_when_superseded: false,
        })
    }

    /// Resume even after `close` 4000 on the live attachment.
    ///
    /// A client that gave up on an attachment request (its connection broke
    /// before the answer) cannot stop the server from processing that
    /// request later; when it does, the stale request supersedes the
    /// client's newer, live attachment, which then gets 4000. A client that
    /// knows it has no other attachment may resume; the protocol's advice
    /// (do not reconnect) is for two clients sharing a session. Counted in
    /// [`DeliveryReport::superseded_resumes`].
    pub fn resume_when_superseded(mut self, resume: bool) -> Self {
        self.resume_when_superseded = resume;
        self
    }

    /// The session id (secret).
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The public id others see as `from`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The highest `seq` processed.
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// An upstream handle for this session (shares the `cid` counter).
    pub fn upstream(&self) -> Upstream {
        self.upstream.clone()
    }

    /// Sends frames upstream (`POST /v1/send`, fresh `cid`s, resent with
    /// the same `cid`s until the server takes them); returns the `cid`s.
    pub async fn send(&self, frames: Vec<serde_json::Value>) -> anyhow::Result<Vec<String>> {
        self.upstream.send(frames).await
    }

    /// What went wrong so far.
    pub fn report(&self) -> &DeliveryReport {
        &self.report
    }

    /// Drops the current attachment, as a broken network would; the next
    /// [`ResumingClient::recv`] resumes.
    pub fn cut(&mut self) {
        self.downstream = None;
    }

    /// Drops the current attachment and resumes on `transport` from now on.
    pub fn switch_to(&mut self, transport: Transport) {
        self.downstream = None;
        self.transport = transport;
    }

    /// The next sequenced frame or `gap`, in order, resuming as needed.
    /// Incidental frames (room events) are stepped over, counted in the
    /// report.
    /// [`SessionClosed`] when the server ended the session for this client.
    pub async fn recv(&mut self) -> anyhow::Result<Frame> {
        loop {
            if self.downstream.is_none() {
                self.reattach().await?;
            }
            let downstream = self.downstream.as_mut().expect("attached");
            match downstream.next_frame().await {
                Ok(frame) => {
                    if let Some(frame) = self.handle(frame).await? {
                        return Ok(frame);
                    }
                }
                Err(e) => {
                    if !e.is::<Ended>() {
                        self.report.broken += 1;
                    }
                    self.downstream = None;
                }
            }
        }
    }

    async fn reattach(&mut self) -> anyhow::Result<()> {
        let attach = Attach::new(Some(&self.sid), self.last);
        let mut last_error = None;
        for _ in 0..MAX_ATTACH_ATTEMPTS {
            match self.transport.attach_with(self.addr, &attach).await {
                Ok(downstream) => {
                    self.downstream = Some(downstream);
                    self.fresh_attachment = true;
                    self.report.attachments += 1;
                    self.acked = self.last;
                    self.acked_at = Instant::now();
                    return Ok(());
                }
                Err(e) if e.is::<Refused>() => return Err(e),
                Err(e) => last_error = Some(e),
            }
            tokio::time::sleep(REATTACH_PAUSE).await;
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("no attempt made"))
            .context(format!("could not resume on {}", self.transport)))
    }

    /// Applies the rules of §2 to one frame; `Some` when the caller gets it.
    async fn handle(&mut self, frame: Frame) -> anyhow::Result<Option<Frame>> {
        let first = std::mem::take(&mut self.fresh_attachment);
        if first && self.transport.is_streaming() && frame.typ() != "welcome" {
            self.report.other.push(format!("{} resume did not start with welcome: {frame}", self.transport));
        }
        if let Some(seq) = frame.seq() {
            if seq <= self.last {
                self.report.duplicates.push(seq);
                return Ok(None);
            }
            if seq != self.last + 1 {
                self.report.skipped.push((self.last + 1, seq));
            }
            self.last = seq;
            self.maybe_ack();
            if frame.is_incidental() {
                self.report.incidental_frames += 1;
                return Ok(None);
            }
            return Ok(Some(frame));
        }
        match frame.typ() {
            "welcome" => {
                let ok = first
                    && self.transport.is_streaming()
                    && frame.str("sid") == Some(self.sid.as_str())
                    && frame.str("id") == Some(self.id.as_str())
                    && frame.bool("resumed") == Some(true);
                if !ok {
                    self.report.other.push(format!("unexpected welcome on a {} resume: {frame}", self.transport));
                }
                Ok(None)
            }
            "ping" => Ok(None),
            _ if frame.is_incidental() => {
                self.report.incidental_frames += 1;
                Ok(None)
            }
            "gap" => {
                let from = frame.u64("from").unwrap_or_default();
                let to = frame.u64("to").unwrap_or_default();
                self.report.gaps.push((from, to));
                if to <= self.last || from > to {
                    self.report.other.push(format!("stale or empty gap: {frame}"));
                    return Ok(None);
                }
                if from != self.last + 1 {
                    self.report.skipped.push((self.last + 1, from));
                }
                self.last = to;
                Ok(Some(frame))
            }
            "close" => {
                let code = frame.code().unwrap_or_default();
                if frame.bool("reconnect") == Some(true) {
                    if code == 4002 {
                        tokio::time::sleep(SHUTDOWN_PAUSE).await;
                    }
                    self.downstream = None;
                    Ok(None)
                } else if code == 4000 && self.resume_when_superseded {
                    self.report.superseded_resumes += 1;
                    self.downstream = None;
                    Ok(None)
                } else {
                    self.downstream = None;
                    Err(SessionClosed { code }.into())
                }
            }
            _ => {
                self.report.other.push(format!("unexpected frame: {frame}"));
                Ok(None)
            }
        }
    }

    fn maybe_ack(&mut self) {
        if !self.transport.is_streaming() {
            return; // every poll request carries `last`
        }
        if self.last - self.acked >= ACK_EVERY_FRAMES || self.acked_at.elapsed() >= ACK_INTERVAL {
            self.acked = self.last;
            self.acked_at = Instant::now();
            let upstream = self.upstream.clone();
            let seq = self.last;
            tokio::spawn(async move {
                // A lost ack only delays freeing the outbox; the next one
                // (or the next resume's `last`) covers it.
                let _ = upstream.ack(seq).await;
            });
        }
    }
}

//! One module per wire protocol. Each opens a client (connect, handshake,
//! join the room where the role needs it) and returns the future that runs
//! it: receiving and measuring, sending on the schedule, answering
//! heartbeats. The worker counts a client ready when `open` returned.

mod native_http;
mod native_ws;
mod nchan;
mod socketio;

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use tokio::sync::watch;

use crate::clock::{instant_at, unix_ns, Pacer, Stamp};
use crate::net::Net;
use crate::plan::{Protocol, Role, Step};
use crate::stats::Recorder;

/// What every client of a worker shares.
#[derive(Debug)]
pub struct Shared {
    /// Where to connect from and to.
    pub net: Net,
    /// Where publishers connect to, when not `net` (`--publish-url`).
    pub publish_net: Option<Net>,
    /// The worker's counts and histograms.
    pub recorder: Recorder,
    /// The fan-out room (nchan channel).
    pub room: String,
    /// Padding bytes of every measured payload.
    pub padding: usize,
    /// The current step, for senders.
    pub plan: watch::Sender<Option<Step>>,
}

/// One client of the job.
#[derive(Debug, Clone)]
pub struct Client {
    /// The worker's shared state.
    pub shared: Rc<Shared>,
    /// What it does.
    pub role: Role,
    /// Its index among the worker's senders (echo clients or publishers).
    pub sender_index: usize,
    /// How many senders the worker has.
    pub senders: usize,
}

impl Client {
    /// Where this client connects: publishers to `--publish-url` when
    /// given, everyone else to `--url`.
    pub fn net(&self) -> &Net {
        match (self.role, &self.shared.publish_net) {
            (Role::Publisher, Some(net)) => net,
            _ => &self.shared.net,
        }
    }
}

/// The running part of a client.
pub type Running = Pin<Box<dyn Future<Output = ()>>>;

/// Opens a client of `protocol`; the returned future runs it.
pub async fn open(protocol: Protocol, client: Client) -> anyhow::Result<Running> {
    match protocol {
        Protocol::NativeWs => native_ws::open(client).await,
        Protocol::NativeSse | Protocol::NativeStream | Protocol::NativeLongpoll => {
            native_http::open(protocol, client).await
        }
        Protocol::SocketioWs => socketio::open(client).await,
        Protocol::NchanSse | Protocol::NchanLongpoll | Protocol::NchanPost => nchan::open(protocol, client).await,
    }
}

/// One churn cycle: connect, complete the protocol's handshake, close.
pub async fn handshake(protocol: Protocol, shared: &Rc<Shared>) -> anyhow::Result<()> {
    match protocol {
        Protocol::NativeWs => native_ws::handshake(shared).await,
        Protocol::NativeSse | Protocol::NativeStream | Protocol::NativeLongpoll => {
            native_http::handshake(protocol, shared).await
        }
        Protocol::SocketioWs => socketio::handshake(shared).await,
        Protocol::NchanSse | Protocol::NchanLongpoll | Protocol::NchanPost => {
            anyhow::bail!("churn is not measured on nchan")
        }
    }
}

/// The send times of one sender, following the worker's steps.
#[derive(Debug)]
pub struct Schedule {
    plan: watch::Receiver<Option<Step>>,
    pacer: Option<Pacer>,
    index: usize,
    count: usize,
}

impl Schedule {
    /// The schedule of `client` (which must be a sender).
    pub fn new(client: &Client) -> Self {
        let mut plan = client.shared.plan.subscribe();
        plan.mark_unchanged();
        Self { plan, pacer: None, index: client.sender_index, count: client.senders }
    }

    fn reload(&mut self) {
        let step = *self.plan.borrow_and_update();
        self.pacer = step.and_then(|s| Pacer::new(&s, self.index, self.count));
    }

    /// Waits until the next message is due and returns its stamp (with the
    /// actual send time set to now).
    pub async fn next(&mut self) -> Stamp {
        loop {
            match self.pacer.and_then(|p| p.next_due()) {
                Some(due) => {
                    if due > unix_ns() {
                        tokio::select! {
                            () = tokio::time::sleep_until(instant_at(due)) => {}
                            changed = self.plan.changed() => {
                                if changed.is_err() {
                                    std::future::pending::<()>().await;
                                }
                                self.reload();
                                continue;
                            }
                        }
                    }
                    if let Some(stamp) = self.due_now() {
                        return stamp;
                    }
                }
                None => {
                    if self.plan.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                    self.reload();
                }
            }
        }
    }

    /// The next message if it is already due.
    pub fn due_now(&mut self) -> Option<Stamp> {
        let pacer = self.pacer.as_mut()?;
        let now = unix_ns();
        let scheduled = pacer.take_due(now)?;
        Some(Stamp { gen: pacer.gen, scheduled, sent: now })
    }
}

/// Records every stamp in a received text.
pub fn measure(shared: &Shared, text: &str) {
    let mut now = None;
    for stamp in crate::clock::stamps(text) {
        shared.recorder.received(stamp, *now.get_or_insert_with(unix_ns));
    }
}

/// Most messages a sender writes in one go when it is behind.
pub const MAX_BURST: usize = 64;

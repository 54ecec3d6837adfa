//! What the coordinator and its worker processes say to each other: one
//! JSON object per line, commands on the worker's stdin, reports on its
//! stdout. Also the scenario and protocol names of the command line.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// A wire protocol and transport the generator speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Switchboard's native protocol on `GET /v1/ws`.
    NativeWs,
    /// Native protocol, Server-Sent Events downstream (`/v1/sse`).
    NativeSse,
    /// Native protocol, NDJSON HTTP streaming downstream (`/v1/stream`).
    NativeStream,
    /// Native protocol, long polling downstream (`/v1/poll`).
    NativeLongpoll,
    /// socket.io v5 over engine.io v4, WebSocket only.
    SocketioWs,
    /// nchan subscriber as an EventSource (`GET /sub/<channel>`).
    NchanSse,
    /// nchan long-poll subscriber (`GET /sub/<channel>`, raw multipart).
    NchanLongpoll,
    /// nchan publisher (`POST /pub/<channel>`); publishing only.
    NchanPost,
}

impl Protocol {
    /// The protocol a fan-out publisher uses next to subscribers of `self`.
    pub fn default_publisher(self) -> Protocol {
        match self {
            Protocol::NativeWs | Protocol::NativeSse | Protocol::NativeStream | Protocol::NativeLongpoll => {
                Protocol::NativeWs
            }
            Protocol::SocketioWs => Protocol::SocketioWs,
            Protocol::NchanSse | Protocol::NchanLongpoll | Protocol::NchanPost => Protocol::NchanPost,
        }
    }
}

/// What a scenario measures; see `bench/README.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Hold connections open, measure the server's memory per connection.
    Idle,
    /// Echo round trips at one fixed rate.
    Echo,
    /// Echo at increasing rates until p99 or delivery fails.
    EchoRamp,
    /// One room, many subscribers, publishers at one fixed rate.
    Fanout,
    /// Fan-out at increasing publish rates until p99 or delivery fails.
    FanoutRamp,
    /// Connect, handshake, close, as fast as a fixed number of loops can.
    Churn,
}

/// What one client does once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Stays connected, sends nothing (and answers heartbeats).
    Idle,
    /// Sends echo requests on the schedule, measures the answers.
    Echo,
    /// Joins the room, publishes to it on the schedule.
    Publisher,
    /// Joins the room, measures every message it receives.
    Subscriber,
}

/// The first line a worker reads: its share of the clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    /// This worker's index, from 0.
    pub worker: usize,
    /// How many workers there are.
    pub workers: usize,
    /// `http://host:port` of the server.
    pub url: String,
    /// `http://host:port` the publishers connect to, when not `url`.
    #[serde(default)]
    pub publish_url: Option<String>,
    /// Room (channel) of the fan-out scenarios.
    pub room: String,
    /// Protocol of the idle, echo and subscriber clients.
    pub protocol: Protocol,
    /// Protocol of the publishers.
    pub publish_protocol: Protocol,
    /// Clients to open, per role.
    pub idle: usize,
    /// Echo clients.
    pub echo: usize,
    /// Publishers.
    pub publishers: usize,
    /// Subscribers.
    pub subscribers: usize,
    /// Source addresses this worker binds its sockets to, in turn.
    pub source_ips: Vec<Ipv4Addr>,
    /// Most connection setups in flight at once.
    pub connect_concurrency: usize,
    /// Bytes of padding added to every measured payload.
    pub padding: usize,
}

/// A command to a worker, after the job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// Send on the schedule for a while, then report.
    Step(Step),
    /// Run connect/close loops for a while, then report.
    Churn(ChurnStep),
    /// Close everything and exit.
    Quit,
}

/// One step of load: this worker's senders share `rate` messages per
/// second, scheduled from `start_unix_ns` for `duration_ms`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Step {
    /// Step number, carried in every payload; late messages of an earlier
    /// step are not counted in a later one.
    pub gen: u32,
    /// Messages per second over all of this worker's senders.
    pub rate: f64,
    /// When the first messages are scheduled (wall clock, ns since epoch).
    pub start_unix_ns: u64,
    /// How long the schedule runs.
    pub duration_ms: u64,
    /// How long after the schedule ends messages are still counted.
    pub drain_ms: u64,
}

/// One churn run: `concurrency` loops of connect, handshake, close.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ChurnStep {
    /// Loops in this worker.
    pub concurrency: usize,
    /// When the loops start (wall clock, ns since epoch).
    pub start_unix_ns: u64,
    /// How long they run.
    pub duration_ms: u64,
}

/// A worker's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Report {
    /// Every client of the job connected (or failed to).
    Ready(Ready),
    /// A step is over.
    Step(StepReport),
    /// A churn run is over.
    Churn(ChurnReport),
}

/// The outcome of connecting the job's clients.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ready {
    /// Clients connected (and in the room, where their role needs it).
    pub connected: usize,
    /// Subscribers among them.
    pub subscribers: usize,
    /// Clients that failed to connect.
    pub failed: usize,
    /// The first failure, for the log.
    pub first_error: Option<String>,
    /// Milliseconds the whole setup took.
    pub setup_ms: u64,
}

/// Counts and histograms of one step in one worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepReport {
    /// Messages sent by this worker's senders.
    pub sent: u64,
    /// Measured messages received by this worker's receivers.
    pub received: u64,
    /// Clients whose connection ended during the step.
    pub disconnects: u64,
    /// Send failures and protocol errors seen.
    pub errors: u64,
    /// Latency from the scheduled send time, µs (HDR V2, base64).
    pub latency: String,
    /// Latency from the actual send time, µs (HDR V2, base64).
    pub send_latency: String,
}

/// Counts and the handshake histogram of a churn run in one worker.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChurnReport {
    /// Completed connect-handshake-close cycles.
    pub connects: u64,
    /// Failed cycles.
    pub errors: u64,
    /// The first failure, for the log.
    pub first_error: Option<String>,
    /// Connect-to-handshake time, µs (HDR V2, base64).
    pub latency: String,
}

//! `switchboard-bench`: Switchboard's own load generator.
//!
//! The same scenario runs against every server: Switchboard's native
//! protocol over WebSocket, SSE, HTTP streaming and long polling;
//! socket.io v5 over WebSocket (Switchboard, socketioxide, socket.io on
//! Node); nchan's SSE and long polling. Load is open loop: messages are
//! scheduled at a fixed rate and their latency counts from the scheduled
//! time as well as from the actual send. See `bench/README.md`.
//!
//! # Layout
//!
//! - `coordinator`: `run`. Spawns the worker processes, splits clients,
//!   source addresses and rate among them, drives the steps, merges the
//!   HDR histograms, reads the server's memory, writes the JSON result.
//! - `worker`: one load process (`worker`, started by the coordinator):
//!   a single-threaded runtime that opens its clients and runs steps.
//! - `plan`: the line protocol between the two, and the names of
//!   scenarios and protocols.
//! - `clients`: one module per wire protocol (native WebSocket, native
//!   HTTP downstreams, socket.io, nchan).
//! - `net`: sockets bound to chosen source addresses, HTTP/1.1 and
//!   WebSocket on them.
//! - `clock`: wall-clock time, the open-loop schedule, the payload stamp.
//! - `stats`: the recorder and HDR histogram helpers.
//! - `rss`: the server's resident memory from `/proc`.

mod clients;
mod clock;
mod coordinator;
mod net;
mod plan;
mod rss;
mod stats;
mod worker;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "switchboard-bench", version, about = "Load generator for Switchboard and its peers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario against one server and write its JSON result.
    Run(Box<coordinator::RunArgs>),
    /// One load process (started by `run`; reads its job on stdin).
    Worker,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(coordinator::run(*args))
        }
        Command::Worker => worker::main(),
    }
}

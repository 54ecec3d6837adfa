//! `switchboard-soak`: one generator process of the soak test
//! (`bench/soak.sh`).
//!
//! It opens `--clients` native WebSocket sessions to the server, binding
//! them in turn to the `--source` addresses (so one process can hold more
//! connections than one address pair has ephemeral ports), joins each to one
//! of `--rooms` rooms and keeps steady traffic going: every client publishes
//! once per `--publish-every`, reads everything its room gets and
//! acknowledges it. After `--minutes` every client closes its WebSocket
//! (the server then ends the sessions after their grace period) and the
//! process prints one JSON line of totals on stdout. Progress goes to
//! stderr every 30 s.
//!
//! # Layout
//!
//! - `main`: the command line, the ramp, the hold, the summary.
//! - [`client`]: one session's loop and the counters all clients share.

mod client;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::client::{Plan, Totals};

/// One soak generator process.
#[derive(Parser, Debug)]
#[command(name = "switchboard-soak", version, about = "Soak generator for Switchboard (see bench/soak.sh)")]
struct Args {
    /// Server address (IPv4 and port).
    #[arg(long, default_value = "127.0.0.1:7070")]
    server: SocketAddr,
    /// WebSocket sessions to hold.
    #[arg(long, default_value_t = 5000)]
    clients: usize,
    /// Source addresses to bind, in turn (repeat the flag).
    #[arg(long = "source", required = true)]
    sources: Vec<Ipv4Addr>,
    /// Rooms to spread the clients over (all processes share the names).
    #[arg(long, default_value_t = 500)]
    rooms: usize,
    /// This process's number, so user names differ between processes.
    #[arg(long, default_value_t = 0)]
    id: usize,
    /// How often each client publishes, in seconds.
    #[arg(long, default_value_t = 60.0)]
    publish_every: f64,
    /// How long to hold the sessions once all are open, in minutes.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// New connections per second during the ramp.
    #[arg(long, default_value_t = 1000)]
    connect_rate: u32,
    /// Bytes of filler in each message.
    #[arg(long, default_value_t = 100)]
    payload: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let totals = Arc::new(Totals::default());
    let plan = Arc::new(Plan {
        server: args.server,
        publish_every: Duration::from_secs_f64(args.publish_every),
        filler: "x".repeat(args.payload),
        stop: tokio::sync::watch::channel(false).0,
    });
    let started = Instant::now();
    let mut clients = Vec::with_capacity(args.clients);
    let mut ramp = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.connect_rate.max(1))));
    for i in 0..args.clients {
        ramp.tick().await;
        let source = args.sources[i % args.sources.len()];
        let name = format!("soak{}-{i}", args.id);
        let room = format!("soak-{}", (args.id * args.clients + i) % args.rooms.max(1));
        let first_publish = plan.publish_every.mul_f64(i as f64 / args.clients as f64);
        clients.push(tokio::spawn(client::run(
            Arc::clone(&plan),
            Arc::clone(&totals),
            source,
            name,
            room,
            first_publish,
        )));
    }
    // Wait until every client is connected (or failed) before the hold.
    while totals.settled() < args.clients as u64 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "soak {}: {} of {} sessions open after {:.1} s",
        args.id,
        totals.open.load(Ordering::Relaxed),
        args.clients,
        started.elapsed().as_secs_f64()
    );
    totals.holding.store(true, Ordering::Relaxed);
    let hold = Duration::from_secs_f64(args.minutes * 60.0);
    let holding = Instant::now();
    while holding.elapsed() < hold {
        tokio::time::sleep((hold - holding.elapsed()).min(Duration::from_secs(30))).await;
        eprintln!("soak {}: {:.0} s: {}", args.id, holding.elapsed().as_secs_f64(), totals.line());
    }
    // Everyone leaves.
    let _ = plan.stop.send(true);
    for client in clients {
        let _ = client.await;
    }
    let mut summary = totals.summary();
    summary["id"] = args.id.into();
    summary["clients"] = args.clients.into();
    summary["held_seconds"] = hold.as_secs().into();
    println!("{summary}");
    Ok(())
}

//! `switchboard serve`: the command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use serde::Serialize;
use switchboard::{Config, Server};

/// jemalloc, not the system's allocator: measured here it keeps less per
/// idle connection (3.1 against glibc's 3.4 KB for a WebSocket, 4.5 against
/// 5.1 KB for SSE) and spends about a tenth less CPU per echoed message;
/// glibc's also kept what ended connections freed until trimmed by hand
/// (README, design notes).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "switchboard", version, about = "A real-time messaging server for the web")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Print the effective configuration as TOML-like JSON and exit.
    Config(ServeArgs),
}

/// Flags override the TOML file and `SWITCHBOARD_*` variables.
#[derive(clap::Args, Serialize)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:7070).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<SocketAddr>,
    /// Allowed origin for CORS and WebSocket upgrades; repeat for several.
    #[arg(long = "allowed-origin")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    allowed_origins: Vec<String>,
    /// Session grace period, e.g. `30s`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    grace: Option<String>,
    /// Folder to serve at `/` instead of the demo chat.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    static_dir: Option<PathBuf>,
    /// Log filter, e.g. `debug`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<String>,
    /// Cross-node fan-out: `local` (one node) or `redis` (many nodes).
    #[arg(long, value_parser = ["local", "redis"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    broker: Option<String>,
    /// Redis to use with `--broker redis`, e.g. `redis://10.0.0.5:6379`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    redis_url: Option<String>,
    /// Address other nodes reach this node at (default: the listen address).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    advertise: Option<SocketAddr>,
    /// A node without a heartbeat for this long is dead, e.g. `5s`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    node_ttl: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (args, print_only) = match cli.command {
        Command::Serve(args) => (args, false),
        Command::Config(args) => (args, true),
    };
    let config = Config::load(args.config.as_deref(), &args).context("invalid configuration")?;
    if print_only {
        println!("{}", serde_json::to_string_pretty(&config)?);
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&config.log).context("invalid log filter")?)
        .init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let server =
            Server::bind(config.clone()).await.with_context(|| format!("cannot listen on {}", config.listen))?;
        server.run(shutdown_signal()).await;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

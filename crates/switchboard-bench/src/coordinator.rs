//! `switchboard-bench run`: spawns the worker processes, splits the
//! clients and the rate among them, drives the scenario (one fixed-rate
//! step, a ramp of steps, an idle hold or a churn run), merges their
//! histograms, measures the server's memory, and writes one JSON result.
//! The whole run is bounded by `--timeout`.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};

use crate::clock::unix_ns;
use crate::plan::{ChurnReport, ChurnStep, Command, Job, Protocol, Ready, Report, Scenario, Step, StepReport};
use crate::rss;
use crate::stats::{self, Percentiles};

/// The flags of `switchboard-bench run`.
#[derive(Debug, Clone, clap::Args, Serialize)]
pub struct RunArgs {
    /// What to measure.
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Protocol of the idle, echo and subscriber clients (and of churn).
    #[arg(long, value_enum)]
    pub protocol: Protocol,
    /// Protocol of fan-out publishers (default: native-ws next to native
    /// clients, socketio-ws next to socket.io, nchan-post next to nchan).
    #[arg(long, value_enum)]
    pub publish_protocol: Option<Protocol>,
    /// Name of the server under test, for the report.
    #[arg(long, default_value = "switchboard")]
    pub server: String,
    /// Its version, for the report.
    #[arg(long, default_value = "")]
    pub server_version: String,
    /// Base URL of the server (`http://IPv4:port`). Several, comma
    /// separated (the nodes of a cluster): worker `w` connects to the
    /// `w`-th, in turn.
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    pub url: String,
    /// Base URL(s) the fan-out publishers connect to instead of `--url`
    /// (publish on one node, subscribe on another); comma separated like
    /// `--url`.
    #[arg(long)]
    pub publish_url: Option<String>,
    /// PID of the server (its descendants are counted too); repeatable.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Idle: connections; echo: clients; fan-out: subscribers; churn:
    /// concurrent connect loops.
    #[arg(long, default_value_t = 100)]
    pub clients: usize,
    /// Fan-out publishers.
    #[arg(long, default_value_t = 10)]
    pub publishers: usize,
    /// Messages per second of a fixed-rate step (echo requests, or
    /// publishes in fan-out).
    #[arg(long, default_value_t = 5000.0)]
    pub rate: f64,
    /// Rates of a ramp, in order, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// Seconds of a fixed-rate step, of a churn run, or of the idle hold.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of each ramp step.
    #[arg(long, default_value_t = 5.0)]
    pub step: f64,
    /// How long after a step's schedule ends messages still count, ms.
    #[arg(long, default_value_t = 1000)]
    pub drain_ms: u64,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    pub processes: usize,
    /// Source addresses, split among the workers (`A-B` or a comma list).
    #[arg(long, default_value = "127.0.0.2-127.0.0.61")]
    pub source_ips: String,
    /// A step holds when its p99 (from the scheduled time) is at most this.
    #[arg(long, default_value_t = 100.0)]
    pub p99_limit_ms: f64,
    /// ... and at least this share of the expected messages arrived.
    #[arg(long, default_value_t = 0.97)]
    pub min_delivered: f64,
    /// A ramp step that fails is run again up to this many times; the rate
    /// holds if any attempt holds (a shared machine has hiccups).
    #[arg(long, default_value_t = 1)]
    pub retries: u32,
    /// A ramp goes on past a rate that missed the p99 limit while the
    /// messages still arrive (≥ --min-delivered) with a p99 under this, so
    /// the report has the throughput limit too; it stops at the first rate
    /// that misses this or the delivery share.
    #[arg(long, default_value_t = 2000.0)]
    pub give_up_p99_ms: f64,
    /// Padding bytes in every measured payload.
    #[arg(long, default_value_t = 0)]
    pub padding: usize,
    /// Room (nchan channel) of the fan-out.
    #[arg(long, default_value = "bench")]
    pub room: String,
    /// Most connection setups in flight per worker.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Idle: seconds between the last connection and the memory reading.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
    /// Hard bound of the whole run, seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Where to write the JSON result (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One worker process and its pipes.
struct Worker {
    _child: Child,
    pid: u32,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    senders: usize,
}

impl Worker {
    async fn spawn(job: &Job) -> anyhow::Result<Self> {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawning a worker")?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("worker stdout")?).lines();
        let mut worker =
            Worker { pid: child.id().unwrap_or(0), _child: child, stdin, stdout, senders: job.echo + job.publishers };
        worker.say(&serde_json::to_string(job)?).await?;
        Ok(worker)
    }

    async fn say(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await?;
        Ok(())
    }

    async fn command(&mut self, command: &Command) -> anyhow::Result<()> {
        self.say(&serde_json::to_string(command)?).await
    }

    async fn report(&mut self) -> anyhow::Result<Report> {
        let line = self.stdout.next_line().await?.ok_or_else(|| anyhow!("a worker exited"))?;
        Ok(serde_json::from_str(&line)?)
    }
}

/// Parses `127.0.0.2-127.0.0.61` or `127.0.0.2,127.0.0.3`.
fn source_ips(text: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
    if let Some((from, to)) = text.split_once('-') {
        let (from, to): (Ipv4Addr, Ipv4Addr) = (from.trim().parse()?, to.trim().parse()?);
        let (from, to) = (u32::from(from), u32::from(to));
        if to < from {
            bail!("empty source address range {text}");
        }
        return Ok((from..=to).map(Ipv4Addr::from).collect());
    }
    text.split(',').map(|a| a.trim().parse().map_err(anyhow::Error::from)).collect()
}

/// Splits `n` into `parts` nearly equal shares.
fn share(n: usize, parts: usize, i: usize) -> usize {
    n / parts + usize::from(i < n % parts)
}

/// What a run has measured so far: kept when the run times out.
#[derive(Debug, Default)]
struct Partial {
    setup: Option<Value>,
    steps: Vec<StepResult>,
}

/// Runs the scenario and writes its JSON result.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = unix_ns();
    let load_before = loadavg();
    let mut partial = Partial::default();
    let outcome = tokio::time::timeout(Duration::from_secs(args.timeout), scenario(&args, &mut partial)).await;
    let (result, error) = match outcome {
        Ok(Ok(result)) => (result, None),
        Ok(Err(e)) => (partial_result(partial), Some(format!("{e:#}"))),
        Err(_) => (partial_result(partial), Some(format!("timed out after {} s", args.timeout))),
    };
    let document = json!({
        "scenario": args.scenario,
        "server": args.server,
        "server_version": args.server_version,
        "protocol": args.protocol,
        "publish_protocol": args.publish_protocol.unwrap_or(args.protocol.default_publisher()),
        "params": args,
        "started_unix_ms": started / 1_000_000,
        "elapsed_s": (unix_ns() - started) as f64 / 1e9,
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "error": error,
        "result": result,
    });
    let text = serde_json::to_string_pretty(&document)?;
    match &args.out {
        Some(path) => std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?,
        None => println!("{text}"),
    }
    if let Some(e) = document["error"].as_str() {
        eprintln!("run failed: {e}");
    }
    Ok(())
}

/// The 1, 5 and 15 minute load averages (other work on the machine).
fn loadavg() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect()
}

fn partial_result(partial: Partial) -> Value {
    json!({ "setup": partial.setup, "steps": partial.steps })
}

async fn scenario(args: &RunArgs, partial: &mut Partial) -> anyhow::Result<Value> {
    let started = std::time::Instant::now();
    let ips = source_ips(&args.source_ips)?;
    let processes = args.processes.clamp(1, ips.len());
    let publish_protocol = args.publish_protocol.unwrap_or(args.protocol.default_publisher());
    let urls: Vec<&str> = args.url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    let publish_urls: Vec<&str> = args
        .publish_url
        .as_deref()
        .map(|u| u.split(',').map(str::trim).filter(|u| !u.is_empty()).collect())
        .unwrap_or_default();
    if urls.is_empty() {
        bail!("--url names no server");
    }
    let rss_before = rss::tree_bytes(&args.server_pids);
    let mut workers = Vec::new();
    for w in 0..processes {
        let mine = |n| share(n, processes, w);
        let (idle, echo, publishers, subscribers) = match args.scenario {
            Scenario::Idle => (mine(args.clients), 0, 0, 0),
            Scenario::Echo | Scenario::EchoRamp => (0, mine(args.clients), 0, 0),
            Scenario::Fanout | Scenario::FanoutRamp => (0, 0, mine(args.publishers), mine(args.clients)),
            Scenario::Churn => (0, 0, 0, 0),
        };
        let job = Job {
            worker: w,
            workers: processes,
            url: urls[w % urls.len()].to_owned(),
            publish_url: (!publish_urls.is_empty()).then(|| publish_urls[w % publish_urls.len()].to_owned()),
            room: args.room.clone(),
            protocol: args.protocol,
            publish_protocol,
            idle,
            echo,
            publishers,
            subscribers,
            source_ips: ips.iter().copied().skip(w).step_by(processes).collect(),
            connect_concurrency: args.connect_concurrency,
            padding: args.padding,
        };
        workers.push(Worker::spawn(&job).await?);
    }
    let mut ready = Ready::default();
    for worker in &mut workers {
        match worker.report().await? {
            Report::Ready(r) => {
                ready.connected += r.connected;
                ready.subscribers += r.subscribers;
                ready.failed += r.failed;
                ready.setup_ms = ready.setup_ms.max(r.setup_ms);
                if ready.first_error.is_none() {
                    ready.first_error = r.first_error;
                }
            }
            other => bail!("expected ready, got {other:?}"),
        }
    }
    eprintln!(
        "[{} {:?} {:?}] {} connected, {} failed in {} ms{}",
        args.server,
        args.scenario,
        args.protocol,
        ready.connected,
        ready.failed,
        ready.setup_ms,
        ready.first_error.as_deref().map(|e| format!(" (first error: {e})")).unwrap_or_default()
    );
    let setup = json!({
        "connected": ready.connected,
        "subscribers": ready.subscribers,
        "failed": ready.failed,
        "first_error": ready.first_error,
        "setup_ms": ready.setup_ms,
    });
    partial.setup = Some(setup.clone());
    let result = match args.scenario {
        Scenario::Idle => {
            tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
            let rss_after = rss::tree_bytes(&args.server_pids);
            let per =
                if ready.connected > 0 { (rss_after as f64 - rss_before as f64) / ready.connected as f64 } else { 0.0 };
            eprintln!("  rss {rss_before} -> {rss_after} bytes: {per:.0} B per connection");
            json!({ "setup": setup, "idle": {
                "connections": ready.connected,
                "rss_before": rss_before,
                "rss_after": rss_after,
                "bytes_per_connection": per,
            }})
        }
        Scenario::Echo | Scenario::Fanout => {
            let fan = fan_of(args, &ready);
            let step = run_step(args, &mut workers, 1, args.rate, args.duration, fan).await?;
            partial.steps.push(step);
            json!({ "setup": setup, "steps": partial.steps })
        }
        Scenario::EchoRamp | Scenario::FanoutRamp => {
            let fan = fan_of(args, &ready);
            let mut held: Option<f64> = None;
            let per_step = Duration::from_secs_f64(args.step) + Duration::from_millis(args.drain_ms + 1500);
            let mut gen = 0;
            let mut delivered_rate: Option<f64> = None;
            'rates: for &rate in &args.rates {
                let mut sustained = false;
                for attempt in 0..=args.retries {
                    if started.elapsed() + per_step > Duration::from_secs(args.timeout) {
                        eprintln!("  no time left for the step at {rate}/s (--timeout)");
                        break 'rates;
                    }
                    gen += 1;
                    let mut step = run_step(args, &mut workers, gen, rate, args.step, fan).await?;
                    step.attempt = attempt + 1;
                    let ok = step.ok;
                    sustained |= step.delivered >= args.min_delivered && step.latency_ms.p99 <= args.give_up_p99_ms;
                    partial.steps.push(step);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if ok {
                        held = Some(rate);
                        delivered_rate = Some(rate);
                        continue 'rates;
                    }
                }
                if !sustained {
                    break;
                }
                delivered_rate = Some(rate);
            }
            json!({
                "setup": setup,
                "steps": partial.steps,
                "held_rate": held,
                "delivered_rate": delivered_rate,
                "held_deliveries_per_s": held.map(|r| r * fan as f64),
                "top_rate_tried": args.rates.last(),
            })
        }
        Scenario::Churn => {
            let churn = run_churn(args, &mut workers).await?;
            json!({ "setup": setup, "churn": churn })
        }
    };
    for worker in &mut workers {
        let _ = worker.command(&Command::Quit).await;
    }
    Ok(result)
}

/// How many deliveries one sent message should make.
fn fan_of(args: &RunArgs, ready: &Ready) -> usize {
    match args.scenario {
        Scenario::Fanout | Scenario::FanoutRamp => ready.subscribers,
        _ => 1,
    }
}

/// One step's figures.
#[derive(Debug, Serialize)]
struct StepResult {
    rate: f64,
    /// 1 for the first run of this rate, 2 for its retry, ...
    attempt: u32,
    duration_s: f64,
    sent: u64,
    expected: u64,
    received: u64,
    delivered: f64,
    deliveries_per_s: f64,
    latency_ms: Percentiles,
    send_latency_ms: Percentiles,
    disconnects: u64,
    errors: u64,
    /// CPU seconds the server used during the step (schedule and drain).
    server_cpu_s: f64,
    /// Server CPU microseconds per message received by the clients.
    server_cpu_us_per_delivery: f64,
    /// CPU seconds the load generator's workers used.
    generator_cpu_s: f64,
    /// The server's resident memory at the end of the step.
    server_rss_bytes: u64,
    ok: bool,
}

async fn run_step(
    args: &RunArgs,
    workers: &mut [Worker],
    gen: u32,
    rate: f64,
    seconds: f64,
    fan: usize,
) -> anyhow::Result<StepResult> {
    let senders: usize = workers.iter().map(|w| w.senders).sum();
    let duration_ms = (seconds * 1000.0) as u64;
    let start_unix_ns = unix_ns() + 300_000_000;
    let worker_pids: Vec<u32> = workers.iter().map(|w| w.pid).collect();
    let server_cpu = rss::tree_cpu_seconds(&args.server_pids);
    let generator_cpu = rss::tree_cpu_seconds(&worker_pids);
    for worker in workers.iter_mut() {
        let share = if senders == 0 { 0.0 } else { rate * worker.senders as f64 / senders as f64 };
        let step = Step { gen, rate: share, start_unix_ns, duration_ms, drain_ms: args.drain_ms };
        worker.command(&Command::Step(step)).await?;
    }
    let mut total = StepReport::default();
    let mut latency: Histogram<u64> = stats::histogram();
    let mut send_latency: Histogram<u64> = stats::histogram();
    for worker in workers.iter_mut() {
        match worker.report().await? {
            Report::Step(r) => {
                total.sent += r.sent;
                total.received += r.received;
                total.disconnects += r.disconnects;
                total.errors += r.errors;
                latency.add(stats::decode(&r.latency)?)?;
                send_latency.add(stats::decode(&r.send_latency)?)?;
            }
            other => bail!("expected a step report, got {other:?}"),
        }
    }
    let server_cpu_s = rss::tree_cpu_seconds(&args.server_pids) - server_cpu;
    let generator_cpu_s = rss::tree_cpu_seconds(&worker_pids) - generator_cpu;
    let scheduled = (rate * seconds).round() as u64;
    let expected = scheduled * fan as u64;
    let delivered = if expected == 0 { 0.0 } else { total.received as f64 / expected as f64 };
    let latency_ms = Percentiles::of(&latency);
    let ok = delivered >= args.min_delivered && latency_ms.p99 <= args.p99_limit_ms && latency_ms.count > 0;
    let result = StepResult {
        rate,
        attempt: 1,
        duration_s: seconds,
        sent: total.sent,
        expected,
        received: total.received,
        delivered,
        deliveries_per_s: total.received as f64 / seconds,
        latency_ms,
        send_latency_ms: Percentiles::of(&send_latency),
        disconnects: total.disconnects,
        errors: total.errors,
        server_cpu_s,
        server_cpu_us_per_delivery: if total.received == 0 { 0.0 } else { server_cpu_s * 1e6 / total.received as f64 },
        generator_cpu_s,
        server_rss_bytes: rss::tree_bytes(&args.server_pids),
        ok,
    };
    eprintln!(
        "  rate {:>9.0}/s: sent {} received {}/{} ({:.1}%), p50 {:.2} ms p99 {:.2} ms max {:.1} ms, server cpu {:.2} s ({:.2} µs/msg), generator cpu {:.2} s{}{}",
        rate,
        result.sent,
        result.received,
        expected,
        delivered * 100.0,
        latency_ms.p50,
        latency_ms.p99,
        latency_ms.max,
        server_cpu_s,
        result.server_cpu_us_per_delivery,
        generator_cpu_s,
        if result.disconnects > 0 { format!(", {} disconnects", result.disconnects) } else { String::new() },
        if ok { "" } else { "  FAIL" },
    );
    Ok(result)
}

async fn run_churn(args: &RunArgs, workers: &mut [Worker]) -> anyhow::Result<Value> {
    let n = workers.len();
    let duration_ms = (args.duration * 1000.0) as u64;
    let start_unix_ns = unix_ns() + 300_000_000;
    let server_cpu = rss::tree_cpu_seconds(&args.server_pids);
    for (i, worker) in workers.iter_mut().enumerate() {
        let churn = ChurnStep { concurrency: share(args.clients, n, i), start_unix_ns, duration_ms };
        worker.command(&Command::Churn(churn)).await?;
    }
    let mut total = ChurnReport::default();
    let mut latency: Histogram<u64> = stats::histogram();
    for worker in workers.iter_mut() {
        match worker.report().await? {
            Report::Churn(r) => {
                total.connects += r.connects;
                total.errors += r.errors;
                total.first_error = total.first_error.or(r.first_error);
                latency.add(stats::decode(&r.latency)?)?;
            }
            other => bail!("expected a churn report, got {other:?}"),
        }
    }
    let server_cpu_s = rss::tree_cpu_seconds(&args.server_pids) - server_cpu;
    let per_second = total.connects as f64 / args.duration;
    let latency_ms = Percentiles::of(&latency);
    eprintln!(
        "  churn: {per_second:.0} connects/s ({} errors), handshake p50 {:.2} ms p99 {:.2} ms",
        total.errors, latency_ms.p50, latency_ms.p99
    );
    Ok(json!({
        "concurrency": args.clients,
        "duration_s": args.duration,
        "connects": total.connects,
        "errors": total.errors,
        "first_error": total.first_error,
        "connects_per_s": per_second,
        "server_cpu_s": server_cpu_s,
        "server_cpu_us_per_connect": if total.connects == 0 { 0.0 } else { server_cpu_s * 1e6 / total.connects as f64 },
        "latency_ms": latency_ms,
    }))
}

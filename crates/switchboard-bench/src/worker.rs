//! One load process: reads its job, opens its clients (a bounded number of
//! setups in flight), says ready, then runs the coordinator's steps and
//! reports each. Everything runs on one thread, so clients share the
//! recorder without locks; parallelism comes from several processes.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{watch, Semaphore};

use crate::clients::{self, Client, Shared};
use crate::clock::{instant_at, unix_ns};
use crate::net::Net;
use crate::plan::{ChurnReport, ChurnStep, Command, Job, Ready, Report, Role};
use crate::stats;

/// Runs a worker on stdin/stdout until `quit` or end of input.
pub fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, serve())
}

async fn serve() -> anyhow::Result<()> {
    let mut input = BufReader::new(tokio::io::stdin()).lines();
    let mut output = tokio::io::stdout();
    let line = input.next_line().await?.context("no job on stdin")?;
    let job: Job = serde_json::from_str(&line).context("job")?;
    let (plan, _) = watch::channel(None);
    let shared = Rc::new(Shared {
        net: Net::new(&job.url, job.source_ips.clone())?,
        publish_net: job.publish_url.as_deref().map(|url| Net::new(url, job.source_ips.clone())).transpose()?,
        recorder: stats::Recorder::default(),
        room: job.room.clone(),
        padding: job.padding,
        plan,
    });
    let ready = open_clients(&job, &shared).await;
    say(&mut output, &Report::Ready(ready)).await?;
    while let Some(line) = input.next_line().await? {
        match serde_json::from_str::<Command>(&line).context("command")? {
            Command::Step(step) => {
                shared.recorder.open(step.gen);
                shared.plan.send_replace(Some(step));
                let end = step.start_unix_ns + (step.duration_ms + step.drain_ms) * 1_000_000;
                tokio::time::sleep_until(instant_at(end)).await;
                shared.plan.send_replace(None);
                let report = shared.recorder.close();
                say(&mut output, &Report::Step(report)).await?;
            }
            Command::Churn(churn) => {
                let report = run_churn(&job, &shared, churn).await;
                say(&mut output, &Report::Churn(report)).await?;
            }
            Command::Quit => break,
        }
    }
    Ok(())
}

async fn say(output: &mut tokio::io::Stdout, report: &Report) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(report)?;
    line.push(b'\n');
    output.write_all(&line).await?;
    output.flush().await?;
    Ok(())
}

/// Opens every client of the job; each one that opened keeps running in
/// its own task.
async fn open_clients(job: &Job, shared: &Rc<Shared>) -> Ready {
    let started = Instant::now();
    let gate = Rc::new(Semaphore::new(job.connect_concurrency.max(1)));
    let outcome = Rc::new(RefCell::new(Ready::default()));
    let senders = job.echo + job.publishers;
    let mut plans = Vec::new();
    plans.extend((0..job.idle).map(|_| (job.protocol, Role::Idle)));
    plans.extend((0..job.subscribers).map(|_| (job.protocol, Role::Subscriber)));
    plans.extend((0..job.echo).map(|_| (job.protocol, Role::Echo)));
    plans.extend((0..job.publishers).map(|_| (job.publish_protocol, Role::Publisher)));
    let mut tasks = Vec::new();
    let mut sender_index = 0;
    for (protocol, role) in plans {
        let client = Client { shared: Rc::clone(shared), role, sender_index, senders };
        if matches!(role, Role::Echo | Role::Publisher) {
            sender_index += 1;
        }
        let gate = Rc::clone(&gate);
        let outcome = Rc::clone(&outcome);
        let (opened, done) = tokio::sync::oneshot::channel::<()>();
        tokio::task::spawn_local(async move {
            let permit = gate.acquire().await;
            let result = tokio::time::timeout(Duration::from_secs(30), clients::open(protocol, client)).await;
            drop(permit);
            let running = {
                let mut outcome = outcome.borrow_mut();
                match result {
                    Ok(Ok(running)) => {
                        outcome.connected += 1;
                        if role == Role::Subscriber {
                            outcome.subscribers += 1;
                        }
                        Some(running)
                    }
                    Ok(Err(e)) => {
                        outcome.failed += 1;
                        outcome.first_error.get_or_insert_with(|| format!("{e:#}"));
                        None
                    }
                    Err(_) => {
                        outcome.failed += 1;
                        outcome.first_error.get_or_insert_with(|| "setup timed out (30 s)".into());
                        None
                    }
                }
            };
            let _ = opened.send(());
            if let Some(running) = running {
                running.await;
            }
        });
        tasks.push(done);
    }
    for done in tasks {
        let _ = done.await;
    }
    let mut ready = outcome.borrow().clone();
    ready.setup_ms = started.elapsed().as_millis() as u64;
    ready
}

/// Connect-handshake-close loops until the deadline.
async fn run_churn(job: &Job, shared: &Rc<Shared>, churn: ChurnStep) -> ChurnReport {
    let report = Rc::new(RefCell::new((ChurnReport::default(), stats::histogram())));
    let end = churn.start_unix_ns + churn.duration_ms * 1_000_000;
    let mut loops = Vec::new();
    for _ in 0..churn.concurrency {
        let shared = Rc::clone(shared);
        let report = Rc::clone(&report);
        let protocol = job.protocol;
        loops.push(tokio::task::spawn_local(async move {
            tokio::time::sleep_until(instant_at(churn.start_unix_ns)).await;
            while unix_ns() < end {
                let started = unix_ns();
                let result = tokio::time::timeout(Duration::from_secs(10), clients::handshake(protocol, &shared)).await;
                let result = match result {
                    Ok(r) => r,
                    Err(_) => Err(anyhow::anyhow!("handshake timed out (10 s)")),
                };
                let failed = {
                    let mut report = report.borrow_mut();
                    match result {
                        Ok(()) => {
                            report.0.connects += 1;
                            let micros = (unix_ns().saturating_sub(started) / 1000).max(1);
                            report.1.saturating_record(micros);
                            false
                        }
                        Err(e) => {
                            report.0.errors += 1;
                            report.0.first_error.get_or_insert_with(|| format!("{e:#}"));
                            true
                        }
                    }
                };
                if failed {
                    // Do not spin on a refusing server.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
    }
    for l in loops {
        let _ = l.await;
    }
    let (mut out, histogram) = report.borrow().clone();
    out.latency = stats::encode(&histogram);
    out
}

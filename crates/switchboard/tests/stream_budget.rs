//! §4 streaming budget: SSE, stream and htmlfile responses end themselves
//! after their budget (`sse_budget`, `stream_budget`) with `close` 4001
//! `reconnect: true`; the client resumes and loses nothing. An SSE budget
//! of 0 means none.

use switchboard_testkit::room::Publisher;
use switchboard_testkit::scenario::ROOM;
use switchboard_testkit::{bounded, json, Ended, TestServer, Transport, Upstream};

const BUDGET: usize = 4096;
const MESSAGES: u64 = 60;
const GROUP: u64 = 3;

/// Reads 60 messages through `transport`, resuming whenever a response ends
/// at its budget; returns how many did.
async fn read_through_budgets(transport: Transport, sse_budget: usize) -> anyhow::Result<usize> {
    let server = TestServer::start_with(|c| {
        c.stream_budget = BUDGET;
        c.sse_budget = sse_budget;
    })
    .await;
    let addr = server.addr();
    let publisher = Publisher::join(addr, ROOM).await?;
    let mut downstream = transport.attach(addr, None, 0).await?;
    let sid = downstream.next_frame().await?.str("sid").unwrap_or_default().to_owned();
    Upstream::new(addr, &sid).join(ROOM).await?;
    // Published a few at a time, each group read before the next is sent,
    // so the server writes in small pieces and must stop near the budget
    // (a single large backlog may be written whole before the check).
    let padding = "p".repeat(200);
    let publish = |from: u64| {
        let frames = (from..(from + GROUP).min(MESSAGES))
            .map(|n| json!({"type":"publish","room":ROOM,"data":{"n":n,"pad":padding}}))
            .collect();
        publisher.upstream().send(frames)
    };
    publish(0).await?;

    let mut last = 0;
    let mut budget_closes = 0;
    let mut next_n = 0;
    while next_n < MESSAGES {
        let frame = downstream.next_frame().await?;
        match frame.typ() {
            "close" => {
                assert!(frame.is_close(4001) && frame.bool("reconnect") == Some(true), "{transport}: {frame}");
                let end = downstream.next_frame().await;
                assert!(
                    end.as_ref().err().is_some_and(|e| e.is::<Ended>()),
                    "{transport}: the response must end after close 4001, got {end:?}"
                );
                budget_closes += 1;
                downstream = transport.attach(addr, Some(&sid), last).await?;
                let welcome = downstream.next_frame().await?;
                assert_eq!(welcome.bool("resumed"), Some(true), "{transport}: {welcome}");
            }
            "ping" => {}
            _ => {
                let seq = frame.seq().unwrap_or_default();
                assert_eq!(seq, last + 1, "{transport}: {frame}");
                last = seq;
                if frame.typ() == "msg" {
                    let data = frame.data().cloned().unwrap_or_default();
                    assert_eq!(data["n"], json!(next_n), "{transport}: {frame}");
                    next_n += 1;
                    if next_n % GROUP == 0 && next_n < MESSAGES {
                        publish(next_n).await?;
                    }
                }
            }
        }
    }
    server.shutdown().await;
    Ok(budget_closes)
}

async fn budget_forces_resumes(transport: Transport, sse_budget: usize) -> anyhow::Result<()> {
    let budget_closes = read_through_budgets(transport, sse_budget).await?;
    // 60 frames of ~300 bytes is over 4 budgets.
    assert!(budget_closes >= 3, "{transport}: only {budget_closes} budget closes");
    Ok(())
}

#[tokio::test]
async fn sse_ends_at_its_budget_when_one_is_set_and_resumes_without_loss() {
    bounded(budget_forces_resumes(Transport::Sse, BUDGET)).await;
}

#[tokio::test]
async fn sse_has_no_budget_when_its_budget_is_zero() {
    bounded(async {
        let closes = read_through_budgets(Transport::Sse, 0).await?;
        assert_eq!(closes, 0, "an SSE response ended at the stream budget");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn stream_ends_at_budget_and_resumes_without_loss() {
    bounded(budget_forces_resumes(Transport::Stream, 0)).await;
}

#[tokio::test]
async fn htmlfile_ends_at_budget_and_resumes_without_loss() {
    bounded(budget_forces_resumes(Transport::HtmlFile, 0)).await;
}

//! Long polling under the write window, through a real server: a busy
//! poller (its previous answer came less than a window after the one
//! before) that comes back less than a window after its previous answer
//! and finds frames that have waited for it (a node that is behind) is
//! answered a window after the previous answer, with everything that came
//! meanwhile, in one response; a poller that comes later, or a frame that
//! finds its poll waiting, is answered at once. Nothing is lost, repeated
//! or reordered.

use std::time::{Duration, Instant};

use switchboard_testkit::downstream::{PollDownstream, PollKind};
use switchboard_testkit::frame::Frame;
use switchboard_testkit::room::create_session;
use switchboard_testkit::{bounded, json, Attach, TestServer, Upstream};

/// Long enough that scheduling noise on a loaded test machine is small
/// beside it.
const WINDOW: Duration = Duration::from_millis(800);

async fn server() -> TestServer {
    TestServer::start_with(|c| c.write_window = WINDOW).await
}

/// One long poll of `sid` acknowledging `last`; its frames and how long
/// the answer took.
async fn poll(server: &TestServer, sid: &str, last: u64) -> anyhow::Result<(Vec<Frame>, Duration)> {
    let mut poll = PollDownstream::new(server.addr(), PollKind::Long, &Attach::new(Some(sid), last));
    let asked = Instant::now();
    let frames = poll.poll_once().await?;
    Ok((frames, asked.elapsed()))
}

/// The `cid`s of the echo frames among `frames`.
fn echoed(frames: &[Frame]) -> Vec<String> {
    frames.iter().filter(|f| f.typ() == "echo").filter_map(|f| f.cid().map(str::to_owned)).collect()
}

fn last_seq(frames: &[Frame], before: u64) -> u64 {
    frames.iter().filter_map(Frame::seq).max().unwrap_or(before)
}

async fn echo(up: &Upstream, n: u64) -> anyhow::Result<String> {
    up.send_one(json!({"type": "echo", "data": n})).await
}

#[tokio::test]
async fn a_busy_poller_that_is_behind_gets_one_answer_per_window() {
    bounded(async {
        let server = server().await;
        let (sid, _) = create_session(server.addr()).await?;
        let up = Upstream::new(server.addr(), &sid);

        // Two answers in a row, the second soon after the first: the
        // poller is busy (neither is paced: it was not busy before).
        let mut last = 0;
        let mut answered = Instant::now();
        for n in [0, 1] {
            let sent = echo(&up, n).await?;
            let (frames, took) = poll(&server, &sid, last).await?;
            answered = Instant::now();
            assert_eq!(echoed(&frames), vec![sent], "answer {n}");
            assert!(took < WINDOW / 2, "answer {n} is not paced: {took:?}");
            last = last_seq(&frames, last);
        }

        // The next frame waits for the poller (a poller that is behind) ...
        let second = echo(&up, 2).await?;
        tokio::time::sleep(WINDOW / 8).await;
        // ... and one more comes while its poll is held.
        let late = {
            let up = up.clone();
            tokio::spawn(async move {
                tokio::time::sleep(WINDOW / 3).await;
                echo(&up, 3).await
            })
        };
        let (frames, _) = poll(&server, &sid, last).await?;
        let third = late.await??;
        let since = answered.elapsed();
        assert_eq!(echoed(&frames), vec![second, third], "both in one answer, in order");
        assert!(since >= WINDOW - WINDOW / 10, "answered a window after the previous answer, not {since:?}");
        assert!(since < 3 * WINDOW, "and not much later: {since:?}");
        let last = last_seq(&frames, last);

        // A window later the poller is not busy: its frame goes at once.
        tokio::time::sleep(WINDOW + WINDOW / 4).await;
        let fourth = echo(&up, 4).await?;
        tokio::time::sleep(WINDOW / 8).await;
        let (frames, took) = poll(&server, &sid, last).await?;
        assert_eq!(echoed(&frames), vec![fourth]);
        assert!(took < WINDOW / 2, "a poller this slow is not paced: {took:?}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_frame_that_finds_its_poll_waiting_is_answered_at_once() {
    bounded(async {
        let server = server().await;
        let (sid, _) = create_session(server.addr()).await?;
        let up = Upstream::new(server.addr(), &sid);
        let first = echo(&up, 1).await?;
        let (frames, _) = poll(&server, &sid, 0).await?;
        assert_eq!(echoed(&frames), vec![first]);
        let last = last_seq(&frames, 0);

        // The poller is back at once (it keeps up): nothing is held for it,
        // though its previous answer was moments ago.
        let held = {
            let sid = sid.clone();
            let addr = server.addr();
            tokio::spawn(async move {
                let mut poll = PollDownstream::new(addr, PollKind::Long, &Attach::new(Some(&sid), last));
                poll.poll_once().await
            })
        };
        tokio::time::sleep(WINDOW / 8).await;
        let sent = Instant::now();
        let second = echo(&up, 2).await?;
        let frames = held.await??;
        assert_eq!(echoed(&frames), vec![second]);
        assert!(sent.elapsed() < WINDOW / 2, "answered as the frame came: {:?}", sent.elapsed());
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// Many frames published faster than the window through a poller that
/// lags: every one arrives once, in order, in fewer answers than frames.
#[tokio::test]
async fn a_paced_poller_loses_nothing() {
    bounded(async {
        let server = TestServer::start_with(|c| c.write_window = Duration::from_millis(100)).await;
        let (sid, _) = create_session(server.addr()).await?;
        let up = Upstream::new(server.addr(), &sid);
        let sender = {
            let up = up.clone();
            tokio::spawn(async move {
                let mut cids = Vec::new();
                for n in 0..200 {
                    cids.push(echo(&up, n).await?);
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                anyhow::Ok(cids)
            })
        };
        let mut got = Vec::new();
        let mut answers = 0;
        let mut last = 0;
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.len() < 200 && Instant::now() < deadline {
            // A poller that is slow to come back (10 ms), so frames wait.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let (frames, _) = poll(&server, &sid, last).await?;
            answers += 1;
            last = last_seq(&frames, last);
            got.extend(echoed(&frames));
        }
        let sent = sender.await??;
        assert_eq!(got, sent, "every frame once, in order");
        assert!(answers * 5 < sent.len(), "{answers} answers for {} frames", sent.len());
        server.shutdown().await;
        Ok(())
    })
    .await;
}

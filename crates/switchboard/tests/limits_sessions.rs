//! `docs/limits.md`, Sessions: sessions per node (native, socket.io and
//! SockJS alike), rooms per session, the three rates, the outbox and one
//! long-poll waiter per session. Over each bound the documented answer
//! arrives, the metric grows, and a bystander chats on unaffected.

use std::time::{Duration, Instant};

use switchboard_testkit::downstream::{PollDownstream, PollKind, WsDownstream};
use switchboard_testkit::hardening::{errors_series, Bystander, Metrics};
use switchboard_testkit::http::HttpRequest;
use switchboard_testkit::im::{ChatClient, Login};
use switchboard_testkit::room::{create_session, Publisher, Subscriber};
use switchboard_testkit::{bounded, json, Attach, Frame, TestServer, Transport, Upstream};

/// A socket.io client's namespace CONNECT over engine.io long polling;
/// returns the packets answering it.
async fn socketio_connect(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let open = HttpRequest::get("/socket.io/?EIO=4&transport=polling").send(addr).await?.text().await?;
    let handshake: serde_json::Value = serde_json::from_str(open.strip_prefix('0').unwrap_or(&open))?;
    let sid = handshake["sid"].as_str().unwrap_or_default().to_owned();
    let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let response = HttpRequest::post(&path, "40").send(addr).await?;
    anyhow::ensure!(response.status == 200, "CONNECT POST answered {}", response.status);
    HttpRequest::get(&path).send(addr).await?.text().await
}

#[tokio::test]
async fn new_sessions_over_max_sessions_get_4503_on_every_protocol() {
    bounded(async {
        let server = TestServer::start_with(|c| {
            c.max_sessions = 3;
            c.grace = Duration::from_millis(300);
        })
        .await;
        let addr = server.addr();
        let before = Metrics::scrape(addr).await?;
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;
        let mut second = WsDownstream::connect(addr, &Attach::new(None, 0)).await?;
        let second_sid = second.next().await?.str("sid").unwrap_or_default().to_owned();
        let mut third = WsDownstream::connect(addr, &Attach::new(None, 0)).await?;
        assert_eq!(third.next().await?.typ(), "welcome");

        // Native: WebSocket and long poll.
        let refusal = ChatClient::refused(addr, &Login::guest()).await?;
        assert!(refusal.close.is_close(4503) && refusal.close.bool("reconnect") == Some(true), "{}", refusal.close);
        let frames = PollDownstream::new(addr, PollKind::Long, &Attach::new(None, 0)).poll_once().await?;
        assert!(frames.len() == 1 && frames[0].is_close(4503), "{frames:?}");
        // socket.io: CONNECT_ERROR with code 4503.
        let answer = socketio_connect(addr).await?;
        assert!(answer.starts_with("44") && answer.contains("4503"), "socket.io CONNECT answered {answer:?}");
        // SockJS: the new session is closed at once.
        let response = HttpRequest::post("/sockjs/echo/000/fullsession/xhr", "").send(addr).await?;
        let body = response.text().await?;
        assert!(body.starts_with("c[4503,"), "SockJS answered {body:?}");
        before.wait_grown(addr, &errors_series(4503), 4.0).await?;

        // Existing sessions go on: they resume and chat.
        bystander.check().await?;
        drop(second);
        let mut resumed = WsDownstream::connect(addr, &Attach::new(Some(&second_sid), 0)).await?;
        assert_eq!(resumed.next().await?.bool("resumed"), Some(true));
        // Once a session ends (grace after its socket closed), a new one fits.
        drop(resumed);
        drop(third);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match ChatClient::open(addr, &Login::guest()).await? {
                Ok(_) => break,
                Err(refusal) => {
                    assert!(refusal.close.is_close(4503), "{}", refusal.close);
                    anyhow::ensure!(Instant::now() < deadline, "no room for a new session after others ended");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_join_over_max_rooms_per_session_gets_error_4413() {
    bounded(async {
        let server = TestServer::start_with(|c| c.max_rooms_per_session = 3).await;
        let addr = server.addr();
        let before = Metrics::scrape(addr).await?;
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;
        let mut alice = ChatClient::connect(addr, "alice").await?;
        for room in ["r1", "r2", "r3"] {
            alice.join(room).await?;
        }
        let error = alice.refused_with(json!({"type":"join","room":"r4"}), 4413).await?;
        assert!(error.str("message").is_some_and(|m| m.contains('3')), "{error}");
        before.wait_grown(addr, &errors_series(4413), 1.0).await?;
        // Still in the other rooms; not in r4.
        alice.publish("r1", json!("still here")).await?;
        alice.refused_with(json!({"type":"publish","room":"r4","data":1}), 4403).await?;
        // Leaving one makes room.
        alice.acked(json!({"type":"leave","room":"r2"})).await?;
        alice.join("r4").await?;
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn every_rate_limit_answers_4429_and_is_counted() {
    bounded(async {
        let server = TestServer::start_with(|c| {
            c.rate_messages = 1.0; // burst 4
            c.rate_typing = 1.0; // burst 2
            c.rate_joins = 1.0; // burst 5
        })
        .await;
        let addr = server.addr();
        let before = Metrics::scrape(addr).await?;
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join("lobby").await?;

        let answers = alice.publish_all("lobby", (0..12).map(|n| json!(n)).collect()).await?;
        let limited = answers.iter().filter(|a| a.code() == Some(4429)).count();
        assert!((6..=8).contains(&limited), "burst 4 at 1/s: {limited} of 12 limited: {answers:?}");

        for _ in 0..6 {
            alice.send(&json!({"type":"typing","room":"lobby"})).await?;
        }
        let mut typing_limited = 0;
        for frame in alice.sync().await? {
            if frame.typ() == "error" && frame.code() == Some(4429) {
                typing_limited += 1;
            }
        }
        assert!((3..=4).contains(&typing_limited), "burst 2 at 1/s: {typing_limited} of 6 limited");

        let mut joins_limited = 0;
        for n in 0..10 {
            let answer = alice.request(json!({"type":"join","room":format!("j{n}")})).await?;
            if answer.code() == Some(4429) {
                joins_limited += 1;
            }
        }
        // Burst 5 at 1/s, one spent on "lobby"; the seconds this test has
        // run refill a few.
        assert!((2..=6).contains(&joins_limited), "{joins_limited} of 10 joins limited");

        let total = (limited + typing_limited + joins_limited) as f64;
        before.wait_grown(addr, &errors_series(4429), total).await?;
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn an_outbox_over_its_bound_drops_the_oldest_and_reports_a_counted_gap() {
    bounded(async {
        let server = TestServer::start_with(|c| c.outbox_max_frames = 8).await;
        let addr = server.addr();
        let before = Metrics::scrape(addr).await?;
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;
        let publisher = Publisher::join(addr, "lobby").await?;
        let mut subscriber = Subscriber::join(addr, Transport::Sse, "lobby").await?;
        let last = subscriber.last();
        subscriber.upstream().ack(last).await?;
        subscriber.cut();
        publisher.publish_numbered("lobby", 0..30).await?;
        subscriber.resume(Transport::Sse).await?;
        subscriber.expect_gap(last + 1, last + 22).await?;
        subscriber.expect_msgs(publisher.id(), 22..30).await?;
        before.wait_grown(addr, "switchboard_gaps_total", 1.0).await?;
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// However many long polls a client holds on one session, one waits: every
/// other answers `[close 4000]` at once.
#[tokio::test]
async fn concurrent_long_polls_on_one_session_keep_one_waiter() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;
        let (sid, _) = create_session(addr).await?;
        let started = Instant::now();
        let mut polls = Vec::new();
        for _ in 0..20 {
            let mut attach = Attach::new(Some(&sid), 0);
            attach.wait_ms = Some(20_000);
            let mut poll = PollDownstream::new(addr, PollKind::Long, &attach);
            polls.push(tokio::spawn(async move { (poll.poll_once().await, Instant::now()) }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Wait until 19 came back superseded; the held one stays.
        let mut superseded = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while superseded < 19 {
            anyhow::ensure!(Instant::now() < deadline, "{superseded} of 20 polls superseded after 5 s");
            superseded = polls.iter().filter(|p| p.is_finished()).count();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(polls.iter().filter(|p| p.is_finished()).count(), 19, "more than one poll ended");
        Upstream::new(addr, &sid).send_one(json!({"type":"echo","data":"x","cid":"e"})).await?;
        let mut closes = 0;
        let mut echoes = 0;
        for poll in polls {
            let (frames, _) = poll.await?;
            let frames: Vec<Frame> = frames?;
            match frames.as_slice() {
                [close] if close.is_close(4000) && close.bool("reconnect") == Some(false) => closes += 1,
                [echo] if echo.typ() == "echo" => echoes += 1,
                other => panic!("unexpected poll answer {other:?}"),
            }
        }
        assert_eq!((closes, echoes), (19, 1));
        assert!(started.elapsed() < Duration::from_secs(10));
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

//! §2 grace: a session lives while a downstream is attached and for the
//! grace period after the last one detaches; then it ends, and asking for it
//! gets `close` 4004 downstream and HTTP 404 upstream.

use std::time::{Duration, Instant};

use switchboard_testkit::room::create_session;
use switchboard_testkit::scenario::assert_sessions_unknown;
use switchboard_testkit::{bounded, json, next_non_ping, TestServer, Transport, Upstream};

const GRACE: Duration = Duration::from_millis(300);

/// Probes the session with an upstream echo (which does not attach, so it
/// does not extend the session) until it answers 404; returns when.
async fn wait_for_expiry(upstream: &Upstream) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + GRACE + Duration::from_secs(5);
    while Instant::now() < deadline {
        let (status, body) =
            upstream.post(json!({"type":"echo","data":0,"cid":upstream.next_cid()}).to_string()).await?;
        match status {
            200 => tokio::time::sleep(Duration::from_millis(25)).await,
            404 => {
                assert_eq!(body["code"], 4004, "404 body {body}");
                return Ok(Instant::now());
            }
            other => anyhow::bail!("POST answered {other}: {body}"),
        }
    }
    anyhow::bail!("session still alive {:?} after detaching", GRACE + Duration::from_secs(5))
}

#[tokio::test]
async fn detached_session_ends_after_grace() {
    bounded(async {
        let server = TestServer::start_with(|c| c.grace = GRACE).await;
        let addr = server.addr();
        let (sid, _) = create_session(addr).await?; // one short poll, then detached
        let detached_at = Instant::now();
        let upstream = Upstream::new(addr, &sid);
        let expired_at = wait_for_expiry(&upstream).await?;
        let lived = expired_at - detached_at;
        assert!(lived >= GRACE - Duration::from_millis(50), "session ended {lived:?} after detaching");

        // It stays gone (the probes did not revive it)...
        let (status, body) = upstream.post(json!({"type":"echo","data":0,"cid":"late"}).to_string()).await?;
        assert_eq!((status, body["code"].clone()), (404, json!(4004)));
        // ...and every transport says so.
        assert_sessions_unknown(addr, &sid).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn attached_session_outlives_grace() {
    bounded(async {
        let server = TestServer::start_with(|c| c.grace = GRACE).await;
        let addr = server.addr();
        let mut ws = Transport::WebSocket.attach(addr, None, 0).await?;
        let sid = ws.next_frame().await?.str("sid").unwrap_or_default().to_owned();
        tokio::time::sleep(GRACE * 3).await;
        let upstream = Upstream::new(addr, &sid);
        let cid = upstream.send_one(json!({"type":"echo","data":"alive"})).await?;
        let echo = next_non_ping(ws.as_mut()).await?;
        assert_eq!((echo.typ(), echo.cid()), ("echo", Some(cid.as_str())), "{echo}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// Grace counts from the last detach: resuming within it, again and again,
/// keeps the session for longer than one grace period in total.
#[tokio::test]
async fn resume_within_grace_keeps_the_session() {
    bounded(async {
        let server = TestServer::start_with(|c| c.grace = GRACE).await;
        let addr = server.addr();
        let mut ws = Transport::Sse.attach(addr, None, 0).await?;
        let sid = ws.next_frame().await?.str("sid").unwrap_or_default().to_owned();
        let started = Instant::now();
        for _ in 0..4 {
            drop(ws);
            tokio::time::sleep(GRACE / 3).await;
            ws = Transport::Sse.attach(addr, Some(&sid), 0).await?;
            let welcome = ws.next_frame().await?;
            assert!(
                welcome.typ() == "welcome" && welcome.bool("resumed") == Some(true),
                "resume {:?} after start: {welcome}",
                started.elapsed()
            );
        }
        assert!(started.elapsed() > GRACE);
        server.shutdown().await;
        Ok(())
    })
    .await;
}

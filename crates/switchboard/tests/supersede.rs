//! §2 "one downstream at a time": a new attachment replaces the old one,
//! which gets `close` 4000 with `reconnect: false` and ends; a held long
//! poll returns at once with that frame.

use std::time::{Duration, Instant};

use switchboard_testkit::downstream::{PollDownstream, PollKind};
use switchboard_testkit::room::create_session;
use switchboard_testkit::{bounded, json, next_non_ping, Attach, Ended, Frame, TestServer, Transport, Upstream};

fn is_superseded(frame: &Frame) -> bool {
    frame.is_close(4000) && frame.bool("reconnect") == Some(false)
}

/// Opens `first`, then `second` on the same session: `first` gets close
/// 4000 and ends, `second` carries the session's frames.
async fn supersede(first: Transport, second: Transport) -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let addr = server.addr();
    let mut old = first.attach(addr, None, 0).await?;
    let welcome = old.next_frame().await?;
    let sid = welcome.str("sid").unwrap_or_default().to_owned();

    let mut new = second.attach(addr, Some(&sid), 0).await?;
    if second.is_streaming() {
        let welcome = new.next_frame().await?;
        assert!(welcome.typ() == "welcome" && welcome.bool("resumed") == Some(true), "{second} resume: {welcome}");
    } else {
        // A poll attaches when its request reaches the server: send one.
        Upstream::new(addr, &sid).send_one(json!({"type":"echo","data":0,"cid":"e0"})).await?;
        let echo = next_non_ping(new.as_mut()).await?;
        assert_eq!(echo.cid(), Some("e0"), "{echo}");
    }

    // Frames queued before the new attachment arrived may still reach the
    // old one; the first control frame after them must be the close.
    let close = loop {
        let frame = next_non_ping(old.as_mut()).await?;
        if frame.seq().is_none() {
            break frame;
        }
    };
    assert!(is_superseded(&close), "{first} superseded by {second}: got {close}");
    let after = old.next_frame().await;
    let ended = after.as_ref().err().and_then(|e| e.downcast_ref::<Ended>());
    assert!(ended.is_some(), "{first} must end after close 4000, got {after:?}");

    // The new attachment carries the session.
    Upstream::new(addr, &sid).send_one(json!({"type":"echo","data":1,"cid":"e1"})).await?;
    let echo = next_non_ping(new.as_mut()).await?;
    assert_eq!(echo.cid(), Some("e1"), "{echo}");
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn websocket_is_superseded_by_a_second_websocket() {
    bounded(supersede(Transport::WebSocket, Transport::WebSocket)).await;
}

#[tokio::test]
async fn sse_is_superseded_by_a_websocket() {
    bounded(supersede(Transport::Sse, Transport::WebSocket)).await;
}

#[tokio::test]
async fn stream_is_superseded_by_sse() {
    bounded(supersede(Transport::Stream, Transport::Sse)).await;
}

#[tokio::test]
async fn htmlfile_is_superseded_by_a_stream() {
    bounded(supersede(Transport::HtmlFile, Transport::Stream)).await;
}

#[tokio::test]
async fn websocket_is_superseded_by_a_long_poll() {
    bounded(supersede(Transport::WebSocket, Transport::LongPoll)).await;
}

/// A held long poll (25 s hold) returns at once with `[close 4000]` when
/// another downstream attaches: `first` is held, `second` attaches.
async fn held_poll_superseded_by(second: Transport) -> anyhow::Result<()> {
    let server = TestServer::start().await;
    let addr = server.addr();
    let (sid, _) = create_session(addr).await?;
    let mut held = PollDownstream::new(addr, PollKind::Long, &Attach::new(Some(&sid), 0));
    let held = tokio::spawn(async move {
        let frames = held.poll_once().await;
        (Instant::now(), frames)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!held.is_finished(), "the poll must be held while nothing is queued");

    let attached_at = Instant::now();
    let mut new = second.attach(addr, Some(&sid), 0).await?;
    let new_frames = tokio::spawn(async move {
        let frame = new.next_frame().await;
        (new, frame)
    });
    let (returned_at, frames) = held.await?;
    let frames = frames?;
    let delay = returned_at.saturating_duration_since(attached_at);
    assert!(delay < Duration::from_secs(2), "held poll returned {delay:?} after the new attachment");
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert!(is_superseded(&frames[0]), "{frames:?}");

    if second == Transport::LongPoll {
        // The new poll is the one held now: it gets the next frame.
        Upstream::new(addr, &sid).send_one(json!({"type":"echo","data":1,"cid":"e1"})).await?;
    }
    let (_new, frame) = new_frames.await?;
    let frame = frame?;
    if second == Transport::LongPoll {
        assert_eq!((frame.typ(), frame.cid()), ("echo", Some("e1")), "{frame}");
    } else {
        assert_eq!(frame.typ(), "welcome", "{frame}");
    }
    server.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn held_long_poll_returns_at_once_when_a_websocket_attaches() {
    bounded(held_poll_superseded_by(Transport::WebSocket)).await;
}

#[tokio::test]
async fn held_long_poll_returns_at_once_when_another_long_poll_attaches() {
    bounded(held_poll_superseded_by(Transport::LongPoll)).await;
}

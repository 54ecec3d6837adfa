//! §7 presence: "a user with three tabs is one user". The room hears one
//! `presence` join when a user's first session enters and one `leave` when
//! the last one goes; `who` lists each user once.

use std::time::Duration;

use switchboard_testkit::im::{wait_session_ended, Api, ChatClient};
use switchboard_testkit::{bounded, Frame, TestServer};

const GRACE: Duration = Duration::from_millis(300);
const ROOM: &str = "lobby";
const KEY: &str = "presence-key";

fn presence_of<'a>(frames: &'a [Frame], user: &str) -> Vec<&'a Frame> {
    frames.iter().filter(|f| f.typ() == "presence" && f.str("user") == Some(user)).collect()
}

#[tokio::test]
async fn two_sessions_of_one_user_are_one_presence() {
    bounded(async {
        let server = TestServer::start_with(|c| {
            c.grace = GRACE;
            c.api_key = Some(KEY.into());
        })
        .await;
        let addr = server.addr();
        let api = Api::new(addr, Some(KEY));
        let mut carol = ChatClient::connect(addr, "carol").await?;
        carol.join(ROOM).await?;
        carol.sync().await?; // carol's own join is not what this test is about

        let mut alice_tab1 = ChatClient::connect(addr, "alice").await?;
        alice_tab1.join(ROOM).await?;
        let mut alice_tab2 = ChatClient::connect(addr, "alice").await?;
        alice_tab2.join(ROOM).await?;

        let seen = carol.sync().await?;
        let joins = presence_of(&seen, "alice");
        assert_eq!(joins.len(), 1, "one presence for alice's two sessions: {seen:?}");
        let join = joins[0];
        assert_eq!(
            (join.str("room"), join.str("state"), join.str("name")),
            (Some(ROOM), Some("join"), Some("alice")),
            "{join}"
        );
        assert!(join.seq().is_some(), "presence is a sequenced frame: {join}");
        assert_eq!(carol.who(ROOM).await?, ["alice", "carol"]);
        let (status, body) = api.get("/rooms/lobby/presence").await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["users"].as_array().map(Vec::len), Some(2), "alice once, carol once: {body}");

        // One of alice's sessions ends: she is still online.
        let tab1 = alice_tab1.sid().to_owned();
        alice_tab1.disconnect().await?;
        wait_session_ended(addr, &tab1, GRACE).await?;
        let seen = carol.sync().await?;
        assert!(presence_of(&seen, "alice").is_empty(), "alice still has a session; nothing to announce: {seen:?}");
        assert_eq!(carol.who(ROOM).await?, ["alice", "carol"]);

        // Her last session ends: she leaves.
        let tab2 = alice_tab2.sid().to_owned();
        alice_tab2.disconnect().await?;
        wait_session_ended(addr, &tab2, GRACE).await?;
        let seen = carol.sync().await?;
        let leaves = presence_of(&seen, "alice");
        assert_eq!(leaves.len(), 1, "one leave for alice: {seen:?}");
        assert_eq!((leaves[0].str("room"), leaves[0].str("state")), (Some(ROOM), Some("leave")), "{}", leaves[0]);
        assert_eq!(carol.who(ROOM).await?, ["carol"]);
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A detached session is still present during its grace period (it may
/// come back at any moment): closing a tab is not leaving.
#[tokio::test]
async fn a_detached_session_stays_present_during_grace() {
    bounded(async {
        let server = TestServer::start_with(|c| c.grace = Duration::from_secs(20)).await;
        let addr = server.addr();
        let mut carol = ChatClient::connect(addr, "carol").await?;
        carol.join(ROOM).await?;
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        alice.disconnect().await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let seen = carol.sync().await?;
        assert_eq!(
            presence_of(&seen, "alice").iter().map(|f| f.str("state")).collect::<Vec<_>>(),
            [Some("join")],
            "{seen:?}"
        );
        assert_eq!(carol.who(ROOM).await?, ["alice", "carol"]);
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// `leave` ends presence at once when it was the user's only session in
/// the room.
#[tokio::test]
async fn leaving_the_room_announces_leave() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let mut carol = ChatClient::connect(addr, "carol").await?;
        carol.join(ROOM).await?;
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        carol.skip_to_presence("alice", "join").await?;
        alice.acked(switchboard_testkit::json!({"type": "leave", "room": ROOM})).await?;
        carol.skip_to_presence("alice", "leave").await?;
        assert_eq!(carol.who(ROOM).await?, ["carol"]);
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// In a room larger than `presence_events_max_members`, arrivals and
/// departures are not announced (they would cost n² deliveries as a big
/// room fills), but presence is still tracked: `who` lists everyone.
#[tokio::test]
async fn rooms_over_the_presence_event_limit_stay_quiet_but_who_answers() {
    bounded(async {
        let server = TestServer::start_with(|c| {
            c.grace = GRACE;
            c.presence_events_max_members = 2;
        })
        .await;
        let addr = server.addr();
        let mut carol = ChatClient::connect(addr, "carol").await?;
        carol.join(ROOM).await?;
        carol.sync().await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        let seen = carol.sync().await?;
        assert_eq!(presence_of(&seen, "bob").len(), 1, "the second member is announced: {seen:?}");

        let mut dave = ChatClient::connect(addr, "dave").await?;
        dave.join(ROOM).await?;
        let seen = carol.sync().await?;
        assert!(presence_of(&seen, "dave").is_empty(), "the third member is over the limit: {seen:?}");
        assert_eq!(carol.who(ROOM).await?, ["bob", "carol", "dave"]);

        // Dave's leave is judged by the same size: not announced either.
        let sid = dave.sid().to_owned();
        dave.disconnect().await?;
        wait_session_ended(addr, &sid, GRACE).await?;
        let seen = carol.sync().await?;
        assert!(presence_of(&seen, "dave").is_empty(), "dave's leave is not announced: {seen:?}");
        assert_eq!(carol.who(ROOM).await?, ["bob", "carol"]);

        // Back under the limit: bob's leave is announced.
        let sid = bob.sid().to_owned();
        bob.disconnect().await?;
        wait_session_ended(addr, &sid, GRACE).await?;
        let seen = carol.sync().await?;
        assert_eq!(presence_of(&seen, "bob").len(), 1, "bob's leave is announced: {seen:?}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

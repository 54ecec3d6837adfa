//! The server HTTP API (`docs/api.md`): the key, publishing as the system
//! or as a user, history, presence, rooms, private rooms and members,
//! disconnecting a user, and JSON errors.

use std::collections::BTreeSet;

use serde_json::Value;
use switchboard_testkit::im::{Api, ChatClient, Login};
use switchboard_testkit::{bounded, json, HttpRequest, TestServer};

const KEY: &str = "the-api-key";
const ROOM: &str = "lobby";

async fn api_server() -> TestServer {
    TestServer::start_with(|c| c.api_key = Some(KEY.into())).await
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: u64) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "an error needs a message: {body}");
}

#[tokio::test]
async fn the_api_is_disabled_without_a_key() {
    bounded(async {
        let server = TestServer::start().await;
        for key in [None, Some("anything")] {
            let (status, body) = Api::new(server.addr(), key).get("/rooms").await?;
            assert_error(status, &body, 403, 4403);
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn the_api_needs_its_key() {
    bounded(async {
        let server = api_server().await;
        let addr = server.addr();
        for key in [None, Some("wrong"), Some("the-api-ke"), Some("the-api-key2")] {
            let api = Api::new(addr, key);
            let (status, body) = api.get("/rooms").await?;
            assert_error(status, &body, 401, 4401);
            let (status, body) = api.post("/rooms/lobby/messages", json!({"data": 1})).await?;
            assert_error(status, &body, 401, 4401);
        }
        // Basic is not Bearer.
        let response =
            HttpRequest::get("/api/v1/rooms").header("authorization", &format!("Basic {KEY}")).send(addr).await?;
        assert_eq!(response.status, 401);
        // Nothing was posted by the refused calls.
        let api = Api::new(addr, Some(KEY));
        assert!(api.history(ROOM, "after=0").await?.is_empty());
        let (status, _) = api.get("/rooms").await?;
        assert_eq!(status, 200);
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn publishing_reaches_connected_clients() {
    bounded(async {
        let server = api_server().await;
        let addr = server.addr();
        let api = Api::new(addr, Some(KEY));
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        alice.sync().await?;

        let posted = api.publish(ROOM, json!({"data": {"text": "Maintenance at 22:00"}})).await?;
        assert_eq!(posted["room"], ROOM, "{posted}");
        let id = posted["id"].as_u64().expect("an id");
        assert!(posted["ts"].as_u64().is_some(), "{posted}");
        let msg = alice.skip_to("msg").await?;
        assert_eq!(
            (msg.str("room"), msg.u64("id"), msg.str("from"), msg.str("user"), msg.str("name")),
            (Some(ROOM), Some(id), Some("system"), Some("system"), Some("system")),
            "{msg}"
        );
        assert_eq!(msg.data(), Some(&json!({"text": "Maintenance at 22:00"})));
        assert_eq!(msg.u64("ts"), posted["ts"].as_u64());

        let posted = api.publish(ROOM, json!({"data": "from the back-end", "user": "bob", "name": "Bob"})).await?;
        let msg = alice.skip_to("msg").await?;
        assert_eq!(
            (msg.u64("id"), msg.str("user"), msg.str("name")),
            (posted["id"].as_u64(), Some("bob"), Some("Bob")),
            "{msg}"
        );

        // A retry with the same user and cid is stored once.
        let body = json!({"data": "once", "user": "bob", "cid": "api-1"});
        let first = api.publish(ROOM, body.clone()).await?;
        let again = api.publish(ROOM, body).await?;
        assert_eq!(first["id"], again["id"], "{first} {again}");
        let history = api.history(ROOM, "after=0").await?;
        assert_eq!(history.len(), 3, "{history:?}");
        assert_eq!(history[2]["data"], "once");
        let seen = alice.sync().await?;
        assert_eq!(seen.iter().filter(|f| f.typ() == "msg").count(), 1, "{seen:?}");

        // Room names are percent-encoded in paths.
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join("dm:alice:bob").await?;
        bob.sync().await?;
        api.publish("dm:alice:bob", json!({"data": "psst"})).await?;
        assert_eq!(bob.skip_to("msg").await?.str("room"), Some("dm:alice:bob"));
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn history_presence_and_rooms() {
    bounded(async {
        let server = api_server().await;
        let addr = server.addr();
        let api = Api::new(addr, Some(KEY));
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let mut alice_phone = ChatClient::connect(addr, "alice").await?;
        alice_phone.join(ROOM).await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        for n in 1..=5 {
            alice.publish(ROOM, json!({"n": n})).await?;
        }

        let page = api.history(ROOM, "before=5&limit=2").await?;
        assert_eq!(page.len(), 2, "{page:?}");
        assert_eq!((&page[0]["id"], &page[1]["id"]), (&json!(3), &json!(4)));
        assert_eq!(page[0]["data"], json!({"n": 3}));
        assert_eq!(page[0]["user"], "alice");
        for bad in ["before=x", "limit=-1", "after=1.5"] {
            let (status, body) = api.get(&format!("/rooms/lobby/messages?{bad}")).await?;
            assert_error(status, &body, 400, 4400);
        }

        let (status, presence) = api.get("/rooms/lobby/presence").await?;
        assert_eq!(status, 200, "{presence}");
        assert_eq!(presence["room"], ROOM);
        let users: Vec<&str> = presence["users"]
            .as_array()
            .map(|u| u.iter().filter_map(|u| u["user"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(users.iter().copied().collect::<BTreeSet<_>>(), BTreeSet::from(["alice", "bob"]));
        assert_eq!(users.len(), 2, "a user with two sessions appears once: {presence}");

        let (status, body) =
            api.post("/rooms", json!({"name": "staff", "private": true, "members": ["alice"]})).await?;
        assert_eq!(status, 201, "{body}");
        let (status, rooms) = api.get("/rooms").await?;
        assert_eq!(status, 200, "{rooms}");
        let find = |name: &str| rooms["rooms"].as_array().and_then(|r| r.iter().find(|r| r["name"] == name)).cloned();
        let lobby = find(ROOM).expect("lobby listed");
        assert_eq!(
            (&lobby["private"], &lobby["last_id"], &lobby["online"]),
            (&json!(false), &json!(5), &json!(2)),
            "{rooms}"
        );
        let staff = find("staff").expect("staff listed");
        assert_eq!((&staff["private"], &staff["last_id"]), (&json!(true), &json!(0)), "{rooms}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn disconnecting_a_user_closes_every_session_with_4005() {
    bounded(async {
        let server = api_server().await;
        let addr = server.addr();
        let api = Api::new(addr, Some(KEY));
        let mut alice = ChatClient::connect(addr, "alice").await?;
        alice.join(ROOM).await?;
        let alice_phone = ChatClient::connect(addr, "alice").await?;
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join(ROOM).await?;
        bob.sync().await?;
        let sids = [alice.sid().to_owned(), alice_phone.sid().to_owned()];

        let (status, body) = api.post("/users/alice/disconnect", json!({})).await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({"user": "alice", "disconnected": 2}));

        for client in [alice, alice_phone] {
            let (close, ws_close) = client.closed().await?;
            assert!(close.is_close(4005), "{close}");
            assert_eq!(close.bool("reconnect"), Some(false), "{close}");
            assert_eq!(ws_close, Some(4005), "WebSocket close code after {close}");
        }
        // The sessions are gone, not just detached.
        for sid in &sids {
            let refusal = ChatClient::refused(addr, &Login::guest().resume(sid, 0)).await?;
            assert!(refusal.close.is_close(4004), "{}", refusal.close);
        }
        bob.skip_to_presence("alice", "leave").await?;
        assert_eq!(bob.who(ROOM).await?, ["bob"]);

        let (status, body) = api.post("/users/nobody/disconnect", json!({})).await?;
        assert_eq!((status, body), (200, json!({"user": "nobody", "disconnected": 0})));
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    bounded(async {
        let server = api_server().await;
        let addr = server.addr();
        let api = Api::new(addr, Some(KEY));
        let (status, body) = api.get("/nothing/here").await?;
        assert_error(status, &body, 404, 4400);
        let (status, body) = api.post("/rooms/lobby/messages", json!({"text": "no data field"})).await?;
        assert_error(status, &body, 400, 4400);
        let response = HttpRequest::post("/api/v1/rooms/lobby/messages", "{not json")
            .header("authorization", &format!("Bearer {KEY}"))
            .send(addr)
            .await?;
        assert_eq!(response.status, 400);
        let (status, body) = api.post("/rooms", json!({"name": "dm:alice:bob", "private": true})).await?;
        assert_error(status, &body, 400, 4400);
        // User ids follow the rule of a JWT's `sub`; display names may hold
        // spaces, but no control characters or markup.
        for body in [
            json!({"data": 1, "user": "mallory:x"}),
            json!({"data": 1, "user": ""}),
            json!({"data": 1, "user": "line\nbreak"}),
            json!({"data": 1, "user": "u".repeat(129)}),
            json!({"data": 1, "user": "bob", "name": "<script>"}),
            json!({"data": 1, "user": "bob", "name": "two\nlines"}),
            json!({"data": 1, "user": "bob", "name": "   "}),
        ] {
            let (status, answer) = api.post("/rooms/lobby/messages", body.clone()).await?;
            assert_error(status, &answer, 400, 4400);
            assert!(
                answer["message"].as_str().is_some_and(|m| m.contains("user") || m.contains("name")),
                "{body}: {answer}"
            );
        }
        let (status, body) =
            api.post("/rooms/names/messages", json!({"data": 1, "user": "bob", "name": "Bob the Builder"})).await?;
        assert_eq!(status, 201, "a display name with spaces: {body}");
        let (status, body) = api.put("/rooms/lobby/members/a%3Ab").await?;
        assert_error(status, &body, 400, 4400);
        let (status, body) = api.post("/rooms", json!({"name": "staff", "members": ["ok", "not:ok"]})).await?;
        assert_error(status, &body, 400, 4400);
        let big = "x".repeat(1024 * 1024 + 1);
        let (status, body) = api.post("/rooms/lobby/messages", json!({"data": big})).await?;
        assert_error(status, &body, 413, 4413);
        assert!(api.history(ROOM, "after=0").await?.is_empty());
        server.shutdown().await;
        Ok(())
    })
    .await;
}

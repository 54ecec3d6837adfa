//! §7 identity with a JWT key (`jwt_secret`, HS256): every new session needs
//! a valid token (`token=` or `Authorization: Bearer`); a refused one gets
//! `close` 4401 with a message a person can act on. A token's `rooms` claim
//! limits the rooms (4403 on join), and a session cannot be resumed with
//! another user's token.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::Value;
use switchboard_testkit::im::{rooms_of, Api, ChatClient, Login, Refusal};
use switchboard_testkit::{bounded, json, HttpRequest, TestServer};

const SECRET: &str = "an HS256 secret only the tests know";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A token signed with `secret` carrying `claims`.
fn sign(secret: &str, claims: &Value) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).expect("HS256 signing")
}

/// A valid token of `sub` for an hour, with `extra` claims.
fn token(sub: &str, extra: Value) -> String {
    let mut claims = json!({"sub": sub, "exp": now() + 3600});
    if let Value::Object(extra) = extra {
        for (key, value) in extra {
            claims[key] = value;
        }
    }
    sign(SECRET, &claims)
}

async fn jwt_server() -> TestServer {
    TestServer::start_with(|c| c.jwt_secret = Some(SECRET.into())).await
}

/// A refusal must be `close` 4401, `reconnect: false`, with a message, and
/// the WebSocket must close with 4401 too. Returns the message.
fn assert_unauthorized(refusal: &Refusal) -> String {
    let close = &refusal.close;
    assert!(close.is_close(4401), "expected close 4401, got {close}");
    assert_eq!(close.bool("reconnect"), Some(false), "{close}");
    let message = close.str("reason").or_else(|| close.str("message")).unwrap_or_default().to_owned();
    assert!(message.len() > 10, "a 4401 needs a message a person can act on: {close}");
    assert_eq!(refusal.ws_close, Some(4401), "WebSocket close code for {close}");
    message.to_lowercase()
}

#[tokio::test]
async fn a_valid_token_names_the_session() {
    bounded(async {
        let server = jwt_server().await;
        let addr = server.addr();
        let alice = ChatClient::login(addr, &Login::token(&token("alice", json!({"name": "Alice Smith"})))).await?;
        assert_eq!(
            (alice.welcome().str("user"), alice.welcome().str("name")),
            (Some("alice"), Some("Alice Smith")),
            "{}",
            alice.welcome()
        );
        let bob = ChatClient::login(addr, &Login::bearer(&token("bob", json!({})))).await?;
        assert_eq!(
            (bob.welcome().str("user"), bob.welcome().str("name")),
            (Some("bob"), Some("bob")),
            "without a name claim the name is the user id: {}",
            bob.welcome()
        );

        // The same over an HTTP transport, with the header.
        let response = HttpRequest::get("/v1/poll?wait=0")
            .header("authorization", &format!("Bearer {}", token("carol", json!({}))))
            .send(addr)
            .await?;
        let frames = response.json().await?;
        assert_eq!(frames[0]["type"], "welcome", "{frames}");
        assert_eq!(frames[0]["user"], "carol", "{frames}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_missing_token_is_refused() {
    bounded(async {
        let server = jwt_server().await;
        let addr = server.addr();
        let message = assert_unauthorized(&ChatClient::refused(addr, &Login::guest()).await?);
        assert!(message.contains("token"), "{message}");
        // A development-mode nickname is no credential here.
        assert_unauthorized(&ChatClient::refused(addr, &Login::name("alice")).await?);

        // Over a poll the refusal is the answer's only frame.
        let frames = HttpRequest::get("/v1/poll?wait=0").send(addr).await?.json().await?;
        assert_eq!(frames.as_array().map(Vec::len), Some(1), "{frames}");
        assert_eq!((&frames[0]["type"], &frames[0]["code"]), (&json!("close"), &json!(4401)), "{frames}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    bounded(async {
        let server = jwt_server().await;
        let forged = sign("somebody else's secret", &json!({"sub": "alice", "exp": now() + 3600}));
        let message = assert_unauthorized(&ChatClient::refused(server.addr(), &Login::token(&forged)).await?);
        assert!(message.contains("signature") || message.contains("invalid"), "{message}");
        // The right secret with another algorithm than the configured one.
        let other_alg = encode(
            &Header::new(Algorithm::HS512),
            &json!({"sub": "alice", "exp": now() + 3600}),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )?;
        assert_unauthorized(&ChatClient::refused(server.addr(), &Login::token(&other_alg)).await?);
        // Not a JWT at all.
        assert_unauthorized(&ChatClient::refused(server.addr(), &Login::token("not.a.jwt")).await?);
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    bounded(async {
        let server = jwt_server().await;
        let expired = sign(SECRET, &json!({"sub": "alice", "exp": now() - 3600}));
        let message = assert_unauthorized(&ChatClient::refused(server.addr(), &Login::token(&expired)).await?);
        assert!(message.contains("expired"), "{message}");
        // `exp` is required.
        let eternal = sign(SECRET, &json!({"sub": "alice"}));
        assert_unauthorized(&ChatClient::refused(server.addr(), &Login::token(&eternal)).await?);
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn the_rooms_claim_limits_joins() {
    bounded(async {
        let server = jwt_server().await;
        let login = Login::token(&token("alice", json!({"rooms": ["lobby"]})));
        let mut alice = ChatClient::login(server.addr(), &login).await?;
        alice.join("lobby").await?;
        let error = alice.refused_with(json!({"type": "join", "room": "staff"}), 4403).await?;
        assert!(error.str("message").is_some_and(|m| m.contains("staff")), "the message names the room: {error}");
        alice.refused_with(json!({"type": "join", "room": "dm:alice:bob"}), 4403).await?;
        alice.refused_with(json!({"type": "publish", "room": "staff", "data": 1}), 4403).await?;
        alice.refused_with(json!({"type": "history", "room": "staff"}), 4403).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_session_cannot_be_resumed_with_another_users_token() {
    bounded(async {
        let server = jwt_server().await;
        let addr = server.addr();
        let alice_token = token("alice", json!({}));
        let mut alice = ChatClient::login(addr, &Login::token(&alice_token)).await?;
        alice.join("lobby").await?;
        let sid = alice.sid().to_owned();
        alice.disconnect().await?;

        let bob_token = token("bob", json!({}));
        let message = assert_unauthorized(&ChatClient::refused(addr, &Login::token(&bob_token).resume(&sid, 0)).await?);
        assert!(message.contains("another user"), "{message}");
        let frames =
            HttpRequest::get(format!("/v1/poll?wait=0&sid={sid}&token={bob_token}")).send(addr).await?.json().await?;
        assert_eq!((&frames[0]["type"], &frames[0]["code"]), (&json!("close"), &json!(4401)), "{frames}");

        // The owner resumes, with her token or with none (the sid is the
        // secret), and finds her session intact.
        let alice = ChatClient::login(addr, &Login::token(&alice_token).resume(&sid, 0)).await?;
        assert_eq!(alice.welcome().bool("resumed"), Some(true), "{}", alice.welcome());
        alice.disconnect().await?;
        let mut alice = ChatClient::login(addr, &Login::guest().resume(&sid, 0)).await?;
        assert_eq!(alice.welcome().bool("resumed"), Some(true), "{}", alice.welcome());
        assert_eq!(alice.user(), "alice");
        alice.publish("lobby", json!("still me")).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// Development mode (no key): a nickname picks the user; a token cannot be
/// checked and is refused with a message saying so; a session cannot be
/// resumed under another nickname.
#[tokio::test]
async fn development_mode_uses_nicknames() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let alice = ChatClient::connect(addr, "alice").await?;
        assert_eq!(alice.user(), "alice");
        let guest = ChatClient::login(addr, &Login::guest()).await?;
        assert!(guest.user().starts_with("guest"), "{}", guest.welcome());

        let message = assert_unauthorized(&ChatClient::refused(addr, &Login::token(&token("alice", json!({})))).await?);
        assert!(message.contains("development"), "{message}");
        assert_unauthorized(&ChatClient::refused(addr, &Login::name("<script>")).await?);
        assert_unauthorized(&ChatClient::refused(addr, &Login::name("mallory").resume(alice.sid(), 0)).await?);
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// "rooms (when present, the only rooms the user may join)": a private room
/// admits a user whose claim lists it, members or not.
#[tokio::test]
async fn the_rooms_claim_admits_to_a_private_room() {
    bounded(async {
        let server = TestServer::start_with(|c| {
            c.jwt_secret = Some(SECRET.into());
            c.api_key = Some("key".into());
        })
        .await;
        let addr = server.addr();
        let (status, body) = Api::new(addr, Some("key"))
            .post("/rooms", json!({"name": "staff", "private": true, "members": []}))
            .await?;
        assert_eq!(status, 201, "{body}");
        let listed = Login::token(&token("alice", json!({"rooms": ["staff"]})));
        ChatClient::login(addr, &listed).await?.join("staff").await?;
        let unlisted = Login::token(&token("bob", json!({})));
        ChatClient::login(addr, &unlisted).await?.refused_with(json!({"type": "join", "room": "staff"}), 4403).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// The claim is checked on every session, not only at the first join: a
/// user whose new token no longer lists a room is not put back into it when
/// the new session auto-joins the user's rooms, and hears nothing from it.
#[tokio::test]
async fn a_narrowed_rooms_claim_is_enforced_on_the_next_session() {
    bounded(async {
        let server = jwt_server().await;
        let addr = server.addr();
        let before = Login::token(&token("alice", json!({"rooms": ["lobby", "staff"]})));
        let mut alice = ChatClient::login(addr, &before).await?;
        alice.join("lobby").await?;
        alice.join("staff").await?;
        alice.disconnect().await?;

        let after = Login::token(&token("alice", json!({"rooms": ["lobby"]})));
        let mut alice = ChatClient::login(addr, &after).await?;
        let rooms = alice.skip_to("rooms").await?;
        let mut bob = ChatClient::login(addr, &Login::token(&token("bob", json!({})))).await?;
        bob.join("staff").await?;
        bob.publish("staff", json!("not for alice any more")).await?;
        let seen = alice.sync().await?;
        let leaked: Vec<_> = seen.iter().filter(|f| f.str("room") == Some("staff")).collect();
        assert!(
            leaked.is_empty(),
            "alice's token no longer allows staff, yet her new session gets {leaked:?} (rooms frame {rooms})"
        );
        assert!(rooms_of(&rooms)?.iter().all(|r| r["room"] != "staff"), "staff offered to alice: {rooms}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

/// A user id must not contain `:` (it would break `dm:` room names).
#[tokio::test]
async fn a_sub_with_a_colon_is_refused() {
    bounded(async {
        let server = jwt_server().await;
        let bad = token("alice:bob", json!({}));
        let message = assert_unauthorized(&ChatClient::refused(server.addr(), &Login::token(&bad)).await?);
        assert!(message.contains("sub"), "{message}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

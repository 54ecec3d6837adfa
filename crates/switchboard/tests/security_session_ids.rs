//! Session ids are bearer secrets (DESIGN §5, protocol §1.2): 128 random
//! bits, distinct, unrelated to the public id others see, never shown to
//! other clients, and a guessed or altered id opens nothing. That a session
//! is bound to its user (another user's credentials are refused on resume,
//! with 4401) is proven in `im_auth.rs`
//! (`a_session_cannot_be_resumed_with_another_users_token`,
//! `development_mode_uses_nicknames`).

use std::collections::HashSet;

use switchboard_testkit::hardening::KeepAlive;
use switchboard_testkit::im::ChatClient;
use switchboard_testkit::scenario::assert_sessions_unknown;
use switchboard_testkit::serde_json::{self, Value};
use switchboard_testkit::{bounded, json, TestServer, Upstream};

const SESSIONS: usize = 10_000;
const PARALLEL: usize = 16;

/// `count` new sessions' (sid, public id), from short polls' `welcome`s on
/// one keep-alive connection.
async fn new_sessions(addr: std::net::SocketAddr, count: usize) -> anyhow::Result<Vec<(String, String)>> {
    let mut client = KeepAlive::new(addr);
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (_, body) = client.get("/v1/poll?wait=0").await?;
        let frames: Vec<Value> = serde_json::from_slice(&body)?;
        let welcome = frames.first().ok_or_else(|| anyhow::anyhow!("no welcome"))?;
        out.push((
            welcome["sid"].as_str().unwrap_or_default().to_owned(),
            welcome["id"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    Ok(out)
}

#[tokio::test]
async fn ten_thousand_session_ids_are_distinct_random_128_bit_secrets() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let mut tasks = Vec::new();
        for _ in 0..PARALLEL {
            tasks.push(tokio::spawn(new_sessions(addr, SESSIONS / PARALLEL)));
        }
        let mut sessions = Vec::with_capacity(SESSIONS);
        for task in tasks {
            sessions.extend(task.await??);
        }
        assert_eq!(sessions.len(), SESSIONS);

        let sids: HashSet<&str> = sessions.iter().map(|(sid, _)| sid.as_str()).collect();
        let publics: HashSet<&str> = sessions.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(sids.len(), SESSIONS, "duplicate session ids");
        assert_eq!(publics.len(), SESSIONS, "duplicate public ids");
        let mut ones = [0u32; 128];
        for (sid, public) in &sessions {
            assert!(sid.len() == 32 && sid.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{sid}");
            assert_eq!(public.len(), 16, "{public}");
            // The public id tells nothing of the secret: no shared run of
            // 10 hex digits (chance about 1e-10 per pair for random ids).
            for window in public.as_bytes().windows(10) {
                let window = std::str::from_utf8(window)?;
                assert!(!sid.contains(window), "public id {public} shares {window} with its sid {sid}");
            }
            let value = u128::from_str_radix(sid, 16)?;
            for (bit, count) in ones.iter_mut().enumerate() {
                *count += ((value >> bit) & 1) as u32;
            }
        }
        // Every one of the 128 bits varies, about half the time (a fixed or
        // counter-like bit would sit at 0, 10 000 or far from 5 000; the
        // bound is over 9 standard deviations).
        for (bit, count) in ones.iter().enumerate() {
            assert!((4_550..=5_450).contains(count), "bit {bit} is set in {count} of {SESSIONS} ids");
        }
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn guessed_or_altered_session_ids_open_nothing() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let mut alice = ChatClient::connect(addr, "alice").await?;
        let sid = alice.sid().to_owned();
        alice.join("lobby").await?;
        let flip = |i: usize| {
            let mut bytes = sid.clone().into_bytes();
            bytes[i] = if bytes[i] == b'0' { b'1' } else { b'0' };
            String::from_utf8(bytes).expect("hex")
        };
        let guesses = [
            flip(0),
            flip(31),
            sid.to_uppercase(),
            format!("{sid}0"),
            sid[..31].to_owned(),
            alice.public_id().to_owned(),
            "0".repeat(32),
            format!(" {sid}"),
        ];
        for guess in &guesses {
            if *guess == sid {
                continue;
            }
            // Uppercase hex is the same number: the id is case-insensitive
            // hex, not a weaker secret; everything else is unknown.
            if guess.eq_ignore_ascii_case(&sid) {
                continue;
            }
            assert_sessions_unknown(addr, guess).await?;
            let (status, answer) = Upstream::new(addr, guess).post(json!({"type":"echo","data":1}).to_string()).await?;
            assert_eq!((status, answer["code"].as_u64()), (404, Some(4004)), "POST with sid {guess:?}");
        }
        // Others in the room see the public id, never the sid.
        let mut bob = ChatClient::connect(addr, "bob").await?;
        bob.join("lobby").await?;
        alice.publish("lobby", json!("hi")).await?;
        loop {
            let frame = bob.next().await?;
            assert!(!frame.raw().contains(&sid), "bob saw alice's sid: {frame}");
            if frame.typ() == "msg" {
                assert_eq!(frame.str("from"), Some(alice.public_id()));
                break;
            }
        }
        let who = bob.request(json!({"type":"who","room":"lobby"})).await?;
        assert!(!who.raw().contains(&sid), "{who}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

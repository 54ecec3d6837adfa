//! Oversized and malformed JWTs over the wire (`token=`, `Authorization:
//! Bearer`, socket.io's CONNECT `auth`): each is refused with `close` 4401
//! (socket.io: CONNECT_ERROR with code 4401) and a message, counted in
//! `switchboard_errors_total{code="4401"}`; a token too large for a request
//! head is cut by the head limit (431/414). A user with a valid token chats
//! on meanwhile. The decoder itself is property-tested in
//! `jwt_garbage_tokens.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use switchboard_testkit::hardening::{errors_series, raw_exchange, response_head, Bystander, Metrics};
use switchboard_testkit::http::{encode as url, HttpRequest};
use switchboard_testkit::im::{ChatClient, Login};
use switchboard_testkit::{bounded, json, TestServer};

const SECRET: &str = "security tests' HS256 secret";

fn token(sub: &str) -> String {
    let exp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) + 3600;
    let claims = json!({"sub": sub, "exp": exp});
    encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("signing")
}

fn malformed() -> Vec<String> {
    let valid = token("mallory");
    let mut parts = valid.split('.').map(str::to_owned).collect::<Vec<_>>();
    let signature = parts.pop().unwrap_or_default();
    let unsigned = parts.join(".");
    vec![
        ".".to_owned(),
        "..".to_owned(),
        "a.b".to_owned(),
        "a.b.c.d".to_owned(),
        "not a token at all".to_owned(),
        format!("{unsigned}."),
        format!("{unsigned}.{}", signature.chars().rev().collect::<String>()),
        format!("eyJhbGciOiJub25lIn0.{}.", parts.get(1).cloned().unwrap_or_default()),
        format!("{valid}x"),
        valid.replace('.', ""),
        "\u{0}\u{1}\u{7f}".to_owned(),
        "é€😀".repeat(50),
    ]
}

#[tokio::test]
async fn malformed_and_oversized_tokens_are_refused_with_4401() {
    bounded(async {
        let server = TestServer::start_with(|c| c.jwt_secret = Some(SECRET.into())).await;
        let addr = server.addr();
        let before = Metrics::scrape(addr).await?;
        let mut bystander = Bystander::login(addr, &Login::token(&token("alice")), "calm").await?;

        let mut refused = 0;
        let oversized = "x".repeat(9000);
        for bad in malformed().iter().chain([&oversized]) {
            for login in [Login::token(bad), Login::bearer(bad)] {
                if login.bearer.as_ref().is_some_and(|b| http::HeaderValue::from_str(&format!("Bearer {b}")).is_err()) {
                    continue; // not sendable as a header
                }
                let refusal = ChatClient::refused(addr, &login).await?;
                assert!(
                    refusal.close.is_close(4401) && refusal.close.bool("reconnect") == Some(false),
                    "{bad:.40}: {}",
                    refusal.close
                );
                assert!(refusal.close.str("reason").is_some_and(|r| !r.is_empty()), "{}", refusal.close);
                refused += 1;
            }
        }
        let refusal = ChatClient::refused(addr, &Login::token(&oversized)).await?;
        assert!(refusal.close.str("reason").unwrap_or_default().contains("longer than"), "{}", refusal.close);

        // On the poll transports too: `[close 4401]`.
        let response = HttpRequest::get(format!("/v1/poll?token={}", url("a.b.c"))).send(addr).await?;
        let frames = response.json().await?;
        assert_eq!(frames[0]["code"], 4401, "{frames}");

        // socket.io: CONNECT with a garbage token in `auth`.
        let open = HttpRequest::get("/socket.io/?EIO=4&transport=polling").send(addr).await?.text().await?;
        let sid = serde_json::from_str::<serde_json::Value>(open.trim_start_matches('0'))?["sid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
        HttpRequest::post(&path, r#"40{"token":"a.b.c"}"#).send(addr).await?;
        let answer = HttpRequest::get(&path).send(addr).await?.text().await?;
        assert!(answer.starts_with("44") && answer.contains("4401"), "socket.io CONNECT answered {answer:?}");

        // A token too large for the request head never reaches the decoder.
        let huge = format!("GET /v1/poll?token={} HTTP/1.1\r\nHost: x\r\n\r\n", "y".repeat(100_000));
        let (raw, _) = raw_exchange(addr, huge.as_bytes(), Duration::from_secs(5)).await?;
        assert!(matches!(response_head(&raw).map(|(s, _)| s), Some(414 | 431)), "{:?}", String::from_utf8_lossy(&raw));

        before.wait_grown(addr, &errors_series(4401), f64::from(refused + 3)).await?;
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

//! The server HTTP API (`docs/api.md`) without its key, or with a wrong
//! one, does nothing on any endpoint — no publish, no membership change, no
//! disconnect — and says so with 401 (403 when no key is configured). This
//! extends `im_http_api.rs` (which checks `GET /rooms` and a publish) to
//! every endpoint and to keys sent anywhere but `Authorization: Bearer`.

use http::Method;
use switchboard_testkit::hardening::Bystander;
use switchboard_testkit::http::HttpRequest;
use switchboard_testkit::im::Api;
use switchboard_testkit::{bounded, json, TestServer};

const KEY: &str = "a-long-random-api-key-0123456789";

/// Every endpoint of the API, with a body where it takes one.
fn endpoints() -> Vec<(Method, &'static str, &'static str)> {
    vec![
        (Method::GET, "/api/v1/rooms", ""),
        (Method::POST, "/api/v1/rooms", r#"{"name":"staff","private":true,"members":["mallory"]}"#),
        (Method::POST, "/api/v1/rooms/calm/messages", r#"{"data":"forged","user":"alice"}"#),
        (Method::GET, "/api/v1/rooms/calm/messages", ""),
        (Method::GET, "/api/v1/rooms/calm/presence", ""),
        (Method::PUT, "/api/v1/rooms/staff/members/mallory", ""),
        (Method::DELETE, "/api/v1/rooms/calm/members/bystander", ""),
        (Method::POST, "/api/v1/users/bystander/disconnect", ""),
        (Method::GET, "/api/v1/nothing", ""),
    ]
}

#[tokio::test]
async fn without_the_right_key_no_endpoint_does_anything() {
    bounded(async {
        let server = TestServer::start_with(|c| c.api_key = Some(KEY.into())).await;
        let addr = server.addr();
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;
        let wrong_authorizations = [
            None,
            Some(String::new()),
            Some("Bearer".to_owned()),
            Some("Bearer ".to_owned()),
            Some(format!("Basic {KEY}")),
            Some(format!("Token {KEY}")),
            Some(format!("Bearer {}", &KEY[..KEY.len() - 1])),
            Some(format!("Bearer {KEY}x")),
            Some(format!("Bearer {}", KEY.to_uppercase())),
            Some(format!("Bearer{KEY}")),
            Some(KEY.to_owned()),
        ];
        for (method, path, body) in endpoints() {
            for authorization in &wrong_authorizations {
                let mut request = HttpRequest::new(method.clone(), path).body(body);
                if let Some(value) = authorization {
                    request = request.header("authorization", value);
                }
                let response = request.send(addr).await?;
                assert_eq!(response.status, 401, "{method} {path} with {authorization:?}");
                let answer = response.json().await?;
                assert_eq!(answer["code"], 4401, "{method} {path}: {answer}");
            }
            // The key anywhere else than the Authorization header is no key.
            for request in [
                HttpRequest::new(method.clone(), format!("{path}?key={KEY}")),
                HttpRequest::new(method.clone(), format!("{path}?api_key={KEY}&token={KEY}")),
                HttpRequest::new(method.clone(), path).header("x-api-key", KEY),
                HttpRequest::new(method.clone(), path).header("cookie", &format!("api_key={KEY}")),
            ] {
                assert_eq!(request.body(body).send(addr).await?.status, 401, "{method} {path}");
            }
        }
        // Nothing happened: the bystander is connected and still a member,
        // nothing was posted, no room was created.
        bystander.check().await?;
        let api = Api::new(addr, Some(KEY));
        let history = api.history("calm", "after=0&limit=500").await?;
        assert!(history.iter().all(|m| m["data"] != json!("forged")), "{history:?}");
        let (status, rooms) = api.get("/rooms").await?;
        assert_eq!(status, 200);
        assert!(!rooms.to_string().contains("staff"), "{rooms}");
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn without_a_configured_key_the_api_is_off() {
    bounded(async {
        let server = TestServer::start().await;
        let addr = server.addr();
        let mut bystander = Bystander::join(addr, "bystander", "calm").await?;
        for (method, path, body) in endpoints() {
            for authorization in [None, Some("Bearer "), Some("Bearer anything")] {
                let mut request = HttpRequest::new(method.clone(), path).body(body);
                if let Some(value) = authorization {
                    request = request.header("authorization", value);
                }
                let response = request.send(addr).await?;
                assert_eq!(response.status, 403, "{method} {path} with {authorization:?}");
                assert_eq!(response.json().await?["code"], 4403);
            }
        }
        bystander.check().await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

//! The server HTTP API under `/api/v1`, for application back-ends.
//!
//! Authorised by the configured API key (`Authorization: Bearer KEY`).
//! Errors are JSON `{"code":N,"message":"..."}`. See `docs/api.md`.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use switchboard_core::frame::valid_room;
use switchboard_core::identity::{valid_display_name, valid_user_id, MAX_DISPLAY_NAME_CHARS};
use switchboard_core::store::{HistoryQuery, StoredMessage};
use switchboard_core::{codes, Core};
use switchboard_transports::response::{self, Body};
use switchboard_transports::router::bearer;

/// Largest API request body.
const MAX_API_BODY: usize = 1024 * 1024;

/// What a user id must be (the rule of a JWT's `sub`).
const USER_ID_RULE: &str = "a user id is 1 to 128 bytes, no ':' or control characters";

/// Answers one `/api/v1/...` request.
pub async fn handle(core: &Arc<Core>, api_key: Option<&str>, request: Request<Incoming>) -> Response<Body> {
    let Some(key) = api_key else {
        return response::error(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            "the HTTP API is disabled: set api_key in the configuration",
        );
    };
    match bearer(request.headers()) {
        Some(given) if constant_time_eq(given.as_bytes(), key.as_bytes()) => {}
        Some(_) => return response::error(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, "wrong API key"),
        None => {
            return response::error(
                StatusCode::UNAUTHORIZED,
                codes::UNAUTHORIZED,
                "send the API key as Authorization: Bearer KEY",
            )
        }
    }
    let path = request.uri().path().trim_start_matches("/api/v1").to_owned();
    let segments: Vec<String> = match path.split('/').skip(1).map(decode_segment).collect::<Option<Vec<_>>>() {
        Some(segments) => segments,
        None => return bad_request("a path segment is not valid percent-encoded UTF-8"),
    };
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query = request.uri().query().unwrap_or("").to_owned();
    let method = request.method().clone();
    match (method, segments.as_slice()) {
        (Method::GET, ["rooms"]) => list_rooms(core).await,
        (Method::POST, ["rooms"]) => create_room(core, request).await,
        (Method::POST, ["rooms", room, "messages"]) => post_message(core, room, request).await,
        (Method::GET, ["rooms", room, "messages"]) => history(core, room, &query).await,
        (Method::GET, ["rooms", room, "presence"]) => {
            let users: Vec<_> =
                core.who(room).await.into_iter().map(|(user, name)| json!({"user": user, "name": name})).collect();
            ok(json!({ "room": room, "users": users }))
        }
        (Method::PUT | Method::DELETE, ["rooms", _, "members", user]) if !valid_user_id(user) => {
            bad_request(USER_ID_RULE)
        }
        (Method::PUT, ["rooms", room, "members", user]) => match core.store().add_member(room, user).await {
            Ok(()) => no_content(),
            Err(e) => store_error(&e),
        },
        // The user's live sessions leave the room too (on this node).
        (Method::DELETE, ["rooms", room, "members", user]) => match core.remove_member(room, user).await {
            Ok(_) => no_content(),
            Err(e) => store_error(&e),
        },
        (Method::POST, ["users", user, "disconnect"]) => {
            // `disconnected` counts this node's sessions; the other nodes
            // end theirs when the broker brings them the request.
            match core.disconnect_user(user).await {
                Ok(n) => ok(json!({ "user": user, "disconnected": n })),
                Err(e) => response::error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::STORE_FAILED,
                    &format!(
                        "this node's sessions of {user} ended, but the other nodes could not be told ({e}); call again"
                    ),
                ),
            }
        }
        _ => response::error(
            StatusCode::NOT_FOUND,
            codes::BAD_REQUEST,
            &format!("no API endpoint {} {path}", request_method_hint(&path)),
        ),
    }
}

fn request_method_hint(path: &str) -> &'static str {
    if path.is_empty() {
        "at the root"
    } else {
        "for"
    }
}

fn decode_segment(segment: &str) -> Option<String> {
    percent_encoding::percent_decode_str(segment).decode_utf8().ok().map(|s| s.into_owned())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn ok(value: serde_json::Value) -> Response<Body> {
    response::complete(StatusCode::OK, "application/json", value.to_string())
}

fn created(value: serde_json::Value) -> Response<Body> {
    response::complete(StatusCode::CREATED, "application/json", value.to_string())
}

fn no_content() -> Response<Body> {
    let mut r = response::complete(StatusCode::NO_CONTENT, "application/json", "");
    *r.body_mut() = response::full("");
    r
}

fn bad_request(message: &str) -> Response<Body> {
    response::error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message)
}

fn store_error(e: &switchboard_core::store::StoreError) -> Response<Body> {
    response::error(StatusCode::SERVICE_UNAVAILABLE, codes::STORE_FAILED, &e.to_string())
}

async fn json_body<T: for<'de> Deserialize<'de>>(request: Request<Incoming>) -> Result<T, Response<Body>> {
    let bytes = Limited::new(request.into_body(), MAX_API_BODY)
        .collect()
        .await
        .map_err(|_| response::error(StatusCode::PAYLOAD_TOO_LARGE, codes::TOO_LARGE, "body over 1 MiB or unreadable"))?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| bad_request(&format!("invalid JSON body: {e}")))
}

fn message_json(m: &StoredMessage) -> serde_json::Value {
    let data: serde_json::Value = serde_json::from_str(m.data.get()).unwrap_or(serde_json::Value::Null);
    json!({ "id": m.id, "ts": m.ts, "user": m.user, "name": m.name, "data": data })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostMessage {
    data: Box<RawValue>,
    /// Post as this user (default: `system`).
    user: Option<String>,
    name: Option<String>,
    cid: Option<String>,
}

async fn post_message(core: &Arc<Core>, room: &str, request: Request<Incoming>) -> Response<Body> {
    if !valid_room(room) {
        return bad_request("room must be 1 to 128 characters, none a control character");
    }
    let body: PostMessage = match json_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let user = body.user.unwrap_or_else(|| "system".into());
    if !valid_user_id(&user) {
        return bad_request(&format!("user: {USER_ID_RULE}"));
    }
    if body.name.as_deref().is_some_and(|name| !valid_display_name(name)) {
        return bad_request(&format!(
            "name: a display name is 1 to {MAX_DISPLAY_NAME_CHARS} characters, not only spaces, no control characters, no '<' or '>'"
        ));
    }
    let name = body.name.unwrap_or_else(|| user.clone());
    match core.post_message(room, &user, &name, body.data, body.cid).await {
        Ok(m) => created(json!({ "room": room, "id": m.id, "ts": m.ts })),
        Err(e) => store_error(&e),
    }
}

async fn history(core: &Arc<Core>, room: &str, query: &str) -> Response<Body> {
    let mut q = HistoryQuery { limit: 50, ..Default::default() };
    for (key, value) in form_urlencoded_pairs(query) {
        let number = match value.parse::<u64>() {
            Ok(n) => n,
            Err(_) => return bad_request(&format!("{key} must be a non-negative integer")),
        };
        match key.as_str() {
            "before" => q.before = Some(number),
            "after" => q.after = Some(number),
            "limit" => q.limit = (number as usize).clamp(1, switchboard_core::frame::MAX_HISTORY_PAGE),
            _ => {}
        }
    }
    if q.before.is_none() && q.after.is_none() {
        q.before = Some(u64::MAX); // no bound: the newest page
    }
    match core.store().history(room, q).await {
        Ok(page) => ok(json!({ "room": room, "messages": page.iter().map(message_json).collect::<Vec<_>>() })),
        Err(e) => store_error(&e),
    }
}

fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_segment(k).unwrap_or_default(), decode_segment(v).unwrap_or_default())
        })
        .collect()
}

async fn list_rooms(core: &Arc<Core>) -> Response<Body> {
    match core.store().rooms().await {
        Ok(rooms) => {
            let mut out = Vec::with_capacity(rooms.len());
            for r in &rooms {
                let online = core.who(&r.name).await.len();
                out.push(json!({ "name": r.name, "private": r.private, "last_id": r.last_id, "online": online }));
            }
            ok(json!({ "rooms": out }))
        }
        Err(e) => store_error(&e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRoom {
    name: String,
    #[serde(default)]
    private: bool,
    #[serde(default)]
    members: Vec<String>,
}

async fn create_room(core: &Arc<Core>, request: Request<Incoming>) -> Response<Body> {
    let body: CreateRoom = match json_body(request).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    if !valid_room(&body.name) || body.name.starts_with(switchboard_core::DM_PREFIX) {
        return bad_request("name must be 1 to 128 characters, no control characters, not starting with dm:");
    }
    if let Some(bad) = body.members.iter().find(|m| !valid_user_id(m)) {
        return bad_request(&format!("member {bad:?}: {USER_ID_RULE}"));
    }
    if let Err(e) = core.store().put_room(&body.name, body.private).await {
        return store_error(&e);
    }
    for member in &body.members {
        if let Err(e) = core.store().add_member(&body.name, member).await {
            return store_error(&e);
        }
    }
    created(json!({ "name": body.name, "private": body.private, "members": body.members }))
}

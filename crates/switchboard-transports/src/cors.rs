//! Cross-origin rules: the allowlist, CORS headers and preflights.
//!
//! A request without `Origin` (a non-browser client, or a same-origin GET)
//! passes untouched. A request whose `Origin` is not allowed gets 403 on
//! every endpoint, the WebSocket upgrade included (cross-site WebSocket
//! hijacking). Allowed origins are echoed with credentials allowed; `*` is
//! never sent.

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::response::{self, Body};

/// The outcome of checking a request's `Origin`.
#[derive(Debug)]
pub enum OriginCheck {
    /// No `Origin` header.
    Absent,
    /// An allowed origin, to echo back.
    Allowed(HeaderValue),
    /// An origin not on the list.
    Refused,
}

/// Checks the `Origin` header against `allowed` (`*` allows any).
pub fn check(allowed: &[String], headers: &HeaderMap) -> OriginCheck {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return OriginCheck::Absent;
    };
    let Ok(text) = origin.to_str() else {
        return OriginCheck::Refused;
    };
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(text)) {
        OriginCheck::Allowed(origin.clone())
    } else {
        OriginCheck::Refused
    }
}

/// The 403 answer to a refused origin.
pub fn refused() -> Response<Body> {
    response::error(
        StatusCode::FORBIDDEN,
        switchboard_core::codes::FORBIDDEN,
        "origin not allowed; add it to allowed_origins in the server configuration",
    )
}

/// Adds the CORS headers for an allowed origin.
pub fn allow(response: &mut Response<Body>, origin: &HeaderValue) {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The answer to an `OPTIONS` preflight from an allowed origin.
pub fn preflight(origin: &HeaderValue) -> Response<Body> {
    let mut response = Response::new(response::full(""));
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, OPTIONS"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, Last-Event-ID, Authorization"),
    );
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    allow(&mut response, origin);
    response
}

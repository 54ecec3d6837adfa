//! Response bodies and the JSON error shape every endpoint shares.

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};

/// The body type of every Switchboard response.
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// A response with a complete body, a content type and `no-store`.
pub fn complete(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Error messages may quote what the client sent: never let a browser
    // sniff a JSON or text answer into HTML.
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// The documented error shape: `{"code":N,"message":"..."}`.
pub fn error(status: StatusCode, code: u16, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    complete(status, "application/json", body)
}

/// Counts one open connection of a transport while it lives
/// (`switchboard_connections{transport}`), and every connection opened
/// (`switchboard_connections_total{transport}`).
#[derive(Debug)]
pub struct ConnectionGauge(&'static str);

impl ConnectionGauge {
    /// Counts a connection of `transport` as open.
    pub fn open(transport: &'static str) -> Self {
        metrics::counter!("switchboard_connections_total", "transport" => transport).increment(1);
        metrics::gauge!("switchboard_connections", "transport" => transport).increment(1.0);
        Self(transport)
    }
}

impl Drop for ConnectionGauge {
    fn drop(&mut self) {
        metrics::gauge!("switchboard_connections", "transport" => self.0).decrement(1.0);
    }
}

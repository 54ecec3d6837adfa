//! Response bodies and the JSON error shape every endpoint shares.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

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

/// The rest of a response that waits (a held long poll): the handler
/// returns a placeholder response carrying this extension, and the
/// connection's server awaits it (see [`resolve`]). So the routing
/// futures, each sized for the largest route, are freed before the wait,
/// and a held poll keeps only the few things its own future owns.
#[derive(Clone)]
struct Deferred(Arc<Mutex<Option<Later>>>);

/// The future that produces a deferred response.
type Later = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// A placeholder response standing for the one `later` produces. Headers
/// set on the placeholder on its way out (CORS) are added to that one.
pub fn deferred(later: impl Future<Output = Response<Body>> + Send + 'static) -> Response<Body> {
    let mut placeholder = Response::new(full(""));
    placeholder.extensions_mut().insert(Deferred(Arc::new(Mutex::new(Some(Box::pin(later))))));
    placeholder
}

/// The response to send for what a handler returned: itself, or, for a
/// [`deferred`] placeholder, the awaited response with the placeholder's
/// headers added.
pub async fn resolve(mut response: Response<Body>) -> Response<Body> {
    let Some(Deferred(slot)) = response.extensions_mut().remove::<Deferred>() else {
        return response;
    };
    let later = slot.lock().ok().and_then(|mut slot| slot.take());
    let Some(later) = later else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, 500, "a deferred response was awaited twice");
    };
    let (parts, _) = response.into_parts();
    let mut response = later.await;
    response.headers_mut().extend(parts.headers);
    response
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

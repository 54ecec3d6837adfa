//! Maps requests onto transports.

use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use switchboard_core::{codes, Core};
use tracing::Instrument;

use crate::config::TransportConfig;
use crate::cors::{self, OriginCheck};
use crate::forward;
use crate::poll::{self, PollFormat};
use crate::query;
use crate::response::{self, Body};
use crate::send;
use crate::streaming::{self, StreamFormat, StreamLimits};
use crate::ws;

/// The transport edge: cheap to clone, one per server.
#[derive(Debug, Clone)]
pub struct Switchboard {
    core: Arc<Core>,
    config: Arc<TransportConfig>,
}

impl Switchboard {
    /// An edge over `core`.
    pub fn new(core: Arc<Core>, config: TransportConfig) -> Self {
        Self { core, config: Arc::new(config) }
    }

    /// The core this edge serves.
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Whether this edge answers `path` (so an embedding server can route
    /// everything else elsewhere).
    pub fn owns(path: &str) -> bool {
        path.starts_with("/v1/")
    }

    /// Answers one request to a `/v1/` path.
    pub async fn handle(&self, mut request: Request<Incoming>) -> Response<Body> {
        // Script tags and iframes send no Origin: judge them by Referer.
        let embedded = matches!(request.uri().path(), "/v1/jsonp" | "/v1/htmlfile");
        let checked = if embedded {
            cors::check_embedded(&self.config.allowed_origins, request.headers())
        } else {
            cors::check(&self.config.allowed_origins, request.headers())
        };
        let origin = match checked {
            OriginCheck::Refused => return cors::refused(),
            OriginCheck::Allowed(origin) => Some(origin),
            OriginCheck::Absent => None,
        };
        // Boxed, like the routes below: a held request keeps only what its
        // own handler needs, not room for a relay it does not make.
        if let Some(home) = Box::pin(self.home_elsewhere(&request)).await {
            // The home node answers, CORS headers included.
            match Box::pin(forward::relay(request, home)).await {
                Ok(response) => return response,
                // The home node is gone: the session is unknown here too.
                Err(unsent) => {
                    self.core.broker().home_unreachable(home);
                    request = unsent;
                }
            }
        }
        if request.method() == Method::OPTIONS {
            return match origin {
                Some(origin) => cors::preflight(&origin),
                None => {
                    response::error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, "a preflight needs an Origin header")
                }
            };
        }
        let mut response = Box::pin(self.route(request)).await;
        if let Some(origin) = origin {
            cors::allow(&mut response, &origin);
        }
        response
    }

    /// The home node of the request's session, when it lives on another
    /// live node.
    async fn home_elsewhere(&self, request: &Request<Incoming>) -> Option<std::net::SocketAddr> {
        if forward::is_forwarded(request) {
            return None;
        }
        let query = request.uri().query()?;
        let sid = form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "sid")?.1;
        if self.core.session(&sid).is_some() {
            return None;
        }
        // A directory that cannot be read now: served here, where the
        // session is not found either, and answered "try again"
        // (`Core::missing_session`), never "gone".
        self.core.broker().locate(&sid).await.ok().flatten()
    }

    /// Parses the query and answers the request inside a `session` span
    /// (`sid`, `transport`); a new session's `sid` is recorded once it is
    /// created.
    async fn route(&self, request: Request<Incoming>) -> Response<Body> {
        let params = match query::parse(request.uri().query()) {
            Ok(params) => params,
            Err(message) => return response::error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, &message),
        };
        let span = tracing::debug_span!(
            "session",
            sid = tracing::field::Empty,
            transport = request.uri().path().trim_start_matches("/v1/")
        );
        if let Some(sid) = &params.sid {
            span.record("sid", sid.as_str());
        }
        self.dispatch(request, params).instrument(span).await
    }

    async fn dispatch(&self, request: Request<Incoming>, mut params: query::Params) -> Response<Body> {
        if let Some(token) = bearer(request.headers()) {
            params.credentials.token = Some(token);
        }
        let config = &self.config;
        let path = request.uri().path().to_owned();
        let method = request.method().clone();
        let expected = if path == "/v1/send" { Method::POST } else { Method::GET };
        if method != expected {
            let known = matches!(
                path.as_str(),
                "/v1/ws" | "/v1/sse" | "/v1/stream" | "/v1/htmlfile" | "/v1/poll" | "/v1/jsonp" | "/v1/send"
            );
            if known {
                return response::error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    codes::BAD_REQUEST,
                    &format!("{path} takes {expected}"),
                );
            }
        }
        match path.as_str() {
            "/v1/ws" => ws::upgrade(Arc::clone(&self.core), Arc::clone(config), params, request),
            "/v1/sse" => {
                let mut params = params;
                if let Some(id) = request.headers().get("last-event-id").and_then(|v| v.to_str().ok()) {
                    match id.trim().parse::<u64>() {
                        Ok(seq) => params.last = params.last.max(seq),
                        Err(_) => {
                            return response::error(
                                StatusCode::BAD_REQUEST,
                                codes::BAD_REQUEST,
                                "Last-Event-ID must be a seq number",
                            );
                        }
                    }
                }
                drop(request);
                self.stream(&params, StreamFormat::EventSource, "text/event-stream; charset=utf-8").await
            }
            "/v1/stream" => {
                drop(request);
                self.stream(&params, StreamFormat::NdJson, "application/x-ndjson").await
            }
            "/v1/htmlfile" => match params.callback.clone() {
                Some(callback) => {
                    self.stream(&params, StreamFormat::HtmlFile { callback }, "text/html; charset=utf-8").await
                }
                None => {
                    response::error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, "htmlfile needs a callback parameter")
                }
            },
            "/v1/poll" => {
                // The request's head is not needed while the poll is held.
                drop(request);
                self.poll(&params, PollFormat::Json).await
            }
            "/v1/jsonp" => match params.callback.clone() {
                Some(callback) => {
                    drop(request);
                    self.poll(&params, PollFormat::Jsonp(callback)).await
                }
                None => {
                    response::error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, "jsonp needs a callback parameter")
                }
            },
            "/v1/send" => Box::pin(send::respond(&self.core, config, &params, request.into_body())).await,
            _ => response::error(StatusCode::NOT_FOUND, codes::BAD_REQUEST, &format!("no endpoint at {path}")),
        }
    }

    /// A poll answer (a placeholder when the poll waits: see
    /// [`response::deferred`]), boxed so that the route's state stays small.
    async fn poll(&self, params: &query::Params, format: PollFormat) -> Response<Body> {
        let config = &self.config;
        Box::pin(poll::respond(&self.core, params, format, config.poll_timeout, config.max_frames_per_write)).await
    }

    async fn stream(&self, params: &query::Params, format: StreamFormat, content_type: &'static str) -> Response<Body> {
        let body = match Box::pin(self.core.attach(params.sid.as_deref(), params.last, &params.credentials)).await {
            Err(e) => streaming::single(&format, &e.close_frame()),
            Ok(attached) => {
                if attached.created {
                    tracing::Span::current().record("sid", tracing::field::display(attached.attachment.session().id()));
                }
                tracing::debug!("stream attached");
                let limits = StreamLimits {
                    heartbeat: self.config.heartbeat,
                    budget: match format {
                        StreamFormat::EventSource => self.config.sse_budget,
                        _ => self.config.stream_budget,
                    },
                    max_frames: self.config.max_frames_per_write,
                };
                let welcome = attached.welcome();
                streaming::body(attached.attachment, welcome, format, limits)
            }
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        // Tell buffering proxies (nginx) to pass chunks through at once.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    }
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned()).filter(|t| !t.is_empty())
}

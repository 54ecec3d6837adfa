//! [`SockJs`]: maps a request under a service prefix onto the protocol's
//! URL layout and answers it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use switchboard_core::Core;
use switchboard_transports::cors::{self, OriginCheck};
use switchboard_transports::response::Body;
use switchboard_transports::TransportConfig;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::{ConfigError, SockJsConfig};
use crate::decode::{jsonp_messages, xhr_messages};
use crate::frame::{self, close_of};
use crate::pages::{self, IframePage};
use crate::receiving::{self, ReceiveLimits};
use crate::responses::{
    cors as sockjs_cors, jsessionid, method_not_allowed, no_cache, not_found, preflight, response, text,
};
use crate::service::{Service, UpstreamLimits};
use crate::session::{Registration, MAX_ID_BYTES};
use crate::transport::{valid_callback, HttpTransport};
use crate::websocket::{self, Flavor};

/// The SockJS endpoints of one server: cheap to clone.
#[derive(Debug, Clone)]
pub struct SockJs {
    shared: Arc<Shared>,
}

/// What every request handler and connection task reads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) core: Arc<Core>,
    pub(crate) services: Vec<Service>,
    pub(crate) upstream: UpstreamLimits,
    pub(crate) receive: ReceiveLimits,
    allowed_origins: Vec<String>,
    iframe: IframePage,
    disconnect_delay: Duration,
    enabled: bool,
}

/// Where a request goes, from the path after the service prefix.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Greeting,
    Info,
    Iframe,
    RawWebsocket,
    Session { session: &'a str, transport: &'a str },
    NotFound,
}

fn parse_route(rest: &str) -> Route<'_> {
    if rest.is_empty() || rest == "/" {
        return Route::Greeting;
    }
    if pages::is_iframe_path(rest) {
        return Route::Iframe;
    }
    let path = rest.strip_suffix('/').unwrap_or(rest);
    match path {
        "/info" => return Route::Info,
        "/websocket" => return Route::RawWebsocket,
        _ => {}
    }
    let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
    let (Some(server), Some(session), Some(transport), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::NotFound;
    };
    let valid_id = |id: &str| !id.is_empty() && id.len() <= MAX_ID_BYTES && !id.contains('.');
    if valid_id(server) && valid_id(session) {
        Route::Session { session, transport }
    } else {
        Route::NotFound
    }
}

impl SockJs {
    /// The endpoints of `config` over `core`; origins and upstream limits
    /// come from the transport edge's settings.
    pub fn new(core: Arc<Core>, config: &SockJsConfig, transport: &TransportConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let shared = Shared {
            core,
            services: config.services.iter().map(|s| Service::new(s, config)).collect(),
            upstream: UpstreamLimits {
                max_body_bytes: transport.max_body_bytes,
                max_frame_bytes: transport.max_frame_bytes,
                max_batch: transport.max_batch,
            },
            receive: ReceiveLimits {
                heartbeat: config.heartbeat,
                response_limit: config.response_limit,
                max_messages: transport.max_frames_per_write,
            },
            allowed_origins: transport.allowed_origins.clone(),
            iframe: IframePage::new(&config.sockjs_url),
            disconnect_delay: config.disconnect_delay,
            enabled: config.enabled,
        };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// Whether `path` is under one of the service prefixes (so an embedding
    /// server routes it here).
    pub fn owns(&self, path: &str) -> bool {
        self.shared.enabled && self.shared.services.iter().any(|s| s.rest(path).is_some())
    }

    /// Number of live SockJS sessions of the HTTP transports (WebSocket
    /// sessions are not counted).
    pub fn session_count(&self) -> usize {
        self.shared.services.iter().map(|s| s.sessions.len()).sum()
    }

    /// Starts the one task that ends sessions without a receiving
    /// connection for the disconnect delay.
    pub fn spawn_sweeper(&self) -> JoinHandle<()> {
        let shared = Arc::downgrade(&self.shared);
        let delay = self.shared.disconnect_delay;
        let every = (delay / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let now = Instant::now();
                for service in &shared.services {
                    for id in service.sessions.sweep(now, delay) {
                        tracing::debug!(sid = ?id, prefix = %service.prefix, "sockjs session timed out");
                        shared.core.end_session(id).await;
                    }
                }
            }
        })
    }

    /// Answers one request under a service prefix (404 elsewhere).
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let found = self.shared.services.iter().enumerate().find_map(|(i, s)| Some((i, s.rest(&path)?)));
        let Some((service, rest)) = found.filter(|_| self.shared.enabled) else {
            return not_found();
        };
        if let OriginCheck::Refused = cors::check(&self.shared.allowed_origins, request.headers()) {
            return cors::refused();
        }
        let rest = rest.to_owned();
        self.route(service, &rest, request).await
    }

    async fn route(&self, index: usize, rest: &str, request: Request<Incoming>) -> Response<Body> {
        let shared = &self.shared;
        let service = &shared.services[index];
        let method = request.method().clone();
        let get = method == Method::GET;
        let post = method == Method::POST;
        let options = method == Method::OPTIONS;
        match parse_route(rest) {
            Route::NotFound => not_found(),
            Route::Greeting if get => pages::greeting(),
            Route::Iframe if get => shared.iframe.respond(request.headers()),
            Route::Greeting | Route::Iframe => method_not_allowed("GET"),
            Route::Info if get => pages::info(request.headers(), service.websocket, service.jsessionid),
            Route::Info if options => {
                let mut response = preflight(request.headers(), "OPTIONS, GET");
                self.decorate(&mut response, index, false, request.headers());
                response
            }
            Route::Info => method_not_allowed("OPTIONS, GET"),
            Route::RawWebsocket | Route::Session { transport: "websocket", .. } if !service.websocket => not_found(),
            Route::RawWebsocket if get => websocket::upgrade(Arc::clone(shared), index, Flavor::Raw, request),
            Route::Session { transport: "websocket", .. } if get => {
                websocket::upgrade(Arc::clone(shared), index, Flavor::Framed, request)
            }
            Route::RawWebsocket | Route::Session { transport: "websocket", .. } => method_not_allowed("GET"),
            Route::Session { session, transport } => {
                let xhr = matches!(transport, "xhr" | "xhr_send" | "xhr_streaming");
                let cors = xhr || transport == "eventsource";
                // The handlers consume the request; CORS and the cookie are
                // computed from its headers afterwards.
                let headers = request.headers().clone();
                let mut response = match transport {
                    "xhr" | "xhr_streaming" | "xhr_send" if options => preflight(request.headers(), "OPTIONS, POST"),
                    "xhr" if post => self.receive(index, session, HttpTransport::XhrPolling).await,
                    "xhr_streaming" if post => self.receive(index, session, HttpTransport::XhrStreaming).await,
                    "xhr_send" if post => self.send(index, session, false, request).await,
                    "xhr" | "xhr_streaming" | "xhr_send" => method_not_allowed("POST, OPTIONS"),
                    "eventsource" if get => self.receive(index, session, HttpTransport::EventSource).await,
                    "htmlfile" | "jsonp" if get => match callback(request.uri().query()) {
                        Err(message) => text(StatusCode::INTERNAL_SERVER_ERROR, message),
                        Ok(callback) if transport == "jsonp" => {
                            self.receive(index, session, HttpTransport::JsonpPolling { callback }).await
                        }
                        Ok(callback) => self.receive(index, session, HttpTransport::HtmlFile { callback }).await,
                    },
                    "eventsource" | "htmlfile" | "jsonp" => method_not_allowed("GET"),
                    "jsonp_send" if post => self.send(index, session, true, request).await,
                    "jsonp_send" => method_not_allowed("POST"),
                    _ => return not_found(),
                };
                self.decorate(&mut response, index, cors, &headers);
                response
            }
        }
    }

    /// Adds what every answer of a session endpoint carries: the
    /// `JSESSIONID` cookie when the service wants it, and CORS headers on
    /// the endpoints browsers reach with XHR or EventSource.
    fn decorate(&self, response: &mut Response<Body>, index: usize, cors: bool, request: &HeaderMap) {
        let headers = response.headers_mut();
        if cors {
            sockjs_cors(headers, request);
        }
        if self.shared.services[index].jsessionid {
            jsessionid(headers, request);
        }
    }

    /// A receiving request (`xhr`, `xhr_streaming`, `eventsource`,
    /// `htmlfile`, `jsonp`).
    async fn receive(&self, index: usize, id: &str, transport: HttpTransport) -> Response<Body> {
        let shared = &self.shared;
        let service = &shared.services[index];
        let registration = if shared.core.is_shutting_down() {
            Registration::Closing { pending: Vec::new(), close: close_of(frame::SHUTTING_DOWN) }
        } else if service.sessions.get(id).is_none() && shared.core.check_capacity().is_err() {
            Registration::Closing { pending: Vec::new(), close: close_of(frame::SERVER_FULL) }
        } else {
            let session = service.sessions.get_or_create(id, || service.create_session(&shared.core));
            let registration = session.register(&shared.core);
            if let Registration::Receiving(receiver) = &registration {
                if receiver.opened {
                    tracing::debug!(sid = ?session.core().id(), prefix = %service.prefix, transport = transport.name(), "sockjs session opened");
                    service.on_open(&session);
                }
            }
            registration
        };
        let body = if transport.is_streaming() {
            receiving::stream_body(registration, transport.clone(), shared.receive)
        } else {
            let span = tracing::debug_span!("sockjs", transport = transport.name());
            let frame = receiving::poll(registration, shared.receive).instrument(span).await;
            receiving::poll_body(&transport, &frame)
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(transport.content_type()));
        no_cache(headers);
        if let HttpTransport::JsonpPolling { .. } = transport {
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        }
        if transport.is_streaming() {
            // Tell buffering proxies (nginx) to pass chunks through at once.
            headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        }
        response
    }

    /// `xhr_send` and `jsonp_send`: messages from the client.
    async fn send(&self, index: usize, id: &str, jsonp: bool, request: Request<Incoming>) -> Response<Body> {
        let shared = &self.shared;
        let service = &shared.services[index];
        let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let limit = shared.upstream.max_body_bytes;
        let body = match Limited::new(request.into_body(), limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return text(StatusCode::PAYLOAD_TOO_LARGE, format!("Payload over {limit} bytes."));
            }
            Err(_) => return text(StatusCode::BAD_REQUEST, "Payload could not be read."),
        };
        let decoded = if jsonp { jsonp_messages(content_type.as_deref(), &body) } else { xhr_messages(&body) };
        let messages = match decoded {
            Ok(messages) => messages,
            Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.message()),
        };
        let Some(session) = service.sessions.get(id) else {
            return not_found();
        };
        for message in &messages {
            if session.is_open() {
                service.on_message(&shared.core, &shared.upstream, session.core(), message).await;
            }
        }
        let mut response = if jsonp {
            text(StatusCode::OK, "ok")
        } else {
            // A 204 still says text/plain: Firefox would take it for XML.
            response(StatusCode::NO_CONTENT, Some(crate::responses::TEXT), Bytes::new())
        };
        no_cache(response.headers_mut());
        response
    }
}

/// The `c` (or `callback`) parameter of JSONP and htmlfile, validated; the
/// error is the protocol's message for a 500 answer.
fn callback(query: Option<&str>) -> Result<String, &'static str> {
    let mut found = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "c" => found = Some(value.into_owned()),
            "callback" if found.is_none() => found = Some(value.into_owned()),
            _ => {}
        }
    }
    match found {
        None => Err("\"callback\" parameter required"),
        Some(name) if !valid_callback(&name) => Err("invalid \"callback\" parameter"),
        Some(name) => Ok(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(parse_route(""), Route::Greeting);
        assert_eq!(parse_route("/"), Route::Greeting);
        assert_eq!(parse_route("/info"), Route::Info);
        assert_eq!(parse_route("/info/"), Route::Info);
        assert_eq!(parse_route("/iframe-1.2.html"), Route::Iframe);
        assert_eq!(parse_route("/websocket"), Route::RawWebsocket);
        assert_eq!(parse_route("/000/abc/xhr"), Route::Session { session: "abc", transport: "xhr" });
        assert_eq!(parse_route("/a/a/xhr/"), Route::Session { session: "a", transport: "xhr" });
        for bad in
            ["//", "///", "/a", "/a/a", "/a/a/", "/a./a/xhr", "/a/a./xhr", "/./././xhr", "//xhr", "///xhr", "/a/b/c/d"]
        {
            assert_eq!(parse_route(bad), Route::NotFound, "{bad}");
        }
        let long = format!("/0/{}/xhr", "a".repeat(MAX_ID_BYTES + 1));
        assert_eq!(parse_route(&long), Route::NotFound);
    }

    #[test]
    fn callbacks_come_from_c_or_callback() {
        assert_eq!(callback(Some("c=%63allback")).unwrap(), "callback");
        assert_eq!(callback(Some("callback=x")).unwrap(), "x");
        assert_eq!(callback(Some("callback=y&c=x")).unwrap(), "x");
        assert_eq!(callback(None), Err("\"callback\" parameter required"));
        assert_eq!(callback(Some("c=alert(1)")), Err("invalid \"callback\" parameter"));
    }
}

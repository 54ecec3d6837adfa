//! Settings of the SockJS endpoints: which services are mounted where, and
//! the protocol's timers and limits. Nested in the server's one `Config` as
//! its `[sockjs]` table (see `docs/sockjs.md`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every SockJS setting; the defaults are sockjs-node's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SockJsConfig {
    /// Whether the SockJS endpoints are served at all.
    pub enabled: bool,
    /// Interval of `h` frames on an idle receiving connection (and the
    /// longest a polling request is held).
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// How long a session outlives its last receiving connection before it
    /// ends (SockJS's "disconnect delay" / session timeout).
    #[serde(with = "humantime_serde")]
    pub disconnect_delay: Duration,
    /// Bytes of frames after which a streaming response (xhr-streaming,
    /// eventsource, htmlfile) ends itself so the browser can free it.
    pub response_limit: usize,
    /// Whether every session URL sets a `JSESSIONID` cookie (for load
    /// balancers whose sticky sessions need one); services may override it.
    pub jsessionid: bool,
    /// Whether the WebSocket transports are offered; services may override.
    pub websocket: bool,
    /// Where the hidden iframe (`iframe.html`) loads the SockJS client from.
    /// It must be the exact client version the pages use.
    pub sockjs_url: String,
    /// The mounted services, each under its own prefix.
    pub services: Vec<ServiceConfig>,
}

/// One SockJS service: a URL prefix and what it does with messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// URL prefix, starting with `/`, without a trailing `/` (the client's
    /// base URL is the server's origin plus this).
    pub prefix: String,
    /// What the service does.
    pub kind: ServiceKind,
    /// Overrides [`SockJsConfig::jsessionid`] for this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jsessionid: Option<bool>,
    /// Overrides [`SockJsConfig::websocket`] for this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<bool>,
}

/// What a service does with the messages of its sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    /// Sends every message back to its sender.
    Echo,
    /// Closes every session at once with `c[3000,"Go away!"]`.
    Close,
    /// Rooms: every message is a native upstream frame (join, publish, ...)
    /// applied to the core; room messages arrive as native frames without
    /// `seq`. See `docs/sockjs.md`.
    Rooms,
}

impl ServiceConfig {
    fn new(prefix: &str, kind: ServiceKind) -> Self {
        Self { prefix: prefix.into(), kind, jsessionid: None, websocket: None }
    }
}

/// Where `iframe.html` loads the client by default: the client version this
/// project's compatibility tests run.
pub const DEFAULT_SOCKJS_URL: &str = "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js";

impl Default for SockJsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            heartbeat: Duration::from_secs(25),
            disconnect_delay: Duration::from_secs(5),
            response_limit: 128 * 1024,
            jsessionid: false,
            websocket: true,
            sockjs_url: DEFAULT_SOCKJS_URL.into(),
            services: vec![
                ServiceConfig::new("/sockjs/echo", ServiceKind::Echo),
                ServiceConfig::new("/sockjs/close", ServiceKind::Close),
                ServiceConfig::new("/sockjs/chat", ServiceKind::Rooms),
            ],
        }
    }
}

/// A configuration that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sockjs: {0}")]
pub struct ConfigError(pub String);

impl SockJsConfig {
    /// Checks what serde cannot: prefixes are distinct paths that do not
    /// shadow each other, timers are not zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat.is_zero() {
            return Err(ConfigError("heartbeat must be longer than 0".into()));
        }
        for (i, service) in self.services.iter().enumerate() {
            let p = &service.prefix;
            let valid = p.starts_with('/')
                && p.len() > 1
                && !p.ends_with('/')
                && !p.contains("//")
                && p.bytes().all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#' && b != b'%');
            if !valid {
                return Err(ConfigError(format!(
                    "prefix {p:?} must start with '/', not end with '/', and hold only plain path characters"
                )));
            }
            for other in &self.services[..i] {
                let q = &other.prefix;
                let nested = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
                if nested(p, q) || nested(q, p) {
                    return Err(ConfigError(format!("prefixes {q:?} and {p:?} overlap")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_sockjs_node_like() {
        let config = SockJsConfig::default();
        config.validate().unwrap();
        assert_eq!(config.heartbeat, Duration::from_secs(25));
        assert_eq!(config.disconnect_delay, Duration::from_secs(5));
        assert_eq!(config.response_limit, 131_072);
        assert!(!config.jsessionid);
    }

    #[test]
    fn bad_prefixes_are_refused() {
        for bad in ["", "/", "echo", "/echo/", "/a//b", "/a b", "/a?b"] {
            let config =
                SockJsConfig { services: vec![ServiceConfig::new(bad, ServiceKind::Echo)], ..SockJsConfig::default() };
            assert!(config.validate().is_err(), "{bad:?}");
        }
        let mut config = SockJsConfig::default();
        config.services.push(ServiceConfig::new("/sockjs/echo/more", ServiceKind::Echo));
        assert!(config.validate().is_err());
    }
}

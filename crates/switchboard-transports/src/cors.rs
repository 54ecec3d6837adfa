//! Cross-origin rules: the allowlist, CORS headers and preflights.
//!
//! A request without `Origin` (a non-browser client, or a same-origin GET)
//! passes untouched. A request whose `Origin` is not allowed gets 403 on
//! every endpoint, the WebSocket upgrade included (cross-site WebSocket
//! hijacking). Allowed origins are echoed, never `*`; credentials
//! (`Access-Control-Allow-Credentials: true`) are allowed only for origins
//! listed by name, never for an origin let in by the `*` entry.

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};

use crate::response::{self, Body};

/// The outcome of checking a request's `Origin`.
#[derive(Debug)]
pub enum OriginCheck {
    /// No `Origin` header.
    Absent,
    /// An allowed origin, to echo back.
    Allowed(AllowedOrigin),
    /// An origin not on the list.
    Refused,
}

/// An allowed `Origin`, as the CORS headers of the answer need it.
#[derive(Debug, Clone)]
pub struct AllowedOrigin {
    /// The origin, echoed in `Access-Control-Allow-Origin`.
    value: HeaderValue,
    /// Whether the allowlist names it (and so may see credentialed answers).
    listed: bool,
}

/// Checks the `Origin` header against `allowed` (`*` allows any).
pub fn check(allowed: &[String], headers: &HeaderMap) -> OriginCheck {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return OriginCheck::Absent;
    };
    let Ok(text) = origin.to_str() else {
        return OriginCheck::Refused;
    };
    if same_origin(text, headers) {
        // The server's own pages (the demo chat) send `Origin` on POSTs and
        // WebSockets too; they are no cross-origin request.
        return OriginCheck::Absent;
    }
    let listed = allowed.iter().any(|a| a.eq_ignore_ascii_case(text));
    if listed || allowed.iter().any(|a| a == "*") {
        // A copy, not a clone: hyper's header values share the request's
        // read buffer, which a held poll or stream would then keep alive.
        HeaderValue::from_bytes(origin.as_bytes())
            .map_or(OriginCheck::Refused, |value| OriginCheck::Allowed(AllowedOrigin { value, listed }))
    } else {
        OriginCheck::Refused
    }
}

/// Checks a request that browsers send without `Origin`: a `<script>` tag
/// (JSONP) or an iframe (htmlfile). The page's origin is taken from
/// `Referer`; without one, a request the browser marks as cross-site
/// (`Sec-Fetch-Site: cross-site`) is refused unless any origin is allowed.
pub fn check_embedded(allowed: &[String], headers: &HeaderMap) -> OriginCheck {
    if headers.contains_key(header::ORIGIN) {
        return check(allowed, headers);
    }
    if allowed.iter().any(|a| a == "*") {
        return OriginCheck::Absent;
    }
    // The server's own pages (the htmlfile bridge) embed it same-origin.
    if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes() == b"same-origin") {
        return OriginCheck::Absent;
    }
    if let Some(referer) = headers.get(header::REFERER).and_then(|v| v.to_str().ok()) {
        let origin = referer_origin(referer);
        return if same_origin(origin, headers) || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
            OriginCheck::Absent
        } else {
            OriginCheck::Refused
        };
    }
    match headers.get("sec-fetch-site").map(|v| v.as_bytes()) {
        Some(b"cross-site") => OriginCheck::Refused,
        _ => OriginCheck::Absent,
    }
}

/// Whether `origin` (`scheme://host[:port]`) names the host the request
/// was sent to: a same-origin request, which a browser cannot forge.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    origin.split_once("://").is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// `scheme://host[:port]` of a URL.
fn referer_origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find(['/', '?', '#']) {
        Some(end) => &url[..after_scheme + end],
        None => url,
    }
}

/// The 403 answer to a refused origin.
pub fn refused() -> Response<Body> {
    switchboard_core::codes::count_error(switchboard_core::codes::FORBIDDEN);
    response::error(
        StatusCode::FORBIDDEN,
        switchboard_core::codes::FORBIDDEN,
        "origin not allowed; add it to allowed_origins in the server configuration",
    )
}

/// Adds the CORS headers for an allowed origin: credentials only for an
/// origin the allowlist names.
pub fn allow(response: &mut Response<Body>, origin: &AllowedOrigin) {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.value.clone());
    if origin.listed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The answer to an `OPTIONS` preflight from an allowed origin.
pub fn preflight(origin: &AllowedOrigin) -> Response<Body> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn the_servers_own_origin_is_no_cross_origin_request() {
        let allowed = vec!["https://app.example".to_string()];
        let own = headers(&[("origin", "http://chat.example:8080"), ("host", "chat.example:8080")]);
        assert!(matches!(check(&allowed, &own), OriginCheck::Absent));
        let other_port = headers(&[("origin", "http://chat.example:9090"), ("host", "chat.example:8080")]);
        assert!(matches!(check(&allowed, &other_port), OriginCheck::Refused));
        let listed = headers(&[("origin", "https://app.example"), ("host", "chat.example:8080")]);
        assert!(matches!(check(&allowed, &listed), OriginCheck::Allowed(AllowedOrigin { listed: true, .. })));
        let any = headers(&[("origin", "https://else.example"), ("host", "chat.example:8080")]);
        assert!(matches!(check(&["*".into()], &any), OriginCheck::Allowed(AllowedOrigin { listed: false, .. })));
    }

    #[test]
    fn embedded_requests_are_checked_by_referer_or_fetch_site() {
        let allowed = vec!["https://app.example".to_string()];
        let ok = headers(&[("referer", "https://app.example/chat?x=1")]);
        assert!(matches!(check_embedded(&allowed, &ok), OriginCheck::Absent));
        let own =
            headers(&[("referer", "http://chat.example:8080/htmlfile-bridge.html"), ("host", "chat.example:8080")]);
        assert!(matches!(check_embedded(&allowed, &own), OriginCheck::Absent));
        let bad = headers(&[("referer", "https://evil.example/")]);
        assert!(matches!(check_embedded(&allowed, &bad), OriginCheck::Refused));
        let cross = headers(&[("sec-fetch-site", "cross-site")]);
        assert!(matches!(check_embedded(&allowed, &cross), OriginCheck::Refused));
        assert!(matches!(check_embedded(&allowed, &headers(&[])), OriginCheck::Absent));
        assert!(matches!(check_embedded(&["*".into()], &cross), OriginCheck::Absent));
    }
}

//! The shapes and headers of SockJS HTTP answers: caching, the protocol's
//! CORS variant, the `JSESSIONID` cookie, and the plain-text error answers.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use switchboard_transports::response::{full, Body};

/// `Cache-Control` of every answer that must never be cached (the protocol
/// test suite compares it exactly).
pub const NO_CACHE: &str = "no-store, no-cache, must-revalidate, max-age=0";
/// How long cacheable answers (`iframe.html`, preflights) may be cached.
pub const ONE_YEAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// Content type of text answers.
pub const TEXT: &str = "text/plain; charset=UTF-8";
/// Content type of the xhr transports and JSONP.
pub const JAVASCRIPT: &str = "application/javascript; charset=UTF-8";

/// A response with a complete body.
pub fn response(status: StatusCode, content_type: Option<&'static str>, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

/// A plain-text answer, `text/plain; charset=UTF-8`.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    response(status, Some(TEXT), body)
}

/// The 404 page.
pub fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "404 Error: Page not found\n")
}

/// 405 with the methods the path takes; no body, no content type.
pub fn method_not_allowed(allowed: &'static str) -> Response<Body> {
    let mut response = response(StatusCode::METHOD_NOT_ALLOWED, None, Bytes::new());
    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allowed));
    response
}

/// Forbids every cache.
pub fn no_cache(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE));
}

/// Allows caching for a year: `Cache-Control`, `Expires`.
pub fn cache_for_a_year(headers: &mut HeaderMap) {
    let max_age = ONE_YEAR.as_secs();
    let control = format!("public, max-age={max_age}");
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_str(&control).expect("ASCII"));
    let expires = httpdate::fmt_http_date(SystemTime::now() + ONE_YEAR);
    headers.insert(header::EXPIRES, HeaderValue::from_str(&expires).expect("an HTTP date is ASCII"));
}

/// SockJS's CORS headers: the request's origin is echoed (it passed the
/// server's allowlist before), or `*` when there is none or it is `null` (a
/// page from `file://`); credentials are allowed so `JSESSIONID` can flow,
/// and requested headers are allowed back.
///
/// `*` together with credentials is what the protocol fixes; browsers never
/// expose a credentialed response under `*`, so it grants nothing.
pub fn cors(headers: &mut HeaderMap, request: &HeaderMap) {
    let origin = match request.get(header::ORIGIN) {
        Some(origin) if origin.as_bytes() != b"null" => origin.clone(),
        _ => HeaderValue::from_static("*"),
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(requested) = request.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        if !requested.is_empty() {
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone());
        }
    }
}

/// The answer to a preflight: 204, cacheable for a year, these methods.
pub fn preflight(request: &HeaderMap, methods: &'static str) -> Response<Body> {
    let mut response = response(StatusCode::NO_CONTENT, None, Bytes::new());
    let headers = response.headers_mut();
    cache_for_a_year(headers);
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(methods));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(ONE_YEAR.as_secs()));
    cors(headers, request);
    response
}

/// Longest `JSESSIONID` value echoed back.
const MAX_COOKIE_CHARS: usize = 128;

/// Sets `JSESSIONID` (the request's, or `dummy`) for load balancers whose
/// sticky sessions need the cookie. Set on every session request so the
/// balancer can attach its own value.
pub fn jsessionid(headers: &mut HeaderMap, request: &HeaderMap) {
    let value = request
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.trim() == "JSESSIONID")
        .map(|(_, value)| value.trim())
        .filter(|value| valid_cookie_value(value))
        .unwrap_or("dummy");
    let cookie = format!("JSESSIONID={value}; path=/");
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, cookie);
    }
}

/// RFC 6265 cookie-octets, bounded.
fn valid_cookie_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_COOKIE_CHARS
        && value.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie_for(header: Option<&str>) -> String {
        let mut request = HeaderMap::new();
        if let Some(h) = header {
            request.insert(header::COOKIE, HeaderValue::from_str(h).unwrap());
        }
        let mut headers = HeaderMap::new();
        jsessionid(&mut headers, &request);
        headers[header::SET_COOKIE].to_str().unwrap().to_owned()
    }

    #[test]
    fn jsessionid_is_echoed_or_dummy() {
        assert_eq!(cookie_for(None), "JSESSIONID=dummy; path=/");
        assert_eq!(cookie_for(Some("a=b; JSESSIONID=abcdef")), "JSESSIONID=abcdef; path=/");
        assert_eq!(cookie_for(Some("JSESSIONID=a\"b")), "JSESSIONID=dummy; path=/");
    }

    #[test]
    fn cors_echoes_origin_or_star() {
        let mut request = HeaderMap::new();
        let mut headers = HeaderMap::new();
        cors(&mut headers, &request);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(headers.get(header::ACCESS_CONTROL_ALLOW_HEADERS).is_none());
        request.insert(header::ORIGIN, HeaderValue::from_static("https://a.example"));
        request.insert(header::ACCESS_CONTROL_REQUEST_HEADERS, HeaderValue::from_static("a, b"));
        let mut headers = HeaderMap::new();
        cors(&mut headers, &request);
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "https://a.example");
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_HEADERS], "a, b");
    }
}

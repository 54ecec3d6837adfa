//! The fixed pages under a service prefix: the greeting, `/info` and the
//! hidden iframe page.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use switchboard_transports::response::Body;

use crate::responses::{cache_for_a_year, cors, no_cache, response, text};

/// `GET {prefix}` and `{prefix}/`.
pub fn greeting() -> Response<Body> {
    text(StatusCode::OK, "Welcome to SockJS!\n")
}

/// `GET {prefix}/info`: what the server supports, plus fresh entropy for
/// the browser's random number generator. Never cached: the client also
/// measures the round trip with it.
pub fn info(request: &HeaderMap, websocket: bool, cookie_needed: bool) -> Response<Body> {
    let body = serde_json::json!({
        "websocket": websocket,
        "origins": ["*:*"],
        "cookie_needed": cookie_needed,
        "entropy": rand::random::<u32>(),
    });
    let mut response = response(StatusCode::OK, Some("application/json; charset=UTF-8"), body.to_string());
    no_cache(response.headers_mut());
    cors(response.headers_mut(), request);
    response
}

/// The iframe page of the cross-domain transports, with its strong
/// validator. Built once per server: it only depends on `sockjs_url`.
#[derive(Debug, Clone)]
pub struct IframePage {
    body: Bytes,
    etag: HeaderValue,
}

impl IframePage {
    /// The page loading the client from `sockjs_url`.
    pub fn new(sockjs_url: &str) -> Self {
        let body = format!(
            "<!DOCTYPE html>\n\
             <html>\n\
             <head>\n  \
             <meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
             <meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n  \
             <script>\n    \
             document.domain = document.domain;\n    \
             _sockjs_onload = function(){{SockJS.bootstrap_iframe();}};\n  \
             </script>\n  \
             <script src=\"{}\"></script>\n\
             </head>\n\
             <body>\n  \
             <h2>Don't panic!</h2>\n  \
             <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>\n\
             </body>\n\
             </html>",
            escape_attribute(sockjs_url)
        );
        let digest = sha1_smol::Sha1::from(body.as_bytes()).digest().to_string();
        let etag = HeaderValue::from_str(&format!("\"{digest}\"")).expect("hex is ASCII");
        Self { body: Bytes::from(body), etag }
    }

    /// `GET {prefix}/iframe*.html`: 304 when the client holds this version.
    pub fn respond(&self, request: &HeaderMap) -> Response<Body> {
        if request.get(header::IF_NONE_MATCH) == Some(&self.etag) {
            return response(StatusCode::NOT_MODIFIED, None, Bytes::new());
        }
        let mut response = response(StatusCode::OK, Some("text/html; charset=UTF-8"), self.body.clone());
        let headers = response.headers_mut();
        cache_for_a_year(headers);
        headers.insert(header::ETAG, self.etag.clone());
        response
    }
}

/// Whether `rest` (the path after the prefix) names the iframe page:
/// `/iframe.html`, or versioned like `/iframe-0.3.4.html`.
pub fn is_iframe_path(rest: &str) -> bool {
    // sockjs-node's pattern: ^/iframe[0-9-.a-z_]*.html$ (its `.` matches any
    // character).
    let Some(tail) = rest.strip_prefix("/iframe") else {
        return false;
    };
    let tail = tail.strip_suffix('/').unwrap_or(tail);
    let Some(head) = tail.strip_suffix("html") else {
        return false;
    };
    let mut chars = head.chars();
    chars.next_back().is_some()
        && chars.all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || matches!(c, '-' | '.' | '_'))
}

fn escape_attribute(value: &str) -> String {
    value.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iframe_paths() {
        for good in [
            "/iframe.html",
            "/iframe-a.html",
            "/iframe-.html",
            "/iframe-0.1.2.html",
            "/iframe-0.1.2abc-dirty.2144.html",
        ] {
            assert!(is_iframe_path(good), "{good}");
        }
        for bad in [
            "/iframe.htm",
            "/iframe",
            "/IFRAME.HTML",
            "/IFRAME",
            "/iframe.HTML",
            "/iframe.xml",
            "/iframe-/.html",
            "/iframehtml",
        ] {
            assert!(!is_iframe_path(bad), "{bad}");
        }
    }

    #[test]
    fn iframe_page_has_a_stable_etag_and_escapes_the_url() {
        let a = IframePage::new("/s.js?a=1&b=\"2\"");
        let b = IframePage::new("/s.js?a=1&b=\"2\"");
        assert_eq!(a.etag, b.etag);
        let body = std::str::from_utf8(&a.body).unwrap();
        assert!(body.contains("<script src=\"/s.js?a=1&amp;b=&quot;2&quot;\"></script>"));
        assert!(body.starts_with("<!DOCTYPE html>\n<html>\n<head>\n  <meta"));
        assert_ne!(IframePage::new("/other.js").etag, a.etag);
    }
}

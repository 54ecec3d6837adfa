//! `/` and other static files: the built-in demo chat, or a folder.

use std::path::{Component, Path};

use http::StatusCode;
use switchboard_core::codes;
use switchboard_transports::response::{self, Body};

const DEMO_PAGE: &str = include_str!("../static/index.html");
/// The demo chat's script and style sheet (with `DEMO_PAGE`).
const DEMO_JS: &str = include_str!("../static/demo.js");
const DEMO_CSS: &str = include_str!("../static/demo.css");
/// The JavaScript client (`clients/js`), served whatever `static_dir` is.
const CLIENT_JS: &str = include_str!("../../../clients/js/switchboard.js");
/// The page that relays htmlfile frames to a page on another origin.
const HTMLFILE_BRIDGE: &str = include_str!("../static/htmlfile-bridge.html");

/// Answers a GET for a static path.
pub async fn serve(dir: Option<&Path>, path: &str) -> http::Response<Body> {
    match path {
        "/switchboard.js" => {
            let mut response = response::complete(StatusCode::OK, "text/javascript; charset=utf-8", CLIENT_JS);
            // Pages on other origins import it as a module, which needs CORS;
            // it is public code, so any origin (without credentials) may.
            let headers = response.headers_mut();
            headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, http::HeaderValue::from_static("*"));
            return response;
        }
        "/htmlfile-bridge.html" => {
            return response::complete(StatusCode::OK, "text/html; charset=utf-8", HTMLFILE_BRIDGE);
        }
        _ => {}
    }
    let Some(dir) = dir else {
        return match path {
            "/" | "/index.html" => response::complete(StatusCode::OK, "text/html; charset=utf-8", DEMO_PAGE),
            "/demo.js" => response::complete(StatusCode::OK, "text/javascript; charset=utf-8", DEMO_JS),
            "/demo.css" => response::complete(StatusCode::OK, "text/css; charset=utf-8", DEMO_CSS),
            _ => not_found(path),
        };
    };
    let relative = if path == "/" { "index.html" } else { path.trim_start_matches('/') };
    // Only plain path segments: no `..`, no absolute paths, no prefixes.
    if !Path::new(relative).components().all(|c| matches!(c, Component::Normal(_))) {
        return not_found(path);
    }
    match tokio::fs::read(dir.join(relative)).await {
        Ok(bytes) => response::complete(StatusCode::OK, content_type(relative), bytes),
        Err(_) => not_found(path),
    }
}

fn not_found(path: &str) -> http::Response<Body> {
    response::error(StatusCode::NOT_FOUND, codes::BAD_REQUEST, &format!("no file at {path}"))
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "application/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

//! How each HTTP receiving transport wraps SockJS frames.

use bytes::Bytes;

use crate::frame::push_quoted;
use crate::responses::JAVASCRIPT;

/// Longest accepted JSONP / htmlfile callback name (sockjs-node's bound).
pub const MAX_CALLBACK_CHARS: usize = 32;

/// A receiving transport over plain HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpTransport {
    /// `POST .../xhr`: one frame per response.
    XhrPolling,
    /// `POST .../xhr_streaming`: newline-separated frames in one response.
    XhrStreaming,
    /// `GET .../eventsource`: Server-Sent Events.
    EventSource,
    /// `GET .../htmlfile?c=cb`: `<script>` chunks in a hidden iframe.
    HtmlFile { callback: String },
    /// `GET .../jsonp?c=cb`: one `cb("frame");` per response.
    JsonpPolling { callback: String },
}

/// Bytes written before the first frame by the htmlfile transport: the
/// page that hands frames to the parent window, padded past 1 KiB so
/// browsers start rendering it at once. `{{ callback }}` is replaced.
const HTMLFILE_TEMPLATE: &str = "\n<!doctype html>\n<html><head>\n  \
<meta http-equiv=\"X-UA-Compatible\" content=\"IE=edge\" />\n  \
<meta http-equiv=\"Content-Type\" content=\"text/html; charset=UTF-8\" />\n\
</head><body><h2>Don't panic!</h2>\n  <script>\n    document.domain = document.domain;\n    \
var c = parent.{{ callback }};\n    c.start();\n    function p(d) {c.message(d);};\n    \
window.onload = function() {c.stop();};\n  </script>\n";

impl HttpTransport {
    /// The name in the protocol (and in logs).
    pub fn name(&self) -> &'static str {
        match self {
            HttpTransport::XhrPolling => "xhr-polling",
            HttpTransport::XhrStreaming => "xhr-streaming",
            HttpTransport::EventSource => "eventsource",
            HttpTransport::HtmlFile { .. } => "htmlfile",
            HttpTransport::JsonpPolling { .. } => "jsonp-polling",
        }
    }

    /// Whether one response carries many frames.
    pub fn is_streaming(&self) -> bool {
        matches!(self, HttpTransport::XhrStreaming | HttpTransport::EventSource | HttpTransport::HtmlFile { .. })
    }

    /// The response's content type.
    pub fn content_type(&self) -> &'static str {
        match self {
            HttpTransport::XhrPolling | HttpTransport::XhrStreaming | HttpTransport::JsonpPolling { .. } => JAVASCRIPT,
            HttpTransport::EventSource => "text/event-stream; charset=UTF-8",
            HttpTransport::HtmlFile { .. } => "text/html; charset=UTF-8",
        }
    }

    /// What a streaming response starts with; it does not count against
    /// the response limit.
    pub fn prelude(&self) -> Option<Bytes> {
        match self {
            // A 2 KiB prelude makes old browsers hand the response over
            // progressively.
            HttpTransport::XhrStreaming => {
                let mut out = vec![b'h'; 2048];
                out.push(b'\n');
                Some(Bytes::from(out))
            }
            // Opera needed a newline first.
            HttpTransport::EventSource => Some(Bytes::from_static(b"\r\n")),
            HttpTransport::HtmlFile { callback } => {
                let padding = 1024 + 13 - HTMLFILE_TEMPLATE.len();
                let mut page = HTMLFILE_TEMPLATE.replace("{{ callback }}", callback);
                page.extend(std::iter::repeat_n(' ', padding));
                page.push_str("\r\n\r\n");
                Some(Bytes::from(page))
            }
            HttpTransport::XhrPolling | HttpTransport::JsonpPolling { .. } => None,
        }
    }

    /// Appends one frame as this transport writes it.
    pub fn wrap(&self, frame: &[u8], out: &mut Vec<u8>) {
        match self {
            HttpTransport::XhrPolling | HttpTransport::XhrStreaming => {
                out.extend_from_slice(frame);
                out.push(b'\n');
            }
            HttpTransport::EventSource => {
                out.extend_from_slice(b"data: ");
                push_event_data(out, frame);
                out.extend_from_slice(b"\r\n\r\n");
            }
            HttpTransport::HtmlFile { .. } => {
                out.extend_from_slice(b"<script>\np(");
                push_quoted(out, &String::from_utf8_lossy(frame));
                out.extend_from_slice(b");\n</script>\r\n");
            }
            HttpTransport::JsonpPolling { callback } => {
                out.extend_from_slice(callback.as_bytes());
                out.push(b'(');
                push_quoted(out, &String::from_utf8_lossy(frame));
                out.extend_from_slice(b");\r\n");
            }
        }
    }

    /// `frame` wrapped, as bytes.
    pub fn wrapped(&self, frame: &[u8]) -> Bytes {
        let mut out = Vec::with_capacity(frame.len() + 16);
        self.wrap(frame, &mut out);
        Bytes::from(out)
    }
}

/// An event's data with `%`, CR, LF and NUL percent-escaped, as the client
/// (which `decodeURI`s the data) expects. Frames are JSON, so only `%` is
/// ever found in practice.
fn push_event_data(out: &mut Vec<u8>, frame: &[u8]) {
    for &b in frame {
        match b {
            b'%' => out.extend_from_slice(b"%25"),
            b'\r' => out.extend_from_slice(b"%0D"),
            b'\n' => out.extend_from_slice(b"%0A"),
            0 => out.extend_from_slice(b"%00"),
            b => out.push(b),
        }
    }
}

/// Whether `name` may be written as a JSONP or htmlfile callback: letters,
/// digits, `-`, `_`, `.`, at most [`MAX_CALLBACK_CHARS`]. Nothing that can
/// end the expression it is written into.
pub fn valid_callback(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_CALLBACK_CHARS
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(transport: &HttpTransport, frame: &str) -> String {
        String::from_utf8(transport.wrapped(frame.as_bytes()).to_vec()).unwrap()
    }

    #[test]
    fn frames_as_each_transport_writes_them() {
        assert_eq!(text(&HttpTransport::XhrPolling, "o"), "o\n");
        assert_eq!(text(&HttpTransport::EventSource, r#"a["50%"]"#), "data: a[\"50%25\"]\r\n\r\n");
        let htmlfile = HttpTransport::HtmlFile { callback: "cb".into() };
        assert_eq!(text(&htmlfile, r#"a["x"]"#), "<script>\np(\"a[\\\"x\\\"]\");\n</script>\r\n");
        let jsonp = HttpTransport::JsonpPolling { callback: "x".into() };
        assert_eq!(text(&jsonp, r#"c[3000,"Go away!"]"#), "x(\"c[3000,\\\"Go away!\\\"]\");\r\n");
    }

    #[test]
    fn htmlfile_prelude_is_padded_past_a_kilobyte() {
        let transport = HttpTransport::HtmlFile { callback: "callback".into() };
        let prelude = transport.prelude().unwrap();
        let page = std::str::from_utf8(&prelude).unwrap();
        assert!(page.len() > 1024);
        assert!(page.trim().starts_with("<!doctype html>"));
        assert!(page.contains("var c = parent.callback;"));
        assert!(page.trim().ends_with("</script>"));
    }

    #[test]
    fn callbacks() {
        for good in ["callback", "_jp.a1b2c3", "a-b_c.d9"] {
            assert!(valid_callback(good), "{good}");
        }
        for bad in ["", "a(b)", "a;b", "</script>", "a b", &"a".repeat(33)] {
            assert!(!valid_callback(bad), "{bad}");
        }
    }
}

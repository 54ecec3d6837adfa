//! The single writer of JSON text in server output.
//!
//! Every frame the server emits passes through [`push_safe`], which minifies
//! already-valid JSON and escapes the characters that could break one of the
//! transports: `<` `>` `&` (which could end a `<script>` element or open an
//! HTML comment in the htmlfile transport) and U+2028 / U+2029 (line
//! terminators in JavaScript before ES2019, so they could end a JSONP
//! string). Outside strings only whitespace is removed, so no newline can
//! split an SSE `data:` line or an NDJSON line. Because the result is safe
//! everywhere, a broadcast is encoded once and the same bytes serve every
//! transport.

/// Appends `json` (which must be valid JSON text) to `out`, minified and with
/// `<`, `>`, `&`, U+2028 and U+2029 written as `\uXXXX` escapes.
pub fn push_safe(out: &mut Vec<u8>, json: &str) {
    let bytes = json.as_bytes();
    let mut in_string = false;
    let mut escaped = false;
    let mut i = 0;
    out.reserve(bytes.len());
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                _ if escaped => {
                    escaped = false;
                    out.push(b);
                }
                b'\\' => {
                    escaped = true;
                    out.push(b);
                }
                b'"' => {
                    in_string = false;
                    out.push(b);
                }
                b'<' => out.extend_from_slice(br"\u003c"),
                b'>' => out.extend_from_slice(br"\u003e"),
                b'&' => out.extend_from_slice(br"\u0026"),
                0xE2 if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xA8) | Some(0xA9)) => {
                    let escape: &[u8] = if bytes[i + 2] == 0xA8 { br"\u2028" } else { br"\u2029" };
                    out.extend_from_slice(escape);
                    i += 2;
                }
                _ => out.push(b),
            }
        } else {
            match b {
                b' ' | b'\n' | b'\r' | b'\t' => {}
                b'"' => {
                    in_string = true;
                    out.push(b);
                }
                _ => out.push(b),
            }
        }
        i += 1;
    }
}

/// Appends `text` as a safe JSON string literal (quotes included).
pub fn push_string(out: &mut Vec<u8>, text: &str) {
    // serde_json never fails on a &str.
    let quoted = serde_json::to_string(text).unwrap_or_default();
    push_safe(out, &quoted);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe(json: &str) -> String {
        let mut out = Vec::new();
        push_safe(&mut out, json);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn minifies_outside_strings_only() {
        assert_eq!(safe("{ \"a b\" :\n [1, 2] }"), r#"{"a b":[1,2]}"#);
    }

    #[test]
    fn escapes_script_breakers_inside_strings() {
        let out = safe("\"</script><!--&\u{2028}\u{2029}\"");
        assert_eq!(out, r#""\u003c/script\u003e\u003c!--\u0026\u2028\u2029""#);
        let back: String = serde_json::from_str(&out).unwrap();
        assert_eq!(back, "</script><!--&\u{2028}\u{2029}");
    }

    #[test]
    fn keeps_escaped_quotes_inside_strings() {
        let out = safe(r#"{"k":"a\"<b"}"#);
        assert_eq!(out, r#"{"k":"a\"\u003cb"}"#);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["k"], "a\"<b");
    }
}

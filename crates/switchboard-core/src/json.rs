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
    let mut i = 0;
    out.reserve(bytes.len());
    while i < bytes.len() {
        // The bytes between two that need a look are copied in one go.
        let run = bytes[i..].iter().position(|&b| LOOK[usize::from(b)]).unwrap_or(bytes.len() - i);
        out.extend_from_slice(&bytes[i..i + run]);
        i += run;
        let Some(&b) = bytes.get(i) else { break };
        match b {
            b'"' => {
                in_string = !in_string;
                out.push(b);
            }
            b'\\' => {
                // An escape: it and the byte it escapes, as they are.
                out.push(b);
                if let Some(&escaped) = bytes.get(i + 1) {
                    out.push(escaped);
                    i += 1;
                }
            }
            b' ' | b'\n' | b'\r' | b'\t' if !in_string => {}
            b'<' if in_string => out.extend_from_slice(br"\u003c"),
            b'>' if in_string => out.extend_from_slice(br"\u003e"),
            b'&' if in_string => out.extend_from_slice(br"\u0026"),
            0xE2 if in_string && bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)) => {
                let escape: &[u8] = if bytes[i + 2] == 0xA8 { br"\u2028" } else { br"\u2029" };
                out.extend_from_slice(escape);
                i += 2;
            }
            _ => out.push(b),
        }
        i += 1;
    }
}

/// The bytes [`push_safe`] must look at: quotes and backslashes (where
/// strings begin and end), whitespace (dropped outside strings), and what
/// it escapes inside strings (`<`, `>`, `&`, and 0xE2, the first byte of
/// U+2028 and U+2029).
const LOOK: [bool; 256] = {
    let mut look = [false; 256];
    let bytes = b"\"\\ \n\r\t<>&\xE2";
    let mut i = 0;
    while i < bytes.len() {
        look[bytes[i] as usize] = true;
        i += 1;
    }
    look
};

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

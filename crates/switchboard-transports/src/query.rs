//! The query parameters of the transport endpoints, parsed and validated.

use std::time::Duration;

use switchboard_core::identity::Credentials;

/// Longest accepted callback name.
pub const MAX_CALLBACK_CHARS: usize = 64;

/// Parameters shared by the downstream endpoints.
#[derive(Debug, Default)]
pub struct Params {
    /// Session to resume; `None` creates one.
    pub sid: Option<String>,
    /// Highest seq the client processed.
    pub last: u64,
    /// Long-poll hold time asked for.
    pub wait: Option<Duration>,
    /// JSONP / htmlfile callback name, validated.
    pub callback: Option<String>,
    /// Who the client says it is (`token`, `name`, or the
    /// `Authorization: Bearer` header added by the router).
    pub credentials: Credentials,
}

/// Parses a query string; `Err` is a message for a 400 answer.
pub fn parse(query: Option<&str>) -> Result<Params, String> {
    let mut params = Params::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match &*key {
            "sid" if !value.is_empty() => params.sid = Some(value.into_owned()),
            "last" => {
                params.last =
                    value.parse().map_err(|_| format!("last must be a non-negative integer, got {value:?}"))?;
            }
            "wait" => {
                let ms: u64 = value.parse().map_err(|_| format!("wait must be milliseconds, got {value:?}"))?;
                params.wait = Some(Duration::from_millis(ms));
            }
            "token" if !value.is_empty() => params.credentials.token = Some(value.into_owned()),
            "name" if !value.is_empty() => params.credentials.name = Some(value.into_owned()),
            "callback" => {
                if !valid_callback(&value) {
                    return Err(format!(
                        "callback must match [A-Za-z_$][A-Za-z0-9_$]*(.[A-Za-z_$][A-Za-z0-9_$]*)* \
                         and be at most {MAX_CALLBACK_CHARS} characters"
                    ));
                }
                params.callback = Some(value.into_owned());
            }
            _ => {}
        }
    }
    Ok(params)
}

/// Whether `name` is a dotted JavaScript identifier path of ASCII characters:
/// nothing that could end the expression it is written into.
pub fn valid_callback(name: &str) -> bool {
    let ident_start = |b: u8| b.is_ascii_alphabetic() || b == b'_' || b == b'$';
    let ident_rest = |b: u8| ident_start(b) || b.is_ascii_digit();
    !name.is_empty()
        && name.len() <= MAX_CALLBACK_CHARS
        && name.split('.').all(|part| {
            let bytes = part.as_bytes();
            !bytes.is_empty() && ident_start(bytes[0]) && bytes[1..].iter().all(|&b| ident_rest(b))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks() {
        assert!(valid_callback("cb"));
        assert!(valid_callback("a.b_c.$d9"));
        for bad in ["", "1a", "a..b", "a.", "alert(1)//", "a;b", "<x>", "a b", "é"] {
            assert!(!valid_callback(bad), "{bad:?}");
        }
        assert!(!valid_callback(&"a".repeat(65)));
    }

    #[test]
    fn params() {
        let p = parse(Some("sid=abc&last=7&wait=0&callback=cb")).unwrap();
        assert_eq!(p.sid.as_deref(), Some("abc"));
        assert_eq!(p.last, 7);
        assert_eq!(p.wait, Some(Duration::ZERO));
        assert!(parse(Some("last=-1")).is_err());
        assert!(parse(Some("callback=alert(1)")).is_err());
    }
}

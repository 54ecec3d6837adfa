//! Property tests of what the transport edge decodes from a request's
//! query: [`crate::query::parse`] never panics, and a callback name it
//! accepts is always a dotted JavaScript identifier path that cannot end
//! the expression it is written into (JSONP, htmlfile).

use proptest::prelude::*;

use crate::query::{parse, valid_callback, MAX_CALLBACK_CHARS};

/// The accepted shape, checked independently of the implementation.
fn is_identifier_path(name: &str) -> bool {
    let ident = |part: &str| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    !name.is_empty() && name.len() <= MAX_CALLBACK_CHARS && name.split('.').all(ident)
}

/// Query strings made of the parameters the edge knows, with values that
/// are valid, hostile or garbage, percent-encoded or not.
fn query_like() -> impl Strategy<Value = String> {
    let key =
        prop_oneof![Just("sid"), Just("last"), Just("wait"), Just("callback"), Just("token"), Just("name"), Just("x"),];
    let value = prop_oneof![
        any::<u64>().prop_map(|n| n.to_string()),
        "-?[0-9]{0,30}",
        "[A-Za-z_$][A-Za-z0-9_$.]{0,70}",
        ".{0,40}",
        "(%[0-9A-Fa-f]{2}|%|[a-z<>;()'\"]){0,20}",
    ];
    prop::collection::vec((key, value), 0..8)
        .prop_map(|pairs| pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn any_query_parses_or_is_refused_without_panicking(query in ".{0,200}") {
        let _ = parse(Some(&query));
    }

    #[test]
    fn an_accepted_callback_is_a_plain_identifier_path(query in query_like()) {
        if let Ok(params) = parse(Some(&query)) {
            if let Some(callback) = params.callback {
                prop_assert!(is_identifier_path(&callback), "accepted callback {callback:?}");
            }
        }
    }

    #[test]
    fn callback_validation_agrees_with_the_grammar(name in prop_oneof![".{0,80}", "[A-Za-z0-9_$.]{0,80}"]) {
        prop_assert_eq!(valid_callback(&name), is_identifier_path(&name), "{:?}", name);
    }

    #[test]
    fn every_identifier_path_is_accepted(name in "[A-Za-z_$][A-Za-z0-9_$]{0,10}(\\.[A-Za-z_$][A-Za-z0-9_$]{0,10}){0,4}") {
        prop_assert_eq!(valid_callback(&name), name.len() <= MAX_CALLBACK_CHARS);
    }
}

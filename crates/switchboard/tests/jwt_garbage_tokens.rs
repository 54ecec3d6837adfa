//! The JWT path (`switchboard::auth::JwtAuthenticator`) under property
//! tests: garbage, truncated, oversized, forged and algorithm-confused
//! tokens are refused with a message, never a panic; a correctly signed
//! token is accepted exactly when its claims follow the rules (`sub` of 1 to
//! 128 characters without `:` or control characters, `exp` in the future).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use serde_json::{json, Value};
use switchboard::auth::{JwtAuthenticator, MAX_TOKEN_BYTES};
use switchboard_core::identity::{Authenticator, Credentials};

const SECRET: &str = "the property tests' HS256 secret";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn check(token: &str) -> Result<switchboard_core::identity::Identity, String> {
    let credentials = Credentials { token: Some(token.to_owned()), name: None };
    JwtAuthenticator::hs256(SECRET.as_bytes()).authenticate(&credentials).map_err(|e| e.0)
}

fn sign(claims: &Value, secret: &str, algorithm: Algorithm) -> String {
    encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret.as_bytes())).expect("HMAC signing")
}

/// Unpadded base64url, as JWT segments are written.
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn sub_is_valid(sub: &str) -> bool {
    !sub.is_empty() && sub.len() <= 128 && !sub.chars().any(|c| c.is_control() || c == ':')
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn any_string_is_refused_with_a_message(token in ".{0,300}") {
        let refused = check(&token);
        prop_assert!(refused.as_ref().is_err_and(|m| !m.is_empty()), "{:?}", refused);
    }

    #[test]
    fn three_garbage_segments_are_refused(
        segments in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 3..=3),
    ) {
        let token: Vec<String> = segments.iter().map(|s| b64url(s)).collect();
        prop_assert!(check(&token.join(".")).is_err());
    }

    #[test]
    fn forged_and_confused_tokens_are_refused(
        sub in "[a-z]{1,12}",
        header_alg in prop_oneof![Just("none"), Just("RS256"), Just("ES256"), Just("HS512"), Just("hs256"), Just("")],
        signature in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        // A header claiming another algorithm, a payload that would be
        // valid, and a signature that is not HS256 over them with the key.
        let header = json!({"alg": header_alg, "typ": "JWT"}).to_string();
        let payload = json!({"sub": sub, "exp": now() + 3600}).to_string();
        let token = format!("{}.{}.{}", b64url(header.as_bytes()), b64url(payload.as_bytes()), b64url(&signature));
        prop_assert!(check(&token).is_err(), "accepted {token}");
        // Signed with another key, or with HS512 by the right key.
        let claims = json!({"sub": sub, "exp": now() + 3600});
        prop_assert!(check(&sign(&claims, "another secret", Algorithm::HS256)).is_err());
        prop_assert!(check(&sign(&claims, SECRET, Algorithm::HS512)).is_err());
    }

    #[test]
    fn a_signed_token_is_accepted_exactly_when_its_claims_are_valid(
        sub in prop_oneof![".{0,140}", "[a-z:]{0,10}", Just(String::new())],
        name in prop::option::of(".{0,40}"),
        exp_offset in -100_000i64..100_000,
        with_exp in any::<bool>(),
    ) {
        let mut claims = json!({"sub": sub});
        if with_exp {
            claims["exp"] = json!(now() + exp_offset);
        }
        if let Some(name) = &name {
            claims["name"] = json!(name);
        }
        let result = check(&sign(&claims, SECRET, Algorithm::HS256));
        // Clear of the 5 s leeway and of the clock moving during the test.
        if exp_offset.abs() < 60 {
            return Ok(());
        }
        let valid = with_exp && exp_offset > 0 && sub_is_valid(&sub);
        prop_assert_eq!(result.is_ok(), valid, "{:?} -> {:?}", claims, result);
        if let Ok(identity) = result {
            prop_assert_eq!(identity.user, sub);
            prop_assert!(!identity.name.is_empty());
        }
    }

    #[test]
    fn oversized_tokens_are_refused_before_decoding(extra in 1usize..4096) {
        let claims = json!({"sub": "a", "exp": now() + 3600, "pad": "x".repeat(MAX_TOKEN_BYTES + extra)});
        let refused = check(&sign(&claims, SECRET, Algorithm::HS256)).unwrap_err();
        prop_assert!(refused.contains("longer than"), "{}", refused);
    }
}

//! Client authentication by JWT.
//!
//! HS256 with a shared secret, or RS256/ES256 with a public key. Claims:
//! `sub` (the user id, required), `name` (display name, optional), `rooms`
//! (optional list: the only rooms the user may join), `exp` (required and
//! enforced). Tokens come from the `token` query parameter or an
//! `Authorization: Bearer` header.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use switchboard_core::identity::{valid_display_name, valid_user_id, AuthError, Authenticator, Credentials, Identity};

/// Verifies client JWTs.
pub struct JwtAuthenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for JwtAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthenticator").field("algorithms", &self.validation.algorithms).finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    name: Option<String>,
    rooms: Option<Vec<String>>,
}

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

impl JwtAuthenticator {
    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::new(DecodingKey::from_secret(secret), Algorithm::HS256)
    }

    /// RS256 or ES256 with a PEM public key.
    pub fn public_key(pem: &[u8], algorithm: &str) -> anyhow::Result<Self> {
        let (key, algorithm) = match algorithm {
            "RS256" => (DecodingKey::from_rsa_pem(pem)?, Algorithm::RS256),
            "ES256" => (DecodingKey::from_ec_pem(pem)?, Algorithm::ES256),
            other => anyhow::bail!("jwt_algorithm must be RS256 or ES256, not {other:?}"),
        };
        Ok(Self::new(key, algorithm))
    }

    fn new(key: DecodingKey, algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        validation.validate_aud = false;
        Self { key, validation }
    }
}

impl Authenticator for JwtAuthenticator {
    fn authenticate(&self, credentials: &Credentials) -> Result<Identity, AuthError> {
        let token = credentials
            .token
            .as_deref()
            .ok_or_else(|| AuthError("a token is required: pass token= or Authorization: Bearer".into()))?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError(format!("token longer than {MAX_TOKEN_BYTES} bytes")));
        }
        let claims = decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError(format!("invalid token: {e}")))?
            .claims;
        if !valid_user_id(&claims.sub) {
            return Err(AuthError(
                "invalid token: sub must be 1 to 128 characters, no ':' or control characters".into(),
            ));
        }
        let name = claims.name.filter(|n| valid_display_name(n)).unwrap_or_else(|| claims.sub.clone());
        Ok(Identity { user: claims.sub, name, rooms: claims.rooms })
    }
}

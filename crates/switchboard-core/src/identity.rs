//! Who a session belongs to, and how that is decided.
//!
//! Transports collect [`Credentials`] from the request (a token, or a
//! nickname in development mode) and an [`Authenticator`] turns them into an
//! [`Identity`]. A session is bound to the identity that created it: resuming
//! it with another user's credentials is refused.

use std::fmt;

use crate::codes;

/// The user behind a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Stable user id (a JWT's `sub`, or the nickname in development mode).
    pub user: String,
    /// Display name.
    pub name: String,
    /// When present, the only rooms this user may join (a JWT `rooms` claim).
    pub rooms: Option<Vec<String>>,
}

impl Identity {
    /// Whether the identity's own restriction (if any) lets it into `room`.
    pub fn claim_allows(&self, room: &str) -> bool {
        self.rooms.as_ref().is_none_or(|rooms| rooms.iter().any(|r| r == room))
    }
}

/// What a client presented at connect.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// A bearer token (query `token`, or `Authorization: Bearer`).
    pub token: Option<String>,
    /// A nickname (query `name`), used in development mode.
    pub name: Option<String>,
}

/// Why credentials were refused. Sent to the client as `close` 4401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

impl AuthError {
    /// The close code clients see.
    pub const CODE: u16 = codes::UNAUTHORIZED;
}

/// Turns credentials into an identity.
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// The identity, or why not.
    fn authenticate(&self, credentials: &Credentials) -> Result<Identity, AuthError>;
}

/// Longest nickname, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// Development mode: no key configured, anyone may connect and choose a
/// nickname, which is also the user id. Without a nickname the user is a
/// guest with a random id. A token, if sent, is refused: it cannot be
/// verified without a key.
#[derive(Debug, Default)]
pub struct DevAuthenticator;

impl Authenticator for DevAuthenticator {
    fn authenticate(&self, credentials: &Credentials) -> Result<Identity, AuthError> {
        if credentials.token.is_some() {
            return Err(AuthError(
                "this server runs in development mode without a key; connect with a nickname (name=) instead of a token"
                    .into(),
            ));
        }
        let name = match credentials.name.as_deref().map(str::trim) {
            Some(name) if !name.is_empty() => {
                if !valid_name(name) {
                    return Err(AuthError(format!(
                        "a nickname is 1 to {MAX_NAME_CHARS} characters of letters, digits, '-', '_', '.' or '@'"
                    )));
                }
                name.to_owned()
            }
            _ => format!("guest-{}", crate::id::PublicId::random()),
        };
        Ok(Identity { user: name.clone(), name, rooms: None })
    }
}

/// Longest user id, in bytes of UTF-8.
pub const MAX_USER_ID_BYTES: usize = 128;

/// Whether a user id (a JWT's `sub`, a user named by the HTTP API) is
/// acceptable: 1 to 128 bytes, no `:` (it separates the two users of a
/// direct-message room name) and no control characters.
pub fn valid_user_id(user: &str) -> bool {
    !user.is_empty() && user.len() <= MAX_USER_ID_BYTES && !user.chars().any(|c| c.is_control() || c == ':')
}

/// Longest display name (a JWT's `name`, a name given by the HTTP API), in
/// characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;

/// Whether a display name is acceptable: 1 to 64 characters, not only
/// spaces, no control characters, no `<` or `>` (no markup, for clients
/// that would render it carelessly). Unlike a nickname it may hold spaces
/// and other punctuation ("Ada Lovelace"): it is never part of an id.
pub fn valid_display_name(name: &str) -> bool {
    !name.trim().is_empty()
        && name.chars().count() <= MAX_DISPLAY_NAME_CHARS
        && !name.chars().any(|c| c.is_control() || c == '<' || c == '>')
}

/// Whether a nickname or user id is acceptable: no separators of DM room
/// names, no control characters, no markup.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_take_spaces_but_no_control_characters() {
        assert!(valid_display_name("Ada Lovelace"));
        assert!(valid_display_name("Zoë (ops) – on call"));
        assert!(!valid_display_name(""));
        assert!(!valid_display_name("   "));
        assert!(!valid_display_name("line\nbreak"));
        assert!(!valid_display_name("<script>"));
        assert!(!valid_display_name(&"x".repeat(MAX_DISPLAY_NAME_CHARS + 1)));
        assert!(!valid_name("Ada Lovelace"), "a nickname is also a user id: no spaces");
    }

    #[test]
    fn dev_mode_takes_nicknames_and_refuses_tokens() {
        let dev = DevAuthenticator;
        let alice = dev.authenticate(&Credentials { name: Some("alice".into()), token: None }).unwrap();
        assert_eq!(alice.user, "alice");
        let guest = dev.authenticate(&Credentials::default()).unwrap();
        assert!(guest.user.starts_with("guest-"));
        assert!(dev.authenticate(&Credentials { token: Some("x".into()), name: None }).is_err());
        assert!(dev.authenticate(&Credentials { name: Some("<b>".into()), token: None }).is_err());
    }

    #[test]
    fn room_claims() {
        let mut id = Identity { user: "u".into(), name: "u".into(), rooms: None };
        assert!(id.claim_allows("any"));
        id.rooms = Some(vec!["a".into()]);
        assert!(id.claim_allows("a"));
        assert!(!id.claim_allows("b"));
    }
}

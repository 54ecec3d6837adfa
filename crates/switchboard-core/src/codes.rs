//! The protocol's close and error codes, documented in `docs/protocol.md` §6.
//! One source of truth: transports and tests use these constants.

/// A newer downstream attached to the session; this one must not reconnect.
pub const SUPERSEDED: u16 = 4000;
/// A streaming response reached its byte budget; resume at once.
pub const BUDGET_REACHED: u16 = 4001;
/// The server is shutting down; resume after a short pause.
pub const SHUTTING_DOWN: u16 = 4002;
/// The session id is unknown or the session has expired.
pub const SESSION_NOT_FOUND: u16 = 4004;
/// A malformed frame or request.
pub const BAD_REQUEST: u16 = 4400;
/// Forbidden: origin not allowed, or publish to a room not joined.
pub const FORBIDDEN: u16 = 4403;
/// A frame, body or batch over its limit.
pub const TOO_LARGE: u16 = 4413;
/// The user is not authenticated: bad, expired or missing token, or a
/// session resumed with another user's credentials.
pub const UNAUTHORIZED: u16 = 4401;
/// The user was disconnected by the server's HTTP API.
pub const KICKED: u16 = 4005;
/// A rate limit was exceeded; the frame was dropped.
pub const RATE_LIMITED: u16 = 4429;
/// The history store failed; the message was not stored and not delivered.
pub const STORE_FAILED: u16 = 4500;
/// The node has as many sessions as it may hold; retry later or elsewhere.
pub const SERVER_FULL: u16 = 4503;

/// Counts one refusal in `switchboard_errors_total{code}`. Every bound and
/// rule a client can break is counted under the code it was answered with
/// (`docs/limits.md`); refusals below the protocol, where no protocol code
/// is sent, use the HTTP status (`429`, `431`, `408`) or WebSocket close
/// code (`1009`).
pub fn count_error(code: u16) {
    metrics::counter!("switchboard_errors_total", "code" => code.to_string()).increment(1);
}

//! `POST /v1/send`: the upstream of every HTTP transport.

use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use switchboard_core::{codes, frame, AttachError, Core};

use crate::config::TransportConfig;
use crate::query::Params;
use crate::response::{self, Body};

/// Applies the frames of one POST body to the session named by `sid`.
pub async fn respond(core: &Core, config: &TransportConfig, params: &Params, body: Incoming) -> Response<Body> {
    let session = match params.sid.as_deref().map(|sid| (sid, core.session(sid))) {
        Some((_, Some(session))) => session,
        // The session may live on: nothing was applied, send it again.
        Some((sid, None)) if matches!(core.missing_session(sid).await, AttachError::Unavailable) => {
            return response::error(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::STORE_FAILED,
                "the cluster's shared store is unreachable; nothing was applied: send again after a short pause",
            );
        }
        _ => {
            return response::error(
                StatusCode::NOT_FOUND,
                codes::SESSION_NOT_FOUND,
                "unknown or expired session; open a new session without sid",
            );
        }
    };
    let bytes = match Limited::new(body, config.max_body_bytes).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            codes::count_error(codes::TOO_LARGE);
            return response::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::TOO_LARGE,
                &format!("body over {} bytes", config.max_body_bytes),
            );
        }
        Err(_) => {
            return response::error(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, "body could not be read");
        }
    };
    let frames = match frame::parse_batch(&bytes, config.max_batch, config.max_frame_bytes) {
        Ok(frames) => frames,
        Err(e) => {
            codes::count_error(e.code);
            let status =
                if e.code == codes::TOO_LARGE { StatusCode::PAYLOAD_TOO_LARGE } else { StatusCode::BAD_REQUEST };
            return response::error(status, e.code, &e.message);
        }
    };
    let accepted = frames.len();
    core.apply(&session, frames).await;
    response::complete(StatusCode::OK, "application/json", format!("{{\"accepted\":{accepted}}}"))
}

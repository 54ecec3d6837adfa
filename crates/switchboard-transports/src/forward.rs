//! Forwarding a request to the session's home node.
//!
//! With several nodes behind a plain load balancer, a request for a session
//! may land on a node where the session does not live. The broker tells
//! where it lives; this module relays the request there over HTTP and
//! relays the answer back as it streams — long polls, event streams and
//! WebSocket upgrades alike (after a `101` the two connections are spliced).
//! A relayed request carries [`FORWARDED_HEADER`] so it is never relayed
//! again. When the client goes away, the relayed connection is dropped and
//! the home node sees the same disconnect a direct client would cause.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, BodyStream, StreamBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use switchboard_core::codes;
use tokio::net::TcpStream;

use crate::response::{self, Body};

/// Marks a request relayed by another node.
pub const FORWARDED_HEADER: &str = "x-switchboard-forwarded";

/// Whether `request` was relayed by another node already.
pub fn is_forwarded<B>(request: &Request<B>) -> bool {
    request.headers().contains_key(FORWARDED_HEADER)
}

/// How long connecting to a home node may take: a dead machine does not
/// refuse the connection, it just never answers.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Relays `request` to the node at `home` and streams its answer back.
///
/// `Err` gives the request back unsent when the home node cannot be reached
/// at all (it died and the directory does not know yet): the caller then
/// answers it as for an unknown session — `close` 4004 in the transport's
/// own framing, or 404 on `POST /v1/send` — which a client (and a browser's
/// `EventSource`) understands, unlike a bare 502.
pub async fn relay(mut request: Request<Incoming>, home: SocketAddr) -> Result<Response<Body>, Request<Incoming>> {
    let unavailable = || {
        response::error(
            StatusCode::BAD_GATEWAY,
            codes::SESSION_NOT_FOUND,
            "the session's home node cannot be reached; start a new session",
        )
    };
    let Ok(Ok(stream)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(home)).await else {
        return Err(request);
    };
    let _ = stream.set_nodelay(true);
    let Ok((mut sender, connection)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await else {
        return Err(request);
    };
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    request.headers_mut().insert(FORWARDED_HEADER, HeaderValue::from_static("1"));
    let client_upgrade =
        request.headers().contains_key(http::header::UPGRADE).then(|| hyper::upgrade::on(&mut request));
    let Ok(mut answer) = sender.send_request(request).await else { return Ok(unavailable()) };
    if answer.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let home_upgrade = hyper::upgrade::on(&mut answer);
            tokio::spawn(async move {
                if let (Ok(client), Ok(home)) = tokio::join!(client_upgrade, home_upgrade) {
                    let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(home)).await;
                }
            });
        }
    }
    Ok(answer.map(|body| {
        // A broken relay ends the body; the client resumes as after any cut.
        let frames = BodyStream::new(body)
            .take_while(|frame| std::future::ready(frame.is_ok()))
            .filter_map(|frame| std::future::ready(frame.ok().map(Ok::<_, std::convert::Infallible>)));
        StreamBody::new(frames).boxed_unsync()
    }))
}

//! The receiving side of the HTTP transports: a polling response (one
//! frame) or a streaming response (frames as they come, heartbeats, and an
//! end once the response limit is written).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use switchboard_transports::response::{full, Body};

use crate::frame::{self, close_of};
use crate::session::{Next, Receiver, Registration};
use crate::transport::HttpTransport;

/// Timers and limits of receiving connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReceiveLimits {
    /// Idle time before an `h` frame (and the longest a poll is held).
    pub(crate) heartbeat: Duration,
    /// Bytes of frames after which a streaming response ends.
    pub(crate) response_limit: usize,
    /// Most messages in one `a` frame.
    pub(crate) max_messages: usize,
}

/// The one frame of a polling response.
pub(crate) async fn poll(registration: Registration, limits: ReceiveLimits) -> Bytes {
    match registration {
        Registration::AnotherOpen => close_of(frame::ANOTHER_CONNECTION),
        // A poll carries one frame: queued messages now, the close frame on
        // the next poll.
        Registration::Closing { pending, close } => frame::messages(&pending).unwrap_or(close),
        Registration::Receiving(mut receiver) => {
            let frame = if receiver.opened {
                Bytes::from_static(frame::OPEN)
            } else {
                match receiver.next(limits.max_messages, limits.heartbeat).await {
                    Next::Messages(frames) => frame::messages(&frames).unwrap_or(Bytes::from_static(frame::HEARTBEAT)),
                    Next::Close(close) => close,
                    Next::Heartbeat => Bytes::from_static(frame::HEARTBEAT),
                }
            };
            receiver.finish();
            frame
        }
    }
}

/// A polling response body: `frame` as `transport` writes it.
pub(crate) fn poll_body(transport: &HttpTransport, frame: &[u8]) -> Body {
    full(transport.wrapped(frame))
}

/// A streaming response body.
pub(crate) fn stream_body(registration: Registration, transport: HttpTransport, limits: ReceiveLimits) -> Body {
    let mut queue: VecDeque<Bytes> = transport.prelude().into_iter().collect();
    let mut state = Streaming { queue: VecDeque::new(), receiver: None, transport, written: 0, limits };
    match registration {
        Registration::AnotherOpen => state.push(&close_of(frame::ANOTHER_CONNECTION)),
        Registration::Closing { pending, close } => {
            if let Some(messages) = frame::messages(&pending) {
                state.push(&messages);
            }
            state.push(&close);
        }
        Registration::Receiving(receiver) => {
            if receiver.opened {
                state.push(frame::OPEN);
            }
            state.receiver = Some(receiver);
        }
    }
    queue.append(&mut state.queue);
    state.queue = queue;
    let chunks = stream::unfold(state, |mut state| async move {
        let chunk = state.next_chunk().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), state))
    });
    StreamBody::new(chunks).boxed_unsync()
}

struct Streaming {
    /// Chunks ready to go.
    queue: VecDeque<Bytes>,
    /// `None` once the response is complete.
    receiver: Option<Receiver>,
    transport: HttpTransport,
    /// Frame bytes written (the prelude does not count).
    written: usize,
    limits: ReceiveLimits,
}

impl Streaming {
    /// Queues one frame as a chunk; past the response limit, the response
    /// ends (the client opens the next one).
    fn push(&mut self, frame: &[u8]) {
        let chunk = self.transport.wrapped(frame);
        self.written += chunk.len();
        self.queue.push_back(chunk);
        if self.written >= self.limits.response_limit {
            if let Some(receiver) = self.receiver.take() {
                receiver.finish();
            }
        }
    }

    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.queue.pop_front() {
                return Some(chunk);
            }
            let receiver = self.receiver.as_mut()?;
            match receiver.next(self.limits.max_messages, self.limits.heartbeat).await {
                Next::Messages(frames) => {
                    if let Some(messages) = frame::messages(&frames) {
                        self.push(&messages);
                    }
                }
                Next::Heartbeat => self.push(frame::HEARTBEAT),
                Next::Close(close) => {
                    self.push(&close);
                    if let Some(receiver) = self.receiver.take() {
                        receiver.finish();
                    }
                }
            }
        }
    }
}

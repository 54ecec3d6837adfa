//! `GET /v1/ws`: one frame per text message, upstream frames as text
//! messages.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use http::HeaderValue;
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, WebSocketStream};

use super::{Attach, Downstream, Ended, Refused, Transport};
use crate::frame::Frame;

/// One WebSocket attachment.
pub struct WsDownstream {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    ended: Option<Ended>,
}

impl WsDownstream {
    /// Performs the upgrade; a refused upgrade is [`Refused`] (without body).
    pub async fn connect(addr: SocketAddr, attach: &Attach) -> anyhow::Result<Self> {
        let url = format!("ws://{addr}/v1/ws{}", attach.query(Transport::WebSocket));
        let mut builder = ClientBuilder::new().uri(&url)?;
        if let Some(origin) = &attach.origin {
            builder = builder.add_header(http::header::ORIGIN, HeaderValue::from_str(origin)?)?;
        }
        match builder.connect().await {
            Ok((socket, _response)) => Ok(Self { socket, ended: None }),
            Err(tokio_websockets::Error::Upgrade(tokio_websockets::upgrade::Error::DidNotSwitchProtocols(status))) => {
                Err(Refused { status, body: String::new() }.into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sends one text message (a frame, an array of frames, or anything a
    /// test wants the server to cope with).
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.socket.send(Message::text(text.to_owned())).await?;
        Ok(())
    }

    /// The next frame; [`Ended`] with the close code once the server closed.
    pub async fn next(&mut self) -> anyhow::Result<Frame> {
        loop {
            if let Some(ended) = &self.ended {
                return Err(ended.clone().into());
            }
            match self.socket.next().await {
                None => self.ended = Some(Ended { ws_close: None }),
                Some(Err(e)) => return Err(e.into()),
                Some(Ok(message)) => {
                    if let Some(text) = message.as_text() {
                        return Frame::parse(text);
                    }
                    if let Some((code, _reason)) = message.as_close() {
                        self.ended = Some(Ended { ws_close: Some(code.into()) });
                    } else if message.is_binary() {
                        anyhow::bail!("unexpected binary WebSocket message");
                    }
                }
            }
        }
    }
}

impl Downstream for WsDownstream {
    fn transport(&self) -> Transport {
        Transport::WebSocket
    }

    fn next_frame(&mut self) -> BoxFuture<'_, anyhow::Result<Frame>> {
        Box::pin(self.next())
    }
}

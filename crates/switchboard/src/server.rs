//! The ready-made server around the transport edge.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use switchboard_core::Core;
use switchboard_transports::response::{self, Body};
use switchboard_transports::Switchboard;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::statics;

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    config: Config,
    listener: TcpListener,
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    /// The address it listens on.
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    /// Binds `config.listen`.
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Server { config, listener })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves: then clients are told to reconnect
    /// (close 4002), the listener closes, and open connections get up to
    /// `shutdown_timeout` to finish.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let core = Core::new(self.config.session_limits());
        let reaper = core.spawn_reaper();
        let edge = Switchboard::new(Arc::clone(&core), self.config.transport());
        let static_dir = self.config.static_dir.clone().map(Arc::new);
        let handler = move |request: Request<Incoming>| {
            let edge = edge.clone();
            let static_dir = static_dir.clone();
            async move { route(&edge, static_dir.as_deref().map(|p| p.as_path()), request).await }
        };
        let stopping = Arc::clone(&core);
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutting down: telling clients to reconnect");
            stopping.shutdown();
        };
        tracing::info!(addr = %self.local_addr(), "switchboard listening");
        switchboard_transports::server::serve(self.listener, handler, shutdown, self.config.shutdown_timeout).await;
        reaper.abort();
    }

    /// Runs in a background task; the handle stops it.
    pub fn spawn(self) -> ServerHandle {
        let addr = self.local_addr();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(self.run(async move {
            let _ = stopped.await;
        }));
        ServerHandle { addr, stop, task }
    }
}

impl ServerHandle {
    /// Stops the server and waits for it to finish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

async fn route(edge: &Switchboard, static_dir: Option<&std::path::Path>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path();
    if Switchboard::owns(path) {
        return edge.handle(request).await;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return response::error(StatusCode::METHOD_NOT_ALLOWED, switchboard_core::codes::BAD_REQUEST, "only GET here");
    }
    if path == "/healthz" {
        return response::complete(StatusCode::OK, "text/plain", "ok");
    }
    statics::serve(static_dir, path).await
}

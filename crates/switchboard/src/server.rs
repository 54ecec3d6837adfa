//! The ready-made server around the transport edge.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::path::PathBuf;

use metrics_exporter_prometheus::PrometheusHandle;
use switchboard_core::store::{MemoryStore, Store};
use switchboard_core::{Core, CoreOptions};
use switchboard_socketio::SocketIo;
use switchboard_sockjs::SockJs;
use switchboard_store_sqlite::SqliteStore;
use switchboard_transports::response::{self, Body};
use switchboard_transports::Switchboard;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::{BrokerKind, Config, StoreKind};
use crate::statics;
use switchboard_redis::{RedisBackend, RedisBroker, RedisSettings, RedisStore};

/// How often histogram samples are folded into their buckets. Without it
/// they pile up in memory until `/metrics` is scraped (every delivery
/// records one), so a server nobody scrapes would grow without bound.
const METRICS_UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

fn spawn_metrics_upkeep(metrics: PrometheusHandle) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(METRICS_UPKEEP_EVERY);
        loop {
            ticks.tick().await;
            metrics.run_upkeep();
        }
    })
}

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
        let advertise = self.config.advertise.unwrap_or_else(|| self.local_addr());
        let app = match App::new(&self.config, advertise).await {
            Ok(app) => Arc::new(app),
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return;
            }
        };
        let reaper = app.core.spawn_reaper();
        let metrics_upkeep = spawn_metrics_upkeep(app.metrics.clone());
        let sockjs_sweeper = app.sockjs.as_ref().map(SockJs::spawn_sweeper);
        let handler = {
            let app = Arc::clone(&app);
            move |request: Request<Incoming>| {
                let app = Arc::clone(&app);
                async move { app.route(request).await }
            }
        };
        let stopping = Arc::clone(&app.core);
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutting down: telling clients to reconnect");
            stopping.shutdown();
        };
        tracing::info!(addr = %self.local_addr(), "switchboard listening");
        let limits = switchboard_transports::server::ServeLimits {
            header_read_timeout: self.config.header_read_timeout,
            max_header_bytes: self.config.max_header_bytes,
            max_connections_per_ip: self.config.max_connections_per_ip,
            drain: self.config.shutdown_timeout,
            write_timeout: self.config.write_timeout,
        };
        switchboard_transports::server::serve(self.listener, handler, shutdown, limits).await;
        reaper.abort();
        metrics_upkeep.abort();
        if let Some(sweeper) = sockjs_sweeper {
            sweeper.abort();
        }
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

/// Everything one server answers with: the core, the transport edge, the
/// API, metrics and static files.
struct App {
    core: Arc<Core>,
    edge: Switchboard,
    socketio: Option<SocketIo>,
    sockjs: Option<SockJs>,
    static_dir: Option<PathBuf>,
    api_key: Option<String>,
    allowed_origins: Vec<String>,
    metrics: PrometheusHandle,
}

impl App {
    async fn new(config: &Config, advertise: std::net::SocketAddr) -> anyhow::Result<Self> {
        // The recorder first: the core takes its per-message metric handles
        // from it at their first use.
        let metrics = crate::metrics_handle();
        let mut broker: Option<switchboard_core::BrokerFactory> = None;
        let store: Arc<dyn Store> = match (config.broker, config.store) {
            (BrokerKind::Redis, _) => {
                let backend = RedisBackend::connect(RedisSettings {
                    url: config.redis_url.clone(),
                    key_prefix: config.redis_key_prefix.clone(),
                    advertise,
                    node_ttl: config.node_ttl,
                    history_max_messages: config.retention_policy().most_messages(),
                    events_max: config.redis_events_max,
                })
                .await
                .map_err(|e| anyhow::anyhow!("cannot connect to redis at {}: {e}", config.redis_url))?;
                tracing::info!(url = %config.redis_url, %advertise, "broker and store: redis");
                let for_broker = backend.clone();
                broker = Some(Arc::new(move |hub| -> Arc<dyn switchboard_core::broker::Broker> {
                    RedisBroker::start(for_broker.clone(), hub)
                }));
                Arc::new(RedisStore::new(backend))
            }
            (BrokerKind::Local, StoreKind::Memory) => Arc::new(MemoryStore::new()),
            (BrokerKind::Local, StoreKind::Sqlite) => {
                let path = config.data_dir.join("history.db");
                tracing::info!(path = %path.display(), "history store");
                Arc::new(SqliteStore::open(&path)?)
            }
        };
        let authenticator = crate::authenticator(config)?;
        let core = Core::with_options(CoreOptions {
            limits: config.session_limits(),
            store,
            authenticator,
            retention: config.retention_policy(),
            broker,
        });
        let edge = Switchboard::new(Arc::clone(&core), config.transport());
        let socketio = if config.socketio.enabled {
            let io = SocketIo::new(Arc::clone(&core), config.socketio.clone(), config.allowed_origins.clone());
            switchboard_socketio::builtin::install(&io, &config.socketio)?;
            Some(io)
        } else {
            None
        };
        let sockjs = if config.sockjs.enabled {
            Some(SockJs::new(Arc::clone(&core), &config.sockjs, &config.transport())?)
        } else {
            None
        };
        Ok(Self {
            core,
            edge,
            socketio,
            sockjs,
            static_dir: config.static_dir.clone(),
            api_key: config.api_key.clone(),
            allowed_origins: config.allowed_origins.clone(),
            metrics,
        })
    }

    /// Each branch is boxed, so that a request held open (a long poll) keeps
    /// only its own handler's state, not room for the largest of them all.
    async fn route(&self, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path();
        if Switchboard::owns(path) {
            return Box::pin(self.edge.handle(request)).await;
        }
        if let Some(sockjs) = self.sockjs.as_ref().filter(|s| s.owns(path)) {
            return Box::pin(sockjs.handle(request)).await;
        }
        if let Some(io) = self.socketio.as_ref().filter(|io| io.owns(path)) {
            return Box::pin(io.handle(request)).await;
        }
        // Everything else answers 403 to a foreign origin too. The htmlfile
        // bridge is loaded by an iframe (no `Origin`): it is judged by the
        // page that embeds it, since the stream it opens comes from the
        // server's own origin and would pass any allowlist.
        let checked = if path == "/htmlfile-bridge.html" {
            switchboard_transports::cors::check_embedded(&self.allowed_origins, request.headers())
        } else {
            switchboard_transports::cors::check(&self.allowed_origins, request.headers())
        };
        if let switchboard_transports::cors::OriginCheck::Refused = checked {
            return switchboard_transports::cors::refused();
        }
        if path.starts_with("/api/v1/") || path == "/api/v1" {
            return Box::pin(crate::api::handle(&self.core, self.api_key.as_deref(), request)).await;
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return response::error(
                StatusCode::METHOD_NOT_ALLOWED,
                switchboard_core::codes::BAD_REQUEST,
                "only GET here",
            );
        }
        match path {
            "/healthz" => response::complete(StatusCode::OK, "text/plain", "ok"),
            "/metrics" => {
                crate::record_gauges(&self.core);
                let mut text = self.metrics.render();
                switchboard_core::stats::render_delivery(&mut text);
                response::complete(StatusCode::OK, "text/plain; version=0.0.4", text)
            }
            _ => Box::pin(statics::serve(self.static_dir.as_deref(), path)).await,
        }
    }
}

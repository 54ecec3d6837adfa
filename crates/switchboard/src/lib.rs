//! The Switchboard server: configuration, static files and the accept loop
//! around the transport edge.
//!
//! # Layout
//!
//! - [`config`]: [`Config`], one struct layered from TOML, environment and
//!   command line.
//! - [`Server`]: binds, serves `/healthz`, `/metrics`, the demo page, the
//!   HTTP API (`api`) and every `/v1/` transport, and shuts down gracefully.
//! - [`auth`]: client JWT verification (HS256, RS256, ES256).
//! - `static/`: the demo chat served at `/`.
//!
//! An application can also mount [`switchboard_transports::Switchboard`] in
//! its own hyper or axum server; this crate is only the ready-made one.

mod api;
pub mod auth;
pub mod config;
mod server;
mod statics;

use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use switchboard_core::identity::{Authenticator, DevAuthenticator};
use switchboard_core::Core;

pub use config::Config;
pub use server::{Server, ServerHandle};

/// The authenticator the configuration asks for; development mode (with a
/// loud log line) when no key is configured.
pub fn authenticator(config: &Config) -> anyhow::Result<Arc<dyn Authenticator>> {
    if let Some(path) = &config.jwt_public_key {
        let pem =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read jwt_public_key {}: {e}", path.display()))?;
        return Ok(Arc::new(auth::JwtAuthenticator::public_key(&pem, &config.jwt_algorithm)?));
    }
    if let Some(secret) = &config.jwt_secret {
        return Ok(Arc::new(auth::JwtAuthenticator::hs256(secret.as_bytes())));
    }
    tracing::warn!(
        "DEVELOPMENT MODE: no jwt_secret or jwt_public_key configured; anyone may connect with any nickname"
    );
    Ok(Arc::new(DevAuthenticator))
}

/// The process-wide Prometheus recorder (installed once, shared by every
/// server in the process).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&switchboard_core::stats::BUCKETS)
                .expect("static buckets are valid");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder is installed (an embedding
            // application's): then ours just renders what it sees.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Gauges that are read off the core when scraped.
pub fn record_gauges(core: &Core) {
    metrics::gauge!("switchboard_sessions").set(core.registry().len() as f64);
    metrics::gauge!("switchboard_rooms").set(core.hub().room_count() as f64);
    let (frames, bytes) = core.registry().all().iter().fold((0usize, 0usize), |(f, b), s| {
        let (sf, sb) = s.outbox_size();
        (f + sf, b + sb)
    });
    metrics::gauge!("switchboard_outbox_frames").set(frames as f64);
    metrics::gauge!("switchboard_outbox_bytes").set(bytes as f64);
}

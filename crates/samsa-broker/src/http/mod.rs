//! The broker's HTTP listener (`http.listeners`, default
//! `http://127.0.0.1:9644`): Prometheus metrics and health checks, served by
//! axum on the broker's runtime, apart from the Kafka listeners (a slow
//! scrape never delays a Kafka request: state is gathered off the runtime's
//! workers and no lock of the request path is held while encoding).
//!
//! - `GET /metrics`: the text exposition of [`samsa_metrics::Metrics`].
//! - `GET /health/live`: 200 while the process serves HTTP.
//! - `GET /health/ready`: 200 when the broker can serve clients (see
//!   [`state::readiness`]), else 503 with the reasons, one per line.

mod state;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use kafka_protocol::messages::ApiKey;
use samsa_client::admin::Admin;
use samsa_client::client::{Client, ClientConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::Broker;

/// The content type of Prometheus' text format that scrapers negotiate.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The API's name as a metric label (`Produce`, `Fetch`, ...): one table
/// indexed by API key, built once.
pub fn api_label(key: ApiKey) -> &'static str {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    let names = NAMES.get_or_init(|| {
        (0..=i16::from(u8::MAX))
            .map(|k| match ApiKey::try_from(k) {
                Ok(key) => {
                    let name = format!("{key:?}");
                    let name = name.strip_suffix("Key").unwrap_or(&name).to_string();
                    // Bounded: one string per API kafka-protocol knows.
                    &*Box::leak(name.into_boxed_str())
                }
                Err(_) => "Unknown",
            })
            .collect()
    });
    usize::try_from(key as i16)
        .ok()
        .and_then(|k| names.get(k).copied())
        .unwrap_or("Unknown")
}

/// Binds `addr`. With the default address (not configured explicitly), a
/// port already in use only logs a warning: a second broker on the same
/// machine still starts, without HTTP. An explicitly configured address
/// that cannot be bound stops startup.
pub async fn bind(addr: SocketAddr, explicit: bool) -> std::io::Result<Option<TcpListener>> {
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if !explicit => {
            tracing::warn!(%addr, error = %e, "HTTP listener (metrics, health) not started: the default address is taken; set http.listeners to choose another");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// What the HTTP handlers share.
struct Http {
    broker: Arc<Broker>,
    /// A client of this broker's own listener, for other brokers' high
    /// watermarks (lag); connected on first need, again after a failure.
    admin: tokio::sync::Mutex<Option<Admin>>,
}

impl Http {
    async fn admin(&self) -> tokio::sync::MutexGuard<'_, Option<Admin>> {
        let mut admin = self.admin.lock().await;
        if admin.is_none() {
            let s = &self.broker.settings;
            let own = format!("{}:{}", s.advertised_host, s.advertised_port);
            match Client::connect(ClientConfig::new(&own)).await {
                Ok(c) => *admin = Some(Admin::new(c)),
                Err(e) => tracing::debug!(error = %e, "lag: no client of this broker's listener"),
            }
        }
        admin
    }
}

/// Serves HTTP on `listener` until `shutdown`.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!("HTTP listener on http://{addr} (/metrics, /health/live, /health/ready)");
    }
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health/live", get(|| async { "ok\n" }))
        .route("/health/ready", get(ready))
        .with_state(Arc::new(Http {
            broker,
            admin: tokio::sync::Mutex::new(None),
        }));
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(error = %e, "HTTP listener stopped");
    }
}

async fn metrics(State(http): State<Arc<Http>>) -> Response {
    let broker = &http.broker;
    let groups = state::group_counts(broker).await;
    let lag = {
        let admin = http.admin().await;
        state::group_lag(broker, admin.as_ref()).await
    };
    let b = broker.clone();
    let text = tokio::task::spawn_blocking(move || {
        let snapshot = state::snapshot(&b, groups, lag);
        b.metrics.encode(&snapshot)
    })
    .await;
    match text {
        Ok(text) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn ready(State(http): State<Arc<Http>>) -> Response {
    let problems = state::readiness(&http.broker);
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n") + "\n").into_response()
    }
}

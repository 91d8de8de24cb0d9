//! The network side: accept loop, connection limits and timeouts, start-up and graceful shutdown.
//!
//! hyper-util drives each HTTP/1.1 connection so we control what axum's `serve` does not expose:
//! a header read timeout (slow-loris), a cap on concurrent connections (a semaphore permit per
//! connection; past the cap new connections wait in the kernel backlog), and a shutdown that stops
//! accepting, lets in-flight requests finish (their acks still wait for the sink), and only then
//! flushes, syncs and finishes every open file. The private `--metrics-listen` listener runs the
//! same accept loop, with the same header timeout and a small connection cap of its own.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::{Settings, DEV_WRITE_KEY};
use crate::metrics::Metrics;
use crate::router::{api_endpoint, app, ingest_direct, metrics_app, AppState, RateLimits};
use crate::sink::{Sink, SinkOptions};

/// Pause after a failed `accept` (e.g. out of file descriptors) before trying again.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// The most one connection's HTTP read buffer holds (headers and unread body).
const READ_BUFFER_MAX: usize = 64 * 1024;

tokio::task_local! {
    /// The peer address of the connection the current task serves. Set around each connection's
    /// future instead of inserted into every request's extensions, which allocated a map per
    /// request (~2,000 instructions per single-message request, with its drop).
    static PEER: SocketAddr;
}

/// The address of the connection being served on this task, when `serve` set one (tests that
/// need one put a `ConnectInfo` in the request's extensions instead).
pub fn current_peer() -> Option<SocketAddr> {
    PEER.try_with(|p| *p).ok()
}

/// A start-up failure.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot prepare data directory {dir}: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Builds the state the router needs, opening the sink (and recovering its files).
pub fn build_state(settings: Settings) -> Result<AppState, RunError> {
    let metrics = Arc::new(Metrics::default());
    let options = SinkOptions {
        data_dir: settings.data_dir.clone(),
        fsync: settings.fsync,
        rotate_bytes: settings.rotate_bytes,
        dedupe_window: settings.dedupe_window,
        dedupe_capacity: settings.dedupe_capacity,
    };
    let sink =
        Sink::open(&options, &settings.keys.sources(), metrics.clone()).map_err(|source| {
            RunError::DataDir {
                dir: settings.data_dir.display().to_string(),
                source,
            }
        })?;
    Ok(AppState {
        limits: Arc::new(RateLimits::from_settings(&settings)),
        settings: Arc::new(settings),
        sink: Arc::new(sink),
        metrics,
    })
}

/// Runs the server until `shutdown` completes, then drains and syncs.
pub async fn run(settings: Settings, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let listen = settings.listen;
    let state = build_state(settings)?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| RunError::Listen {
            addr: listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| RunError::Listen {
        addr: listen,
        source,
    })?;

    // The private metrics listener, when asked for: bound before the public one is announced,
    // so a failure to bind it stops the start-up. Its connections get the same header timeout
    // as public ones and a small cap of their own: a private address is no reason to let a
    // stuck or hostile peer hold sockets and tasks without bound.
    let metrics_server = match state.settings.metrics_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .map_err(|source| RunError::Listen { addr, source })?;
            let bound = l
                .local_addr()
                .map_err(|source| RunError::Listen { addr, source })?;
            tracing::info!(address = %bound, "metrics listening on http://{bound}/metrics (not on the public address)");
            let router = metrics_app(state.clone());
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                router.clone().oneshot(req)
            });
            let limits = ConnLimits {
                max_connections: METRICS_MAX_CONNECTIONS,
                header_read_timeout: state.settings.header_read_timeout,
                shutdown_grace: Duration::ZERO,
            };
            Some(tokio::spawn(accept_loop(
                l,
                limits,
                None,
                std::future::pending(),
                service,
            )))
        }
        None => None,
    };

    let s = &state.settings;
    let sources: Vec<String> = s.keys.sources().iter().map(|x| x.to_string()).collect();
    if s.dev_key_only {
        tracing::warn!(
            "no --write-key configured: accepting the development write key `{DEV_WRITE_KEY}` (source `{DEV_WRITE_KEY}`)"
        );
    }
    tracing::info!(
        address = %local,
        data_dir = %s.data_dir.display(),
        sources = ?sources,
        fsync = ?s.fsync,
        "events are written to {}/{{source}}/dt=YYYY-MM-DD/HH-SEQ.ndjson",
        s.data_dir.display()
    );
    // The one stdout line scripts wait for (contracts.md).
    println!("footfall-ingest listening on http://{local}");

    serve(listener, state.clone(), shutdown).await;
    if let Some(task) = metrics_server {
        task.abort();
    }

    // Every connection is done: no request can still be waiting on the sink.
    let sink = state.sink.clone();
    let _ = tokio::task::spawn_blocking(move || sink.shutdown()).await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// The public accept loop. Returns once `shutdown` fired and in-flight connections drained
/// (or the grace period ran out).
pub async fn serve(listener: TcpListener, state: AppState, shutdown: impl Future<Output = ()>) {
    let settings = state.settings.clone();
    let router: Router = app(state.clone());
    let metrics = state.metrics.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let router = router.clone();
        let state = state.clone();
        async move {
            // Ingest calls skip the Router (see `router::ingest_direct`); the rest use it.
            match api_endpoint(req.method(), req.uri().path()) {
                Some((route, endpoint)) => {
                    Ok(ingest_direct(state, route, endpoint, req.map(axum::body::Body::new)).await)
                }
                None => router.oneshot(req).await,
            }
        }
    });
    let limits = ConnLimits {
        max_connections: settings.max_connections,
        header_read_timeout: settings.header_read_timeout,
        shutdown_grace: settings.shutdown_grace,
    };
    accept_loop(listener, limits, Some(metrics), shutdown, service).await;
}

/// Connections the private `/metrics` listener serves at once (a scraper needs one).
pub const METRICS_MAX_CONNECTIONS: usize = 8;

/// What one listener allows its connections.
struct ConnLimits {
    /// Past this many, new connections wait in the kernel backlog.
    max_connections: usize,
    /// Headers (and an idle keep-alive connection's next request) must arrive within this.
    header_read_timeout: Duration,
    /// How long in-flight connections may finish once `shutdown` fired.
    shutdown_grace: Duration,
}

/// Accepts connections on `listener` and serves each with `service` under `limits`, until
/// `shutdown` fires; then stops accepting and waits for in-flight connections (up to the grace
/// period). `metrics`, when given, counts the open connections.
async fn accept_loop<S>(
    listener: TcpListener,
    limits: ConnLimits,
    metrics: Option<Arc<Metrics>>,
    shutdown: impl Future<Output = ()>,
    service: S,
) where
    S: hyper::service::Service<
            hyper::Request<Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            // hyper's read buffer grows to ~408 KiB by default and stays that size for the
            // connection's life; a 1,000-message batch drove every connection there (issue 5:
            // ~26 MiB of 225 MiB peak RSS at 64 connections). Bodies past this arrive in more
            // frames, which `decode::read_body` gathers anyway; headers past it get 431.
            .max_buf_size(READ_BUFFER_MAX)
            .serve_connection(TokioIo::new(stream), service.clone());
        let conn = graceful.watch(conn);
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Some(m) = &metrics {
                m.connection_opened();
            }
            if let Err(e) = PEER.scope(peer, conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            if let Some(m) = &metrics {
                m.connection_closed();
            }
            drop(permit);
        });
    }

    drop(listener);
    tracing::info!("shutdown requested: not accepting; draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

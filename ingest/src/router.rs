//! HTTP routes and the request pipeline: auth → decode → validate → enrich → sink → response.
//!
//! `app(state)` builds the whole axum `Router`, with no sockets involved, so tests drive it with
//! `tower::ServiceExt::oneshot`. The client address comes from a `ConnectInfo<SocketAddr>` request
//! extension when a test inserts one, else from the connection `server` is serving
//! (`server::current_peer`). `server` sends ingest calls (`POST` to an API route) to
//! `ingest_direct` instead of through the `Router`, with the same response; tests hold the two
//! to each other.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, on, MethodFilter};
use axum::{Json, Router};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::auth::{key_from_request, KeyEntry};
use crate::config::Settings;
use crate::decode::{decode_body, parse_json};
use crate::enrich::client_ip;
use crate::error::{IngestError, Rejection};
use crate::line::{self, RequestInputs, Str};
use crate::metrics::Metrics;
use crate::ratelimit::{address_key, retry_after_secs, Limiter};
use crate::sink::{Lines, Sink, SinkError};
use crate::static_files;
use crate::validate::{parse_timestamp, MessageType};

/// Everything a request needs, shared by all of them.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub sink: Arc<Sink>,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<RateLimits>,
}

/// The rate limiters the settings ask for (`None` = that limit is off).
#[derive(Debug, Default)]
pub struct RateLimits {
    /// Keyed by `ratelimit::address_key` of the client address.
    pub address: Option<Limiter<std::net::IpAddr>>,
    /// Keyed by `KeyEntry::index`.
    pub key: Option<Limiter<usize>>,
}

impl RateLimits {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            address: settings
                .rate_limit_ip
                .map(|r| Limiter::new(r, crate::ratelimit::DEFAULT_MAX_ENTRIES)),
            key: settings
                .rate_limit_key
                .map(|r| Limiter::new(r, settings.keys.len())),
        }
    }
}

/// Which endpoint a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Batch,
    Single(MessageType),
}

/// API routes, in the order they are documented.
const API_ROUTES: [(&str, Endpoint); 7] = [
    ("/v1/batch", Endpoint::Batch),
    ("/v1/track", Endpoint::Single(MessageType::Track)),
    ("/v1/identify", Endpoint::Single(MessageType::Identify)),
    ("/v1/page", Endpoint::Single(MessageType::Page)),
    ("/v1/screen", Endpoint::Single(MessageType::Screen)),
    ("/v1/group", Endpoint::Single(MessageType::Group)),
    ("/v1/alias", Endpoint::Single(MessageType::Alias)),
];

/// The body of every 200, built once (was a `json!` map serialised per request).
const SUCCESS_BODY: &str = r#"{"success":true}"#;

/// The 200 of an accepted request, built directly: through axum's `IntoResponse` for a header
/// array and a `&str` (a text/plain content type set and then replaced, a `Cow`, then
/// `set_content_length` formatting the length) it was ~2,000 instructions of a ~53,000
/// instruction /v1/track request (callgrind).
fn success() -> Response {
    let mut response = Response::new(Body::from(SUCCESS_BODY));
    let h = response.headers_mut();
    // Room for these two and `add_cors`'s up to three, in one allocation.
    h.reserve(5);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CONTENT_LENGTH,
        HeaderValue::from(SUCCESS_BODY.len()),
    );
    response
}

/// Headers a browser may send cross-origin.
const ALLOWED_HEADERS: &str = "authorization, content-type, content-encoding";
/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE_SECS: u32 = 86_400;

/// The whole application.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for (path, endpoint) in API_ROUTES {
        router = router.route(
            path,
            on(
                MethodFilter::POST,
                move |State(s): State<AppState>, req: Request| ingest(s, endpoint, req),
            )
            .on(MethodFilter::OPTIONS, preflight),
        );
    }
    router = router.route("/healthz", get(healthz));
    router = if state.settings.metrics_listen.is_some() {
        // Served on the private address only; say so here rather than fall through to static files.
        router.route("/metrics", get(|| async { IngestError::NotFound }))
    } else {
        router.route("/metrics", get(metrics))
    };
    router = router.method_not_allowed_fallback(|| async { IngestError::MethodNotAllowed });
    router = match &state.settings.static_dir {
        Some(dir) => router.fallback_service(static_files::service(dir)),
        None => router.fallback(|| async { IngestError::NotFound }),
    };
    // Ingest calls do not pass through this Router on real connections (`ingest_direct`): a
    // layer added here must be added there too.
    router
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// Counts every response by route and status. Route labels are a fixed set.
async fn count_requests(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let route = API_ROUTES
        .iter()
        .map(|(p, _)| *p)
        .chain(["/healthz", "/metrics"])
        .find(|p| *p == path)
        .unwrap_or(if state.settings.static_dir.is_some() {
            "static"
        } else {
            "other"
        });
    let response = next.run(req).await;
    state.metrics.request(route, response.status().as_u16());
    response
}

/// The route label and endpoint of `method path` when it is an ingest call (`POST` to one of
/// `API_ROUTES`, exactly as `app` routes it), for `server`'s direct path.
pub fn api_endpoint(method: &Method, path: &str) -> Option<(&'static str, Endpoint)> {
    if method != Method::POST {
        return None;
    }
    API_ROUTES.iter().find(|(p, _)| *p == path).copied()
}

/// An ingest call without the `Router` in between: what `app`'s route for it, the
/// `count_requests` layer and axum's top-level route do to it, in that order, byte for byte the
/// same response — axum's path matching, its per-request extensions (URL params, matched path),
/// the middleware's boxing and the nested service futures were ~10,000 instructions of a
/// single-message `/v1/track` (issue 5). Every other request goes through `app`.
pub async fn ingest_direct(
    state: AppState,
    route: &'static str,
    endpoint: Endpoint,
    req: Request,
) -> Response {
    let metrics = state.metrics.clone();
    let mut response = ingest(state, endpoint, req).await;
    metrics.request(route, response.status().as_u16());
    set_content_length(&mut response);
    response
}

/// axum's `set_content_length` (routing/route.rs), which its top-level route applies to every
/// response: the exact body size, when known and not already set.
fn set_content_length(response: &mut Response) {
    use axum::body::HttpBody;
    if response.headers().contains_key(header::CONTENT_LENGTH) {
        return;
    }
    if let Some(size) = response.body().size_hint().exact() {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
}

/// The private router of `--metrics-listen`: `/metrics` and `/healthz` only.
pub fn metrics_app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .fallback(|| async { IngestError::NotFound })
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

// === CORS ===

fn origin_of(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
}

/// The `Access-Control-Allow-Origin` value for a response: the request's origin when the key
/// (or, while the key is unknown, any key) allows it.
fn allowed_origin(
    state: &AppState,
    origin: Option<&str>,
    key: Option<&KeyEntry>,
) -> Option<HeaderValue> {
    let origin = origin?;
    let allowed = match key {
        Some(k) => k.allows_origin(origin),
        None => state.settings.keys.any_allows_origin(origin),
    };
    allowed
        .then(|| HeaderValue::from_str(origin).ok())
        .flatten()
}

fn add_cors(response: &mut Response, allow: Option<HeaderValue>) {
    let h = response.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allow {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        // Lets the SDK read Retry-After on 429/503.
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after"),
        );
    }
}

async fn preflight(State(state): State<AppState>, req: Request) -> Response {
    let headers = req.headers();
    let Some(origin) = origin_of(headers) else {
        // Not a CORS preflight: say what the route accepts.
        return (
            StatusCode::NO_CONTENT,
            [(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"))],
        )
            .into_response();
    };
    let key = key_from_request(headers, req.uri().query())
        .ok()
        .flatten()
        .and_then(|k| state.settings.keys.lookup(k.key()));
    let Some(allow) = allowed_origin(&state, Some(origin), key) else {
        let mut r = IngestError::OriginNotAllowed(origin.to_owned()).into_response();
        add_cors(&mut r, None);
        return r;
    };
    let mut r = StatusCode::NO_CONTENT.into_response();
    add_cors(&mut r, Some(allow));
    let h = r.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from(PREFLIGHT_MAX_AGE_SECS),
    );
    r
}

// === ingest ===

async fn ingest(state: AppState, endpoint: Endpoint, req: Request) -> Response {
    debug_assert_eq!(req.method(), Method::POST);
    let (parts, body) = req.into_parts();
    let mut key: Option<&KeyEntry> = None;
    let mut body_read = false;
    let result = handle(&state, endpoint, &parts, body, &mut key, &mut body_read).await;
    let allow = allowed_origin(&state, origin_of(&parts.headers), key);
    let mut response = match result {
        Ok(()) => success(),
        Err(e) => {
            tracing::debug!(path = parts.uri.path(), status = e.status().as_u16(), code = e.code(), error = %e, "request not fully accepted");
            let mut r = e.into_response();
            if !body_read {
                // Refused before its body was read (401/403/413/415/429, a stalled or broken
                // body): hyper would otherwise keep the connection, waiting for a body nobody
                // reads — a declared 1 GB body would hold a connection slot forever.
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            r
        }
    };
    add_cors(&mut response, allow);
    response
}

fn authenticate<'a>(state: &'a AppState, key: &str) -> Result<&'a KeyEntry, IngestError> {
    state
        .settings
        .keys
        .lookup(key)
        .ok_or_else(|| IngestError::Unauthorized("unknown write key".into()))
}

fn rate_limited(state: &AppState, scope: &'static str, wait: std::time::Duration) -> IngestError {
    state.metrics.rate_limited(scope);
    IngestError::RateLimited {
        scope,
        retry_after: retry_after_secs(wait),
    }
}

fn check_key_rate(state: &AppState, key: &KeyEntry, now: Instant) -> Result<(), IngestError> {
    match &state.limits.key {
        Some(limiter) => limiter
            .check(&key.index(), now)
            .map_err(|wait| rate_limited(state, "key", wait)),
        None => Ok(()),
    }
}

fn check_origin(headers: &HeaderMap, key: &KeyEntry) -> Result<(), IngestError> {
    match origin_of(headers) {
        Some(origin) if !key.allows_origin(origin) => {
            Err(IngestError::OriginNotAllowed(origin.to_owned()))
        }
        _ => Ok(()),
    }
}

async fn handle<'a>(
    state: &'a AppState,
    endpoint: Endpoint,
    parts: &axum::http::request::Parts,
    body: Body,
    key_out: &mut Option<&'a KeyEntry>,
    body_read: &mut bool,
) -> Result<(), IngestError> {
    let headers = &parts.headers;
    let settings = &state.settings;
    let now = Instant::now();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(crate::server::current_peer)
        .map(|a| a.ip());
    let client = client_ip(headers, peer, settings.trust_proxy);

    // Per address first, before any work: this also slows down guessing keys.
    if let (Some(limiter), Some(ip)) = (&state.limits.address, client) {
        limiter
            .check(&address_key(ip), now)
            .map_err(|wait| rate_limited(state, "address", wait))?;
    }

    // Smuggling shapes are refused whoever sends them.
    crate::decode::check_framing(headers)?;

    // A key outside the body is checked before reading it.
    let outer = key_from_request(headers, parts.uri.query())
        .map_err(|e| IngestError::Unauthorized(e.to_string()))?;
    if let Some(k) = &outer {
        let entry = authenticate(state, k.key())?;
        *key_out = Some(entry);
        check_origin(headers, entry)?;
        check_key_rate(state, entry, now)?;
    }

    let (decoded, raw_len) = decode_body(headers, body, &settings.limits, body_read).await?;
    state.metrics.bytes_in(raw_len as u64);
    let Encoded {
        entry,
        lines,
        rejected,
        bots_dropped,
    } = encode(state, endpoint, headers, &decoded, key_out, now, client)?;
    // The lines own their bytes: the body need not live while the sink works.
    drop(decoded);

    let accepted = lines.len() + bots_dropped;
    if !lines.is_empty() {
        // Accepted/deduplicated counts are recorded by the writer, where they are decided.
        state
            .sink
            .append(entry.source(), lines)
            .await
            .map_err(|e| match e {
                SinkError::Closed => IngestError::Unavailable("shutting down".into()),
                other => IngestError::Unavailable(other.to_string()),
            })?;
    }
    if rejected.is_empty() {
        Ok(())
    } else {
        Err(IngestError::Rejected { accepted, rejected })
    }
}

/// A request's messages before they are split: a batch's raw elements, or the one message.
enum Items<'a> {
    Batch(line::Batch<'a>),
    One(Option<line::Message<'a>>),
}

impl Items<'_> {
    fn len(&self) -> usize {
        match self {
            Items::Batch(m) => m.len(),
            Items::One(_) => 1,
        }
    }
}

/// What `encode` made of a request's body.
struct Encoded<'a> {
    entry: &'a KeyEntry,
    lines: Lines,
    rejected: Vec<Rejection>,
    bots_dropped: usize,
}

/// The exact error for a body the line pipeline gave up on: the reference parser's.
fn body_error(bytes: &[u8]) -> IngestError {
    match parse_json(bytes) {
        Err(e) => e,
        Ok(Value::Object(_)) => IngestError::InvalidJson("unsupported JSON".into()),
        Ok(_) => IngestError::InvalidField {
            field: String::new(),
            message: "body must be a JSON object".into(),
        },
    }
}

/// Body key lookup, in-body write key, request-level fields, then each message through
/// `line::process` (validate, enrich, encode). Synchronous: nothing here waits.
fn encode<'a>(
    state: &'a AppState,
    endpoint: Endpoint,
    headers: &HeaderMap,
    decoded: &[u8],
    key_out: &mut Option<&'a KeyEntry>,
    now: Instant,
    client: Option<std::net::IpAddr>,
) -> Result<Encoded<'a>, IngestError> {
    let body = line::Body::new(decoded);
    encode_checked(
        state, &body, endpoint, headers, decoded, key_out, now, client,
    )
    .map_err(|e| {
        // The reference parser refuses a body before anything else is looked at: an error found
        // here (a key, a field) gives way to its verdict when it refuses this body.
        if body.is_ok() {
            e
        } else {
            body_error(decoded)
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn encode_checked<'a>(
    state: &'a AppState,
    body: &line::Body<'_>,
    endpoint: Endpoint,
    headers: &HeaderMap,
    decoded: &[u8],
    key_out: &mut Option<&'a KeyEntry>,
    now: Instant,
    client: Option<std::net::IpAddr>,
) -> Result<Encoded<'a>, IngestError> {
    let settings = &state.settings;
    let bad = |_: line::BodyError| body_error(decoded);
    let text = std::str::from_utf8(decoded).map_err(|_| body_error(decoded))?;
    let mut top = line::parse_body(text, body).map_err(bad)?;
    let field = |name: &'static str| Str(std::borrow::Cow::Borrowed(name));
    // Fields nothing below looks into still count for the body's nesting limit.
    for (k, v) in &top.fields {
        let looked_into = match endpoint {
            Endpoint::Batch => k.0 == "batch",
            Endpoint::Single(_) => k.0 != "writeKey",
        };
        if !looked_into {
            line::deep_check(*v, body).map_err(bad)?;
        }
    }

    let entry = match *key_out {
        Some(e) => e,
        None => {
            let key = match top.fields.get(&field("writeKey")) {
                Some(raw) => line::as_string(raw.get()).map_err(bad)?,
                None => None,
            };
            let key = match key {
                Some(k) if !k.is_empty() => k,
                _ => {
                    return Err(IngestError::Unauthorized(
                        "missing write key (Basic auth user, body writeKey or ?writeKey=)".into(),
                    ))
                }
            };
            let e = authenticate(state, &key)?;
            *key_out = Some(e);
            check_origin(headers, e)?;
            check_key_rate(state, e, now)?;
            e
        }
    };
    top.fields.remove(&field("writeKey"));

    // Split the body into messages plus what the request contributes to each.
    let is_null = |raw: line::RawVal<'_>| raw.get() == "null";
    let (mut items, batch_context, sent_at, implied) = match endpoint {
        Endpoint::Batch => {
            let Some(messages) = top.take_batch(body).map_err(bad)? else {
                return Err(IngestError::InvalidField {
                    field: "batch".into(),
                    message: "batch must be an array of messages".into(),
                });
            };
            if messages.len() > settings.limits.max_batch_messages {
                return Err(IngestError::PayloadTooLarge(format!(
                    "batch has {} messages, more than the {} allowed",
                    messages.len(),
                    settings.limits.max_batch_messages
                )));
            }
            let context = match top.take_context(body).map_err(bad)? {
                None => None,
                Some(Err(raw)) if is_null(raw) => None,
                Some(Ok(split)) => Some(split),
                Some(Err(_)) => {
                    return Err(IngestError::InvalidField {
                        field: "context".into(),
                        message: "context must be an object".into(),
                    })
                }
            };
            let sent_at = match top.fields.remove(&field("sentAt")) {
                None => None,
                Some(raw) if is_null(raw) => None,
                Some(raw) => match line::as_string(raw.get()).map_err(bad)? {
                    Some(s) if parse_timestamp(&s).is_some() => Some(raw),
                    _ => {
                        return Err(IngestError::InvalidField {
                            field: "sentAt".into(),
                            message: "sentAt must be an ISO-8601 date-time with an offset".into(),
                        })
                    }
                },
            };
            (Items::Batch(messages), context, sent_at, None)
        }
        Endpoint::Single(t) => (Items::One(Some(top.into_message())), None, None, Some(t)),
    };

    let req = line::Request::new(RequestInputs {
        received_at: OffsetDateTime::now_utc(),
        sent_at,
        batch_context,
        client_ip: client,
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        source: entry.source(),
        keep_ip: settings.keep_ip,
        trust_client_ip: settings.trust_proxy,
        body,
    })
    .map_err(bad)?;

    let mut lines = Lines::with_capacity(items.len(), req.lines_room(items.len(), decoded.len()));
    let mut rejected: Vec<Rejection> = Vec::new();
    let mut bots_dropped = 0;
    // Each message's fields are built only when its turn comes, so a 1,000-message batch holds
    // one message's fields at a time, not all of them (peak RSS); the one-pass check keeps only
    // their spans (16 bytes per member, see `line::top_level`).
    let mut scratch = line::Scratch::default();
    for index in 0..items.len() {
        let item = match &mut items {
            Items::Batch(messages) => messages.message(index, body, &mut scratch).map_err(bad)?,
            Items::One(message) => Ok(message.take().unwrap_or_default()),
        };
        let result = match item {
            Ok(message) => line::process(
                message,
                implied,
                settings.limits.max_message_bytes,
                &req,
                &mut scratch,
                &mut lines,
            )
            .map_err(bad)?,
            Err(v) => Err(v),
        };
        match result {
            Ok(written) => {
                if written.bot {
                    state.metrics.bot(settings.drop_bots);
                    if settings.drop_bots {
                        // Acknowledged (a bot must not be told to retry), never written.
                        lines.discard();
                        bots_dropped += 1;
                        continue;
                    }
                }
                lines.push();
            }
            Err(violation) => {
                lines.discard();
                state.metrics.rejected(violation.rule);
                rejected.push(violation.at(index));
            }
        }
    }
    Ok(Encoded {
        entry,
        lines,
        rejected,
        bots_dropped,
    })
}

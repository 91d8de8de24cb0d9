//! Footfall ingest library: decode → validate → enrich → dedupe → sink, behind an axum router.
//!
//! One module per job; `router::app` ties them together and `server` puts it on the network.
#![forbid(unsafe_code)]

pub mod auth;
pub mod bots;
pub mod config;
pub mod decode;
pub mod dedupe;
pub mod enrich;
pub mod error;
pub mod line;
pub mod metrics;
pub mod plain_json;
pub mod ratelimit;
pub mod router;
pub mod server;
pub mod sink;
pub mod static_files;
pub mod validate;

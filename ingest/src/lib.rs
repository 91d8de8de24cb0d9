//! Footfall ingest library: decode → validate → enrich → dedupe → sink, behind an axum router.

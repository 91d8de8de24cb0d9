//! `footfall-ingest` binary entry point.
fn main() {}

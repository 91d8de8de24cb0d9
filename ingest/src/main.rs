//! `footfall-ingest` binary: parse and validate the configuration, set up logging, run.
//!
//! Bad configuration exits with status 2 and a one-line reason on stderr; a start-up failure
//! (data directory, listen address) exits 1; a graceful shutdown exits 0.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use footfall_ingest::config::{Config, LogFormat};
use footfall_ingest::server;
use tracing_subscriber::EnvFilter;

// The system allocator. mimalloc was tried (commit 65d6f2c): fewer user-space instructions under
// callgrind, but no measurable throughput gain on this machine (wrk, alternating runs) and far
// more memory held: 19 MiB idle and 264 MiB after 1,000-message batches on 64 connections, against
// 7 MiB and 128 MiB with glibc (bench/README.md, "Memory").

fn main() -> ExitCode {
    let config = match Config::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help / --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("footfall-ingest: {}", first.trim_start_matches("error: "));
            return ExitCode::from(2);
        }
    };
    let settings = match config.validate() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("footfall-ingest: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(settings.log_format);

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("footfall-ingest: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(server::run(settings, server::shutdown_signal()));
    let _ = std::io::stdout().flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, as for bad configuration (not also a log record saying the same).
            eprintln!("footfall-ingest: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}

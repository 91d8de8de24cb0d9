//! Footfall browser SDK: the rules as a pure Rust core (`core`, tested natively) compiled to a
//! small wasm; the page I/O (storage, network, timers, listeners) lives in the JS edges under
//! sdk/js/. See sdk/README.md for the architecture.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod core;

#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
mod runtime;
#[cfg(all(target_arch = "wasm32", not(feature = "std")))]
mod wasm;

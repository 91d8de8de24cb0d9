//! Footfall browser SDK: a pure core (`core`, tested natively) and thin browser modules (wasm32
//! only) that connect it to the page. See sdk/README.md for the architecture.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod core;

#[cfg(target_arch = "wasm32")]
pub mod browser;

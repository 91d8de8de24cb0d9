//! The SDK's rules, as pure Rust: no `web-sys`/`js-sys`, time and randomness passed in, so every
//! rule is tested natively in milliseconds (`cargo test -p footfall-sdk`). The browser modules
//! only translate between the page and these functions.

pub mod backoff;
pub mod campaign;
pub mod event;
pub mod ids;
pub mod json;
pub mod machine;
pub mod persist;
pub mod queue;
pub mod session;
pub mod time;

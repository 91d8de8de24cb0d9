//! Footfall browser SDK: a pure core (`core`) and thin browser modules (wasm32 only).

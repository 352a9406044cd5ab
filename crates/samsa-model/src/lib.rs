//! Samsa's vocabulary: ids, offsets, epochs and the record batch v2 byte format.
//!
//! Invariant: this crate performs no I/O and knows nothing about sockets, files,
//! async runtimes or the Kafka request/response schemas. It only describes values
//! and bytes, so every other crate can depend on it.

pub mod batch;
pub mod compression;
pub mod control;
pub mod ids;
mod varint;

pub use ids::*;

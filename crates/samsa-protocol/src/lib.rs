//! Kafka wire protocol for samsa: frame limits, request headers, bounded request
//! decoding, the API version table and Kafka error codes.
//!
//! Invariant: this crate knows nothing about storage, metadata or networking
//! runtimes; it turns bytes into typed requests and typed responses into bytes.
//! Every length read from the wire is checked against the bytes actually present
//! before anything is allocated (see [`guard`]).

pub mod codec;
pub mod guard;
pub mod versions;

//! The Kafka-protocol broker: listens on TCP, reads size-capped frames, decodes
//! them through `samsa-protocol`, and dispatches each request to one handler per
//! API (`handlers/<api>.rs`) over the metadata image and the partition logs.
//!
//! Invariant: nothing depends on this crate except the `samsa` binary. Handlers
//! never decode individual records on the produce or fetch path: batches are
//! validated by `samsa-model` and stored/served as bytes by `samsa-storage`.

pub mod alter_isr;
pub mod authz;
pub mod broker;
pub mod cluster;
pub mod connections;
pub(crate) mod coordinator_runtime;
pub mod cordon;
pub mod data_dir;
pub mod dir_failure;
pub mod dir_report;
pub mod disk;
pub mod errors;
pub mod fetch_session;
pub mod groups;
pub mod handlers;
pub mod http;
mod image_diff;
pub mod log_dirs;
pub mod log_mover;
pub mod mapped;
pub mod memory;
pub mod partition;
pub mod purgatory;
pub mod replica;
pub mod retention;
pub mod sasl;
pub mod server;
pub mod settings;
#[cfg(test)]
mod test_support;
pub mod tls;
pub mod transactions;

pub use broker::Broker;
pub use server::{serve, ServeError};
pub use settings::{BrokerSettings, SettingsError};

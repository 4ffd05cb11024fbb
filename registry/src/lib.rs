//! Our OCI registry: the Distribution v1.1 HTTP API, blob storage behind
//! one small driver trait, upload sessions that survive restarts, and
//! token auth against project roles. Knows projects and roles (`api`), not
//! builds.

pub mod error;
pub mod meta;
pub mod names;
pub mod ranges;
pub mod routes;
pub mod storage;
pub mod token;
pub mod uploads;
pub use routes::{Registry, RegistryConfig};

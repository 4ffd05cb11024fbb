//! Our OCI registry: the Distribution v1.1 HTTP API, blob storage behind
//! one small driver trait, upload sessions that survive restarts, and
//! token auth against project roles, and online garbage collection. Knows
//! projects and roles (`api`); of builds and deployments only the images
//! their objects name (what collection must keep), never how they run.

pub mod error;
pub mod gc;
pub mod meta;
pub mod names;
pub mod ranges;
pub mod routes;
pub mod storage;
pub mod token;
pub mod uploads;
pub use routes::{Registry, RegistryConfig};

//! The PodSpace object model, its validation, the metadata store and the
//! identity model (users, tokens, roles).
//!
//! This crate knows nobody: no HTTP, no registry, no builds. Everything above
//! it talks to the store through [`store::Store`] and reacts to changes by
//! reading the store's durable event log.

pub mod auth;
pub mod defaults;
pub mod fault;
pub mod imagestreams;
pub mod kinds;
pub mod meta;
pub mod model;
pub mod nesting;
pub mod projects;
pub mod selector;
pub mod status;
pub mod store;
pub mod validation;

pub use kinds::{KindInfo, KINDS};
pub use meta::{Object, ObjectMeta};
pub use status::{Reason, Status};

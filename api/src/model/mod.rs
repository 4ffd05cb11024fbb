//! Typed shapes of the kinds, as serde structs that keep every field they
//! do not name (`#[serde(flatten)] extra`), so reading and writing one back
//! loses nothing. Code that reasons about a kind's fields goes through
//! these rather than walking JSON by string paths.

pub mod imagestream;

pub use imagestream::{ImageStreamSpec, ObjectReference, TagReference, TagReferencePolicy};

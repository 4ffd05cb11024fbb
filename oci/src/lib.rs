//! Pure OCI data, shared by the registry, image import and the build
//! node: digests (with a SHA-256 whose state can be saved between
//! requests), manifest parsing and what a manifest references, and the
//! image metadata a config blob carries. No I/O, no async, no HTTP: the
//! crate's invariant is that it can be fuzzed and unit-tested alone.

pub mod digest;
pub mod manifest;

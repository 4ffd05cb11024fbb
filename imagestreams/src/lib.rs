//! Importing images from external registries into image streams: a spec
//! tag `from: DockerImage` is imported when its generation is newer than
//! what the stream's history shows, and scheduled tags are re-checked
//! periodically (the history grows only when the digest changed).

pub mod controller;
pub mod remote;

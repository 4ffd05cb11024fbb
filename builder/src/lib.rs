//! Builds: turning a BuildConfig into a numbered Build (`instantiate`),
//! the triggers that do it, the controller that queues builds by run
//! policy and prunes history, and the build node that runs them on a
//! container engine.

pub mod controller;
pub mod instantiate;
pub mod node;
pub mod phase;
pub mod policy;
pub mod triggers;

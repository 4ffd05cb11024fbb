//! Builds: turning a BuildConfig into a numbered Build (`instantiate`),
//! the triggers that do it, the controller that queues builds by run
//! policy and prunes history. The node that runs builds is `podspace-node`.

pub mod bookkeeping;
pub mod controller;
pub mod instantiate;
pub mod leases;
pub mod phase;
pub mod policy;
pub mod protocol;
pub mod prune;
pub mod triggers;

//! Builds. So far: turning a BuildConfig into a numbered Build request
//! (`instantiate`) and the triggers that do it when an image changes or a
//! config appears. Running builds on nodes comes with the builds issue.

pub mod instantiate;
pub mod triggers;

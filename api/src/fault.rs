//! Named crash points for the tests that prove a write is atomic: when the
//! environment variable `PODSPACE_FAULT` names a point, the process aborts
//! there (as a power cut or a kill would stop it), nothing unwound. Unset,
//! a point costs one load of a cached value.

use std::sync::OnceLock;

fn armed() -> Option<&'static str> {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    FAULT
        .get_or_init(|| {
            std::env::var("PODSPACE_FAULT")
                .ok()
                .filter(|v| !v.is_empty())
        })
        .as_deref()
}

pub fn point(name: &str) {
    if armed() == Some(name) {
        eprintln!("PODSPACE_FAULT: aborting at {name}");
        std::process::abort();
    }
}

/// A panic injected once at a named point (`PODSPACE_PANIC_ONCE=<point>`):
/// for the tests that prove a panicking task is restarted and loses
/// nothing. Only the first pass through the point panics.
pub fn panic_once(name: &str) {
    static PANIC: OnceLock<Option<String>> = OnceLock::new();
    static FIRED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let armed = PANIC.get_or_init(|| {
        std::env::var("PODSPACE_PANIC_ONCE")
            .ok()
            .filter(|v| !v.is_empty())
    });
    if armed.as_deref() == Some(name) && !FIRED.swap(true, std::sync::atomic::Ordering::SeqCst) {
        panic!("PODSPACE_PANIC_ONCE: panicking at {name}");
    }
}

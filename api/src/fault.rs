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

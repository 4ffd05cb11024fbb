//! Build phases (builds.md §5): which are terminal, which moves are legal,
//! and what entering a terminal phase records.

use chrono::{DateTime, SecondsFormat, Utc};
use podspace_api::model::Build;

pub use podspace_api::model::build::{CANCELLED, COMPLETE, ERROR, FAILED, NEW, PENDING, RUNNING};

pub fn phase(build: &Build) -> &str {
    build.status.phase()
}

pub fn is_terminal(phase: &str) -> bool {
    matches!(phase, COMPLETE | FAILED | ERROR | CANCELLED)
}

pub fn cancel_requested(build: &Build) -> bool {
    build.status.cancelled
}

/// Whether a build may move from `from` to `to`.
pub fn legal(from: &str, to: &str) -> bool {
    if from == to {
        return true;
    }
    match from {
        NEW => true,
        PENDING => to != NEW,
        RUNNING => is_terminal(to),
        _ => false,
    }
}

pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Moves `build` to `to` with `reason`/`message`; on a terminal phase also
/// sets the start (if missing), completion and duration. Returns false if
/// the move is not legal (the build is left alone).
pub fn set(build: &mut Build, to: &str, reason: &str, message: &str) -> bool {
    if !legal(phase(build), to) {
        return false;
    }
    let now = Utc::now();
    let status = &mut build.status;
    status.phase = to.into();
    status.reason = reason.into();
    status.message = message.into();
    if to == RUNNING && status.start_timestamp.is_none() {
        status.start_timestamp = Some(timestamp(now));
    }
    if is_terminal(to) {
        let started = status
            .start_timestamp
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        let started = match started {
            Some(t) => t,
            None => {
                status.start_timestamp = Some(timestamp(now));
                now
            }
        };
        status.completion_timestamp = Some(timestamp(now));
        let nanos = (now - started).num_nanoseconds().unwrap_or(0).max(0);
        status.duration = Some(nanos);
    }
    true
}

pub fn cancel(build: &mut Build) -> bool {
    if is_terminal(phase(build)) {
        return false;
    }
    let done = set(
        build,
        CANCELLED,
        "CancelledBuild",
        "The build was cancelled by the user.",
    );
    if done {
        build.status.cancelled = true;
    }
    done
}

/// The build number from its annotation; a build without one sorts first
/// (builds.md: "treat it as oldest").
pub fn number(build: &Build) -> i64 {
    build
        .metadata
        .annotations
        .get(crate::instantiate::BUILD_NUMBER)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use podspace_api::model::Resource;

    #[test]
    fn terminal_phases_are_final() {
        let mut b = Build::named("p", "b-1");
        assert!(set(&mut b, RUNNING, "", ""));
        assert!(b.status.start_timestamp.is_some());
        assert!(
            !set(&mut b, PENDING, "", ""),
            "Running → Pending is illegal"
        );
        assert!(set(&mut b, FAILED, "DockerBuildFailed", "boom"));
        assert_eq!(b.status.reason, "DockerBuildFailed");
        assert!(b.status.duration.is_some());
        assert!(!set(&mut b, COMPLETE, "", ""));
        assert!(!cancel(&mut b));
        assert_eq!(phase(&b), FAILED);
    }

    #[test]
    fn cancel_sets_flag_and_reason() {
        let mut b = Build::named("p", "b-1");
        b.status.phase = PENDING.into();
        assert!(cancel(&mut b));
        assert_eq!(phase(&b), CANCELLED);
        assert_eq!(b.status.reason, "CancelledBuild");
        assert!(cancel_requested(&b));
    }
}

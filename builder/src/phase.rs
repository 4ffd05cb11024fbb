//! Build phases (builds.md §5): which are terminal, which moves are legal,
//! and what entering a terminal phase records.

use chrono::{DateTime, SecondsFormat, Utc};
use podspace_api::Object;
use serde_json::{json, Value};

pub const NEW: &str = "New";
pub const PENDING: &str = "Pending";
pub const RUNNING: &str = "Running";
pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const ERROR: &str = "Error";
pub const CANCELLED: &str = "Cancelled";

pub fn phase(build: &Object) -> &str {
    build
        .body
        .get("status")
        .and_then(|s| s.get("phase"))
        .and_then(Value::as_str)
        .unwrap_or(NEW)
}

pub fn is_terminal(phase: &str) -> bool {
    matches!(phase, COMPLETE | FAILED | ERROR | CANCELLED)
}

pub fn cancel_requested(build: &Object) -> bool {
    build.body.get("status").and_then(|s| s.get("cancelled")) == Some(&json!(true))
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
pub fn set(build: &mut Object, to: &str, reason: &str, message: &str) -> bool {
    let from = phase(build).to_string();
    if !legal(&from, to) {
        return false;
    }
    let now = Utc::now();
    let status = build.body.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    status["phase"] = json!(to);
    for (key, value) in [("reason", reason), ("message", message)] {
        match (value.is_empty(), status.as_object_mut()) {
            (true, Some(s)) => {
                s.remove(key);
            }
            (false, _) => status[key] = json!(value),
            _ => {}
        }
    }
    if to == RUNNING && status.get("startTimestamp").is_none() {
        status["startTimestamp"] = json!(timestamp(now));
    }
    if is_terminal(to) {
        let started = status
            .get("startTimestamp")
            .and_then(Value::as_str)
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        let started = match started {
            Some(t) => t,
            None => {
                status["startTimestamp"] = json!(timestamp(now));
                now
            }
        };
        status["completionTimestamp"] = json!(timestamp(now));
        let nanos = (now - started).num_nanoseconds().unwrap_or(0).max(0);
        status["duration"] = json!(nanos);
    }
    true
}

pub fn cancel(build: &mut Object) -> bool {
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
        build.body["status"]["cancelled"] = json!(true);
    }
    done
}

/// The build number from its annotation; a build without one sorts first
/// (builds.md: "treat it as oldest").
pub fn number(build: &Object) -> i64 {
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

    #[test]
    fn terminal_phases_are_final() {
        let mut b = Object::new("Build", "p", "b-1").with("status", json!({"phase": "New"}));
        assert!(set(&mut b, RUNNING, "", ""));
        assert!(b.body["status"]["startTimestamp"].is_string());
        assert!(
            !set(&mut b, PENDING, "", ""),
            "Running → Pending is illegal"
        );
        assert!(set(&mut b, FAILED, "DockerBuildFailed", "boom"));
        assert_eq!(b.body["status"]["reason"], "DockerBuildFailed");
        assert!(b.body["status"]["duration"].is_i64());
        assert!(!set(&mut b, COMPLETE, "", ""));
        assert!(!cancel(&mut b));
        assert_eq!(phase(&b), FAILED);
    }

    #[test]
    fn cancel_sets_flag_and_reason() {
        let mut b = Object::new("Build", "p", "b-1").with("status", json!({"phase": "Pending"}));
        assert!(cancel(&mut b));
        assert_eq!(phase(&b), CANCELLED);
        assert_eq!(b.body["status"]["reason"], "CancelledBuild");
        assert!(cancel_requested(&b));
    }
}

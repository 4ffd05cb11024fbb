//! Run policies (builds.md §6): of one BuildConfig's builds, which New
//! builds may start now and which queued ones SerialLatestOnly cancels.
//! Pure: the controller applies the decision.

use podspace_api::model::Build;

use crate::instantiate::START_POLICY;
use crate::phase::{self, NEW, PENDING, RUNNING};

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Builds to move New → Pending (offered to the nodes).
    pub start: Vec<String>,
    /// Queued builds to cancel.
    pub cancel: Vec<String>,
}

fn policy(build: &Build) -> &str {
    build
        .metadata
        .labels
        .get(START_POLICY)
        .map(String::as_str)
        .unwrap_or("Serial")
}

fn is_serial(build: &Build) -> bool {
    policy(build) != "Parallel"
}

pub fn decide(builds: &[Build]) -> Decision {
    let mut decision = Decision::default();
    let mut queue: Vec<&Build> = builds
        .iter()
        .filter(|b| phase::phase(b) == NEW && !phase::cancel_requested(b))
        .collect();
    queue.sort_by_key(|b| phase::number(b));
    let mut active: Vec<&Build> = builds
        .iter()
        .filter(|b| matches!(phase::phase(b), PENDING | RUNNING))
        .collect();

    // SerialLatestOnly: the newest such queued build cancels every queued
    // or pending build older than itself (running ones are left alone).
    if let Some(latest) = queue
        .iter()
        .rev()
        .find(|b| policy(b) == "SerialLatestOnly")
        .map(|b| phase::number(b))
    {
        let older = |b: &Build| phase::number(b) < latest;
        for b in queue.iter().filter(|b| older(b)) {
            decision.cancel.push(b.metadata.name.clone());
        }
        for b in active
            .iter()
            .filter(|b| phase::phase(b) == PENDING && older(b))
        {
            decision.cancel.push(b.metadata.name.clone());
        }
        queue.retain(|b| !older(b));
        active.retain(|b| !(phase::phase(b) == PENDING && older(b)));
    }

    let Some(head) = queue.first() else {
        return decision;
    };
    if is_serial(head) {
        if active.is_empty() {
            decision.start.push(head.metadata.name.clone());
        }
    } else if !active.iter().any(|b| is_serial(b)) {
        decision.start.extend(
            queue
                .iter()
                .take_while(|b| !is_serial(b))
                .map(|b| b.metadata.name.clone()),
        );
    }
    decision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instantiate::BUILD_NUMBER;
    use podspace_api::model::Resource;

    fn build(n: i64, policy: &str, phase: &str) -> Build {
        let mut b = Build::named("p", &format!("bc-{n}"));
        b.status.phase = phase.into();
        b.metadata
            .annotations
            .insert(BUILD_NUMBER.into(), n.to_string());
        b.metadata.labels.insert(START_POLICY.into(), policy.into());
        b
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn serial_runs_one_at_a_time_oldest_first() {
        let d = decide(&[build(2, "Serial", NEW), build(1, "Serial", NEW)]);
        assert_eq!(d.start, names(&["bc-1"]));
        let d = decide(&[build(1, "Serial", RUNNING), build(2, "Serial", NEW)]);
        assert!(d.start.is_empty());
        let d = decide(&[build(1, "Serial", "Complete"), build(2, "Serial", NEW)]);
        assert_eq!(d.start, names(&["bc-2"]));
    }

    #[test]
    fn latest_only_cancels_older_queued_but_not_running() {
        let d = decide(&[
            build(1, "SerialLatestOnly", RUNNING),
            build(2, "SerialLatestOnly", NEW),
            build(3, "SerialLatestOnly", NEW),
            build(4, "SerialLatestOnly", NEW),
        ]);
        assert_eq!(d.cancel, names(&["bc-2", "bc-3"]));
        assert!(d.start.is_empty(), "waits for the running build");
        let d = decide(&[
            build(1, "SerialLatestOnly", PENDING),
            build(2, "SerialLatestOnly", NEW),
        ]);
        assert_eq!(d.cancel, names(&["bc-1"]));
        assert_eq!(d.start, names(&["bc-2"]));
    }

    #[test]
    fn parallel_starts_together_but_waits_for_serial() {
        let d = decide(&[
            build(1, "Parallel", RUNNING),
            build(2, "Parallel", NEW),
            build(3, "Parallel", NEW),
            build(4, "Serial", NEW),
            build(5, "Parallel", NEW),
        ]);
        assert_eq!(d.start, names(&["bc-2", "bc-3"]));
        let d = decide(&[build(1, "Serial", RUNNING), build(2, "Parallel", NEW)]);
        assert!(d.start.is_empty());
        let d = decide(&[build(1, "Parallel", RUNNING), build(2, "Serial", NEW)]);
        assert!(
            d.start.is_empty(),
            "Parallel → Serial waits for running builds"
        );
    }

    #[test]
    fn cancelled_queue_entries_are_skipped() {
        let mut b1 = build(1, "Serial", NEW);
        b1.status.cancelled = true;
        let d = decide(&[b1, build(2, "Serial", NEW)]);
        assert_eq!(d.start, names(&["bc-2"]));
    }
}

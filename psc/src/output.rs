//! Tables like `oc get`, and the other `-o` formats.

use podspace_api::KindInfo;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Wide,
    Json,
    Yaml,
    Name,
}

pub fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

/// Kubernetes-style short age: `42s`, `5m`, `3h`, `12d`.
pub fn age(timestamp: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(timestamp) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// `5 minutes ago`, for describe.
pub fn ago(timestamp: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(timestamp) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    let (n, unit) = match secs {
        0..=59 => (secs, "second"),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        86_400..=1_209_599 => (secs / 86_400, "day"),
        1_209_600..=5_183_999 => (secs / 604_800, "week"),
        _ => (secs / 2_592_000, "month"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

fn join(values: impl Iterator<Item = String>) -> String {
    values
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

fn strs(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn labels(v: &Value) -> String {
    let text = v
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            join(
                m.iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())),
            )
        })
        .unwrap_or_default();
    or_none(text)
}

/// Header and row cells for a kind.
fn columns(kind: &KindInfo, wide: bool) -> Vec<&'static str> {
    let mut cols = match kind.kind {
        "Project" => vec!["NAME", "DISPLAY NAME", "STATUS"],
        "ImageStream" => vec!["NAME", "IMAGE REPOSITORY", "TAGS", "UPDATED"],
        "BuildConfig" => vec!["NAME", "TYPE", "FROM", "LATEST"],
        "Build" => vec!["NAME", "TYPE", "FROM", "STATUS", "STARTED", "DURATION"],
        "DeploymentConfig" => vec!["NAME", "REVISION", "DESIRED", "CURRENT", "TRIGGERED BY"],
        "RoleBinding" | "ClusterRoleBinding" => vec!["NAME", "ROLE", "USERS", "SERVICE ACCOUNTS"],
        "User" => vec!["NAME", "UID", "FULL NAME"],
        "ServiceAccount" => vec!["NAME", "AGE"],
        "ImageStreamTag" => vec!["NAME", "IMAGE REFERENCE", "UPDATED"],
        "ReplicationController" => vec!["NAME", "DESIRED", "CURRENT", "AGE"],
        _ => vec!["NAME", "AGE"],
    };
    if wide {
        cols.push("LABELS");
    }
    cols
}

fn cells(kind: &KindInfo, v: &Value, wide: bool) -> Vec<String> {
    let name = s(v, "/metadata/name").to_string();
    let created = s(v, "/metadata/creationTimestamp");
    let mut row = match kind.kind {
        "Project" => vec![
            name,
            s(v, "/metadata/annotations/openshift.io~1display-name").to_string(),
            s(v, "/status/phase").to_string(),
        ],
        "ImageStream" => {
            let tags = v
                .pointer("/status/tags")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let newest = tags
                .iter()
                .filter_map(|t| t.pointer("/items/0/created").and_then(Value::as_str))
                .max()
                .map(age)
                .unwrap_or_default();
            vec![
                name,
                s(v, "/status/dockerImageRepository").to_string(),
                join(tags.iter().map(|t| s(t, "/tag").to_string())),
                newest,
            ]
        }
        "BuildConfig" => vec![
            name,
            strategy_type(v),
            build_from(v),
            v.pointer("/status/lastVersion")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .to_string(),
        ],
        "Build" => {
            let started = s(v, "/status/startTimestamp");
            vec![
                name,
                strategy_type(v),
                build_from(v),
                build_status(v),
                if started.is_empty() {
                    String::new()
                } else {
                    ago(started)
                },
                build_duration(v).map(duration).unwrap_or_default(),
            ]
        }
        "DeploymentConfig" => {
            let triggers = v
                .pointer("/spec/triggers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let by = join(triggers.iter().map(|t| match s(t, "/type") {
                "ConfigChange" => "config".to_string(),
                "ImageChange" => format!("image({})", s(t, "/imageChangeParams/from/name")),
                other => other.to_string(),
            }));
            vec![
                name,
                v.pointer("/status/latestVersion")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    .to_string(),
                v.pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    .to_string(),
                v.pointer("/status/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    .to_string(),
                by,
            ]
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let subjects = v
                .pointer("/subjects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let users = join(
                subjects
                    .iter()
                    .filter(|x| s(x, "/kind") == "User")
                    .map(|x| s(x, "/name").to_string())
                    .chain(
                        strs(v, "/userNames")
                            .into_iter()
                            .filter(|u| !u.starts_with("system:serviceaccount:")),
                    ),
            );
            let sas = join(
                subjects
                    .iter()
                    .filter(|x| s(x, "/kind") == "ServiceAccount")
                    .map(|x| {
                        let ns = s(x, "/namespace");
                        if ns.is_empty() {
                            s(x, "/name").to_string()
                        } else {
                            format!("{ns}/{}", s(x, "/name"))
                        }
                    }),
            );
            vec![name, s(v, "/roleRef/name").to_string(), users, sas]
        }
        "User" => vec![
            name,
            s(v, "/metadata/uid").to_string(),
            s(v, "/fullName").to_string(),
        ],
        "ReplicationController" => vec![
            name,
            v.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .to_string(),
            v.pointer("/status/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .to_string(),
            age(created),
        ],
        _ => vec![name, age(created)],
    };
    if wide {
        row.push(labels(v));
    }
    row
}

/// `Docker`, `Source`, … from the strategy's type, or the one sub-field set.
pub fn strategy_type(v: &Value) -> String {
    let Some(strategy) = v.pointer("/spec/strategy") else {
        return String::new();
    };
    if let Some(t) = strategy.get("type").and_then(Value::as_str) {
        return t.to_string();
    }
    [
        ("dockerStrategy", "Docker"),
        ("sourceStrategy", "Source"),
        ("customStrategy", "Custom"),
        ("jenkinsPipelineStrategy", "JenkinsPipeline"),
    ]
    .iter()
    .find(|(field, _)| strategy.get(field).is_some_and(|x| !x.is_null()))
    .map(|(_, name)| name.to_string())
    .unwrap_or_default()
}

/// oc's FROM column: the kind of source, with the first 7 characters of
/// the built commit when there is one (`Git@1a2b3c4`, `Binary`).
pub fn build_from(v: &Value) -> String {
    let src = v.pointer("/spec/source");
    let has = |field: &str| src.and_then(|x| x.get(field)).is_some_and(|x| !x.is_null());
    let (from, with_revision) = if has("binary") {
        ("Binary", true)
    } else if has("dockerfile") && has("git") {
        ("Dockerfile,Git", true)
    } else if has("dockerfile") {
        ("Dockerfile", false)
    } else if has("git") {
        ("Git", true)
    } else {
        (src.map_or("", |x| s(x, "/type")), false)
    };
    let commit = match s(v, "/spec/revision/git/commit") {
        "" => s(v, "/status/revision/git/commit"),
        c => c,
    };
    if with_revision && !commit.is_empty() {
        format!("{from}@{}", commit.chars().take(7).collect::<String>())
    } else {
        from.to_string()
    }
}

/// The phase, and the reason when there is one: `Failed (DockerBuildFailed)`.
pub fn build_status(v: &Value) -> String {
    match (s(v, "/status/phase"), s(v, "/status/reason")) {
        (phase, "") => phase.to_string(),
        (phase, reason) => format!("{phase} ({reason})"),
    }
}

/// A finished build's duration in whole seconds (`status.duration` is in
/// nanoseconds).
pub fn build_duration(v: &Value) -> Option<i64> {
    let ns = v.pointer("/status/duration").and_then(Value::as_i64)?;
    (ns > 0).then(|| (ns + 500_000_000) / 1_000_000_000)
}

/// Go's duration format, as oc prints it: `12s`, `1m2s`, `1h0m5s`.
pub fn duration(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// Prints items as an aligned table (three spaces between columns, as kubectl).
pub fn table(kind: &KindInfo, items: &[Value], wide: bool, with_namespace: bool) -> String {
    let mut rows: Vec<Vec<String>> = Vec::with_capacity(items.len() + 1);
    let mut header: Vec<String> = columns(kind, wide)
        .into_iter()
        .map(str::to_string)
        .collect();
    if with_namespace {
        header.insert(0, "NAMESPACE".into());
    }
    rows.push(header);
    for item in items {
        let mut row = cells(kind, item, wide);
        if with_namespace {
            row.insert(0, s(item, "/metadata/namespace").to_string());
        }
        rows.push(row);
    }
    let ncols = rows[0].len();
    let widths: Vec<usize> = (0..ncols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |x| x.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == ncols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub fn yaml(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap_or_default()
}

pub fn json(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_columns() {
        let git = serde_json::json!({
            "spec": {"source": {"type": "Git", "git": {"uri": "https://x/shop"}},
                     "strategy": {"dockerStrategy": {}},
                     "revision": {"git": {"commit": "0123456789abcdef"}}},
            "status": {"phase": "Failed", "reason": "DockerBuildFailed", "duration": 72_400_000_000i64}
        });
        assert_eq!(build_from(&git), "Git@0123456");
        assert_eq!(strategy_type(&git), "Docker");
        assert_eq!(build_status(&git), "Failed (DockerBuildFailed)");
        assert_eq!(build_duration(&git).map(duration).as_deref(), Some("1m12s"));
        let binary = serde_json::json!({
            "spec": {"source": {"type": "Binary", "binary": {}, "git": null}},
            "status": {"phase": "Running"}
        });
        assert_eq!(build_from(&binary), "Binary");
        assert_eq!(build_status(&binary), "Running");
        assert_eq!(build_duration(&binary), None);
        let plain = serde_json::json!({"spec": {"source": {"git": {"uri": "u"}}}});
        assert_eq!(build_from(&plain), "Git");
        assert_eq!(duration(12), "12s");
        assert_eq!(duration(3605), "1h0m5s");
    }

    #[test]
    fn tables_align() {
        let kind = &podspace_api::kinds::PROJECT;
        let items = vec![
            serde_json::json!({"metadata": {"name": "a", "annotations": {"openshift.io/display-name": "Alpha"}}, "status": {"phase": "Active"}}),
            serde_json::json!({"metadata": {"name": "longer-name"}, "status": {"phase": "Active"}}),
        ];
        let t = table(kind, &items, false, false);
        assert_eq!(
            t,
            "NAME          DISPLAY NAME   STATUS\na             Alpha          Active\nlonger-name                  Active\n"
        );
    }
}

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
            s(v, "/spec/strategy/type").to_string(),
            source_type(v, "/spec/source"),
            v.pointer("/status/lastVersion")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .to_string(),
        ],
        "Build" => {
            let started = s(v, "/status/startTimestamp");
            let duration = v
                .pointer("/status/duration")
                .and_then(Value::as_i64)
                .map(|ns| format!("{}s", ns / 1_000_000_000))
                .unwrap_or_default();
            vec![
                name,
                s(v, "/spec/strategy/type").to_string(),
                source_type(v, "/spec/source"),
                s(v, "/status/phase").to_string(),
                if started.is_empty() {
                    String::new()
                } else {
                    ago(started)
                },
                duration,
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

fn source_type(v: &Value, ptr: &str) -> String {
    let Some(src) = v.pointer(ptr) else {
        return String::new();
    };
    if let Some(t) = src.get("type").and_then(Value::as_str) {
        return t.to_string();
    }
    for (field, name) in [
        ("git", "Git"),
        ("binary", "Binary"),
        ("dockerfile", "Dockerfile"),
    ] {
        if src.get(field).is_some() {
            return name.into();
        }
    }
    String::new()
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
    fn tables_align() {
        let kind = podspace_api::kinds::by_kind("Project").unwrap();
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

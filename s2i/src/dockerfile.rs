//! The Dockerfile that performs an S2I build on a container engine (the
//! OpenShift 4 way, and what `--as-dockerfile` writes): the builder image,
//! the build's labels and env, the source (and shipped scripts, and for an
//! incremental build the previous image's saved artifacts) copied to the
//! destination owned by the assemble user, `assemble` run as that user
//! with group 0 (as OpenShift runs containers; an explicit group also
//! spares the engine a group lookup in the image), the `run` script as the
//! command. The context it expects:
//! `upload/src/`, when some script is shipped `upload/scripts/`, and the
//! build-time inputs' `upload/configmaps/<i>/` and `upload/secrets/<i>/`
//! ([`crate::injection`]).

use crate::injection::{Injection, CONFIG_MAPS_DIR, SECRETS_DIR, SECRETS_MOUNT};
use crate::scripts::{Script, ScriptSource};

pub struct Plan<'a> {
    /// The builder image, pinned to a digest.
    pub builder: &'a str,
    /// Incremental: the previous output image, pinned.
    pub previous: Option<&'a str>,
    /// Whether the engine is BuildKit: the artifacts are then read through a
    /// `RUN --mount` in assemble's own step, so the output image carries
    /// neither the artifacts' tar nor a copy of them; the classic builder
    /// needs a `COPY` (and keeps that layer). Secrets are always mounted,
    /// so a plan with secrets needs BuildKit.
    pub buildkit: bool,
    /// Where the input goes (`io.openshift.s2i.destination`).
    pub destination: &'a str,
    /// The checked assemble user.
    pub assemble_uid: u32,
    /// The builder image's own `USER`, which the output keeps.
    pub image_user: Option<&'a str>,
    pub scripts: &'a [(Script, ScriptSource)],
    pub labels: &'a [(String, String)],
    pub env: &'a [(String, String)],
    /// ConfigMaps, copied into the image before assemble.
    pub config_maps: &'a [Injection],
    /// Secrets, present only while assemble runs.
    pub secrets: &'a [Injection],
}

/// A single-quoted shell word.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// A double-quoted Dockerfile word: no variable expansion, one line.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' | '$' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The path a script runs from inside the build.
pub fn script_path(plan: &Plan<'_>, script: Script) -> Option<String> {
    script_path_of(plan.destination, plan.scripts, script)
}

/// [`script_path`] for a destination and located scripts.
pub fn script_path_of(
    destination: &str,
    scripts: &[(Script, ScriptSource)],
    script: Script,
) -> Option<String> {
    scripts
        .iter()
        .find(|(s, _)| *s == script)
        .map(|(_, source)| match source {
            ScriptSource::Image(path) => path.clone(),
            ScriptSource::Url(_) | ScriptSource::Source(_) => {
                format!(
                    "{}/scripts/{}",
                    destination.trim_end_matches('/'),
                    script.name()
                )
            }
        })
}

fn pairs(keyword: &str, items: &[(String, String)]) -> Option<String> {
    (!items.is_empty()).then(|| {
        let body: Vec<String> = items
            .iter()
            .map(|(k, v)| format!("{}={}", quote(k), quote(v)))
            .collect();
        format!("{keyword} {}", body.join(" \\\n    "))
    })
}

pub fn render(plan: &Plan<'_>) -> String {
    let d = plan.destination.trim_end_matches('/');
    let u = plan.assemble_uid;
    let mut lines: Vec<String> = Vec::new();
    let save = script_path(plan, Script::SaveArtifacts);
    let incremental = match (plan.previous, &save) {
        (Some(previous), Some(save)) => {
            // save-artifacts must write only a tar stream: anything else
            // would corrupt the artifacts, so it is dropped with a warning.
            lines.push(format!("FROM {previous} AS cached"));
            lines.push(format!("USER {u}:0"));
            // A failing save-artifacts, or one that writes something else
            // than a tar stream, gives a clean build with a warning.
            lines.push(format!(
                "RUN if [ -x {save} ]; then {{ {save} > /tmp/artifacts.tar && tar -tf /tmp/artifacts.tar > /dev/null 2>&1; }} || \
                 {{ echo 'warning: save-artifacts failed or wrote something that is not a tar stream; clean build' >&2; : > /tmp/artifacts.tar; }}; \
                 else echo 'incremental: the previous image has no save-artifacts; clean build' >&2; : > /tmp/artifacts.tar; fi"
            ));
            true
        }
        _ => false,
    };
    lines.push(format!("FROM {}", plan.builder));
    lines.extend(pairs("LABEL", plan.labels));
    lines.extend(pairs("ENV", plan.env));
    let mounted = incremental && plan.buildkit;
    if incremental && !mounted {
        lines.push(format!(
            "COPY --from=cached --chown={u}:0 /tmp/artifacts.tar {d}/artifacts.tar"
        ));
    }
    if plan.scripts.iter().any(|(_, s)| s.shipped()) {
        lines.push(format!("COPY --chown={u}:0 upload/scripts {d}/scripts"));
    }
    lines.push(format!("COPY --chown={u}:0 upload/src {d}/src"));
    for (i, map) in plan.config_maps.iter().enumerate() {
        // The JSON form: a target may hold spaces.
        let args = serde_json::json!([format!("{CONFIG_MAPS_DIR}/{i}"), map.target]);
        lines.push(format!("COPY --chown={u}:0 {args}"));
    }
    lines.push(format!("USER {u}:0"));
    let assemble = script_path(plan, Script::Assemble);
    // assemble's step: what it mounts, what runs before it, what after.
    let mut mounts = Vec::new();
    let mut before = Vec::new();
    let mut after = Vec::new();
    if mounted {
        mounts.push(
            "--mount=type=bind,from=cached,source=/tmp/artifacts.tar,target=/tmp/.s2i-artifacts.tar"
                .to_string(),
        );
        before.push(format!(
            "mkdir -p {d}/artifacts && tar -C {d}/artifacts -xf /tmp/.s2i-artifacts.tar"
        ));
    } else if incremental {
        lines.push(format!(
            "RUN mkdir -p {d}/artifacts && tar -C {d}/artifacts -xf {d}/artifacts.tar && rm -f {d}/artifacts.tar"
        ));
    }
    if !plan.secrets.is_empty() {
        mounts.push(format!(
            "--mount=type=bind,source={SECRETS_DIR},target={SECRETS_MOUNT}"
        ));
    }
    for (i, secret) in plan.secrets.iter().enumerate() {
        let target = shell_quote(&secret.target);
        before.push(format!("mkdir -p {target}"));
        if !secret.files.is_empty() {
            let from: Vec<String> = secret
                .files
                .iter()
                .map(|f| shell_quote(&format!("{SECRETS_MOUNT}/{i}/{f}")))
                .collect();
            before.push(format!("cp {} {target}/", from.join(" ")));
            after.extend(
                secret
                    .files
                    .iter()
                    .map(|f| shell_quote(&format!("{}/{f}", secret.target))),
            );
        }
    }
    let mut command = before;
    if let Some(a) = &assemble {
        command.push(match after.is_empty() {
            true => a.clone(),
            // The secrets go whatever assemble's end; its status is the step's.
            false => format!("{{ {a}; s=$?; rm -f {}; exit $s; }}", after.join(" ")),
        });
    }
    if !command.is_empty() {
        let command = command.join(" && ");
        lines.push(match mounts.is_empty() {
            true => format!("RUN {command}"),
            false => format!("RUN {} \\\n    {command}", mounts.join(" ")),
        });
    }
    if let Some(user) = plan.image_user {
        lines.push(format!("USER {user}"));
    }
    if let Some(run) = script_path(plan, Script::Run) {
        lines.push(format!(
            "CMD {}",
            serde_json::Value::Array(vec![serde_json::Value::String(run)])
        ));
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn image_scripts_clean_build() {
        let scripts = vec![
            (
                Script::Assemble,
                ScriptSource::Image("/usr/libexec/s2i/assemble".into()),
            ),
            (
                Script::Run,
                ScriptSource::Image("/usr/libexec/s2i/run".into()),
            ),
        ];
        let labels = kv(&[("io.openshift.build.commit.id", "4b825dc6")]);
        let env = kv(&[("OPENSHIFT_BUILD_NAME", "shop-7"), ("Q", "a \"$b\"")]);
        let text = render(&Plan {
            builder: "reg/openshift/python@sha256:5e1f",
            previous: Some("reg/team/shop@sha256:aa"),
            buildkit: true,
            destination: "/tmp",
            assemble_uid: 1001,
            image_user: Some("1001"),
            scripts: &scripts,
            labels: &labels,
            env: &env,
            config_maps: &[],
            secrets: &[],
        });
        assert_eq!(
            text,
            "FROM reg/openshift/python@sha256:5e1f\n\
             LABEL \"io.openshift.build.commit.id\"=\"4b825dc6\"\n\
             ENV \"OPENSHIFT_BUILD_NAME\"=\"shop-7\" \\\n    \"Q\"=\"a \\\"\\$b\\\"\"\n\
             COPY --chown=1001:0 upload/src /tmp/src\n\
             USER 1001:0\n\
             RUN /usr/libexec/s2i/assemble\n\
             USER 1001\n\
             CMD [\"/usr/libexec/s2i/run\"]\n",
            "no save-artifacts: no incremental stage"
        );
    }

    #[test]
    fn shipped_scripts_and_artifacts() {
        let scripts = vec![
            (
                Script::Assemble,
                ScriptSource::Source(".s2i/bin/assemble".into()),
            ),
            (Script::Run, ScriptSource::Image("/s2i/run".into())),
            (
                Script::SaveArtifacts,
                ScriptSource::Image("/s2i/save-artifacts".into()),
            ),
        ];
        let text = render(&Plan {
            builder: "b@sha256:1",
            previous: Some("p@sha256:2"),
            buildkit: false,
            destination: "/opt/app/",
            assemble_uid: 1001,
            image_user: None,
            scripts: &scripts,
            labels: &[],
            env: &[],
            config_maps: &[],
            secrets: &[],
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "FROM p@sha256:2 AS cached");
        assert!(lines[2].starts_with(
            "RUN if [ -x /s2i/save-artifacts ]; then { /s2i/save-artifacts > /tmp/artifacts.tar && tar -tf"
        ));
        assert_eq!(lines[3], "FROM b@sha256:1");
        assert_eq!(
            lines[4],
            "COPY --from=cached --chown=1001:0 /tmp/artifacts.tar /opt/app/artifacts.tar"
        );
        assert_eq!(
            lines[5],
            "COPY --chown=1001:0 upload/scripts /opt/app/scripts"
        );
        assert_eq!(lines[6], "COPY --chown=1001:0 upload/src /opt/app/src");
        assert!(
            lines[8].starts_with("RUN mkdir -p /opt/app/artifacts && tar -C /opt/app/artifacts")
        );
        assert_eq!(lines[9], "RUN /opt/app/scripts/assemble");
        assert_eq!(lines[10], "CMD [\"/s2i/run\"]");
        let text = render(&Plan {
            builder: "b@sha256:1",
            previous: Some("p@sha256:2"),
            buildkit: true,
            destination: "/opt/app/",
            assemble_uid: 1001,
            image_user: None,
            scripts: &scripts,
            labels: &[],
            env: &[],
            config_maps: &[],
            secrets: &[],
        });
        assert!(!text.contains("COPY --from=cached"), "{text}");
        assert!(text.contains(
            "RUN --mount=type=bind,from=cached,source=/tmp/artifacts.tar,target=/tmp/.s2i-artifacts.tar \\\n    \
             mkdir -p /opt/app/artifacts && tar -C /opt/app/artifacts -xf /tmp/.s2i-artifacts.tar && /opt/app/scripts/assemble\n"
        ), "{text}");
    }

    #[test]
    fn secrets_live_only_in_assembles_step_config_maps_stay() {
        let scripts = vec![(
            Script::Assemble,
            ScriptSource::Image("/s2i/assemble".into()),
        )];
        let maps = vec![Injection {
            target: "/opt/app root/conf".into(),
            files: vec!["app.ini".into()],
        }];
        let secrets = vec![
            Injection {
                target: "/opt/app-root/src".into(),
                files: vec!["token".into(), ".npmrc".into()],
            },
            Injection {
                target: "/etc/it's".into(),
                files: vec![],
            },
        ];
        let text = render(&Plan {
            builder: "b@sha256:1",
            previous: None,
            buildkit: true,
            destination: "/tmp",
            assemble_uid: 1001,
            image_user: None,
            scripts: &scripts,
            labels: &[],
            env: &[],
            config_maps: &maps,
            secrets: &secrets,
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[2],
            "COPY --chown=1001:0 [\"upload/configmaps/0\",\"/opt/app root/conf\"]"
        );
        assert_eq!(lines[3], "USER 1001:0");
        assert_eq!(
            lines[4],
            "RUN --mount=type=bind,source=upload/secrets,target=/tmp/.s2i-secrets \\"
        );
        assert_eq!(
            lines[5],
            "    mkdir -p '/opt/app-root/src' && cp '/tmp/.s2i-secrets/0/token' '/tmp/.s2i-secrets/0/.npmrc' '/opt/app-root/src'/ \
             && mkdir -p '/etc/it'\\''s' \
             && { /s2i/assemble; s=$?; rm -f '/opt/app-root/src/token' '/opt/app-root/src/.npmrc'; exit $s; }"
        );
        assert!(
            !text.contains("COPY --chown=1001:0 upload/secrets"),
            "{text}"
        );
    }
}

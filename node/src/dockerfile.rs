//! Dockerfile edits of the Docker strategy (builds.md §11): the last
//! `FROM` takes the resolved `dockerStrategy.from`, the strategy's `env`
//! goes right after it, and the `OPENSHIFT_BUILD_*` variables are appended
//! so that they are baked into the image.

/// One logical instruction: the line range it spans (continuations joined).
pub(super) struct Instruction {
    pub first: usize,
    pub last: usize,
    pub keyword: String,
}

pub(super) fn instructions(lines: &[&str]) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let trimmed = lines[i].trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let first = i;
        while lines[i].trim_end().ends_with('\\') && i + 1 < lines.len() {
            i += 1;
        }
        let keyword = trimmed
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        out.push(Instruction {
            first,
            last: i,
            keyword,
        });
        i += 1;
    }
    out
}

use podspace_api::model::build::BuildPostCommitSpec;
use podspace_s2i::dockerfile::quote;

fn env_line(vars: &[(String, String)]) -> Option<String> {
    (!vars.is_empty()).then(|| {
        let pairs: Vec<String> = vars
            .iter()
            .map(|(k, v)| format!("{k}={}", quote(v)))
            .collect();
        format!("ENV {}", pairs.join(" "))
    })
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DockerfileError {
    #[error("the Dockerfile has no FROM instruction")]
    NoFrom,
    #[error("the image name {0:?} uses a variable that no ARG or build argument sets")]
    Unresolved(String),
}

fn replace_from(lines: &[&str], image: &str) -> String {
    let joined: String = lines
        .iter()
        .map(|l| l.trim_end().trim_end_matches('\\'))
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = joined.split_whitespace().collect();
    let flags: Vec<&str> = words
        .iter()
        .skip(1)
        .take_while(|w| w.starts_with("--"))
        .copied()
        .collect();
    let rest = words.iter().skip(2 + flags.len()).copied();
    let mut parts = vec!["FROM"];
    parts.extend(flags);
    parts.push(image);
    parts.extend(rest);
    parts.join(" ")
}

/// Rewrites `text`. `from` replaces the image of the last FROM (keeping
/// its `--platform` flag and `AS name`).
pub fn rewrite(
    text: &str,
    from: Option<&str>,
    strategy_env: &[(String, String)],
    build_env: &[(String, String)],
) -> Result<String, DockerfileError> {
    let lines: Vec<&str> = text.lines().collect();
    let all = instructions(&lines);
    let last_from = all
        .iter()
        .rev()
        .find(|i| i.keyword == "FROM")
        .ok_or(DockerfileError::NoFrom)?;
    let mut out: Vec<String> = Vec::with_capacity(lines.len() + 3);
    for (n, line) in lines.iter().enumerate() {
        let in_from = (last_from.first..=last_from.last).contains(&n);
        match (in_from, from) {
            (false, _) | (true, None) => out.push(line.to_string()),
            (true, Some(image)) if n == last_from.first => {
                out.push(replace_from(&lines[n..=last_from.last], image))
            }
            // Continuation lines of a replaced FROM.
            (true, Some(_)) => {}
        }
        if n == last_from.last {
            out.extend(env_line(strategy_env));
        }
    }
    if let Some(env) = env_line(build_env) {
        out.push(env);
    }
    let mut text = out.join("\n");
    text.push('\n');
    Ok(text)
}

/// The `postCommit` hook as a last `RUN` (exec form), and the text by which
/// an engine error names it: `script` runs as `/bin/sh -ic SCRIPT`,
/// `command` with `args` as given.
pub fn post_commit(hook: &BuildPostCommitSpec) -> Result<Option<(String, String)>, String> {
    let script = hook.script.as_deref().unwrap_or_default();
    let command = hook.command.clone().unwrap_or_default();
    let args = hook.args.clone().unwrap_or_default();
    let argv: Vec<String> = match (script.is_empty(), command.is_empty()) {
        (false, false) => {
            return Err("postCommit: script and command cannot both be set".into());
        }
        (false, true) => ["/bin/sh".into(), "-ic".into(), script.to_string()]
            .into_iter()
            .chain(args)
            .collect(),
        (true, false) => command.into_iter().chain(args).collect(),
        (true, true) if args.is_empty() => return Ok(None),
        (true, true) => {
            return Err("postCommit: args need a command or a script".into());
        }
    };
    let line = format!(
        "RUN {}",
        serde_json::to_string(&argv).map_err(|e| e.to_string())?
    );
    Ok(Some((line, argv.join(" "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(v: serde_json::Value) -> BuildPostCommitSpec {
        serde_json::from_value(v).unwrap()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn replaces_last_from_and_adds_env() {
        let text = "FROM a AS build\nRUN make\n# comment\nfrom --platform=linux/amd64 b AS final\nCOPY --from=build /x /x\n";
        let out = rewrite(
            text,
            Some("reg/p/base@sha256:1"),
            &kv(&[("A", "1")]),
            &kv(&[("OPENSHIFT_BUILD_NAME", "shop-1"), ("Q", "say \"$x\"")]),
        )
        .unwrap();
        assert_eq!(
            out,
            "FROM a AS build\nRUN make\n# comment\nFROM --platform=linux/amd64 reg/p/base@sha256:1 AS final\nENV A=\"1\"\nCOPY --from=build /x /x\nENV OPENSHIFT_BUILD_NAME=\"shop-1\" Q=\"say \\\"\\$x\\\"\"\n"
        );
    }

    #[test]
    fn continuation_lines_and_no_replacement() {
        let text = "FROM \\\n  busybox\nRUN echo hi\n";
        let out = rewrite(text, None, &kv(&[("A", "1")]), &[]).unwrap();
        assert_eq!(out, "FROM \\\n  busybox\nENV A=\"1\"\nRUN echo hi\n");
        let out = rewrite(text, Some("x"), &[], &[]).unwrap();
        assert_eq!(out, "FROM x\nRUN echo hi\n");
    }

    #[test]
    fn post_commit_hooks() {
        use serde_json::json;
        assert_eq!(
            post_commit(&hook(json!({"script": "make test"}))).unwrap(),
            Some((
                r#"RUN ["/bin/sh","-ic","make test"]"#.to_string(),
                "/bin/sh -ic make test".to_string()
            ))
        );
        assert_eq!(
            post_commit(&hook(json!({"command": ["rake"], "args": ["test"]})))
                .unwrap()
                .map(|h| h.0),
            Some(r#"RUN ["rake","test"]"#.to_string())
        );
        assert_eq!(post_commit(&hook(json!({}))).unwrap(), None);
        assert!(post_commit(&hook(json!({"script": "x", "command": ["y"]}))).is_err());
        assert!(post_commit(&hook(json!({"args": ["y"]}))).is_err());
    }

    #[test]
    fn no_from_is_an_error() {
        assert_eq!(
            rewrite("RUN x\n", None, &[], &[]),
            Err(DockerfileError::NoFrom)
        );
    }
}

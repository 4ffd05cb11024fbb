//! Which images a Dockerfile makes the engine read — every `FROM` that is
//! not an earlier stage, `COPY --from=<image>`, `RUN --mount=…,from=<image>`
//! and the `# syntax=` frontend — and rewriting them to pinned references.
//! The node checks each with the build's own credentials before the engine
//! runs (`pull.rs`), so the engine's local copy of another project's image
//! is never used on a name alone.

use std::collections::HashMap;

use super::dockerfile::{instructions, DockerfileError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UseKind {
    /// `# syntax=IMAGE` (BuildKit runs it as the frontend).
    Syntax,
    From,
    CopyFrom,
    MountFrom,
}

/// One place an image is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    pub kind: UseKind,
    /// The line (0-based) holding the word that names it.
    pub line: usize,
    /// The word as written (before ARG expansion).
    pub raw: String,
    /// The image, ARGs expanded.
    pub image: String,
}

/// Expands `$X`, `${X}`, `${X:-word}`, `${X:+word}` from `args`; `None`
/// when a variable is unknown (the engine would see something else than we
/// checked).
fn expand(word: &str, args: &HashMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut chars = word.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
            continue;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        let (name, modifier) = if chars.peek() == Some(&'{') {
            chars.next();
            let inner: String = chars.by_ref().take_while(|c| *c != '}').collect();
            match inner.split_once(':') {
                Some((n, m)) => (n.to_string(), Some(m.to_string())),
                None => (inner, None),
            }
        } else {
            let mut n = String::new();
            while let Some(c) = chars
                .peek()
                .filter(|c| c.is_ascii_alphanumeric() || **c == '_')
            {
                n.push(*c);
                chars.next();
            }
            (n, None)
        };
        let value = args.get(&name).filter(|v| !v.is_empty());
        match modifier.as_deref() {
            None => out.push_str(value?),
            Some(m) if m.starts_with('-') => match value {
                Some(v) => out.push_str(v),
                None => out.push_str(&expand(&m[1..], args)?),
            },
            Some(m) if m.starts_with('+') => {
                if value.is_some() {
                    out.push_str(&expand(&m[1..], args)?);
                }
            }
            Some(_) => return None,
        }
    }
    Some(out)
}

/// `ARG A=1 B` → [("A", Some("1")), ("B", None)].
fn arg_decls(rest: &str) -> Vec<(String, Option<String>)> {
    rest.split_whitespace()
        .map(|d| match d.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.trim_matches('"').to_string())),
            None => (d.to_string(), None),
        })
        .collect()
}

/// The leading `# syntax=` parser directive, if any.
fn syntax_directive(lines: &[&str]) -> Option<(usize, String)> {
    for (n, line) in lines.iter().enumerate() {
        let t = line.trim();
        let d = t.strip_prefix('#')?;
        let (k, v) = d.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("syntax") {
            return Some((n, v.trim().to_string()));
        }
    }
    None
}

/// Every image the engine will read for `text` built with `build_args`.
pub fn image_uses(
    text: &str,
    build_args: &HashMap<String, String>,
) -> Result<Vec<ImageUse>, DockerfileError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut uses = Vec::new();
    if let Some((line, image)) = syntax_directive(&lines) {
        uses.push(ImageUse {
            kind: UseKind::Syntax,
            line,
            raw: image.clone(),
            image,
        });
    }
    let value_of = |name: &str, default: Option<String>, inherited: Option<&String>| {
        build_args
            .get(name)
            .cloned()
            .or(default)
            .or_else(|| inherited.cloned())
            .unwrap_or_default()
    };
    let mut global: HashMap<String, String> = HashMap::new();
    let mut stage_args: HashMap<String, String> = HashMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut in_stage = false;
    let unresolved = |raw: &str| DockerfileError::Unresolved(raw.to_string());
    for ins in instructions(&lines) {
        let joined: String = lines[ins.first..=ins.last]
            .iter()
            .map(|l| l.trim_end().trim_end_matches('\\'))
            .collect::<Vec<_>>()
            .join(" ");
        let words: Vec<&str> = joined.split_whitespace().collect();
        match ins.keyword.as_str() {
            "ARG" => {
                let rest = words.get(1..).unwrap_or_default().join(" ");
                for (k, default) in arg_decls(&rest) {
                    if in_stage {
                        let v = value_of(&k, default, global.get(&k));
                        stage_args.insert(k, v);
                    } else {
                        let v = value_of(&k, default, None);
                        global.insert(k, v);
                    }
                }
            }
            "FROM" => {
                in_stage = true;
                stage_args.clear();
                let image_at = 1 + words
                    .iter()
                    .skip(1)
                    .take_while(|w| w.starts_with("--"))
                    .count();
                let raw = words.get(image_at).ok_or(DockerfileError::NoFrom)?;
                let image = expand(raw, &global).ok_or_else(|| unresolved(raw))?;
                let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&image));
                if !is_stage && image != "scratch" {
                    uses.push(ImageUse {
                        kind: UseKind::From,
                        line: line_of(&lines, ins.first, ins.last, raw),
                        raw: raw.to_string(),
                        image,
                    });
                }
                let name = match (words.get(image_at + 1), words.get(image_at + 2)) {
                    (Some(a), Some(n)) if a.eq_ignore_ascii_case("as") => n.to_string(),
                    _ => String::new(),
                };
                stages.push(name);
            }
            "COPY" | "RUN" => {
                let scope: HashMap<String, String> = global
                    .iter()
                    .chain(stage_args.iter())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                for raw in words.iter().skip(1).take_while(|w| w.starts_with("--")) {
                    let named = named_image(raw, &ins.keyword);
                    let Some((kind, value)) = named else { continue };
                    let image = expand(value, &scope).ok_or_else(|| unresolved(raw))?;
                    let is_stage = image.parse::<usize>().is_ok_and(|i| i < stages.len())
                        || stages.iter().any(|s| s.eq_ignore_ascii_case(&image));
                    if !is_stage {
                        uses.push(ImageUse {
                            kind,
                            line: line_of(&lines, ins.first, ins.last, raw),
                            raw: raw.to_string(),
                            image,
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(uses)
}

/// The image value of a `COPY --from=X` or `RUN --mount=…,from=X,…` flag.
fn named_image<'a>(flag: &'a str, keyword: &str) -> Option<(UseKind, &'a str)> {
    match keyword {
        "COPY" => flag.strip_prefix("--from=").map(|v| (UseKind::CopyFrom, v)),
        _ => flag
            .strip_prefix("--mount=")?
            .split(',')
            .find_map(|kv| kv.strip_prefix("from="))
            .map(|v| (UseKind::MountFrom, v)),
    }
}

/// The line of an instruction's span holding `word`.
fn line_of(lines: &[&str], first: usize, last: usize, word: &str) -> usize {
    (first..=last)
        .find(|n| lines[*n].split_whitespace().any(|w| w == word))
        .unwrap_or(first)
}

/// `text` with each use's word rewritten to name `pinned[use.image]`.
pub fn pin(text: &str, uses: &[ImageUse], pinned: &HashMap<String, String>) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for u in uses {
        let Some(to) = pinned.get(&u.image) else {
            continue;
        };
        let Some(line) = lines.get_mut(u.line) else {
            continue;
        };
        let new_word = match u.kind {
            UseKind::Syntax => {
                *line = format!("# syntax={to}");
                continue;
            }
            UseKind::From => to.clone(),
            UseKind::CopyFrom => format!("--from={to}"),
            UseKind::MountFrom => {
                let fields: Vec<String> = u
                    .raw
                    .trim_start_matches("--mount=")
                    .split(',')
                    .map(|kv| match kv.strip_prefix("from=") {
                        Some(_) => format!("from={to}"),
                        None => kv.to_string(),
                    })
                    .collect();
                format!("--mount={}", fields.join(","))
            }
        };
        *line = replace_word(line, &u.raw, &new_word);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Replaces the first whitespace-delimited occurrence of `word`.
fn replace_word(line: &str, word: &str, with: &str) -> String {
    let mut start = 0;
    while let Some(i) = line[start..].find(word) {
        let at = start + i;
        let end = at + word.len();
        let before_ok = line[..at]
            .chars()
            .next_back()
            .is_none_or(char::is_whitespace);
        let after_ok = line[end..].chars().next().is_none_or(char::is_whitespace);
        if before_ok && after_ok {
            return format!("{}{with}{}", &line[..at], &line[end..]);
        }
        start = end;
    }
    line.to_string()
}

/// The images an ONBUILD trigger of a base image names (`COPY --from`,
/// `RUN --mount from=`): they run in the child build, so they are checked
/// like the Dockerfile's own.
pub fn onbuild_images(triggers: &[String]) -> Vec<String> {
    triggers
        .iter()
        .flat_map(|t| {
            let words: Vec<&str> = t.split_whitespace().collect();
            let keyword = words
                .first()
                .map(|w| w.to_ascii_uppercase())
                .unwrap_or_default();
            words
                .iter()
                .skip(1)
                .take_while(|w| w.starts_with("--"))
                .filter_map(|w| named_image(w, &keyword).map(|(_, v)| v.to_string()))
                .filter(|v| v.parse::<usize>().is_err())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(text: &str, args: &[(&str, &str)]) -> Vec<(UseKind, String)> {
        let args = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        image_uses(text, &args)
            .unwrap()
            .into_iter()
            .map(|u| (u.kind, u.image))
            .collect()
    }

    #[test]
    fn stages_are_not_images() {
        let text = "# syntax=reg/front:1\nARG BASE=reg/p/base:1\nFROM ${BASE} AS build\nRUN make\nFROM build AS test\nFROM --platform=linux/amd64 scratch\nCOPY --from=build /a /a\nCOPY --from=0 /b /b\nCOPY --from=reg/q/other:2 /c /c\nRUN --mount=type=bind,from=reg/q/tools,target=/t true\nCOPY --chown=1:1 x y\n";
        assert_eq!(
            images(text, &[]),
            vec![
                (UseKind::Syntax, "reg/front:1".into()),
                (UseKind::From, "reg/p/base:1".into()),
                (UseKind::CopyFrom, "reg/q/other:2".into()),
                (UseKind::MountFrom, "reg/q/tools".into()),
            ]
        );
        // A build arg overrides the default; a bare name is an image too.
        assert_eq!(
            images(
                "ARG BASE=a\nFROM $BASE\nCOPY --from=busybox /x /x\n",
                &[("BASE", "reg/x:1")]
            ),
            vec![
                (UseKind::From, "reg/x:1".into()),
                (UseKind::CopyFrom, "busybox".into())
            ]
        );
        assert_eq!(
            images("FROM ${NOPE:-reg/d:1}\n", &[]),
            vec![(UseKind::From, "reg/d:1".into())]
        );
    }

    #[test]
    fn unknown_variables_are_refused() {
        assert_eq!(
            image_uses("FROM $NOPE\n", &HashMap::new()),
            Err(DockerfileError::Unresolved("$NOPE".into()))
        );
        // A stage ARG expands in COPY --from.
        let uses = image_uses(
            "FROM a\nARG SRC=reg/s:1\nCOPY --from=$SRC /x /x\n",
            &HashMap::new(),
        )
        .unwrap();
        assert_eq!(uses[1].image, "reg/s:1");
    }

    #[test]
    fn pinning_rewrites_each_word() {
        let text = "# syntax=f:1\nARG B=reg/p/base:1\nFROM \\\n  $B AS x\nCOPY --from=reg/q/o:2 /c /c\nRUN --mount=type=bind,from=reg/q/t,target=/t true\n";
        let uses = image_uses(text, &HashMap::new()).unwrap();
        let pinned: HashMap<String, String> = [
            ("f:1", "docker.io/f@sha256:1"),
            ("reg/p/base:1", "reg/p/base@sha256:2"),
            ("reg/q/o:2", "reg/q/o@sha256:3"),
            ("reg/q/t", "reg/q/t@sha256:4"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(
            pin(text, &uses, &pinned),
            "# syntax=docker.io/f@sha256:1\nARG B=reg/p/base:1\nFROM \\\n  reg/p/base@sha256:2 AS x\nCOPY --from=reg/q/o@sha256:3 /c /c\nRUN --mount=type=bind,from=reg/q/t@sha256:4,target=/t true\n"
        );
    }

    #[test]
    fn onbuild_triggers() {
        let t = vec![
            "COPY --from=reg/a/b:1 / /x".to_string(),
            "RUN echo".to_string(),
            "copy --from=0 / /".to_string(),
        ];
        assert_eq!(onbuild_images(&t), vec!["reg/a/b:1".to_string()]);
    }
}

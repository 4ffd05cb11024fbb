//! `.dockerignore` (and S2I's `.s2iignore`) as the docker CLI reads it: one pattern a line (`#`
//! comments, blank lines skipped), paths relative to the context root with
//! a leading `/` dropped, `*` and `?` not crossing `/`, `**` any number of
//! directories, `[...]` classes, `\` escapes, `!` re-including; the last
//! pattern that matches a path or one of its parent directories decides.
//!
//! Hand-written: these are Go's `filepath.Match` rules plus `**` (moby's
//! patternmatcher), which neither gitignore crates nor globset reproduce
//! exactly (gitignore matches bare names at any depth; docker does not).

#[derive(Debug, Clone)]
struct Pattern {
    parts: Vec<String>,
    exclusion: bool,
}

#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

/// `filepath.Clean` on a relative pattern: `.` and empty parts dropped,
/// `..` pops.
fn clean(p: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(other.to_string()),
        }
    }
    out
}

impl DockerIgnore {
    pub fn parse(text: &str) -> DockerIgnore {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (exclusion, rest) = match l.strip_prefix('!') {
                    Some(r) => (true, r.trim()),
                    None => (false, l),
                };
                let parts = clean(rest);
                (!parts.is_empty()).then_some(Pattern { parts, exclusion })
            })
            .collect();
        DockerIgnore { patterns }
    }

    /// Whether some `!` pattern could re-include something below an
    /// excluded directory (then the directory must still be walked).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` (relative, `/`-separated) is left out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let mut excluded = false;
        for p in &self.patterns {
            // The path itself or one of its parents.
            let hit = (1..=parts.len()).any(|n| match_parts(&p.parts, &parts[..n]));
            if hit {
                excluded = !p.exclusion;
            }
        }
        excluded
    }
}

fn match_parts(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| match_parts(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((name, path_rest)) => {
                glob(first.as_bytes(), name.as_bytes()) && match_parts(rest, path_rest)
            }
            None => false,
        },
    }
}

/// One path element against one pattern element (`*`, `?`, `[...]`, `\`).
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((b'[', rest)) => {
            let Some((&c, s_rest)) = s.split_first() else {
                return false;
            };
            let (negated, mut class) = match rest.first() {
                Some(b'^') | Some(b'!') => (true, &rest[1..]),
                _ => (false, rest),
            };
            let mut matched = false;
            let mut first = true;
            loop {
                match class.split_first() {
                    None => return false, // unterminated class matches nothing
                    Some((b']', after)) if !first => {
                        class = after;
                        break;
                    }
                    Some((&lo, after)) => {
                        let (lo, after) = if lo == b'\\' && !after.is_empty() {
                            (after[0], &after[1..])
                        } else {
                            (lo, after)
                        };
                        if after.len() >= 2 && after[0] == b'-' && after[1] != b']' {
                            let hi = after[1];
                            matched |= lo <= c && c <= hi;
                            class = &after[2..];
                        } else {
                            matched |= lo == c;
                            class = after;
                        }
                    }
                }
                first = false;
            }
            matched != negated && glob(class, s_rest)
        }
        Some((b'\\', rest)) if !rest.is_empty() => {
            s.first() == Some(&rest[0]) && glob(&rest[1..], &s[1..])
        }
        Some((&c, rest)) => s.first() == Some(&c) && glob(rest, &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_semantics() {
        let d = DockerIgnore::parse(
            "# comment\n\n/big.bin\n*.log\n!keep.log\nnode_modules\ndocs/**/*.md\n!docs/README.md\ntmp?\n[a-c]x\n",
        );
        assert!(d.excludes("big.bin"));
        assert!(
            !d.excludes("sub/big.bin"),
            "not matched at any depth, unlike gitignore"
        );
        assert!(d.excludes("a.log"));
        assert!(!d.excludes("keep.log"));
        assert!(d.excludes("node_modules"));
        assert!(d.excludes("node_modules/x/y.js"), "a parent matches");
        assert!(d.excludes("docs/a/b/c.md"));
        assert!(d.excludes("docs/c.md"));
        assert!(!d.excludes("docs/README.md"));
        assert!(d.excludes("tmp1") && !d.excludes("tmp12"));
        assert!(d.excludes("bx") && !d.excludes("dx"));
        assert!(!d.excludes("src/main.rs"));
        assert!(d.has_exceptions());
        assert!(DockerIgnore::parse("**\n!src\n").excludes("x"));
        assert!(!DockerIgnore::parse("**\n!src\n").excludes("src/a"));
    }
}

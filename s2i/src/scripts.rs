//! The S2I scripts and where each one comes from. Per script, the first
//! that has it wins: the build's explicit scripts URL, the source's
//! `.s2i/bin/` (or the legacy `.sti/bin/`), the builder image's label.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Script {
    Assemble,
    Run,
    SaveArtifacts,
    Usage,
}

impl Script {
    pub const ALL: [Script; 4] = [
        Script::Assemble,
        Script::Run,
        Script::SaveArtifacts,
        Script::Usage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Script::Assemble => "assemble",
            Script::Run => "run",
            Script::SaveArtifacts => "save-artifacts",
            Script::Usage => "usage",
        }
    }

    pub fn required(self) -> bool {
        matches!(self, Script::Assemble | Script::Run)
    }
}

/// A scripts URL: `image:///dir` (in the builder image), `file://dir`
/// (relative to the source), `http(s)://host/dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptsUrl {
    Image(String),
    File(String),
    Http(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scripts URL {0:?}: use image:///path, file://path or http(s)://host/path")]
pub struct ScriptsUrlError(pub String);

impl ScriptsUrl {
    pub fn parse(url: &str) -> Result<ScriptsUrl, ScriptsUrlError> {
        let bad = || ScriptsUrlError(url.to_string());
        let url = url.trim();
        if let Some(path) = url.strip_prefix("image://") {
            if !path.starts_with('/') || path.contains("/../") || path.ends_with("/..") {
                return Err(bad());
            }
            return Ok(ScriptsUrl::Image(path.trim_end_matches('/').to_string()));
        }
        if let Some(path) = url.strip_prefix("file://") {
            if path.is_empty() || path.split('/').any(|p| p == "..") {
                return Err(bad());
            }
            return Ok(ScriptsUrl::File(path.trim_end_matches('/').to_string()));
        }
        if (url.starts_with("http://") || url.starts_with("https://")) && url.len() > 8 {
            return Ok(ScriptsUrl::Http(url.trim_end_matches('/').to_string()));
        }
        Err(bad())
    }
}

/// Where one script was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptSource {
    /// Fetched from the build's scripts URL (`http(s)` or `file`), shipped
    /// in the input tar under `scripts/`.
    Url(String),
    /// From the source tree (this relative path), shipped under `scripts/`.
    Source(String),
    /// Already in the builder image at this absolute path; run in place.
    Image(String),
}

impl ScriptSource {
    /// Whether the script travels in the input (`<destination>/scripts/`).
    pub fn shipped(&self) -> bool {
        !matches!(self, ScriptSource::Image(_))
    }
}

/// What the node knows when it locates scripts.
pub struct Candidates<'a> {
    /// `sourceStrategy.scripts`.
    pub explicit: Option<&'a ScriptsUrl>,
    /// Scripts the explicit URL served (the node fetched them).
    pub explicit_has: &'a dyn Fn(Script) -> bool,
    /// Which of `.s2i/bin/<name>` (or `.sti/bin/<name>`) the source has:
    /// the relative path, if any.
    pub source_path: &'a dyn Fn(Script) -> Option<String>,
    /// The builder image's scripts URL.
    pub image: Option<&'a ScriptsUrl>,
    /// Whether the image has a script at an `image://` path.
    pub image_has: &'a dyn Fn(&str) -> bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocateError {
    #[error("could not download any scripts from URL {0}")]
    NothingFromExplicitUrl(String),
    #[error("the builder image has no {missing} script: it names none in the label {label} (set it, or put the script in the source's .s2i/bin/)")]
    Missing { missing: String, label: String },
}

fn url_text(u: &ScriptsUrl) -> String {
    match u {
        ScriptsUrl::Image(p) => format!("image://{p}"),
        ScriptsUrl::File(p) => format!("file://{p}"),
        ScriptsUrl::Http(u) => u.clone(),
    }
}

/// Locates every script; the required ones must be found.
pub fn locate(
    c: &Candidates<'_>,
    image_label: &str,
) -> Result<Vec<(Script, ScriptSource)>, LocateError> {
    let mut found = Vec::new();
    for script in Script::ALL {
        let from_explicit = c
            .explicit
            .filter(|_| (c.explicit_has)(script))
            .map(|u| match u {
                ScriptsUrl::Image(dir) => ScriptSource::Image(format!("{dir}/{}", script.name())),
                other => ScriptSource::Url(format!("{}/{}", url_text(other), script.name())),
            });
        let from_source = || (c.source_path)(script).map(ScriptSource::Source);
        let from_image = || match c.image {
            Some(ScriptsUrl::Image(dir)) => {
                let path = format!("{dir}/{}", script.name());
                (c.image_has)(&path).then_some(ScriptSource::Image(path))
            }
            Some(other) => Some(ScriptSource::Url(format!(
                "{}/{}",
                url_text(other),
                script.name()
            ))),
            None => None,
        };
        if let Some(s) = from_explicit.or_else(from_source).or_else(from_image) {
            found.push((script, s));
        }
    }
    if let Some(u) = c.explicit {
        if !Script::ALL.iter().any(|s| (c.explicit_has)(*s)) {
            return Err(LocateError::NothingFromExplicitUrl(url_text(u)));
        }
    }
    let missing: Vec<&str> = Script::ALL
        .iter()
        .filter(|s| s.required() && !found.iter().any(|(f, _)| f == *s))
        .map(|s| s.name())
        .collect();
    if !missing.is_empty() {
        return Err(LocateError::Missing {
            missing: missing.join(" and "),
            label: image_label.to_string(),
        });
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            ScriptsUrl::parse("image:///usr/libexec/s2i/").unwrap(),
            ScriptsUrl::Image("/usr/libexec/s2i".into())
        );
        assert!(ScriptsUrl::parse("image://relative").is_err());
        assert!(ScriptsUrl::parse("file://../etc").is_err());
        assert!(ScriptsUrl::parse("ftp://x").is_err());
        assert_eq!(
            ScriptsUrl::parse("https://h/s2i").unwrap(),
            ScriptsUrl::Http("https://h/s2i".into())
        );
    }

    #[test]
    fn precedence_is_per_script() {
        let image = ScriptsUrl::Image("/usr/libexec/s2i".into());
        let explicit = ScriptsUrl::Http("https://h/s".into());
        let c = Candidates {
            explicit: Some(&explicit),
            explicit_has: &|s| s == Script::Run,
            source_path: &|s| (s == Script::Assemble).then(|| ".s2i/bin/assemble".to_string()),
            image: Some(&image),
            image_has: &|p| p.ends_with("/assemble") || p.ends_with("/save-artifacts"),
        };
        let found = locate(&c, "io.openshift.s2i.scripts-url").unwrap();
        assert_eq!(
            found,
            vec![
                (
                    Script::Assemble,
                    ScriptSource::Source(".s2i/bin/assemble".into())
                ),
                (Script::Run, ScriptSource::Url("https://h/s/run".into())),
                (
                    Script::SaveArtifacts,
                    ScriptSource::Image("/usr/libexec/s2i/save-artifacts".into())
                ),
            ]
        );
        assert!(found[1].1.shipped() && !found[2].1.shipped());
    }

    #[test]
    fn failures_name_what_was_looked_at() {
        let explicit = ScriptsUrl::Http("https://h/s".into());
        let nothing = Candidates {
            explicit: Some(&explicit),
            explicit_has: &|_| false,
            source_path: &|_| None,
            image: None,
            image_has: &|_| false,
        };
        assert_eq!(
            locate(&nothing, "io.openshift.s2i.scripts-url"),
            Err(LocateError::NothingFromExplicitUrl("https://h/s".into()))
        );
        let no_label = Candidates {
            explicit: None,
            ..nothing
        };
        let err = locate(&no_label, "io.openshift.s2i.scripts-url").unwrap_err();
        assert_eq!(err.to_string(), "the builder image has no assemble and run script: it names none in the label io.openshift.s2i.scripts-url (set it, or put the script in the source's .s2i/bin/)");
    }
}

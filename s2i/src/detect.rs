//! Which builder a source wants, from the files at its root (the context
//! directory), as `oc new-build` guesses when no builder is named.

/// What a source tree looks like it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// A Dockerfile: a Docker-strategy build, no builder.
    Dockerfile,
    /// A Source build with a builder that `supports` this language.
    Language(&'static str),
}

/// Files that mark a language, in the order they are tried: a Dockerfile
/// wins (as with `oc new-build`), then the languages' own manifests, then a
/// bare web page.
const MARKERS: &[(&str, Detected)] = &[
    ("Dockerfile", Detected::Dockerfile),
    ("requirements.txt", Detected::Language("python")),
    ("setup.py", Detected::Language("python")),
    ("pyproject.toml", Detected::Language("python")),
    ("Pipfile", Detected::Language("python")),
    ("package.json", Detected::Language("nodejs")),
    ("index.html", Detected::Language("static")),
];

/// The first marker among `root_files` (names of the files at the root).
pub fn detect<'a>(root_files: impl IntoIterator<Item = &'a str>) -> Option<Detected> {
    let files: Vec<&str> = root_files.into_iter().collect();
    MARKERS
        .iter()
        .find(|(marker, _)| files.contains(marker))
        .map(|(_, found)| *found)
}

/// Whether an image stream tag's `supports` annotation (`python:3.11,python`)
/// names `language`, with or without a version.
pub fn supports(annotation: &str, language: &str) -> bool {
    annotation
        .split(',')
        .map(str::trim)
        .any(|entry| entry.split(':').next() == Some(language))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_in_order() {
        assert_eq!(
            detect(["app.py", "requirements.txt"]),
            Some(Detected::Language("python"))
        );
        assert_eq!(
            detect(["package.json", "index.html"]),
            Some(Detected::Language("nodejs"))
        );
        assert_eq!(
            detect(["index.html", "style.css"]),
            Some(Detected::Language("static"))
        );
        assert_eq!(
            detect(["Dockerfile", "package.json"]),
            Some(Detected::Dockerfile)
        );
        assert_eq!(detect(["README.md"]), None);
    }

    #[test]
    fn supports_annotation() {
        assert!(supports("python:3.11,python", "python"));
        assert!(supports("nodejs", "nodejs"));
        assert!(supports("static, html", "html"));
        assert!(!supports("python:3.11", "py"));
        assert!(!supports("", "python"));
    }
}

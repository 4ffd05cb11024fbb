//! Repository names are `<project>/<imagestream>`: a DNS-1123 label and a
//! name of at most 63 lower-case alphanumerics with '.', '_' or '-' inside.

use crate::error::{Code, RegistryError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoName {
    pub project: String,
    pub stream: String,
}

impl RepoName {
    pub fn parse(name: &str) -> Result<RepoName, RegistryError> {
        let invalid = |why: &str| {
            RegistryError::new(
                Code::NameInvalid,
                format!("invalid repository name {:?}: {why}", truncate(name)),
            )
        };
        let (project, stream) = name
            .split_once('/')
            .ok_or_else(|| invalid("names are <project>/<image stream>"))?;
        if stream.contains('/') {
            return Err(invalid("names are <project>/<image stream>: one '/' only"));
        }
        podspace_api::validation::dns1123_label(project)
            .map_err(|e| invalid(&format!("project: {e}")))?;
        let ok = !stream.is_empty()
            && stream.len() <= 63
            && stream
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && stream.as_bytes()[0].is_ascii_alphanumeric()
            && stream.as_bytes()[stream.len() - 1].is_ascii_alphanumeric()
            && !stream.contains("..");
        if !ok {
            return Err(invalid("an image stream name is 1-63 lower-case letters, digits, '.', '_' or '-', starting and ending alphanumeric"));
        }
        Ok(RepoName {
            project: project.to_string(),
            stream: stream.to_string(),
        })
    }

    pub fn full(&self) -> String {
        format!("{}/{}", self.project, self.stream)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(RepoName::parse("shop/web").is_ok());
        assert!(RepoName::parse("shop/web.v2_x-y").is_ok());
        for bad in [
            "shop",
            "Shop/web",
            "shop/Web",
            "shop/a/b",
            "shop/..",
            "../etc",
            "shop/a..b",
            "shop/-a",
            "/web",
            "shop/",
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad}");
        }
    }
}

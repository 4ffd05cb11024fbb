//! Kubernetes label selectors: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
//! `a notin (x)`, `a`, `!a`, joined by commas.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid label selector {selector:?}: {why}")]
pub struct SelectorError {
    selector: String,
    why: String,
}

impl LabelSelector {
    pub fn everything() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let err = |why: &str| SelectorError {
            selector: input.to_string(),
            why: why.to_string(),
        };
        let mut requirements = Vec::new();
        for term in split_terms(input).map_err(&err)? {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let req = if let Some(key) = term.strip_prefix('!') {
                Requirement::NotExists(check_key(key.trim()).map_err(&err)?)
            } else if let Some((k, v)) = term.split_once("!=") {
                Requirement::NotEquals(
                    check_key(k.trim()).map_err(&err)?,
                    check_value(v.trim()).map_err(&err)?,
                )
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                Requirement::Equals(
                    check_key(k.trim()).map_err(&err)?,
                    check_value(v.trim()).map_err(&err)?,
                )
            } else if let Some((k, set)) = split_set(term, " notin ") {
                Requirement::NotIn(check_key(k).map_err(&err)?, parse_set(set).map_err(&err)?)
            } else if let Some((k, set)) = split_set(term, " in ") {
                Requirement::In(check_key(k).map_err(&err)?, parse_set(set).map_err(&err)?)
            } else {
                Requirement::Exists(check_key(term).map_err(&err)?)
            };
            requirements.push(req);
        }
        Ok(LabelSelector { requirements })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, set) => labels.get(k).is_some_and(|v| set.contains(v)),
            Requirement::NotIn(k, set) => !labels.get(k).is_some_and(|v| set.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::NotExists(k) => !labels.contains_key(k),
        })
    }
}

/// Splits on commas that are not inside a `( … )` set.
fn split_terms(input: &str) -> Result<Vec<&str>, &'static str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in input.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&input[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return Err("unbalanced parentheses");
        }
    }
    if depth != 0 {
        return Err("unbalanced parentheses");
    }
    terms.push(&input[start..]);
    Ok(terms)
}

fn split_set<'a>(term: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let (k, rest) = term.split_once(op)?;
    Some((k.trim(), rest.trim()))
}

fn parse_set(set: &str) -> Result<Vec<String>, &'static str> {
    let inner = set
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or("a set must be written as (a,b)")?;
    inner.split(',').map(|v| check_value(v.trim())).collect()
}

fn check_key(key: &str) -> Result<String, &'static str> {
    let name = key.rsplit('/').next().unwrap_or(key);
    if name.is_empty()
        || name.len() > 63
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    {
        return Err("label keys are alphanumerics, '-', '_', '.' and an optional prefix/");
    }
    Ok(key.to_string())
}

fn check_value(value: &str) -> Result<String, &'static str> {
    if value.len() > 63
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err("label values are at most 63 alphanumerics, '-', '_' or '.'");
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn equality_and_sets() {
        let l = labels(&[("app", "shop"), ("tier", "web")]);
        assert!(LabelSelector::parse("app=shop").unwrap().matches(&l));
        assert!(LabelSelector::parse("app==shop,tier!=db")
            .unwrap()
            .matches(&l));
        assert!(!LabelSelector::parse("app=other").unwrap().matches(&l));
        assert!(LabelSelector::parse("tier in (web, db)")
            .unwrap()
            .matches(&l));
        assert!(!LabelSelector::parse("tier notin (web)")
            .unwrap()
            .matches(&l));
        assert!(LabelSelector::parse("app,!missing").unwrap().matches(&l));
        assert!(!LabelSelector::parse("!app").unwrap().matches(&l));
        assert!(LabelSelector::parse("").unwrap().matches(&l));
    }

    #[test]
    fn rejects_garbage() {
        assert!(LabelSelector::parse("a in (b").is_err());
        assert!(LabelSelector::parse("a=b c").is_err());
        assert!(LabelSelector::parse("=x").is_err());
    }
}

//! `.s2i/environment`: `KEY=VALUE` lines (blank lines and `#` comments
//! skipped). Its variables come first; the build's own env wins on a
//! duplicate name.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(".s2i/environment line {line}: {why}")]
pub struct EnvironmentError {
    pub line: usize,
    pub why: String,
}

fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub fn parse(text: &str) -> Result<Vec<(String, String)>, EnvironmentError> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |why: &str| EnvironmentError {
            line: n + 1,
            why: why.to_string(),
        };
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| err("expected KEY=VALUE"))?;
        let k = k.trim();
        if !valid_name(k) {
            return Err(err(&format!("{k:?} is not a variable name")));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// `file` then `build`, the later winning on a duplicate name (its place
/// is the first occurrence's).
pub fn merge(file: &[(String, String)], build: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in file.iter().chain(build) {
        match out.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_merges() {
        let file = parse("# settings\n\nDEBUG=1\nURL=http://x/?a=b\n  PORT = 8080\n").unwrap();
        assert_eq!(
            file,
            vec![
                ("DEBUG".into(), "1".into()),
                ("URL".into(), "http://x/?a=b".into()),
                ("PORT".into(), " 8080".into())
            ]
        );
        assert_eq!(parse("=x\n").unwrap_err().line, 1);
        assert!(parse("A B=1\n").is_err());
        assert!(parse("no equals\n").is_err());
        let merged = merge(
            &file,
            &[("DEBUG".into(), "0".into()), ("NEW".into(), "y".into())],
        );
        assert_eq!(merged[0], ("DEBUG".into(), "0".into()));
        assert_eq!(
            merged.last().unwrap(),
            &("NEW".to_string(), "y".to_string())
        );
    }
}

//! Reading objects from files: YAML or JSON, several documents per file,
//! and `List` objects whose items are the objects.

use std::io::Read;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// One object read from a file, with where it came from for messages.
pub struct Manifest {
    pub source: String,
    pub value: Value,
}

pub fn read(path: &str) -> Result<Vec<Manifest>> {
    let (text, source) = if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading standard input")?;
        (s, "STDIN".to_string())
    } else {
        (
            std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
            path.to_string(),
        )
    };
    parse(&text, &source)
}

pub fn parse(text: &str, source: &str) -> Result<Vec<Manifest>> {
    podspace_api::nesting::check(text.as_bytes(), podspace_api::nesting::MAX_DEPTH)
        .map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc)
            .with_context(|| format!("{source}: document {} is not valid YAML or JSON", i + 1))?;
        flatten(value, source, &mut out)?;
    }
    if out.is_empty() {
        bail!("no objects passed to create: {source} holds none");
    }
    Ok(out)
}

fn flatten(value: Value, source: &str, out: &mut Vec<Manifest>) -> Result<()> {
    match value {
        Value::Null => Ok(()),
        Value::Object(ref map) => {
            let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
            if kind == "List"
                || (kind.ends_with("List") && map.get("items").is_some_and(Value::is_array))
            {
                for item in map
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
                {
                    flatten(item, source, out)?;
                }
                return Ok(());
            }
            if kind.is_empty() {
                bail!("{source}: an object has no 'kind'");
            }
            out.push(Manifest {
                source: source.to_string(),
                value,
            });
            Ok(())
        }
        _ => bail!("{source}: every document must be an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_and_lists() {
        let text = "kind: ImageStream\nmetadata: {name: a}\n---\nkind: List\nitems:\n- {kind: BuildConfig, metadata: {name: b}}\n- {kind: DeploymentConfig, metadata: {name: c}}\n---\n";
        let m = parse(text, "f").unwrap();
        let kinds: Vec<_> = m
            .iter()
            .map(|m| m.value["kind"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(kinds, ["ImageStream", "BuildConfig", "DeploymentConfig"]);
        assert!(parse(
            "{\"kind\": \"ImageStream\", \"metadata\": {\"name\": \"x\"}}",
            "j"
        )
        .is_ok());
        assert!(parse("kind: [", "bad").is_err());
        assert!(parse("metadata: {name: a}", "nokind").is_err());
        assert!(parse("", "empty").is_err());
    }
}

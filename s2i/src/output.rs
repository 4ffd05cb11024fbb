//! What assemble may say about the output image, and the bound on its
//! labels: `/tmp/.s2i/image_metadata.json` (`{"labels":[{"k":"v"},…]}`)
//! adds labels that win over every other; all the labels of the output
//! image together (keys and values) take at most [`MAX_LABEL_BYTES`].

use std::collections::HashMap;

use serde::Deserialize;

/// Where assemble writes the output image's extra metadata.
pub const IMAGE_METADATA_PATH: &str = "/tmp/.s2i/image_metadata.json";
/// The most the metadata file may be.
pub const MAX_IMAGE_METADATA_BYTES: u64 = 64 * 1024;
/// The most all labels of an output image may take, keys and values.
pub const MAX_LABEL_BYTES: usize = 10 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputError {
    #[error("{IMAGE_METADATA_PATH} is not {{\"labels\":[{{\"key\":\"value\"}},…]}}: {0}")]
    BadMetadata(String),
    #[error("the output image's labels take {0} bytes (keys and values); at most {MAX_LABEL_BYTES} are allowed")]
    LabelsTooLarge(usize),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageMetadata {
    #[serde(default)]
    labels: Vec<HashMap<String, String>>,
}

/// The labels `image_metadata.json` adds, in its order.
pub fn metadata_labels(bytes: &[u8]) -> Result<Vec<(String, String)>, OutputError> {
    let bad = |e: serde_json::Error| OutputError::BadMetadata(e.to_string());
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(bad)?;
    // serde would also read a struct from an array (`[]`); the file is an object.
    if !value.is_object() {
        return Err(OutputError::BadMetadata("not a JSON object".into()));
    }
    let parsed = ImageMetadata::deserialize(value).map_err(bad)?;
    let mut out = Vec::new();
    for one in parsed.labels {
        let mut pairs: Vec<(String, String)> = one.into_iter().collect();
        pairs.sort();
        for (k, v) in pairs {
            if k.trim().is_empty() {
                return Err(OutputError::BadMetadata("a label with an empty key".into()));
            }
            out.push((k, v));
        }
    }
    Ok(out)
}

/// Checks the labels an output image ends with.
pub fn check_label_size<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<(), OutputError> {
    let total: usize = labels.into_iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_LABEL_BYTES {
        return Err(OutputError::LabelsTooLarge(total));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_files() {
        let labels =
            metadata_labels(br#"{"labels":[{"app.version":"1.2"},{"b":"2","a":"1"}]}"#).unwrap();
        assert_eq!(
            labels,
            vec![
                ("app.version".to_string(), "1.2".to_string()),
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "2".to_string()),
            ]
        );
        assert_eq!(metadata_labels(b"{}").unwrap(), vec![]);
        for bad in [
            &b"{\"labels\":{\"a\":\"b\"}}"[..],
            b"{\"labels\":[{\"a\":1}]}",
            b"{\"other\":[]}",
            b"[]",
            b"not json",
            b"{\"labels\":[{\" \":\"x\"}]}",
        ] {
            assert!(
                metadata_labels(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn label_cap() {
        let small: HashMap<String, String> = [("a".to_string(), "b".to_string())].into();
        assert!(check_label_size(&small).is_ok());
        let exact: HashMap<String, String> =
            [("k".to_string(), "v".repeat(MAX_LABEL_BYTES - 1))].into();
        assert!(check_label_size(&exact).is_ok());
        let big: HashMap<String, String> = [("k".to_string(), "v".repeat(MAX_LABEL_BYTES))].into();
        assert_eq!(
            check_label_size(&big),
            Err(OutputError::LabelsTooLarge(MAX_LABEL_BYTES + 1))
        );
    }
}

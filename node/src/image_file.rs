//! Reading one file of an image from its registry without running it (the
//! builder's `/etc/passwd`, to resolve a named assemble user): the layers
//! are read top down and the first that has the file, or deletes it (a
//! whiteout of it or of a parent, an opaque parent), decides. A name is
//! resolved here, by the node, and not by the image's own tools, which a
//! builder image could make say anything.

use std::io::Read;
use std::path::Path;

use podspace_imagestreams::remote::{Client, RemoteRef};
use podspace_oci::manifest::Descriptor;

/// What one layer says of a path.
#[derive(Debug, PartialEq, Eq)]
pub enum InLayer {
    Found(Vec<u8>),
    /// Whited out, hidden by an opaque directory, or not a regular file.
    Deleted,
    Absent,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageFileError {
    #[error("reading layer {digest}: {why}")]
    Layer { digest: String, why: String },
    #[error("{0}")]
    Fetch(#[from] podspace_imagestreams::remote::ImportError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn normal(name: &str) -> String {
    name.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

/// Scans one layer's tar (gzip or plain) for `path` (`etc/passwd`), reading
/// at most `max` bytes of it.
pub fn find_in_layer(layer: impl Read, path: &str, max: u64) -> std::io::Result<InLayer> {
    let mut layer = std::io::BufReader::new(layer);
    let magic = std::io::BufRead::fill_buf(&mut layer)?
        .get(..4)
        .map(<[u8]>::to_vec);
    let reader: Box<dyn Read> = match magic.as_deref() {
        Some([0x1f, 0x8b, ..]) => Box::new(flate2::read::GzDecoder::new(layer)),
        Some([0x28, 0xb5, 0x2f, 0xfd]) => {
            return Err(std::io::Error::other("zstd layers cannot be read here"))
        }
        _ => Box::new(layer),
    };
    let path = normal(path);
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    let parents: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
    let mut hidden = false;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = normal(&entry.path()?.to_string_lossy());
        if name == path {
            if !entry.header().entry_type().is_file() {
                return Ok(InLayer::Deleted);
            }
            let mut bytes = Vec::new();
            (&mut entry).take(max).read_to_end(&mut bytes)?;
            return Ok(InLayer::Found(bytes));
        }
        let (entry_dir, entry_file) = name.rsplit_once('/').unwrap_or(("", name.as_str()));
        let Some(whiteout) = entry_file.strip_prefix(".wh.") else {
            continue;
        };
        let target = if entry_dir.is_empty() {
            whiteout.to_string()
        } else {
            format!("{entry_dir}/{whiteout}")
        };
        // `.wh..wh..opq` hides what lower layers have in its directory; a
        // whiteout of the file or of a parent deletes it.
        let opaque = whiteout == ".wh..opq" && (entry_dir == dir || parents.contains(&entry_dir));
        if opaque || target == path || parents.contains(&target.as_str()) {
            hidden = true;
        }
    }
    Ok(if hidden {
        InLayer::Deleted
    } else {
        InLayer::Absent
    })
}

/// `path` in the image `reference` (`registry/repository@digest`) whose
/// layers are `layers`; `None` when no layer has it.
pub async fn read(
    reference: &str,
    layers: &[Descriptor],
    insecure: bool,
    creds: Option<&(String, String)>,
    path: &str,
    scratch: &Path,
    max_layer_bytes: u64,
) -> Result<Option<Vec<u8>>, ImageFileError> {
    let remote = RemoteRef::parse_docker(reference)?;
    let client = Client::new();
    std::fs::create_dir_all(scratch)?;
    for layer in layers.iter().rev() {
        let file = scratch.join(&layer.digest.hex);
        client
            .blob_to_file(
                &remote,
                insecure,
                creds,
                &layer.digest,
                &file,
                max_layer_bytes,
            )
            .await?;
        let p = path.to_string();
        let f = file.clone();
        let found = tokio::task::spawn_blocking(move || {
            find_in_layer(std::fs::File::open(&f)?, &p, 1 << 20)
        })
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .map_err(|e| ImageFileError::Layer {
            digest: layer.digest.to_string(),
            why: e.to_string(),
        });
        let _ = std::fs::remove_file(&file);
        match found? {
            InLayer::Found(bytes) => return Ok(Some(bytes)),
            InLayer::Deleted => return Ok(None),
            InLayer::Absent => {}
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(entries: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        if !gzip {
            return tar;
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn finds_deletes_and_misses() {
        let found = layer(
            &[("./etc/hosts", b"h"), ("./etc/passwd", b"root:x:0:0")],
            true,
        );
        assert_eq!(
            find_in_layer(&found[..], "/etc/passwd", 100).unwrap(),
            InLayer::Found(b"root:x:0:0".to_vec())
        );
        let plain = layer(&[("etc/passwd", b"abc")], false);
        assert_eq!(
            find_in_layer(&plain[..], "/etc/passwd", 2).unwrap(),
            InLayer::Found(b"ab".to_vec()),
            "read at most max bytes"
        );
        for deleting in [
            layer(&[("etc/.wh.passwd", b"")], true),
            layer(&[(".wh.etc", b"")], true),
            layer(&[("etc/.wh..wh..opq", b"")], true),
        ] {
            assert_eq!(
                find_in_layer(&deleting[..], "/etc/passwd", 100).unwrap(),
                InLayer::Deleted
            );
        }
        let other = layer(&[("usr/.wh..wh..opq", b""), ("etc/group", b"g")], true);
        assert_eq!(
            find_in_layer(&other[..], "/etc/passwd", 100).unwrap(),
            InLayer::Absent
        );
        let opaque_then_file = layer(&[("etc/.wh..wh..opq", b""), ("etc/passwd", b"p")], false);
        assert_eq!(
            find_in_layer(&opaque_then_file[..], "/etc/passwd", 100).unwrap(),
            InLayer::Found(b"p".to_vec())
        );
    }
}

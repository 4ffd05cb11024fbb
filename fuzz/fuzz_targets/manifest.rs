//! Manifest parsing as a PUT meets it: any bytes under any of the media
//! types clients send (the first byte picks one).
#![no_main]
use libfuzzer_sys::fuzz_target;

const TYPES: &[Option<&str>] = &[
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
    Some("application/json"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let ct = TYPES[pick as usize % TYPES.len()];
    if let Ok(m) = podspace_oci::manifest::parse(ct, body) {
        let _ = m.required_blobs();
        let _ = m.required_manifests();
    }
});

//! Request paths, repository names, digests and image references.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((name, _)) = podspace_registry::routes::parse_path(s) {
        let _ = podspace_registry::names::RepoName::parse(&name);
    }
    let _ = podspace_registry::names::RepoName::parse(s);
    if let Ok(d) = podspace_oci::digest::Digest::parse(s) {
        assert_eq!(
            podspace_oci::digest::Digest::parse(&d.to_string()).ok(),
            Some(d)
        );
    }
    if let Ok(r) = podspace_imagestreams::remote::RemoteRef::parse_docker(s) {
        let _ = podspace_imagestreams::remote::RemoteRef::parse(&r.whole());
    }
});

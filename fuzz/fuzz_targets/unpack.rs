//! Binary build input unpacking: any bytes as a tar or gzipped tar, within
//! small limits; nothing may land outside the destination.
#![no_main]
use libfuzzer_sys::fuzz_target;
use podspace_node::source::{unpack_binary, ContextLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let input = dir.path().join("input");
    if std::fs::write(&input, data).is_err() {
        return;
    }
    let dest = dir.path().join("root/dest");
    let limits = ContextLimits {
        bytes: 1 << 20,
        entries: 256,
    };
    let _ = unpack_binary(&input, &dest, None, limits);
    // Only `input` and what is under `dest` may exist.
    for e in std::fs::read_dir(dir.path().join("root"))
        .into_iter()
        .flatten()
        .flatten()
    {
        assert_eq!(e.file_name(), "dest", "an entry escaped the destination");
    }
});

//! `Content-Range` of an upload PATCH and `Range` of a blob GET.
#![no_main]
use libfuzzer_sys::fuzz_target;
use podspace_registry::ranges;

fuzz_target!(|input: (&str, Option<u64>, u64)| {
    let (value, length, size) = input;
    if let Ok(start) = ranges::content_range(value, length) {
        let _ = start;
    }
    if let Some(r) = ranges::blob_range(value, size) {
        assert!(r.start < r.end && r.end <= size);
    }
});

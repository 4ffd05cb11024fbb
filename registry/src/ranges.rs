//! The two byte-range headers of the protocol: `Range` on a blob GET and
//! `Content-Range` on an upload PATCH. Pure functions over client input
//! (fuzzed in `fuzz/`): no arithmetic here can overflow.

use std::ops::Range;

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a blob of `size` bytes;
/// `None` when it does not fit (answered 416).
pub fn blob_range(value: &str, size: u64) -> Option<Range<u64>> {
    let spec = value.strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let last = size.checked_sub(1)?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => (size.saturating_sub(n.parse().ok()?), last),
        (a, "") => (a.parse().ok()?, last),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(last)),
    };
    (start <= end && start < size).then(|| start..end + 1)
}

/// `Content-Range: [bytes ]<start>-<end>[/<total>]` of a chunk: its start.
/// With a `Content-Length`, the two must agree.
pub fn content_range(value: &str, content_length: Option<u64>) -> Result<u64, &'static str> {
    const SHAPE: &str = "Content-Range must be <start>-<end>";
    let v = value.strip_prefix("bytes ").unwrap_or(value);
    let (a, b) = v.split_once('-').ok_or(SHAPE)?;
    let start: u64 = a.trim().parse().map_err(|_| SHAPE)?;
    let end: u64 = b
        .split('/')
        .next()
        .unwrap_or(b)
        .trim()
        .parse()
        .map_err(|_| SHAPE)?;
    if end < start {
        return Err(SHAPE);
    }
    if let Some(len) = content_length {
        // `end - start + 1` overflows for 0-18446744073709551615.
        if (end - start).checked_add(1) != Some(len) {
            return Err("Content-Range does not match Content-Length");
        }
    }
    Ok(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ranges() {
        assert_eq!(blob_range("bytes=0-9", 100), Some(0..10));
        assert_eq!(blob_range("bytes=90-", 100), Some(90..100));
        assert_eq!(blob_range("bytes=-10", 100), Some(90..100));
        assert_eq!(blob_range("bytes=50-500", 100), Some(50..100));
        assert_eq!(blob_range("bytes=100-", 100), None);
        assert_eq!(blob_range("bytes=5-2", 100), None);
        assert_eq!(blob_range("items=0-1", 100), None);
        assert_eq!(blob_range("bytes=0-0", 0), None);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(content_range("0-9", Some(10)), Ok(0));
        assert_eq!(content_range("bytes 10-19/*", None), Ok(10));
        assert!(content_range("9-0", None).is_err());
        assert!(content_range("0-9", Some(11)).is_err());
        assert!(content_range("x-9", None).is_err());
        // The largest range cannot overflow the length check.
        assert!(content_range("0-18446744073709551615", Some(0)).is_err());
    }
}

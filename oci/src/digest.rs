//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and a SHA-256 whose
//! running state can be saved and restored, so that an upload interrupted
//! by a restart resumes without re-reading what it already stored.
//!
//! The streaming part is written here, on top of the `sha2` crate's own
//! compression function, because `sha2` does not expose its running state;
//! only the block buffering and the final padding (FIPS 180-4 §5.1.1) are
//! ours, and the tests check them against `sha2` itself.

use std::fmt;

use sha2::digest::generic_array::GenericArray;
use sha2::Digest as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    pub algorithm: Algorithm,
    pub hex: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {0:?}: expected sha256:<64 hex> or sha512:<128 hex>")]
pub struct DigestError(pub String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let err = || DigestError(s.chars().take(200).collect());
        let (alg, hex) = s.split_once(':').ok_or_else(err)?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(err()),
        };
        let ok = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !ok {
            return Err(err());
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(sha2::Sha256::digest(data)),
        }
    }

    pub fn of(algorithm: Algorithm, data: &[u8]) -> Digest {
        match algorithm {
            Algorithm::Sha256 => Self::sha256_of(data),
            Algorithm::Sha512 => Digest {
                algorithm,
                hex: hex::encode(sha2::Sha512::digest(data)),
            },
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 over a stream, with a state that fits in 105 bytes.
#[derive(Clone)]
pub struct ResumableSha256 {
    state: [u32; 8],
    block: [u8; 64],
    filled: usize,
    total: u64,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        ResumableSha256 {
            state: H0,
            block: [0; 64],
            filled: 0,
            total: 0,
        }
    }
}

impl ResumableSha256 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn bytes_hashed(&self) -> u64 {
        self.total
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        if self.filled > 0 {
            let take = (64 - self.filled).min(data.len());
            self.block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled < 64 {
                return;
            }
            sha2::compress256(
                &mut self.state,
                &[GenericArray::clone_from_slice(&self.block)],
            );
            self.filled = 0;
        }
        let whole = data.len() / 64 * 64;
        for block in data[..whole].chunks_exact(64) {
            sha2::compress256(
                &mut self.state,
                std::slice::from_ref(GenericArray::from_slice(block)),
            );
        }
        let rest = &data[whole..];
        self.block[..rest.len()].copy_from_slice(rest);
        self.filled = rest.len();
    }

    pub fn finish(&self) -> Digest {
        let mut state = self.state;
        let mut tail = [0u8; 128];
        tail[..self.filled].copy_from_slice(&self.block[..self.filled]);
        tail[self.filled] = 0x80;
        let len = if self.filled < 56 { 64 } else { 128 };
        tail[len - 8..len].copy_from_slice(&(self.total * 8).to_be_bytes());
        for block in tail[..len].chunks_exact(64) {
            sha2::compress256(
                &mut state,
                std::slice::from_ref(GenericArray::from_slice(block)),
            );
        }
        let mut out = [0u8; 32];
        for (i, word) in state.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
        }
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(out),
        }
    }

    /// state (32) + total (8) + filled (1) + the partial block.
    pub fn save(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(41 + self.filled);
        for w in self.state {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.extend_from_slice(&self.total.to_be_bytes());
        out.push(self.filled as u8);
        out.extend_from_slice(&self.block[..self.filled]);
        out
    }

    pub fn restore(saved: &[u8]) -> Option<Self> {
        if saved.len() < 41 {
            return None;
        }
        let mut state = [0u32; 8];
        for (i, w) in state.iter_mut().enumerate() {
            *w = u32::from_be_bytes(saved[i * 4..i * 4 + 4].try_into().ok()?);
        }
        let total = u64::from_be_bytes(saved[32..40].try_into().ok()?);
        let filled = saved[40] as usize;
        if filled >= 64 || saved.len() != 41 + filled || total % 64 != filled as u64 % 64 {
            return None;
        }
        let mut block = [0u8; 64];
        block[..filled].copy_from_slice(&saved[41..]);
        Some(ResumableSha256 {
            state,
            block,
            filled,
            total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_sha2_for_every_split_and_survives_a_save() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        for len in [0usize, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000] {
            let want = Digest::sha256_of(&data[..len]);
            for split in [0, 1, 13, 64, len / 2, len] {
                let split = split.min(len);
                let mut h = ResumableSha256::new();
                h.update(&data[..split]);
                let mut h = ResumableSha256::restore(&h.save()).expect("restores");
                h.update(&data[split..len]);
                assert_eq!(h.finish(), want, "len {len} split {split}");
                assert_eq!(h.bytes_hashed(), len as u64);
            }
        }
    }

    #[test]
    fn parses_digests() {
        let d = Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap();
        assert_eq!(d.algorithm, Algorithm::Sha256);
        assert!(Digest::parse(&format!("sha512:{}", "0".repeat(128))).is_ok());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "a".repeat(63))).is_err());
        assert!(Digest::parse("md5:abc").is_err());
        assert!(Digest::parse("latest").is_err());
        assert!(ResumableSha256::restore(&[1, 2, 3]).is_none());
    }
}

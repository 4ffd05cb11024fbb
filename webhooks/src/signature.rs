//! The provider's own proof that a delivery is genuine, required when the
//! trigger names a signing secret: an HMAC-SHA256 of the raw body
//! (`X-Hub-Signature-256: sha256=…` from GitHub, Gitea, Gogs and Generic
//! senders, `X-Gitea-Signature`/`X-Gogs-Signature` as bare hex, Bitbucket's
//! `X-Hub-Signature: sha256=…`), or GitLab's `X-Gitlab-Token`, which is the
//! secret itself. Every comparison is constant-time.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Provider;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the delivery carries no signature")]
    Missing,
    #[error("the delivery's signature does not match")]
    Wrong,
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `hex` is the HMAC-SHA256 of `body` under `key`.
fn hmac_matches(key: &[u8], body: &[u8], hex: &str) -> bool {
    let Ok(expected) = hex::decode(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The signature of a delivery (the hex of an HMAC, or GitLab's token).
enum Proof<'a> {
    Hmac(&'a str),
    Token(&'a str),
}

fn proof(provider: Provider, headers: &HeaderMap) -> Option<Proof<'_>> {
    let prefixed = |name: &str| {
        header(headers, name).and_then(|v| {
            v.strip_prefix("sha256=")
                .or_else(|| v.strip_prefix("SHA256="))
        })
    };
    match provider {
        Provider::GitLab => header(headers, "x-gitlab-token").map(Proof::Token),
        Provider::Bitbucket => prefixed("x-hub-signature")
            .or_else(|| prefixed("x-hub-signature-256"))
            .map(Proof::Hmac),
        Provider::GitHub | Provider::Generic => prefixed("x-hub-signature-256")
            .or_else(|| header(headers, "x-gitea-signature"))
            .or_else(|| header(headers, "x-gogs-signature"))
            .map(Proof::Hmac),
    }
}

/// Checks the delivery's signature against the signing secret `key`.
pub fn verify(
    provider: Provider,
    headers: &HeaderMap,
    body: &[u8],
    key: &[u8],
) -> Result<(), SignatureError> {
    let ok = match proof(provider, headers).ok_or(SignatureError::Missing)? {
        Proof::Hmac(hex) => hmac_matches(key, body, hex),
        Proof::Token(token) => !key.is_empty() && bool::from(token.as_bytes().ct_eq(key)),
    };
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Wrong)
    }
}

/// `sha256=<hex>` of `body` under `key`: what a sender puts in
/// `X-Hub-Signature-256` (psc's own deliveries, tests).
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        // HMAC takes a key of any length.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn github_style_hmac() {
        // The example of GitHub's documentation on validating deliveries.
        let body = b"Hello, World!";
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(b"It's a Secret to Everybody", body), expected);
        let h = headers(&[("x-hub-signature-256", expected)]);
        assert_eq!(
            verify(Provider::GitHub, &h, body, b"It's a Secret to Everybody"),
            Ok(())
        );
        assert_eq!(
            verify(
                Provider::GitHub,
                &h,
                b"Hello, World?",
                b"It's a Secret to Everybody"
            ),
            Err(SignatureError::Wrong)
        );
        assert_eq!(
            verify(Provider::GitHub, &h, body, b"another key"),
            Err(SignatureError::Wrong)
        );
        assert_eq!(
            verify(Provider::GitHub, &HeaderMap::new(), body, b"k"),
            Err(SignatureError::Missing)
        );
        let bad_hex = headers(&[("x-hub-signature-256", "sha256=zz")]);
        assert_eq!(
            verify(Provider::GitHub, &bad_hex, body, b"k"),
            Err(SignatureError::Wrong)
        );
        let gitea = headers(&[("x-gitea-signature", expected.trim_start_matches("sha256="))]);
        assert_eq!(
            verify(
                Provider::GitHub,
                &gitea,
                body,
                b"It's a Secret to Everybody"
            ),
            Ok(())
        );
    }

    #[test]
    fn gitlab_token_and_bitbucket_hmac() {
        let h = headers(&[("x-gitlab-token", "t0ken")]);
        assert_eq!(verify(Provider::GitLab, &h, b"{}", b"t0ken"), Ok(()));
        assert_eq!(
            verify(Provider::GitLab, &h, b"{}", b"t0ke"),
            Err(SignatureError::Wrong)
        );
        assert_eq!(
            verify(Provider::GitLab, &h, b"{}", b""),
            Err(SignatureError::Wrong)
        );
        let sig = sign(b"k", b"{}");
        let h = headers(&[("x-hub-signature", &sig)]);
        assert_eq!(verify(Provider::Bitbucket, &h, b"{}", b"k"), Ok(()));
        assert_eq!(
            verify(Provider::Bitbucket, &h, b"{ }", b"k"),
            Err(SignatureError::Wrong)
        );
    }
}

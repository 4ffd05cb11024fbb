//! Which user runs `assemble`. It never runs as root unless the cluster
//! admin allowed it: the user must be numeric (`1001`, or `1001:0`) and
//! inside the allowed UID ranges (`ALLOWED_UIDS` syntax: `n`, `n-`, `-m`,
//! `n-m`, comma-separated). A name cannot be checked against a range, so
//! it is refused too — unless `/etc/passwd` of the image resolves it
//! (the node passes that lookup in).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    low: u32,
    high: u32,
}

/// Allowed UIDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedUids(Vec<Range>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("invalid UID range {0:?}: use n, n-, -m or n-m, comma-separated")]
    BadRange(String),
    #[error("image {image:?} must specify a user that is numeric and within the range of allowed users ({allowed}); its assemble user is {user:?}")]
    NotAllowed {
        image: String,
        user: String,
        allowed: String,
    },
    #[error("image {image:?} would run assemble as root (user {user:?}); builds may not run as root here")]
    Root { image: String, user: String },
}

impl AllowedUids {
    /// Any user but root: `1-`.
    pub fn non_root() -> AllowedUids {
        AllowedUids(vec![Range {
            low: 1,
            high: u32::MAX,
        }])
    }

    /// Everyone, root included (a cluster admin's choice).
    pub fn anyone() -> AllowedUids {
        AllowedUids(vec![Range {
            low: 0,
            high: u32::MAX,
        }])
    }

    pub fn parse(spec: &str) -> Result<AllowedUids, UserError> {
        let bad = || UserError::BadRange(spec.to_string());
        let num = |s: &str| s.trim().parse::<u32>().map_err(|_| bad());
        let mut out = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let r = match part.split_once('-') {
                None => {
                    let n = num(part)?;
                    Range { low: n, high: n }
                }
                Some((a, "")) => Range {
                    low: num(a)?,
                    high: u32::MAX,
                },
                Some(("", b)) => Range {
                    low: 0,
                    high: num(b)?,
                },
                Some((a, b)) => Range {
                    low: num(a)?,
                    high: num(b)?,
                },
            };
            if r.low > r.high {
                return Err(bad());
            }
            out.push(r);
        }
        if out.is_empty() {
            return Err(bad());
        }
        Ok(AllowedUids(out))
    }

    fn contains(&self, uid: u32) -> bool {
        self.0.iter().any(|r| r.low <= uid && uid <= r.high)
    }

    fn describe(&self) -> String {
        self.0
            .iter()
            .map(|r| match (r.low, r.high) {
                (l, h) if l == h => l.to_string(),
                (l, u32::MAX) => format!("{l}-"),
                (l, h) => format!("{l}-{h}"),
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The UID `assemble` runs as, checked. `user` is the assemble user (the
/// label, else the image's USER; empty means root); `lookup` resolves a
/// user name through the image's `/etc/passwd`.
pub fn assemble_uid(
    image: &str,
    user: Option<&str>,
    allowed: &AllowedUids,
    lookup: &dyn Fn(&str) -> Option<u32>,
) -> Result<u32, UserError> {
    let user = user.unwrap_or_default();
    let name = user.split(':').next().unwrap_or_default().trim();
    let uid = match name {
        "" => Some(0),
        n => n.parse::<u32>().ok().or_else(|| lookup(n)),
    };
    match uid {
        Some(0) if !allowed.contains(0) => Err(UserError::Root {
            image: image.to_string(),
            user: if user.is_empty() {
                "root (no USER)".into()
            } else {
                user.to_string()
            },
        }),
        Some(uid) if allowed.contains(uid) => Ok(uid),
        _ => Err(UserError::NotAllowed {
            image: image.to_string(),
            user: user.to_string(),
            allowed: allowed.describe(),
        }),
    }
}

/// The UID of `name` in an image's `/etc/passwd` text (`name:x:uid:…`).
pub fn passwd_uid(passwd: &str, name: &str) -> Option<u32> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines() {
        let text = "root:x:0:0:root:/root:/bin/sh\n# c\ndefault:x:1001:0::/opt/app-root:/bin/sh\nbad:x:zz:0\n";
        assert_eq!(passwd_uid(text, "default"), Some(1001));
        assert_eq!(passwd_uid(text, "root"), Some(0));
        assert_eq!(passwd_uid(text, "bad"), None);
        assert_eq!(passwd_uid(text, "nobody"), None);
    }

    #[test]
    fn ranges() {
        let a = AllowedUids::parse("1-,5").unwrap();
        assert!(a.contains(1) && a.contains(u32::MAX) && !a.contains(0));
        let b = AllowedUids::parse("-10, 1000-2000").unwrap();
        assert!(b.contains(0) && b.contains(1500) && !b.contains(11));
        assert!(AllowedUids::parse("5-1").is_err());
        assert!(AllowedUids::parse("x").is_err());
        assert!(AllowedUids::parse("").is_err());
    }

    #[test]
    fn assemble_users() {
        let none = |_: &str| None;
        let passwd = |n: &str| (n == "default").then_some(1001);
        let strict = AllowedUids::non_root();
        assert_eq!(assemble_uid("py", Some("1001"), &strict, &none), Ok(1001));
        assert_eq!(assemble_uid("py", Some("1001:0"), &strict, &none), Ok(1001));
        assert_eq!(
            assemble_uid("py", Some("default"), &strict, &passwd),
            Ok(1001)
        );
        assert!(matches!(
            assemble_uid("py", Some("default"), &strict, &none),
            Err(UserError::NotAllowed { .. })
        ));
        let err = assemble_uid("py", None, &strict, &none).unwrap_err();
        assert!(matches!(err, UserError::Root { .. }));
        assert!(matches!(
            assemble_uid("py", Some("root"), &strict, &|n| (n == "root").then_some(0)),
            Err(UserError::Root { .. })
        ));
        assert_eq!(
            assemble_uid("py", Some("0"), &AllowedUids::anyone(), &none),
            Ok(0)
        );
        let narrow = AllowedUids::parse("2000-3000").unwrap();
        let msg = assemble_uid("py", Some("1001"), &narrow, &none)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("\"1001\"") && msg.contains("2000-3000"),
            "{msg}"
        );
    }
}

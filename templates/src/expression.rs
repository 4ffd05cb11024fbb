//! Values generated from an expression, as OpenShift's template generator
//! reads them: literal text, and character classes repeated `{N}` times.
//! A class is `[…]` holding ranges (`a-z`), single characters and the
//! shorthands `\w` (`[a-zA-Z0-9_]`), `\d` (digits), `\a` (letters) and `\A`
//! (symbols), or a shorthand on its own (`\d{4}`). Hand-written: no
//! maintained crate generates from this dialect, and a regex crate would
//! accept far more than OpenShift does.

use rand::seq::SliceRandom;

/// The most characters one class may produce.
const MAX_REPEAT: usize = 255;
const SYMBOLS: &str = "~!@#$%^&*()-_+={}[]\\|<,>.?/\"';:`";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpressionError {
    #[error("malformed expression {0:?}: {1}")]
    Malformed(String, &'static str),
}

fn shorthand(c: char) -> Option<Vec<char>> {
    let range = |a: char, b: char| (a..=b).collect::<Vec<char>>();
    Some(match c {
        'w' => [range('a', 'z'), range('A', 'Z'), range('0', '9'), vec!['_']].concat(),
        'd' => range('0', '9'),
        'a' => [range('a', 'z'), range('A', 'Z')].concat(),
        'A' => SYMBOLS.chars().collect(),
        _ => return None,
    })
}

/// Generates a value from `expr`.
pub fn generate(expr: &str) -> Result<String, ExpressionError> {
    let bad = |why| ExpressionError::Malformed(expr.to_string(), why);
    let chars: Vec<char> = expr.chars().collect();
    let mut rng = rand::thread_rng();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let class: Vec<char> = match chars[i] {
            '[' => {
                let mut set = Vec::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(bad("a '[' without its ']'")),
                        Some(']') => break,
                        Some('\\') => {
                            let c = chars.get(i + 1).ok_or_else(|| bad("a '\\' at the end"))?;
                            set.extend(shorthand(*c).ok_or_else(|| bad("an unknown '\\' class"))?);
                            i += 2;
                        }
                        Some(&a)
                            if chars.get(i + 1) == Some(&'-')
                                && chars.get(i + 2).is_some_and(|c| *c != ']') =>
                        {
                            let b = chars[i + 2];
                            if b < a {
                                return Err(bad("a range whose end is before its start"));
                            }
                            set.extend(a..=b);
                            i += 3;
                        }
                        Some(&c) => {
                            set.push(c);
                            i += 1;
                        }
                    }
                }
                i += 1;
                set
            }
            '\\' => {
                let c = chars.get(i + 1).ok_or_else(|| bad("a '\\' at the end"))?;
                i += 2;
                match shorthand(*c) {
                    Some(set) => set,
                    None => {
                        // An escaped literal.
                        out.push(*c);
                        continue;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
                continue;
            }
        };
        if class.is_empty() {
            return Err(bad("an empty class"));
        }
        let mut count = 1;
        if chars.get(i) == Some(&'{') {
            let end = chars[i..]
                .iter()
                .position(|c| *c == '}')
                .ok_or_else(|| bad("a '{' without its '}'"))?;
            let digits: String = chars[i + 1..i + end].iter().collect();
            count = digits
                .parse()
                .map_err(|_| bad("a count that is not a number"))?;
            if !(1..=MAX_REPEAT).contains(&count) {
                return Err(bad("a count outside 1..255"));
            }
            i += end + 1;
        }
        for _ in 0..count {
            out.push(
                *class
                    .choose(&mut rng)
                    .ok_or_else(|| bad("an empty class"))?,
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_counts_and_literals() {
        let v = generate("[a-zA-Z0-9]{16}").unwrap();
        assert_eq!(v.len(), 16);
        assert!(v.chars().all(|c| c.is_ascii_alphanumeric()), "{v}");
        assert_ne!(v, generate("[a-zA-Z0-9]{16}").unwrap(), "random");
        let v = generate("user[A-Z0-9]{3}").unwrap();
        assert!(v.starts_with("user") && v.len() == 7, "{v}");
        let v = generate("[\\w]{10}-\\d{4}").unwrap();
        assert_eq!(v.len(), 15);
        assert!(v[11..].chars().all(|c| c.is_ascii_digit()), "{v}");
        assert!(generate("[\\A]{20}")
            .unwrap()
            .chars()
            .all(|c| SYMBOLS.contains(c)));
        assert_eq!(generate("[x]").unwrap(), "x");
        assert_eq!(generate("plain").unwrap(), "plain");
        let v = generate("[a-]{30}").unwrap();
        assert!(v.chars().all(|c| c == 'a' || c == '-'), "{v}");
    }

    #[test]
    fn malformed_expressions_are_refused() {
        for bad in [
            "[a-z",
            "[a-z]{",
            "[a-z]{0}",
            "[a-z]{256}",
            "[z-a]{3}",
            "[]{3}",
            "[\\q]",
            "x\\",
            "[a]{x}",
        ] {
            assert!(generate(bad).is_err(), "{bad}");
        }
    }
}

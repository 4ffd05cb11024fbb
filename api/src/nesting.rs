//! How deeply a YAML or JSON document nests, found in one linear pass
//! before any parser runs. libyaml (under `serde_yaml`) spends time
//! quadratic in the depth of flow collections (`[[[[…`), so a 200 KB body
//! could cost minutes of CPU; refusing deep documents up front keeps every
//! body's cost linear. The scan over-counts rather than under-counts (block
//! indentation levels, compact `- - -` sequences and flow brackets all add
//! up), skipping quoted scalars, comments and block scalar bodies, whose
//! brackets are text.

/// The deepest nesting accepted, as Kubernetes' own decoders do.
pub const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the document nests deeper than {max} levels (line {line})")]
pub struct TooDeep {
    pub max: usize,
    pub line: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Double,
    Single,
}

/// Whether a quote or bracket at `i` begins a token (YAML only treats them
/// as indicators there; in `don't` or `a[0]` they are text).
fn token_start(line: &[u8], i: usize, flow: usize) -> bool {
    i == 0
        || matches!(line[i - 1], b' ' | b'\t')
        || (flow > 0 && matches!(line[i - 1], b'[' | b'{' | b',' | b':'))
}

/// Refuses `text` if it nests deeper than `max`.
pub fn check(text: &[u8], max: usize) -> Result<(), TooDeep> {
    let mut flow = 0usize;
    let mut quote = Quote::None;
    let mut indents: Vec<usize> = Vec::new();
    // The indentation of the line that opened a block scalar (`|`, `>`).
    let mut block_scalar: Option<usize> = None;
    for (n, line) in text.split(|b| *b == b'\n').enumerate() {
        let too_deep = || TooDeep { max, line: n + 1 };
        let indent = line.iter().take_while(|b| **b == b' ').count();
        let blank = line[indent..].iter().all(|b| b.is_ascii_whitespace());
        if let Some(parent) = block_scalar {
            if blank || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut i = 0;
        if quote == Quote::None && flow == 0 && !blank && line.get(indent) != Some(&b'#') {
            while indents.last().is_some_and(|top| *top >= indent) {
                indents.pop();
            }
            indents.push(indent);
            i = indent;
            // `- - - x`: each dash opens a sequence on this line.
            while line.get(i) == Some(&b'-') && matches!(line.get(i + 1), Some(b' ') | None) {
                indents.push(i + 1);
                i += 2;
                while line.get(i) == Some(&b' ') {
                    i += 1;
                }
            }
            if indents.len() > max {
                return Err(too_deep());
            }
        }
        let block_depth = indents.len();
        while i < line.len() {
            let c = line[i];
            match quote {
                Quote::Double => match c {
                    b'\\' => i += 1,
                    b'"' => quote = Quote::None,
                    _ => {}
                },
                Quote::Single => {
                    if c == b'\'' {
                        if line.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            quote = Quote::None;
                        }
                    }
                }
                Quote::None => match c {
                    b'#' if i == 0 || matches!(line[i - 1], b' ' | b'\t') => break,
                    b'"' if token_start(line, i, flow) => quote = Quote::Double,
                    b'\'' if token_start(line, i, flow) => quote = Quote::Single,
                    b'[' | b'{' if flow > 0 || token_start(line, i, flow) => {
                        flow += 1;
                        if flow + block_depth > max {
                            return Err(too_deep());
                        }
                    }
                    b']' | b'}' if flow > 0 => flow -= 1,
                    b'|' | b'>' if flow == 0 && token_start(line, i, flow) => {
                        let rest = &line[i + 1..];
                        let header_ends = rest
                            .iter()
                            .position(|b| !matches!(b, b'+' | b'-' | b'0'..=b'9'))
                            .unwrap_or(rest.len());
                        let after = &rest[header_ends..];
                        let trimmed: Vec<u8> = after
                            .iter()
                            .copied()
                            .skip_while(|b| *b == b' ' || *b == b'\t')
                            .collect();
                        if trimmed.is_empty() || trimmed[0] == b'#' || trimmed == b"\r" {
                            block_scalar = Some(indent);
                            break;
                        }
                    }
                    _ => {}
                },
            }
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, max: usize) -> bool {
        check(text.as_bytes(), max).is_ok()
    }

    #[test]
    fn flow_and_block_nesting() {
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(!depth_ok(&deep, MAX_DEPTH));
        assert!(depth_ok(&("[".repeat(50) + &"]".repeat(50)), MAX_DEPTH));
        let json = format!("{}1{}", "{\"a\":".repeat(129), "}".repeat(129));
        assert!(!depth_ok(&json, MAX_DEPTH));
        let dashes = "- ".repeat(200) + "x\n";
        assert!(!depth_ok(&dashes, MAX_DEPTH));
        let mut indented = String::new();
        for d in 0..150 {
            indented.push_str(&format!("{}k{d}:\n", " ".repeat(d)));
        }
        assert!(!depth_ok(&indented, MAX_DEPTH));
        assert!(depth_ok(&indented, 200));
    }

    #[test]
    fn brackets_in_text_do_not_count() {
        let many = "[".repeat(300);
        let doc = format!(
            "a: \"{many}\"\nb: '{many}'\nc: x{many}\n# {many}\nscript: |\n  echo {many}\n  [ -f x ]\nd: ok\n"
        );
        assert!(depth_ok(&doc, MAX_DEPTH), "text is not nesting");
        // A quote inside a plain scalar does not hide what follows.
        let sneaky = format!("a: don't\nb: {}{}\n", "[".repeat(200), "]".repeat(200));
        assert!(!depth_ok(&sneaky, MAX_DEPTH));
        // A closing bracket inside a string does not lower the count.
        let hidden = "[\"]\" ".repeat(200);
        assert!(!depth_ok(&hidden, MAX_DEPTH));
    }

    #[test]
    fn real_manifests_pass() {
        let bc = "apiVersion: v1\nkind: BuildConfig\nmetadata:\n  name: x\n  labels: {app: x}\nspec:\n  strategy:\n    dockerStrategy:\n      env:\n        - name: A\n          value: \"1\"\n  triggers:\n  - type: ImageChange\n    imageChange: {}\n";
        assert!(depth_ok(bc, 16));
    }
}

//! A filter named with options, as a fail2ban jail names it
//! (`filter = sshd[mode=aggressive]`) and as `nftban test LOG
//! sshd.conf[mode=aggressive]` takes it: the name, then `[key=value, ...]`,
//! each value bare (up to the next `,` or `]`) or quoted with `"` or `'`
//! (then it may hold commas, brackets and spaces).

use std::path::PathBuf;

/// The path and options of `PATH[k=v, k2="v 2"]`. Text without a closing
/// `]` at its end is a path and nothing else (a file name may hold `[`);
/// an item without `=` is left out.
pub fn parse_spec(spec: &str) -> (PathBuf, Vec<(String, String)>) {
    let trimmed = spec.trim_end();
    let Some(open) = trimmed.find('[').filter(|_| trimmed.ends_with(']')) else {
        return (PathBuf::from(spec), Vec::new());
    };
    let inner = &trimmed[open + 1..trimmed.len() - 1];
    (PathBuf::from(&trimmed[..open]), parse_options(inner))
}

/// `k=v, k2="v 2", k3='x,y'` as pairs, in order.
fn parse_options(inner: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = inner;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return out;
        }
        let Some(eq) = rest.find('=') else {
            return out;
        };
        let key = rest[..eq].trim();
        if key.contains(',') {
            // `a, b=c`: the item without `=` is dropped.
            rest = &rest[rest.find(',').map_or(rest.len(), |i| i + 1)..];
            continue;
        }
        let after = rest[eq + 1..].trim_start();
        let (value, next) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => match after[1..].find(q) {
                Some(end) => (&after[1..1 + end], &after[end + 2..]),
                None => (&after[1..], ""),
            },
            _ => {
                let end = after.find(',').unwrap_or(after.len());
                (after[..end].trim_end(), &after[end..])
            }
        };
        out.push((key.to_string(), value.to_string()));
        rest = next;
    }
}

/// Options as a spec writes them (for names in reports): `k=v, k2="v 2"`.
pub(super) fn show_options(options: &[(String, String)]) -> String {
    options
        .iter()
        .map(|(k, v)| {
            if v.is_empty() || v.contains([',', ' ', ']', '"']) {
                format!("{k}=\"{v}\"")
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn specs_as_jails_write_them() {
        assert_eq!(parse_spec("sshd.conf"), (PathBuf::from("sshd.conf"), vec![]));
        assert_eq!(
            parse_spec("/etc/fail2ban/filter.d/sshd.conf[mode=aggressive]"),
            (
                PathBuf::from("/etc/fail2ban/filter.d/sshd.conf"),
                pairs(&[("mode", "aggressive")])
            )
        );
        assert_eq!(
            parse_spec(r#"f.conf[k=v, k2="v 2", k3='a,b]', k4 = x ]"#).1,
            pairs(&[("k", "v"), ("k2", "v 2"), ("k3", "a,b]"), ("k4", "x")])
        );
        assert_eq!(parse_spec("f.conf[]").1, vec![]);
        assert_eq!(parse_spec("f.conf[junk, a=1]").1, pairs(&[("a", "1")]));
        // No closing bracket at the end: a file name.
        assert_eq!(parse_spec("odd[name.conf").0, PathBuf::from("odd[name.conf"));
        assert_eq!(
            show_options(&pairs(&[("mode", "aggressive"), ("k", "a b")])),
            r#"mode=aggressive, k="a b""#
        );
    }
}

//! Command-line conventions shared with the vault CLI.

use std::ffi::OsString;

/// Rewrites Vault-style one-dash long flags (`-mount=secret`, `-version 2`)
/// to clap's two-dash form. Single letters (`-h`), a lone `-` (stdin),
/// negative numbers and everything after `--` are left alone.
pub fn vault_style(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut passthrough = false;
    for arg in args {
        let rewritten = match arg.to_str() {
            Some("--") => {
                passthrough = true;
                None
            }
            Some(text) if !passthrough && is_one_dash_long_flag(text) => {
                Some(OsString::from(format!("-{text}")))
            }
            _ => None,
        };
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

fn is_one_dash_long_flag(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('-') else {
        return false;
    };
    let name = rest.split('=').next().unwrap_or("");
    !rest.starts_with('-')
        && name.len() > 1
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(args: &[&str]) -> Vec<String> {
        vault_style(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn one_dash_long_flags_become_two_dash() {
        assert_eq!(
            rewrite(&[
                "tresor",
                "kv",
                "get",
                "-mount=secret",
                "-version",
                "2",
                "-h",
                "-",
                "-1",
                "app"
            ]),
            [
                "tresor",
                "kv",
                "get",
                "--mount=secret",
                "--version",
                "2",
                "-h",
                "-",
                "-1",
                "app"
            ]
        );
        assert_eq!(rewrite(&["x", "--", "-field"]), ["x", "--", "-field"]);
        assert_eq!(
            rewrite(&["x", "--store", "d", "pw=-"]),
            ["x", "--store", "d", "pw=-"]
        );
    }
}

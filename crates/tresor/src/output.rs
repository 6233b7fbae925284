//! Printing results the way the vault CLI does: aligned key/value tables,
//! or JSON.

use serde_json::{Value, json};
use std::fmt::Write;
use std::process::ExitCode;

/// `print!` for a command's output. Once the reader is gone (`tresor status
/// | head`) the command stops quietly, as a closed pipe stops `cat`, and
/// unwinds so that every store and buffer is closed and wiped on the way.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` for a command's output; see [`out!`].
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {out, outln};

/// Why the output could not be written: carried by the unwinding that
/// [`write_stdout`] starts, and turned into the exit by [`exit_code`].
pub struct OutputError(pub std::io::Error);

pub fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(e) = std::io::stdout().lock().write_fmt(args) {
        // Not a panic: the hook stays silent, and `main` catches it.
        std::panic::resume_unwind(Box::new(OutputError(e)));
    }
}

/// The exit code of a command whose reader went away: a shell's code for
/// a process stopped by SIGPIPE.
pub const READER_GONE: u8 = 141;

/// Whether a write failed because nobody reads the output any more.
pub fn reader_gone(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::BrokenPipe
}

/// The exit of a command whose output failed: with the reader gone,
/// [`READER_GONE`] and no message; else the error, exit 1.
pub fn exit_code(error: &std::io::Error) -> ExitCode {
    if reader_gone(error) {
        return ExitCode::from(READER_GONE);
    }
    eprintln!("Error: cannot write the output: {error}");
    ExitCode::from(1)
}

/// An aligned two-or-more column table with a header and a rule under it.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let columns = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(columns) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let rule: Vec<String> = header.iter().map(|h| "-".repeat(h.len())).collect();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header)
        .chain(std::iter::once(&rule))
        .chain(rows)
    {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}    ", width = widths[i]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A `Key / Value` table of a JSON object's fields.
pub fn key_values(object: &serde_json::Map<String, Value>) -> String {
    let rows: Vec<Vec<String>> = object
        .iter()
        .map(|(k, v)| vec![k.clone(), cell(v)])
        .collect();
    table(&["Key", "Value"], &rows)
}

/// A section title centred over a rule of `=`, as `vault kv get` prints.
pub fn section(title: &str, width: usize) -> String {
    let inner = format!(" {title} ");
    let pad = width.saturating_sub(inner.len());
    format!(
        "{}{}{}",
        "=".repeat(pad / 2),
        inner,
        "=".repeat(pad - pad / 2)
    )
}

/// How a value looks in a table cell (Vault's conventions: `<nil>` for
/// null, `n/a` for an empty time).
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::String(s) if s.is_empty() => "n/a".into(),
        Value::String(s) => s.clone(),
        // Go's formatting of a slice, as the vault CLI prints lists.
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(cell).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", cell(v)))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
        other => other.to_string(),
    }
}

/// Vault's response envelope around `data`, for `-format=json`.
pub fn envelope(data: Value) -> Value {
    json!({
        "request_id": "",
        "lease_id": "",
        "lease_duration": 0,
        "renewable": false,
        "data": data,
        "warnings": null,
    })
}

pub use tresor_kv::wipe_json as wipe;

pub fn print_json(value: &Value) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values always print")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_like_vault() {
        let t = table(
            &["Key", "Value"],
            &[
                vec!["created_time".into(), "x".into()],
                vec!["version".into(), "1".into()],
            ],
        );
        assert_eq!(
            t,
            "Key             Value\n---             -----\ncreated_time    x\nversion         1\n"
        );
        assert_eq!(section("Data", 12), "=== Data ===");
        assert_eq!(cell(&Value::Null), "<nil>");
    }
}

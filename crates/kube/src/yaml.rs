//! YAML exactly as kubectl prints it. kubectl turns an object into JSON,
//! then into YAML with (a fork of) go-yaml v2, so the bytes depend on three
//! of go-yaml's rules, reproduced here: map keys in its "natural" order,
//! the quoting of strings that would read back as another type, and block
//! style with sequences not indented under their key.

/// A YAML value as kubectl emits it.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Str(String),
    Null,
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
}

impl Node {
    pub fn str(s: impl Into<String>) -> Self {
        Node::Str(s.into())
    }

    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Node)>) -> Self {
        Node::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The document, ending with a newline (as `kubectl -o yaml`).
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        match self {
            Node::Map(entries) if !entries.is_empty() => emit_map(&mut out, entries, 0),
            Node::Seq(items) if !items.is_empty() => emit_seq(&mut out, items, 0),
            other => {
                out.push_str(&inline(other));
                out.push('\n');
            }
        }
        out
    }
}

fn sorted(entries: &[(String, Node)]) -> Vec<&(String, Node)> {
    let mut sorted: Vec<&(String, Node)> = entries.iter().collect();
    sort_by_key_order(&mut sorted, |e| &e.0);
    sorted
}

/// Sorts as Go's `sort.Sort` does for up to 12 elements (an insertion
/// sort). go-yaml's order is not a total order for every set of keys (a
/// standard sort may even refuse it); this keeps kubectl's result for such
/// sets, and is the same for all others.
pub fn sort_by_key_order<T>(items: &mut [T], key: impl Fn(&T) -> &str) {
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && key_less(key(&items[j]), key(&items[j - 1])) {
            items.swap(j, j - 1);
            j -= 1;
        }
    }
}

/// A scalar, an empty collection, or nothing (for a non-empty collection,
/// which goes on the following lines).
fn inline(node: &Node) -> String {
    match node {
        Node::Str(s) => scalar(s),
        Node::Null => "null".into(),
        Node::Map(m) if m.is_empty() => "{}".into(),
        Node::Seq(s) if s.is_empty() => "[]".into(),
        Node::Map(_) | Node::Seq(_) => String::new(),
    }
}

fn emit_map(out: &mut String, entries: &[(String, Node)], indent: usize) {
    for (i, (key, value)) in sorted(entries).into_iter().enumerate() {
        // The first entry of a map inside a sequence item follows the "- ".
        if i > 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        let key_text = scalar(key);
        // go-yaml writes keys longer than 128 characters as complex keys.
        if key_text.chars().count() > 128 {
            out.push_str("? ");
            out.push_str(&key_text);
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            out.push(':');
        } else {
            out.push_str(&key_text);
            out.push(':');
        }
        emit_value(out, value, indent, true);
    }
}

fn emit_seq(out: &mut String, items: &[Node], indent: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !out.ends_with("- ") {
            out.push_str(&" ".repeat(indent));
        }
        out.push('-');
        emit_value(out, item, indent, false);
    }
}

/// The value after `key:` or `-`.
fn emit_value(out: &mut String, value: &Node, indent: usize, in_map: bool) {
    match value {
        Node::Map(m) if !m.is_empty() => {
            if in_map {
                out.push('\n');
                emit_map(out, m, indent + 2);
            } else {
                out.push(' ');
                emit_map(out, m, indent + 2);
            }
        }
        Node::Seq(s) if !s.is_empty() => {
            if in_map {
                // Sequences sit at their key's indentation.
                out.push('\n');
                emit_seq(out, s, indent);
            } else {
                out.push(' ');
                emit_seq(out, s, indent + 2);
            }
        }
        other => {
            out.push(' ');
            out.push_str(&inline(other));
            out.push('\n');
        }
    }
}

/// A string scalar as go-yaml v2 writes it: plain unless it would read back
/// as something else (double quotes) or starts like a document marker or
/// an indicator (single quotes).
pub fn scalar(s: &str) -> String {
    if s.contains(['\n', '"', '\\', '\'', ':', '#', ' ', '\t']) || !s.is_ascii() {
        return double_quoted(s);
    }
    if !resolves_to_string(s) {
        return format!("\"{s}\"");
    }
    let indicator = s.starts_with("---")
        || s.starts_with("...")
        || s == "-"
        || s.starts_with([
            '#', ',', '[', ']', '{', '}', '&', '*', '!', '|', '>', '%', '@', '`', '?',
        ]);
    if indicator || s.contains([',', '[', ']', '{', '}']) {
        return format!("'{s}'");
    }
    s.to_owned()
}

/// For text outside what tresor writes (Kubernetes names, keys and base64
/// are plain ASCII without these characters): JSON's escaping is valid YAML.
fn double_quoted(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

/// go-yaml v2's `resolve`: whether a plain scalar reads back as a string
/// (not a bool, null, number or timestamp).
fn resolves_to_string(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON", "n", "N", "no",
        "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF", "", "~", "null", "Null",
        "NULL", ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    let Some(&first) = s.as_bytes().first() else {
        return false;
    };
    let hint = match first {
        b'+' | b'-' | b'0'..=b'9' => 'D',
        b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~' => 'M',
        b'.' => '.',
        _ => return true,
    };
    if WORDS.contains(&s) {
        return false;
    }
    match hint {
        '.' => !is_go_float(s),
        'D' => {
            let plain: String = s.chars().filter(|c| *c != '_').collect();
            !(is_timestamp(s) || is_go_int(&plain) || is_yaml_float(&plain))
        }
        _ => true,
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)` syntax (any size: go-yaml falls back
/// to big integers).
fn is_go_int(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    let lower = s.to_ascii_lowercase();
    if s.len() >= 3 && lower.starts_with("0x") {
        digits(&s[2..], 16)
    } else if s.len() >= 3 && lower.starts_with("0o") {
        digits(&s[2..], 8)
    } else if s.len() >= 3 && lower.starts_with("0b") {
        digits(&s[2..], 2)
    } else if let Some(rest) = s.strip_prefix('0') {
        rest.is_empty() || digits(rest, 8)
    } else {
        digits(s, 10)
    }
}

/// go-yaml's float pattern `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`,
/// and not out of range (Go's ParseFloat then fails, and the string stays a string).
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let count = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if count(&mut i) == 0 {
            return false;
        }
    } else {
        if count(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            count(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if count(&mut i) == 0 {
            return false;
        }
    }
    i == b.len() && s.parse::<f64>().is_ok_and(f64::is_finite)
}

/// Go's `strconv.ParseFloat` on text starting with `.` (go-yaml's `.` hint).
fn is_go_float(s: &str) -> bool {
    is_yaml_float(s)
}

/// go-yaml's date-only timestamp `2006-1-2` (the other layouts need `:`).
fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 5 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return false;
    }
    let year: u32 = s[..4].parse().expect("four digits");
    // Go's getnum: one digit, or two when a second follows.
    fn number(rest: &str) -> Option<(u32, &str)> {
        let len = rest.bytes().take(2).take_while(u8::is_ascii_digit).count();
        (len > 0).then(|| (rest[..len].parse().expect("digits"), &rest[len..]))
    }
    let Some((month, rest)) = number(&s[5..]) else {
        return false;
    };
    if !(1..=12).contains(&month) {
        return false;
    }
    let Some((day, rest)) = rest.strip_prefix('-').and_then(number) else {
        return false;
    };
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    rest.is_empty() && (1..=days).contains(&day)
}

/// go-yaml v2.4's map key order (kubectl's): letters by code point, a
/// non-letter before a letter, runs of digits by value.
fn key_less(a: &str, b: &str) -> bool {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i] < br[i];
        }
        if al || bl {
            return bl;
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .wrapping_mul(10)
                .wrapping_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an < bn;
        }
        if ai != bi {
            return ai < bi;
        }
        return ar[i] < br[i];
    }
    ar.len() < br.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_go_yaml() {
        for (input, expected) in [
            ("mlflow", "mlflow"),
            ("", "\"\""),
            ("123", "\"123\""),
            ("0x1f", "\"0x1f\""),
            ("1_000", "\"1_000\""),
            ("08", "\"08\""),
            ("1e5", "\"1e5\""),
            ("1e999", "1e999"),
            (".5", "\".5\""),
            ("+12", "\"+12\""),
            ("true", "\"true\""),
            ("no", "\"no\""),
            ("Off", "\"Off\""),
            ("null", "\"null\""),
            ("2001-12-14", "\"2001-12-14\""),
            ("2001-02-30", "2001-02-30"),
            ("---a", "'---a'"),
            ("...", "'...'"),
            ("-", "'-'"),
            ("-a", "-a"),
            ("a+b/c==", "a+b/c=="),
            ("0b102", "0b102"),
        ] {
            assert_eq!(scalar(input), expected, "{input}");
        }
    }

    #[test]
    fn keys_sort_naturally() {
        let mut keys = vec!["a10", "a9", "b", "A", "_x", "a-b", "ab", "a.b"];
        sort_by_key_order(&mut keys, |k| k);
        assert_eq!(keys, ["_x", "A", "a-b", "a.b", "a9", "a10", "ab", "b"]);
    }

    #[test]
    fn block_style_like_kubectl() {
        let doc = Node::map([
            ("kind", Node::str("Role")),
            (
                "rules",
                Node::Seq(vec![Node::map([
                    ("verbs", Node::Seq(vec![Node::str("get")])),
                    ("apiGroups", Node::Seq(vec![Node::str("")])),
                ])]),
            ),
            (
                "metadata",
                Node::map([("name", Node::str("x")), ("labels", Node::Map(vec![]))]),
            ),
        ]);
        assert_eq!(
            doc.to_yaml(),
            "kind: Role\nmetadata:\n  labels: {}\n  name: x\nrules:\n- apiGroups:\n  - \"\"\n  verbs:\n  - get\n"
        );
    }
}

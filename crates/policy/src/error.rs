//! Errors from parsing policies and validating policy names.

use std::fmt;

/// A 1-based position in policy text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// Converts a byte offset into `text` to a line and a column counted in characters.
    pub fn from_offset(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location { line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Why a policy or a policy name was rejected. Messages name the place and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error(
        "policy text is empty: add at least one `path \"<pattern>\" {{ capabilities = [...] }}` block"
    )]
    Empty,

    #[error(
        "{at}: invalid HCL: {message}; fix the syntax (expected `path \"<pattern>\" {{ capabilities = [...] }}`)"
    )]
    HclSyntax { at: Location, message: String },

    #[error(
        "{at}: invalid JSON: {message}; fix the syntax (expected {{\"path\": {{\"<pattern>\": {{\"capabilities\": [...]}}}}}})"
    )]
    JsonSyntax { at: Location, message: String },

    #[error(
        "{at}: unknown capability \"{name}\"; use create, read, update, patch, delete, list, sudo or deny"
    )]
    UnknownCapability { at: Location, name: String },

    #[error("{at}: invalid path pattern \"{pattern}\": {reason}")]
    InvalidPattern {
        at: Location,
        pattern: String,
        reason: &'static str,
    },

    #[error("{at}: unexpected `{key}` in {context}; allowed here: {allowed}")]
    UnexpectedKey {
        at: Location,
        key: String,
        context: &'static str,
        allowed: &'static str,
    },

    #[error("{at}: `{key}` must be {expected}")]
    WrongType {
        at: Location,
        key: String,
        expected: &'static str,
    },

    #[error("{at}: `{key}` is not supported by tresor: {hint}")]
    Unsupported {
        at: Location,
        key: String,
        hint: &'static str,
    },

    #[error(
        "{at}: path \"{pattern}\" grants no capabilities; add `capabilities = [\"read\"]` (or [\"deny\"])"
    )]
    NoCapabilities { at: Location, pattern: String },

    #[error(
        "policy defines no path rules; add at least one `path \"<pattern>\" {{ capabilities = [...] }}` block"
    )]
    NoRules,

    #[error("invalid policy name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("the built-in policy \"{name}\" cannot be {action}; choose another name")]
    Builtin {
        name: &'static str,
        action: &'static str,
    },
}

//! Path patterns: literal paths, `+` single-segment wildcards and a trailing `*` glob.

use std::cmp::{Ordering, Reverse};

/// One `/`-separated piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `+`: any single segment.
    Any,
}

/// A validated policy path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    text: String,
    segments: Vec<Segment>,
    /// Ends in `*`: the last segment is then a literal prefix of the path's segment.
    glob: bool,
    /// Byte index of the first `+` segment or of the trailing `*`; `None` for exact paths.
    first_wildcard: Option<usize>,
    plus_count: usize,
}

impl PathPattern {
    /// Parses a pattern; a leading `/` is dropped like Vault does.
    pub fn parse(raw: &str) -> Result<PathPattern, &'static str> {
        let text = raw.strip_prefix('/').unwrap_or(raw);
        if text.is_empty() {
            return Err(
                "the pattern is empty; write a path such as \"secret/data/app\" or \"secret/*\"",
            );
        }
        if text.contains("{{") {
            return Err("templated paths ({{identity...}}) are not supported; write the path out");
        }
        if text.chars().any(char::is_control) {
            return Err("control characters are not allowed in paths");
        }
        let (body, glob) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        if body.contains('*') {
            return Err("`*` is only allowed as the last character; use `+` for one segment");
        }
        let pieces: Vec<&str> = body.split('/').collect();
        let last = pieces.len() - 1;
        let segments: Vec<Segment> = pieces
            .iter()
            .enumerate()
            .map(|(i, piece)| match *piece {
                // In a glob the last piece is a prefix, so a `+` there is a literal character.
                "+" if !(glob && i == last) => Segment::Any,
                _ => Segment::Literal((*piece).to_owned()),
            })
            .collect();
        let plus_count = segments.iter().filter(|s| **s == Segment::Any).count();
        let first_wildcard = first_plus_offset(&segments).or(glob.then_some(body.len()));
        Ok(PathPattern {
            text: text.to_owned(),
            segments,
            glob,
            first_wildcard,
            plus_count,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern has neither `+` nor `*`.
    pub fn is_exact(&self) -> bool {
        self.first_wildcard.is_none()
    }

    /// The literal text before the first wildcard; every matching path starts with it.
    pub fn literal_prefix(&self) -> &str {
        &self.text[..self.first_wildcard.unwrap_or(self.text.len())]
    }

    pub fn matches(&self, path: &str) -> bool {
        let mut parts = path.split('/');
        let last = self.segments.len() - 1;
        for (i, segment) in self.segments.iter().enumerate() {
            let Some(part) = parts.next() else {
                return false;
            };
            let ok = match segment {
                Segment::Any => true,
                Segment::Literal(prefix) if self.glob && i == last => part.starts_with(prefix),
                Segment::Literal(literal) => part == literal,
            };
            if !ok {
                return false;
            }
        }
        self.glob || parts.next().is_none()
    }

    /// Whether the pattern matches some path under `prefix` (a mount's path,
    /// ending in `/`): what tells whether a token may use a mount at all.
    pub fn reaches_under(&self, prefix: &str) -> bool {
        let mount: Vec<&str> = prefix.trim_end_matches('/').split('/').collect();
        let last = self.segments.len() - 1;
        for (i, part) in mount.iter().enumerate() {
            let Some(segment) = self.segments.get(i) else {
                return false;
            };
            match segment {
                Segment::Any => {}
                Segment::Literal(head) if self.glob && i == last => return part.starts_with(head),
                Segment::Literal(literal) if literal != part => return false,
                Segment::Literal(_) => {}
            }
        }
        self.segments.len() > mount.len() || self.glob
    }

    /// Orders patterns by OpenBao's documented priority rules (greater wins):
    /// 1. the first wildcard (`+` or `*`) occurring later wins (exact paths have none: they win);
    /// 2. not ending in `*` wins over ending in `*`;
    /// 3. fewer `+` segments wins;
    /// 4. longer wins;
    /// 5. lexicographically greater wins.
    pub fn priority_cmp(&self, other: &PathPattern) -> Ordering {
        self.priority_key().cmp(&other.priority_key())
    }

    fn priority_key(&self) -> (usize, bool, Reverse<usize>, usize, &str) {
        (
            self.first_wildcard.unwrap_or(usize::MAX),
            !self.glob,
            Reverse(self.plus_count),
            self.text.len(),
            &self.text,
        )
    }
}

fn first_plus_offset(segments: &[Segment]) -> Option<usize> {
    let mut offset = 0;
    for segment in segments {
        match segment {
            Segment::Any => return Some(offset),
            Segment::Literal(literal) => offset += literal.len() + 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> PathPattern {
        PathPattern::parse(text).unwrap()
    }

    #[test]
    fn exact_matches_only_itself() {
        assert!(p("secret/foo").matches("secret/foo"));
        assert!(!p("secret/foo").matches("secret/food"));
        assert!(!p("secret/foo").matches("secret/foo/bar"));
        assert!(p("/secret/foo").matches("secret/foo"));
    }

    #[test]
    fn glob_is_a_prefix_match() {
        assert!(p("secret/bar/*").matches("secret/bar/zip/zap"));
        assert!(!p("secret/bar/*").matches("secret/bars/zip"));
        assert!(!p("secret/bar/*").matches("secret/bar"));
        assert!(p("secret/zip-*").matches("secret/zip-zap/zong"));
        assert!(!p("secret/zip-*").matches("secret/zip/zap"));
        assert!(p("*").matches("anything/at/all"));
    }

    #[test]
    fn plus_matches_one_segment() {
        assert!(p("secret/+/teamb").matches("secret/foo/teamb"));
        assert!(!p("secret/+/teamb").matches("secret/foo/bar/teamb"));
        assert!(p("secret/+/+/teamb").matches("secret/foo/bar/teamb"));
        assert!(p("secret/+/foo/*").matches("secret/x/foo/y/z"));
        assert!(!p("secret/+/foo/*").matches("secret/x/fo/y"));
        assert!(p("+").matches("sys"));
        assert!(!p("+").matches("sys/mounts"));
        assert!(p("secret/a+b").matches("secret/a+b"));
    }

    #[test]
    fn star_inside_is_rejected() {
        assert!(PathPattern::parse("secret/*/foo").is_err());
        assert!(PathPattern::parse("secret/{{identity.entity.id}}").is_err());
    }

    #[test]
    fn first_wildcard_positions() {
        assert_eq!(p("secret/foo").literal_prefix(), "secret/foo");
        assert_eq!(p("secret/+/x*").literal_prefix(), "secret/");
        assert_eq!(p("secret/x*").literal_prefix(), "secret/x");
        assert_eq!(p("+/x").literal_prefix(), "");
    }
}

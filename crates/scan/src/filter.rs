//! Decides whether a candidate secret is a real value or a placeholder,
//! template, reference, hash or identifier. Entropy comes last: it is the
//! most expensive and the least telling.

/// Substrings that mark documentation values and templates in any rule.
const PLACEHOLDER_MARKS: &[&str] = &[
    "example",
    "xxxx",
    "changeme",
    "change_me",
    "change-me",
    "placeholder",
    "${",
    "{{",
    "}}",
    "$(",
    "%(",
    "#{",
    "<",
    ">",
    "****",
    "....",
    "dummy",
    "redacted",
    "replace_",
    "replace-",
    "replaceme",
    "your_",
    "your-",
    "yourpass",
    "yoursecret",
    "yourtoken",
    "insert",
    "sample",
    "notreal",
    "not-real",
    "not_real",
    "fake",
    "0000000",
    "…",
];

/// Well-known values published in vendor documentation.
const DOCUMENTED_VALUES: &[&str] = &[
    // The Azurite / storage emulator account key.
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
];

/// Words that mark a made-up value even inside a longer one (`s3cr3t-value`).
const MADE_UP_WORDS: &[&str] = &[
    "password", "passwd", "secret", "example", "sample", "dummy", "test", "demo", "changeit",
    "letmein", "qwerty", "hunter", "foobar",
];

/// Values that are words, not secrets, when assigned to secret-looking names.
const WEAK_WORDS: &[&str] = &[
    "password",
    "passw0rd",
    "secret",
    "token",
    "admin",
    "root",
    "test",
    "testing",
    "null",
    "none",
    "true",
    "false",
    "undefined",
    "string",
    "default",
    "required",
    "optional",
    "empty",
    "private",
    "public",
    "hidden",
    "masked",
    "unknown",
    "username",
    "letmein",
    "qwerty",
    "guest",
    "user",
];

pub fn is_placeholder(value: &[u8]) -> bool {
    let lower = value.to_ascii_lowercase();
    let has = |needle: &str| memchr::memmem::find(&lower, needle.as_bytes()).is_some();
    PLACEHOLDER_MARKS.iter().any(|m| has(m))
        || DOCUMENTED_VALUES.iter().any(|d| value == d.as_bytes())
        // Long encoded blobs (keys, certificates) have runs of `A` by structure.
        || value.len() <= 100 && (has_sequence(value, 8) || longest_run(value) >= 8 && !value.starts_with(b"AAAA"))
}

/// The stricter filter for values found only by their name (`password = ...`).
/// `quoted`: the value stood between matching quotes, so it is a string
/// literal, not code (`'(k9#...'` is a key, `(a, b)` a tuple).
pub fn is_generic_noise(value: &[u8], quoted: bool) -> bool {
    let lower = value.to_ascii_lowercase();
    let stripped: &[u8] = lower
        .iter()
        .position(|b| b.is_ascii_alphanumeric())
        .map_or(&[], |start| &lower[start..]);
    value.len() < 6
        || WEAK_WORDS.iter().any(|w| stripped == w.as_bytes())
        || is_reference(value, quoted)
        || is_hash_or_uuid(value)
        || is_integrity(&lower)
        || is_path_or_url(value)
        || char_classes(value) < 2
        || longest_run(value) >= 4
        || is_lowercase_slug(value)
        || is_made_up(&lower)
        || decodes_to_noise(value)
}

/// Reads leetspeak back (`s3cr3t` → `secret`) and looks for made-up words.
fn is_made_up(lower: &[u8]) -> bool {
    let plain: Vec<u8> = lower
        .iter()
        .map(|&b| match b {
            b'0' => b'o',
            b'1' => b'i',
            b'3' => b'e',
            b'4' | b'@' => b'a',
            b'5' | b'$' => b's',
            b'7' => b't',
            other => other,
        })
        .collect();
    MADE_UP_WORDS
        .iter()
        .any(|w| memchr::memmem::find(&plain, w.as_bytes()).is_some())
}

/// `build-cache-v1-linux-x86_64`: names and versions joined by separators.
fn is_lowercase_slug(v: &[u8]) -> bool {
    let separators = v.iter().filter(|b| matches!(b, b'-' | b'_' | b'.')).count();
    separators >= 2
        && v.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

/// Base64 of a placeholder, such as `cGFzc3dvcmQ=` ("password").
fn decodes_to_noise(v: &[u8]) -> bool {
    if !v.len().is_multiple_of(4) || v.len() > 256 {
        return false;
    }
    crate::checks::decode_base64(v).is_some_and(|plain| {
        plain.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
            && (is_placeholder(&plain) || is_generic_noise(&plain, false))
    })
}

/// Variable, attribute and call syntax: `os.environ["X"]`, `self.password`,
/// `$VAR`, `%(name)s`, `&str`, `!Ref`, `{name}`, `getPass()`.
fn is_reference(v: &[u8], quoted: bool) -> bool {
    let (first, rest) = (v[0], &v[1..]);
    let identifier = |s: &[u8]| {
        !s.is_empty()
            && s.iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':'))
    };
    let sigil = match first {
        b'$' => identifier(rest) || rest.starts_with(b"{") || rest.starts_with(b"("),
        b'%' => rest.starts_with(b"(") || rest.starts_with(b"{") || v.ends_with(b"%"),
        b'@' | b'&' | b'*' | b'!' => identifier(rest),
        b'\\' => true,
        // Flow mappings and sequences (`{length: 40}`) and tuples, unless quoted.
        b'{' | b'[' | b'(' => !quoted,
        // Paths (`::x`) and symbols (`:CYPHER_BLOCK`).
        b':' => true,
        _ => false,
    };
    let call_or_index = v
        .iter()
        .position(|b| matches!(b, b'(' | b'['))
        .map(|at| {
            if at > 0 && v[at - 1] == b'!' {
                at - 1
            } else {
                at
            }
        })
        .is_some_and(|at| at > 1 && v[0].is_ascii_alphabetic() && identifier(&v[..at]));
    // Interpolation in f-strings and templates: `{name}`, `{cfg.get(...)`.
    let interpolation = v.contains(&b'{') && (v.contains(&b'}') || v.contains(&b'('));
    // Type and module paths: `windows_sys::core::PCWSTR`, `crate::Oid`.
    let path_start = v
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    let module_path =
        path_start > 0 && !v[0].is_ascii_digit() && v[path_start..].starts_with(b"::");
    // Words and type names (`KeyCredentialManagerOperationType`) have no digits or symbols.
    let word = v.iter().all(|b| b.is_ascii_alphabetic() || *b == b'_')
        && (case_changes(v) * 3 <= v.len() || vowels(v) * 10 >= v.len() * 3);
    if sigil || call_or_index || interpolation || module_path || word {
        return true;
    }
    let dotted = v.contains(&b'.')
        && v.split(|&b| b == b'.').all(|part| {
            !part.is_empty()
                && (part[0].is_ascii_alphabetic() || part[0] == b'_')
                && part.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        });
    let screaming_or_snake = v
        .iter()
        .all(|b| b.is_ascii_uppercase() || *b == b'_' || b.is_ascii_digit())
        || v.iter()
            .all(|b| b.is_ascii_lowercase() || *b == b'_' || *b == b'-');
    let camel_identifier = v.iter().all(|b| b.is_ascii_alphabetic())
        && v[0].is_ascii_lowercase()
        && v.iter().filter(|b| b.is_ascii_uppercase()).count() <= 3;
    dotted || screaming_or_snake || camel_identifier
}

/// Switches between lower and upper case: about two per word in an
/// identifier, one every other letter in random text.
fn case_changes(v: &[u8]) -> usize {
    v.windows(2)
        .filter(|w| {
            w[0].is_ascii_alphabetic()
                && w[1].is_ascii_alphabetic()
                && w[0].is_ascii_lowercase() != w[1].is_ascii_lowercase()
        })
        .count()
}

/// Words are about 40% vowels, random letters about 20%.
fn vowels(v: &[u8]) -> usize {
    v.iter()
        .filter(|b| matches!(b.to_ascii_lowercase(), b'a' | b'e' | b'i' | b'o' | b'u'))
        .count()
}

fn is_hash_or_uuid(v: &[u8]) -> bool {
    let hex = v.iter().all(u8::is_ascii_hexdigit);
    let uuid = v.len() == 36
        && v.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    hex && matches!(v.len(), 32 | 40 | 56 | 64 | 96 | 128) || uuid
}

fn is_integrity(lower: &[u8]) -> bool {
    [
        "sha1-",
        "sha256-",
        "sha384-",
        "sha512-",
        "sha256:",
        "sha512:",
        "md5:",
        "hmac-sha256:",
        // Password hashes (PHC strings, crypt, LDAP) are not the passwords.
        "$argon2",
        "$2a$",
        "$2b$",
        "$2y$",
        "$1$",
        "$5$",
        "$6$",
        "$pbkdf2",
        "$scrypt",
        "{ssha}",
        "{sha}",
    ]
    .iter()
    .any(|p| lower.starts_with(p.as_bytes()))
}

fn is_path_or_url(v: &[u8]) -> bool {
    v.starts_with(b"/")
        || v.starts_with(b"./")
        || v.starts_with(b"../")
        || v.starts_with(b"~/")
        || v.windows(3).any(|w| w == b"://")
}

/// How many of lower, upper, digit and symbol occur.
pub fn char_classes(v: &[u8]) -> usize {
    let mut classes = [false; 4];
    for b in v {
        let class = if b.is_ascii_lowercase() {
            0
        } else if b.is_ascii_uppercase() {
            1
        } else if b.is_ascii_digit() {
            2
        } else {
            3
        };
        classes[class] = true;
    }
    classes.iter().filter(|c| **c).count()
}

/// Length of the longest run of one repeated byte.
fn longest_run(v: &[u8]) -> usize {
    let mut best = 0;
    let mut run = 0;
    let mut prev = None;
    for &b in v {
        run = if Some(b) == prev { run + 1 } else { 1 };
        prev = Some(b);
        best = best.max(run);
    }
    best
}

/// True when `len` consecutive bytes ascend by one (`12345678`, `abcdefgh`).
fn has_sequence(v: &[u8], len: usize) -> bool {
    let mut run = 1;
    for w in v.windows(2) {
        run = if w[1] == w[0].wrapping_add(1) {
            run + 1
        } else {
            1
        };
        if run >= len {
            return true;
        }
    }
    false
}

/// Shannon entropy in bits per byte.
pub fn entropy(v: &[u8]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in v {
        counts[b as usize] += 1;
    }
    let len = v.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / len;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_from_the_issue_are_recognised() {
        for p in [
            "<strong-password>",
            "${DB_PASSWORD}",
            "{{ .Values.x }}",
            "changeme",
            "example",
            "xxxxxxxxxxxxxxxx",
            "AKIAIOSFODNN7EXAMPLE",
            "$(openssl rand -base64 32)",
        ] {
            assert!(
                is_placeholder(p.as_bytes()) || is_generic_noise(p.as_bytes(), false),
                "{p}"
            );
        }
    }

    #[test]
    fn hashes_uuids_and_integrity_are_noise() {
        for v in [
            "d41d8cd98f00b204e9800998ecf8427e",
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "123e4567-e89b-12d3-a456-426614174000",
            "sha512-Zm9vYmFyYmF6cXV4cXV1eHF1dXo=",
        ] {
            assert!(is_generic_noise(v.as_bytes(), false), "{v}");
        }
    }

    #[test]
    fn references_are_noise_and_real_passwords_are_not() {
        for v in [
            "self.password",
            "os.environ",
            "DB_PASSWORD",
            "getPassword()",
            "my-secret-name",
            "{real}",
            "%(password)s",
            "$DB_PASS",
            "&str",
            "getpass.getpass()",
            "windows_sys::core::PCWSTR",
            "KeyCredentialManagerOperationType",
            "write!(f",
            "Some(if",
            "{length:",
            "SpFreeCredentialsHandleFn",
            "PrivateKeyInfoRef",
            ":CYPHER_BLOCK",
            "(0..len).map(|_|",
            "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
            "s3cr3t-value-xyz",
            "probe-value-81723",
        ] {
            assert!(is_generic_noise(v.as_bytes(), false), "{v}");
        }
        for v in [
            "k#9Lq!vR2x",
            "Tr0ub4dor&3",
            "Zq8-v4lue-2024",
            "*1=tg!lwsNjC#P",
            "%AQk48JShkSVN1d",
            "0KXlq(0f!AB#N",
            "rcmPCnPAnpcYblRUCootpDPxGJOIJUTk",
        ] {
            assert!(
                !is_generic_noise(v.as_bytes(), false) && !is_placeholder(v.as_bytes()),
                "{v}"
            );
        }
        // A Django key may start with `(`: a tuple in code, a key in quotes.
        let key = b"(k9#Lq!vR2x-8Zq=v4l+u7e^2024*mNp";
        assert!(is_generic_noise(key, false));
        assert!(!is_generic_noise(key, true));
    }

    #[test]
    fn entropy_of_uniform_and_constant() {
        assert!(entropy(b"aaaa") < 0.01);
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}

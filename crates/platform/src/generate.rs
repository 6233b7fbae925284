//! Generators: strong values from the operating system's CSPRNG.

use base64::Engine;
use std::fmt;
use zeroize::Zeroizing;

/// The least a generated secret must have, as the platform's best practices
/// say: 128 bits of entropy and 32 characters.
pub const MIN_ENTROPY_BITS: f64 = 128.0;
pub const MIN_LENGTH: usize = 32;

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
/// Symbols that need no quoting in shells, URLs' userinfo, env files or YAML.
pub const DEFAULT_SYMBOLS: &str = "-_.~+=^";
/// Characters easily mistaken for one another when read or typed.
const AMBIGUOUS: &str = "0O1lI|";
const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A character class a password draws from; each chosen class appears at
/// least once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Lower,
    Upper,
    Digits,
    Symbols,
}

impl Class {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "lower" => Self::Lower,
            "upper" => Self::Upper,
            "digits" => Self::Digits,
            "symbols" => Self::Symbols,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Lower => "lower",
            Self::Upper => "upper",
            Self::Digits => "digits",
            Self::Symbols => "symbols",
        }
    }
}

/// How to make a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Password {
    pub length: usize,
    pub classes: Vec<Class>,
    pub symbols: String,
    pub no_ambiguous: bool,
}

impl Default for Password {
    fn default() -> Self {
        Self {
            length: MIN_LENGTH,
            classes: vec![Class::Lower, Class::Upper, Class::Digits, Class::Symbols],
            symbols: DEFAULT_SYMBOLS.into(),
            no_ambiguous: false,
        }
    }
}

impl Password {
    /// The characters of each chosen class, ambiguous ones removed on request.
    fn alphabets(&self) -> Vec<Vec<char>> {
        self.classes
            .iter()
            .map(|class| {
                let chars = match class {
                    Class::Lower => LOWER,
                    Class::Upper => UPPER,
                    Class::Digits => DIGITS,
                    Class::Symbols => self.symbols.as_str(),
                };
                chars
                    .chars()
                    .filter(|c| !(self.no_ambiguous && AMBIGUOUS.contains(*c)))
                    .collect()
            })
            .collect()
    }
}

/// One way of generating a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Generator {
    /// N random bytes in standard base64, as `openssl rand -base64 N`.
    Base64(usize),
    /// N random bytes in lowercase hex, as `openssl rand -hex N`.
    Hex(usize),
    /// N characters from A-Z, a-z, 0-9.
    Alnum(usize),
    /// A random (version 4) UUID: an identifier, 122 random bits.
    Uuid,
    Password(Password),
}

/// Why a generator was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GeneratorError {
    #[error(
        "unknown generator `{0}`; use base64:N, hex:N, alnum:N, uuid, password or password:N (for example base64:32)"
    )]
    Unknown(String),
    #[error("`{0}`: the size must be a whole number from 1 to 4096")]
    BadSize(String),
    #[error("unknown password class `{0}`; the classes are lower, upper, digits and symbols")]
    BadClass(String),
    #[error("a password needs at least one character class")]
    NoClass,
    #[error(
        "a password of length {length} cannot hold one character of each of its {classes} classes"
    )]
    TooShort { length: usize, classes: usize },
    #[error("the `symbols` class is chosen but no symbol is left to draw from")]
    NoSymbols,
    #[error("password symbols must be printable ASCII punctuation, without spaces or quotes")]
    BadSymbols,
}

impl Generator {
    /// Parses the short form: `base64:32`, `hex:32`, `alnum:40`, `uuid`,
    /// `password`, `password:40`.
    pub fn parse(text: &str) -> Result<Self, GeneratorError> {
        let (kind, size) = match text.split_once(':') {
            Some((kind, size)) => (kind, Some(size)),
            None => (text, None),
        };
        let size = |default: Option<usize>| -> Result<usize, GeneratorError> {
            match size {
                Some(s) => s
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=4096).contains(n))
                    .ok_or_else(|| GeneratorError::BadSize(text.into())),
                None => default.ok_or_else(|| GeneratorError::BadSize(text.into())),
            }
        };
        Ok(match kind {
            "base64" => Self::Base64(size(None)?),
            "hex" => Self::Hex(size(None)?),
            "alnum" => Self::Alnum(size(None)?),
            "uuid" if size_is_none(text) => Self::Uuid,
            "password" => Self::Password(Password {
                length: size(Some(MIN_LENGTH))?,
                ..Password::default()
            }),
            _ => return Err(GeneratorError::Unknown(text.into())),
        })
    }

    /// Checks a password's options; the other generators are valid once parsed.
    pub fn check(&self) -> Result<(), GeneratorError> {
        let Self::Password(p) = self else {
            return Ok(());
        };
        if p.classes.is_empty() {
            return Err(GeneratorError::NoClass);
        }
        if p.symbols
            .chars()
            .any(|c| !c.is_ascii_punctuation() || c == '\'' || c == '"' || c == '`' || c == '\\')
        {
            return Err(GeneratorError::BadSymbols);
        }
        if p.length < p.classes.len() {
            return Err(GeneratorError::TooShort {
                length: p.length,
                classes: p.classes.len(),
            });
        }
        if p.alphabets().iter().any(Vec::is_empty) {
            return Err(GeneratorError::NoSymbols);
        }
        Ok(())
    }

    /// Bits of entropy of one generated value.
    pub fn entropy_bits(&self) -> f64 {
        match self {
            Self::Base64(n) | Self::Hex(n) => 8.0 * *n as f64,
            Self::Alnum(n) => *n as f64 * (ALNUM.len() as f64).log2(),
            Self::Uuid => 122.0,
            Self::Password(p) => {
                let mut all: Vec<char> = p.alphabets().concat();
                all.sort_unstable();
                all.dedup();
                p.length as f64 * (all.len().max(1) as f64).log2()
            }
        }
    }

    /// Characters in one generated value.
    pub fn length(&self) -> usize {
        match self {
            Self::Base64(n) => n.div_ceil(3) * 4,
            Self::Hex(n) => 2 * n,
            Self::Alnum(n) => *n,
            Self::Uuid => 36,
            Self::Password(p) => p.length,
        }
    }

    /// Whether the value falls short of the platform's minimums (128 bits
    /// and 32 characters): such a generator needs `allow_weak`.
    pub fn weakness(&self) -> Option<String> {
        let bits = self.entropy_bits();
        let length = self.length();
        (bits < MIN_ENTROPY_BITS || length < MIN_LENGTH).then(|| {
            format!(
                "`{self}` gives {bits:.0} bits in {length} characters, below the minimum of {MIN_ENTROPY_BITS:.0} bits and {MIN_LENGTH} characters"
            )
        })
    }

    /// A fresh value from the operating system's CSPRNG.
    pub fn generate(&self) -> Zeroizing<String> {
        match self {
            Self::Base64(n) => {
                let bytes = random_bytes(*n);
                Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*bytes))
            }
            Self::Hex(n) => {
                let bytes = random_bytes(*n);
                let mut out = Zeroizing::new(String::with_capacity(2 * n));
                for b in bytes.iter() {
                    out.push(hex_digit(b >> 4));
                    out.push(hex_digit(b & 0xf));
                }
                out
            }
            Self::Alnum(n) => {
                let alphabet: Vec<char> = ALNUM.chars().collect();
                Zeroizing::new((0..*n).map(|_| alphabet[uniform(alphabet.len())]).collect())
            }
            Self::Uuid => {
                let mut b = random_bytes(16);
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                let mut out = Zeroizing::new(String::with_capacity(36));
                for (i, byte) in b.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        out.push('-');
                    }
                    out.push(hex_digit(byte >> 4));
                    out.push(hex_digit(byte & 0xf));
                }
                out
            }
            Self::Password(p) => generate_password(p),
        }
    }
}

fn size_is_none(text: &str) -> bool {
    !text.contains(':')
}

impl fmt::Display for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Base64(n) => write!(f, "base64:{n}"),
            Self::Hex(n) => write!(f, "hex:{n}"),
            Self::Alnum(n) => write!(f, "alnum:{n}"),
            Self::Uuid => f.write_str("uuid"),
            Self::Password(p) => {
                write!(f, "password:{}", p.length)?;
                let default = Password::default();
                if p.classes != default.classes {
                    let names: Vec<&str> = p.classes.iter().map(|c| c.name()).collect();
                    write!(f, " classes={}", names.join(","))?;
                }
                if p.symbols != default.symbols && p.classes.contains(&Class::Symbols) {
                    write!(f, " symbols={}", p.symbols)?;
                }
                if p.no_ambiguous {
                    f.write_str(" no-ambiguous")?;
                }
                Ok(())
            }
        }
    }
}

/// One character of each class first (so every class is present), the rest
/// from all classes together, then an unbiased shuffle.
fn generate_password(p: &Password) -> Zeroizing<String> {
    let alphabets = p.alphabets();
    let mut all: Vec<char> = alphabets.concat();
    all.sort_unstable();
    all.dedup();
    let mut chars: Zeroizing<Vec<char>> = Zeroizing::new(Vec::with_capacity(p.length));
    for alphabet in &alphabets {
        chars.push(alphabet[uniform(alphabet.len())]);
    }
    while chars.len() < p.length {
        chars.push(all[uniform(all.len())]);
    }
    for i in (1..chars.len()).rev() {
        chars.swap(i, uniform(i + 1));
    }
    Zeroizing::new(chars.iter().collect())
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble)])
}

fn random_bytes(n: usize) -> Zeroizing<Vec<u8>> {
    let mut bytes = Zeroizing::new(vec![0u8; n]);
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes
}

/// A uniform index below `n`, by rejection sampling (no modulo bias).
fn uniform(n: usize) -> usize {
    let n = u32::try_from(n).expect("alphabets are small");
    let zone = u32::MAX - (u32::MAX % n);
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).expect("the operating system's random generator failed");
        let v = u32::from_le_bytes(b);
        if v < zone {
            return (v % n) as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_parse_and_print_back() {
        for text in ["base64:32", "hex:32", "alnum:40", "uuid", "password:40"] {
            assert_eq!(Generator::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(
            Generator::parse("password").unwrap(),
            Generator::Password(Password::default())
        );
        for bad in [
            "base64",
            "base64:0",
            "hex:x",
            "uuid:3",
            "rot13:4",
            "base64:99999",
        ] {
            assert!(Generator::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn values_have_the_promised_shape() {
        use base64::Engine;
        let b64 = Generator::Base64(32).generate();
        assert_eq!(b64.len(), 44, "as openssl rand -base64 32");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .unwrap();
        assert_eq!(decoded.len(), 32);
        let hex = Generator::Hex(32).generate();
        assert_eq!(hex.len(), 64);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let alnum = Generator::Alnum(40).generate();
        assert_eq!(alnum.len(), 40);
        assert!(alnum.bytes().all(|b| b.is_ascii_alphanumeric()));
        let uuid = Generator::Uuid.generate();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(*Generator::Hex(32).generate(), *hex, "fresh every time");
    }

    #[test]
    fn passwords_hold_every_class_and_respect_options() {
        let p = Password {
            length: 40,
            no_ambiguous: true,
            ..Password::default()
        };
        for _ in 0..200 {
            let value = Generator::Password(p.clone()).generate();
            assert_eq!(value.chars().count(), 40);
            assert!(value.chars().any(|c| c.is_ascii_lowercase()));
            assert!(value.chars().any(|c| c.is_ascii_uppercase()));
            assert!(value.chars().any(|c| c.is_ascii_digit()));
            assert!(value.chars().any(|c| DEFAULT_SYMBOLS.contains(c)));
            assert!(!value.chars().any(|c| AMBIGUOUS.contains(c)));
        }
        let digits_only = Password {
            length: 6,
            classes: vec![Class::Digits],
            ..Password::default()
        };
        let value = Generator::Password(digits_only).generate();
        assert!(value.bytes().all(|b| b.is_ascii_digit()));
    }

    #[test]
    fn weak_generators_are_named_and_strong_defaults_pass() {
        assert!(Generator::Base64(32).weakness().is_none());
        assert!(Generator::Hex(32).weakness().is_none());
        assert!(
            Generator::Password(Password::default())
                .weakness()
                .is_none()
        );
        assert!(Generator::Alnum(32).weakness().is_none());
        assert!(Generator::Base64(8).weakness().unwrap().contains("64 bits"));
        assert!(Generator::Hex(8).weakness().is_some());
        assert!(Generator::Uuid.weakness().is_some(), "122 bits");
    }

    #[test]
    fn bad_password_options_are_refused() {
        let mut p = Password {
            classes: vec![],
            ..Password::default()
        };
        assert_eq!(
            Generator::Password(p.clone()).check(),
            Err(GeneratorError::NoClass)
        );
        p.classes = vec![Class::Symbols];
        p.symbols = "a".into();
        assert_eq!(
            Generator::Password(p.clone()).check(),
            Err(GeneratorError::BadSymbols)
        );
        p.symbols = String::new();
        assert_eq!(
            Generator::Password(p).check(),
            Err(GeneratorError::NoSymbols)
        );
    }

    #[test]
    fn uniform_covers_the_range() {
        let mut seen = [false; 7];
        for _ in 0..500 {
            seen[uniform(7)] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}

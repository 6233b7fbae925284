//! Named policies, the built-in `root` and `default`, and policy-name rules.

use crate::error::PolicyError;
use crate::parse::{PathRule, parse_rules};

/// Name of the built-in policy that grants everything; it has no text and cannot change.
pub const ROOT_POLICY_NAME: &str = "root";
/// Name of the built-in policy attached to tokens unless they opt out; editable, not deletable.
pub const DEFAULT_POLICY_NAME: &str = "default";

/// Initial text of the `default` policy: what every token needs to manage itself.
pub const DEFAULT_POLICY: &str = r#"# Let a token read its own properties.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# Let a token extend its own lifetime.
path "auth/token/renew-self" {
  capabilities = ["update"]
}

# Let a token revoke itself.
path "auth/token/revoke-self" {
  capabilities = ["update"]
}

# Let a token ask what it may do on a path.
path "sys/capabilities-self" {
  capabilities = ["update"]
}

# Let UIs show a token its merged permissions.
path "sys/internal/ui/resultant-acl" {
  capabilities = ["read"]
}

# Let a token renew and look up leases it holds (old and new paths).
path "sys/renew" {
  capabilities = ["update"]
}
path "sys/leases/renew" {
  capabilities = ["update"]
}
path "sys/leases/lookup" {
  capabilities = ["update"]
}

# A per-token private storage area.
path "cubbyhole/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

# Response-wrapping helpers.
path "sys/wrapping/wrap" {
  capabilities = ["update"]
}
path "sys/wrapping/lookup" {
  capabilities = ["update"]
}
path "sys/wrapping/unwrap" {
  capabilities = ["update"]
}

# Hashing helpers that reveal no secret.
path "sys/tools/hash" {
  capabilities = ["update"]
}
path "sys/tools/hash/*" {
  capabilities = ["update"]
}
"#;

/// A parsed policy: a name and its path rules, or the built-in root policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    name: String,
    rules: Vec<PathRule>,
    root: bool,
}

impl Policy {
    /// Parses HCL or JSON policy text. The name is normalized (see [`normalize_name`]);
    /// `root` is refused because the root policy cannot be written.
    pub fn parse(name: &str, text: &str) -> Result<Policy, PolicyError> {
        let name = normalize_name(name)?;
        ensure_writable(&name)?;
        Ok(Policy {
            name,
            rules: parse_rules(text)?,
            root: false,
        })
    }

    /// The built-in `root` policy: every capability, including `sudo`, on every path.
    pub fn root() -> Policy {
        Policy {
            name: ROOT_POLICY_NAME.to_owned(),
            rules: Vec::new(),
            root: true,
        }
    }

    /// The built-in `default` policy as shipped ([`DEFAULT_POLICY`]).
    pub fn builtin_default() -> Policy {
        // The text is a constant covered by tests, so parsing cannot fail at run time.
        Policy::parse(DEFAULT_POLICY_NAME, DEFAULT_POLICY).expect("built-in default policy parses")
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn rules(&self) -> &[PathRule] {
        &self.rules
    }

    pub fn is_root(&self) -> bool {
        self.root
    }
}

/// Normalizes a policy name like Vault (trimmed, lowercased) and checks it is usable as a key.
pub fn normalize_name(name: &str) -> Result<String, PolicyError> {
    let normalized = name.trim().to_lowercase();
    let reason = if normalized.is_empty() {
        Some("a name is required")
    } else if normalized.len() > 256 {
        Some("names are at most 256 bytes long")
    } else if normalized.chars().any(|c| c == '/' || c.is_control()) {
        Some("names cannot contain `/` or control characters")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PolicyError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(normalized),
    }
}

/// Checks that `name` is already in its stored form ([`normalize_name`]):
/// the store never normalizes a name itself, so the name a request was
/// authorized for is exactly the name it changes.
pub fn ensure_canonical(name: &str) -> Result<&str, PolicyError> {
    if normalize_name(name)? != name {
        return Err(PolicyError::InvalidName {
            name: name.to_owned(),
            reason: "names are kept lowercase, without surrounding whitespace",
        });
    }
    Ok(name)
}

/// Checks a name for `sys/policies/acl/:name` writes: canonical, and not `root`.
pub fn ensure_writable(name: &str) -> Result<&str, PolicyError> {
    let name = ensure_canonical(name)?;
    if name == ROOT_POLICY_NAME {
        return Err(PolicyError::Builtin {
            name: ROOT_POLICY_NAME,
            action: "modified",
        });
    }
    Ok(name)
}

/// Checks a name for deletes: canonical, and neither `root` nor `default`.
pub fn ensure_deletable(name: &str) -> Result<&str, PolicyError> {
    match ensure_canonical(name)? {
        ROOT_POLICY_NAME => Err(PolicyError::Builtin {
            name: ROOT_POLICY_NAME,
            action: "deleted",
        }),
        DEFAULT_POLICY_NAME => Err(PolicyError::Builtin {
            name: DEFAULT_POLICY_NAME,
            action: "deleted",
        }),
        name => Ok(name),
    }
}

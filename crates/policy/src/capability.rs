//! Capabilities granted by policies and the operations requests perform.

use std::fmt;

use tresor_request::Operation;

/// One capability a policy rule can grant on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Forbids everything on the path; beats every other capability of the same pattern.
    Deny,
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
    /// Needed, in addition to the operation's own capability, on root-protected paths.
    Sudo,
}

impl Capability {
    /// Every capability, in Vault's canonical order.
    pub const ALL: [Capability; 8] = [
        Capability::Create,
        Capability::Read,
        Capability::Update,
        Capability::Patch,
        Capability::Delete,
        Capability::List,
        Capability::Sudo,
        Capability::Deny,
    ];

    /// The name used in policy text and in `sys/capabilities` answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Deny => "deny",
            Capability::Create => "create",
            Capability::Read => "read",
            Capability::Update => "update",
            Capability::Patch => "patch",
            Capability::Delete => "delete",
            Capability::List => "list",
            Capability::Sudo => "sudo",
        }
    }

    /// Parses a capability name as written in a policy (case-sensitive, like Vault).
    pub fn from_name(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.as_str() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of capabilities, stored as a bit set so merging and checking cost nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CapabilitySet(u8);

impl CapabilitySet {
    /// No capability at all (what a path matched by no rule gets).
    pub const EMPTY: CapabilitySet = CapabilitySet(0);

    /// Every capability except `deny`: what the root policy grants.
    pub fn all_granting() -> CapabilitySet {
        Capability::ALL
            .into_iter()
            .filter(|c| *c != Capability::Deny)
            .collect()
    }

    pub fn contains(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    pub fn insert(&mut self, capability: Capability) {
        self.0 |= capability.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Union of two sets; `deny` in either side collapses the result to just `deny`.
    pub fn union(self, other: CapabilitySet) -> CapabilitySet {
        CapabilitySet(self.0 | other.0).normalized()
    }

    /// Whether this set is `deny` (after normalization nothing else can accompany it).
    pub fn is_deny(self) -> bool {
        self.contains(Capability::Deny)
    }

    /// The capabilities in canonical order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }

    /// Names in canonical order; Vault reports an empty set as `["deny"]`, so does this.
    pub fn names(self) -> Vec<&'static str> {
        if self.is_empty() {
            return vec![Capability::Deny.as_str()];
        }
        self.iter().map(Capability::as_str).collect()
    }

    fn normalized(self) -> CapabilitySet {
        if self.is_deny() {
            CapabilitySet(Capability::Deny.bit())
        } else {
            self
        }
    }
}

impl FromIterator<Capability> for CapabilitySet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut set = CapabilitySet::EMPTY;
        for capability in iter {
            set.insert(capability);
        }
        set.normalized()
    }
}

impl fmt::Debug for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Capability {
    /// The capability a rule must grant for `operation`.
    pub fn required_for(operation: Operation) -> Capability {
        match operation {
            Operation::Create => Capability::Create,
            Operation::Read => Capability::Read,
            Operation::Update => Capability::Update,
            Operation::Patch => Capability::Patch,
            Operation::Delete => Capability::Delete,
            Operation::List => Capability::List,
        }
    }
}

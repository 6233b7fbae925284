use std::fmt;

/// What a request does to its path, as Vault names it; each operation needs
/// the policy capability of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// A write to a target that does not exist yet. The edge never produces
    /// it: the server refines [`Operation::Update`] once it knows.
    Create,
    Read,
    Update,
    Patch,
    Delete,
    List,
}

impl Operation {
    pub const ALL: [Operation; 6] = [
        Operation::Create,
        Operation::Read,
        Operation::Update,
        Operation::Patch,
        Operation::Delete,
        Operation::List,
    ];

    /// The name Vault uses in audit entries and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Read => "read",
            Operation::Update => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
        }
    }

    /// Whether the operation takes its parameters from the body (a write)
    /// rather than from the query string.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Operation::Create | Operation::Update | Operation::Patch
        )
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One write inside a [`Transaction`].
#[derive(Clone, PartialEq, Eq)]
pub enum Op {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// What must hold, when a transaction commits, for its operations to apply.
#[derive(Clone, PartialEq, Eq)]
pub enum Condition {
    /// `key` holds exactly these bytes.
    Equals { key: String, value: Vec<u8> },
    /// `key` holds nothing.
    Absent { key: String },
}

impl Condition {
    pub fn key(&self) -> &str {
        match self {
            Condition::Equals { key, .. } | Condition::Absent { key } => key,
        }
    }

    /// Whether the condition holds given the current value of its key.
    pub fn holds(&self, current: Option<&[u8]>) -> bool {
        match self {
            Condition::Equals { value, .. } => current == Some(value.as_slice()),
            Condition::Absent { .. } => current.is_none(),
        }
    }
}

/// An atomic unit of work: conditions checked, then operations applied, as one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Transaction {
    pub conditions: Vec<Condition>,
    pub ops: Vec<Op>,
}

impl Transaction {
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires `key` to hold `expected` (`None`: to be absent).
    pub fn expect(mut self, key: &str, expected: Option<&[u8]>) -> Self {
        let key = key.to_owned();
        self.conditions.push(match expected {
            Some(value) => Condition::Equals {
                key,
                value: value.to_vec(),
            },
            None => Condition::Absent { key },
        });
        self
    }

    pub fn put(mut self, key: &str, value: &[u8]) -> Self {
        self.ops.push(Op::Put {
            key: key.to_owned(),
            value: value.to_vec(),
        });
        self
    }

    pub fn delete(mut self, key: &str) -> Self {
        self.ops.push(Op::Delete {
            key: key.to_owned(),
        });
        self
    }

    pub fn push(&mut self, op: Op) {
        self.ops.push(op);
    }
}

// Values are ciphertext, but keep even those out of logs.
impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self
            .ops
            .iter()
            .map(|op| match op {
                Op::Put { key, .. } | Op::Delete { key } => key.as_str(),
            })
            .collect();
        let conditions: Vec<&str> = self.conditions.iter().map(Condition::key).collect();
        f.debug_struct("Transaction")
            .field("conditions", &conditions)
            .field("writes", &keys)
            .finish()
    }
}

/// Whether a transaction's operations were applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// The condition on this key did not hold; nothing was written.
    ConditionFailed {
        key: String,
    },
}

impl Outcome {
    pub fn applied(&self) -> bool {
        matches!(self, Outcome::Applied)
    }
}

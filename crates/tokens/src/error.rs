use tresor_barrier::BarrierError;

/// Why a token operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Barrier(#[from] BarrierError),
    #[error(
        "the operating system's random generator failed: {0}; check /dev/urandom or getrandom(2) availability"
    )]
    Random(getrandom::Error),
    #[error("no such token: it is unknown, expired, revoked or has used up its uses")]
    NotFound,
    #[error("the parent token is no longer valid (expired, revoked or used up); log in again")]
    ParentInvalid,
    #[error(
        "child policies must be a subset of the parent's policies; the parent does not hold: {}",
        .0.join(", ")
    )]
    PoliciesNotSubset(Vec<String>),
    #[error("a token with the `root` policy can only be created by a root token")]
    RootNeedsRootParent,
    #[error(
        "root or sudo privileges are required to create an orphan token; use auth/token/create-orphan instead"
    )]
    OrphanNeedsSudo,
    #[error("root or sudo privileges are required to create a periodic token")]
    PeriodNeedsSudo,
    #[error(
        "a token with a limited number of uses cannot create tokens (its children would escape the limit); use a token without num_uses"
    )]
    UseLimitedParent,
    #[error("this token is not renewable; create a new one instead")]
    NotRenewable,
    #[error("this token has reached its maximum TTL and cannot be renewed; create a new one")]
    PastMaxTtl,
    #[error("invalid token id: {0}")]
    InvalidId(&'static str),
    #[error("a token with this id already exists; choose another id")]
    IdInUse,
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("the token records kept changing while being written; try again")]
    Contended,
    #[error("the token record at `{0}` is not valid; restore the store from a backup")]
    Corrupt(String),
}

impl TokenError {
    /// Whether the caller asked for something that cannot be done (as
    /// opposed to the store failing).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            TokenError::Barrier(_)
                | TokenError::Random(_)
                | TokenError::Contended
                | TokenError::Corrupt(_)
        )
    }
}

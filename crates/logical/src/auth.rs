//! Who is calling: the request's token, its entry and the ACL it grants.

use crate::node::Unsealed;
use crate::{Error, Result};
use std::sync::Arc;
use tresor_policy::Acl;
use tresor_request::ClientToken;
use tresor_tokens::{Token, TokenEntry};

pub struct Caller {
    pub token: Token,
    pub entry: TokenEntry,
    pub acl: Arc<Acl>,
}

/// Looks the token up (without using it); any failure is the same denial,
/// so a client learns nothing about which tokens exist.
pub fn authenticate(u: &Unsealed, token: Option<&ClientToken>) -> Result<Caller> {
    let raw = token.ok_or(Error::PermissionDenied)?;
    let token = Token::new(raw.expose());
    let entry = u.tokens.lookup(&token)?.ok_or(Error::PermissionDenied)?;
    let acl = u.policies.acl(entry.policies())?;
    Ok(Caller { token, entry, acl })
}

/// Spends one of the token's uses, now that the request is allowed.
pub fn consume_use(u: &Unsealed, caller: Caller) -> Result<Caller> {
    if caller.entry.num_uses() == 0 {
        // Unlimited: nothing to spend, and the lookup just made is current.
        return Ok(caller);
    }
    let entry = crate::blocking::may_block(|| u.tokens.use_token(&caller.token))?
        .ok_or(Error::PermissionDenied)?;
    Ok(Caller { entry, ..caller })
}

//! Who is calling: the request's token, its entry and the ACL it grants.

use crate::request::{ApiError, Request};
use crate::state::Unsealed;
use std::sync::Arc;
use tresor_policy::Acl;
use tresor_tokens::{Token, TokenEntry, TokenError};

pub struct Caller {
    pub token: Token,
    pub entry: TokenEntry,
    pub acl: Arc<Acl>,
}

/// Looks the token up (without using it); any failure is the same 403, so
/// a client learns nothing about which tokens exist.
pub fn authenticate(u: &Unsealed, req: &Request) -> Result<Caller, ApiError> {
    let raw = req.token.as_ref().ok_or_else(ApiError::permission_denied)?;
    let token = Token::new(raw.0.as_str());
    let entry = u
        .tokens
        .lookup(&token)
        .map_err(token_error)?
        .ok_or_else(ApiError::permission_denied)?;
    let acl = u.policies.acl(entry.policies())?;
    Ok(Caller { token, entry, acl })
}

/// Spends one of the token's uses, now that the request is allowed.
pub fn consume_use(u: &Unsealed, _req: &Request, caller: Caller) -> Result<Caller, ApiError> {
    if caller.entry.num_uses() == 0 {
        // Unlimited: nothing to spend, and the lookup just made is current.
        return Ok(caller);
    }
    let entry = crate::blocking::may_block(|| u.tokens.use_token(&caller.token))
        .map_err(token_error)?
        .ok_or_else(ApiError::permission_denied)?;
    Ok(Caller { entry, ..caller })
}

pub fn token_error(error: TokenError) -> ApiError {
    if let TokenError::Barrier(error) = error {
        return crate::errors::barrier(error);
    }
    if error.is_client_error() {
        ApiError::bad_request(error.to_string())
    } else {
        ApiError::internal(error.to_string())
    }
}

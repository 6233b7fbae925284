//! From a [`Request`] to a [`Response`]: unauthenticated sys endpoints, then
//! token, ACL, audit, and the handler the path routes to.

mod kv;
mod sys;
mod token;

use crate::auth::{self, Caller};
use crate::request::{ApiError, ApiResult, Method, Request, Response};
use crate::state::{Core, Unsealed};
use serde_json::Value;
use tresor_audit::{AuditEntry, AuthInfo, EntryKind, RequestInfo, ResponseInfo};
use tresor_policy::Operation;

/// The answer, and whether the request failed to authenticate (the HTTP
/// layer counts those per client).
pub struct Outcome {
    pub response: Response,
    pub auth_failed: bool,
}

pub fn handle(core: &Core, req: &Request) -> Outcome {
    if let Some(result) = sys::unauthenticated(core, req) {
        return Outcome {
            response: result.unwrap_or_else(ApiError::into_response),
            auth_failed: false,
        };
    }
    let unsealed = match core.unsealed() {
        Ok(u) => u,
        Err(e) => {
            return Outcome {
                response: e.into_response(),
                auth_failed: false,
            };
        }
    };
    let (result, auth_failed) = authorized(core, &unsealed, req);
    Outcome {
        response: result.unwrap_or_else(ApiError::into_response),
        auth_failed,
    }
}

/// Authenticates, checks the ACL, audits, and serves.
fn authorized(core: &Core, u: &Unsealed, req: &Request) -> (ApiResult, bool) {
    let caller = match auth::authenticate(u, req) {
        Ok(caller) => caller,
        Err(e) => {
            let logged = u.audit.log(&request_entry(req, None, Some(&e)));
            return (logged.and(Err(e)), true);
        }
    };
    let decision = check_acl(u, req, &caller);
    let request_record = request_entry(req, Some(&caller), decision.as_ref().err());
    if let Err(e) = decision {
        return (u.audit.log(&request_record).and(Err(e)), false);
    }
    // A write must be on record before it happens. A read has no effect, so
    // both its entries are handed to the audit devices together after it
    // runs (one wake-up of the writer), and its answer is released only once
    // both are recorded.
    let deferred = if reads_only(req.method) {
        Some(request_record)
    } else {
        if let Err(e) = u.audit.log(&request_record) {
            return (Err(e), false);
        }
        None
    };
    let caller = match auth::consume_use(u, req, caller) {
        Ok(caller) => caller,
        Err(e) => return (Err(e), true),
    };
    let result = route(core, u, req, &caller);
    let recorded = match deferred {
        Some(request_record) => {
            let request_entry = u.audit.begin(&request_record);
            let response_entry = u.audit.begin(&response_entry(req, &caller, &result));
            request_entry.finish_with(response_entry)
        }
        None => u.audit.log(&response_entry(req, &caller, &result)),
    };
    if let Err(e) = recorded {
        return (Err(e), false);
    }
    (result, false)
}

fn reads_only(method: Method) -> bool {
    matches!(method, Method::Get | Method::Head | Method::List)
}

fn check_acl(u: &Unsealed, req: &Request, caller: &Caller) -> Result<(), ApiError> {
    let operation = operation(u, req)?;
    let decision = caller
        .acl
        .allowed_with_parameters(&req.path, operation, &req.body);
    let allowed = if needs_sudo(&req.path) {
        decision.is_allowed_with_sudo()
    } else {
        decision.is_allowed()
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::permission_denied())
    }
}

fn needs_sudo(path: &str) -> bool {
    sys::needs_sudo(path) || token::needs_sudo(path)
}

/// The ACL operation: a write is `create` when its target does not exist yet.
fn operation(u: &Unsealed, req: &Request) -> Result<Operation, ApiError> {
    Ok(match req.method {
        Method::Get | Method::Head if req.query.get("list").is_some_and(|l| l == "true") => {
            Operation::List
        }
        Method::Get | Method::Head => Operation::Read,
        Method::List => Operation::List,
        Method::Patch => Operation::Patch,
        Method::Delete => Operation::Delete,
        Method::Write => {
            let exists = match u.store.resolve(&req.path) {
                Ok((mount, rest)) if !is_system(&req.path) => {
                    kv::exists(&u.store.kv(&mount), &rest)?
                }
                _ => true,
            };
            if exists {
                Operation::Update
            } else {
                Operation::Create
            }
        }
    })
}

fn is_system(path: &str) -> bool {
    path.starts_with("sys/") || path.starts_with("auth/")
}

fn route(core: &Core, u: &Unsealed, req: &Request, caller: &Caller) -> ApiResult {
    let path = req.path.as_str();
    if path == "sys/capabilities-self" && req.method == Method::Write {
        return sys::capabilities(&caller.acl, req);
    }
    if path.starts_with("sys/") {
        return sys::handle(core, u, req);
    }
    if let Some(rest) = path.strip_prefix("auth/token/") {
        return token::handle(u, req, caller, rest);
    }
    let (mount, rest) = u.store.resolve(path).map_err(|_| sys::unknown_route(req))?;
    kv::handle(&u.store.kv(&mount), req, &rest)
}

fn auth_info(caller: &Caller) -> AuthInfo {
    AuthInfo {
        client_token: Some(caller.token.expose().to_string()),
        accessor: Some(caller.entry.accessor().expose().to_string()),
        display_name: caller.entry.display_name().to_string(),
        policies: caller.entry.policies().to_vec(),
        token_policies: caller.entry.policies().to_vec(),
        metadata: caller.entry.meta().clone(),
        token_type: Some("service".into()),
        token_ttl: None,
    }
}

fn request_info(req: &Request, caller: Option<&Caller>) -> RequestInfo {
    RequestInfo {
        id: req.id.clone(),
        operation: req.method.as_str().to_string(),
        path: req.path.clone(),
        mount_type: None,
        client_token: req.token.as_ref().map(|t| t.0.to_string()),
        client_token_accessor: caller.map(|c| c.entry.accessor().expose().to_string()),
        data: (!req.body.is_empty()).then(|| Value::Object(req.body.clone())),
        remote_address: req.remote.map(|r| r.to_string()),
        namespace: None,
    }
}

fn request_entry(req: &Request, caller: Option<&Caller>, error: Option<&ApiError>) -> AuditEntry {
    AuditEntry {
        kind: EntryKind::Request,
        auth: caller.map(auth_info),
        request: request_info(req, caller),
        response: None,
        error: error.map(|e| e.errors.join("; ")),
    }
}

fn response_entry(req: &Request, caller: &Caller, result: &ApiResult) -> AuditEntry {
    let (response, error) = match result {
        Ok(response) => {
            let body = response.body.as_ref();
            let info = ResponseInfo {
                mount_type: None,
                auth: None,
                data: body
                    .and_then(|b| b.get("data"))
                    .filter(|d| !d.is_null())
                    .cloned(),
            };
            let issued = body
                .and_then(|b| b.get("auth"))
                .filter(|a| !a.is_null())
                .map(issued_auth);
            (
                Some(ResponseInfo {
                    auth: issued,
                    ..info
                }),
                None,
            )
        }
        Err(e) => (None, Some(e.errors.join("; "))),
    };
    AuditEntry {
        kind: EntryKind::Response,
        auth: Some(auth_info(caller)),
        request: request_info(req, Some(caller)),
        response,
        error,
    }
}

/// The token a response issued, for the audit log (which hashes it).
fn issued_auth(auth: &Value) -> AuthInfo {
    let text = |k: &str| auth.get(k).and_then(Value::as_str).map(String::from);
    let list = |k: &str| {
        auth.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    AuthInfo {
        client_token: text("client_token"),
        accessor: text("accessor"),
        display_name: String::new(),
        policies: list("policies"),
        token_policies: list("token_policies"),
        metadata: Default::default(),
        token_type: text("token_type"),
        token_ttl: auth.get("lease_duration").and_then(Value::as_u64),
    }
}

//! From a [`Request`] to a [`Response`]: unauthenticated sys endpoints, then
//! token, ACL, audit, and the handler the path routes to.

mod kv;
mod sys;
mod token;

use crate::audit::Queued;
use crate::auth::{self, Caller};
use crate::request::{ApiError, ApiResult, Method, Request, Response};
use crate::state::{Core, Unsealed};
use serde_json::Value;
use tresor_audit::{AuditEntry, AuthInfo, EntryKind, RequestInfo, ResponseInfo};
use tresor_policy::Operation;

/// The answer, whether the request failed to authenticate (the HTTP layer
/// counts those per client), and the audit entries it still waits for.
pub struct Outcome {
    result: ApiResult,
    pub auth_failed: bool,
    audit: Vec<Queued>,
}

impl Outcome {
    fn done(result: ApiResult, auth_failed: bool) -> Self {
        Self {
            result,
            auth_failed,
            audit: Vec::new(),
        }
    }

    /// The response, once every audit entry it waits for is recorded
    /// (awaiting the devices, not blocking a thread).
    pub async fn finish_async(self) -> Response {
        let mut recorded = Ok(());
        for queued in self.audit {
            recorded = recorded.and(queued.finish_async().await);
        }
        respond(recorded.and(self.result))
    }
}

fn respond(result: ApiResult) -> Response {
    result.unwrap_or_else(ApiError::into_response)
}

/// Serves a request. A read (see [`reads_only`]) never waits here: its
/// audit entries come back queued in the [`Outcome`], so it can run on an
/// async worker and await them. Anything else logs its request entry before
/// it acts, blocking this thread.
pub fn handle(core: &Core, req: &Request) -> Outcome {
    if let Some(result) = sys::unauthenticated(core, req) {
        return Outcome::done(result, false);
    }
    match core.unsealed() {
        Ok(unsealed) => authorized(core, &unsealed, req),
        Err(e) => Outcome::done(Err(e), false),
    }
}

/// Whether a request only reads: its entries may be recorded after it runs,
/// and it can be served on an async worker (see [`handle`]).
pub fn reads_only(method: Method) -> bool {
    matches!(method, Method::Get | Method::Head | Method::List)
}

/// Authenticates, checks the ACL, audits, and serves.
fn authorized(core: &Core, u: &Unsealed, req: &Request) -> Outcome {
    let mut audit = Recorder {
        unsealed: u,
        deferred: reads_only(req.method).then(Vec::new),
    };
    let caller = match auth::authenticate(u, req) {
        Ok(caller) => caller,
        Err(e) => {
            // Only a refused token counts against the client, not a store
            // that could not be asked (503).
            let denied = e.status == 403;
            let logged = audit.record(request_entry(req, None, Some(&e)));
            return audit.outcome(logged.and(Err(e)), denied);
        }
    };
    let decision = check_acl(u, req, &caller);
    let logged = audit.record(request_entry(req, Some(&caller), decision.as_ref().err()));
    if let Err(e) = logged.and(decision) {
        return audit.outcome(Err(e), false);
    }
    let caller = match auth::consume_use(u, req, caller) {
        Ok(caller) => caller,
        Err(e) => {
            let denied = e.status == 403;
            return audit.outcome(Err(e), denied);
        }
    };
    let result = route(core, u, req, &caller);
    let logged = audit.record(response_entry(req, &caller, &result));
    audit.outcome(logged.and(result), false)
}

/// Hands a request's entries to the audit devices. A write must be on record
/// before it happens, so its entries are waited for at once. A read has no
/// effect: its entries are queued together once it has run (one wake-up of
/// each device's writer), and its answer is released once they are recorded
/// (see [`Outcome::finish_async`]).
struct Recorder<'a> {
    unsealed: &'a Unsealed,
    deferred: Option<Vec<AuditEntry>>,
}

impl Recorder<'_> {
    fn record(&mut self, entry: AuditEntry) -> Result<(), ApiError> {
        match &mut self.deferred {
            Some(entries) => {
                entries.push(entry);
                Ok(())
            }
            None => self.unsealed.audit.begin(&entry).finish(),
        }
    }

    fn outcome(self, result: ApiResult, auth_failed: bool) -> Outcome {
        let audit = self
            .deferred
            .map(|entries| vec![self.unsealed.audit.begin_all(&entries)])
            .unwrap_or_default();
        Outcome {
            result,
            auth_failed,
            audit,
        }
    }
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
    let (mount, rest) = u.store.resolve(path).map_err(|e| match e {
        tresor_core::CoreError::NoMount(_) => sys::unknown_route(req),
        // The store could not be asked (503), which is not a missing route.
        other => crate::errors::core(other),
    })?;
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

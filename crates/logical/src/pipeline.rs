//! A canonical request's way through the core: the endpoints served without
//! a token; then the token, the route, the operation (create or update),
//! the ACL on the canonical path with the request's parameters, the audit
//! log, the token's use, and the handler. Each step sees the same
//! [`Request`]; none sees the URL.

use crate::auth::{self, Caller};
use crate::backend::{kv, kv1, sys, token, transit};
use crate::node::{Node, Unsealed};
use crate::router::{self, Access, Captures, Ctx, Endpoint};
use crate::{Envelope, Error, Response, Result, wrapping};
use serde_json::Value;
use tresor_audit::{AuditEntry, AuthInfo, EntryKind, Queued, RequestInfo, ResponseInfo, WrapInfo};
use tresor_core::{MountEntry, MountType};
use tresor_policy::{Decision, DenyReason};
use tresor_request::{Operation, Request};

/// The answer, whether the request failed to authenticate (the edge counts
/// those per client), and the audit entries it still waits for.
pub struct Outcome {
    result: Result<Response>,
    pub auth_failed: bool,
    audit: Vec<Queued>,
}

impl Outcome {
    fn done(result: Result<Response>) -> Self {
        Self {
            result,
            auth_failed: false,
            audit: Vec::new(),
        }
    }

    /// The response, once every audit entry it waits for is recorded
    /// (awaiting the devices, not blocking a thread).
    pub async fn finish_async(self) -> Result<Response> {
        let mut recorded = Ok(());
        for queued in self.audit {
            recorded = recorded.and(queued.finish_async().await.map_err(Error::from));
        }
        recorded.and(self.result)
    }
}

/// Whether a request only reads: its entries may be recorded after it runs,
/// and it can be served on an async worker (see [`handle`]).
pub fn reads_only(operation: Operation) -> bool {
    matches!(operation, Operation::Read | Operation::List)
}

/// Serves a request. A read (see [`reads_only`]) never waits here: its
/// audit entries come back queued in the [`Outcome`], so it can run on an
/// async worker and await them. Anything else logs its request entry before
/// it acts, blocking this thread.
pub fn handle(node: &Node, mut req: Request) -> Outcome {
    if let Some(result) = open_endpoint(node, &req) {
        return Outcome::done(result);
    }
    match node.unsealed() {
        Ok(unsealed) => authorized(node, &unsealed, &mut req),
        Err(e) => Outcome::done(Err(e)),
    }
}

/// The endpoints served without a token (and not audited), if `req` names one.
fn open_endpoint(node: &Node, req: &Request) -> Option<Result<Response>> {
    let rest = req.path.strip_prefix("sys/")?;
    let endpoint = sys::OPEN
        .iter()
        .find(|e| router::matches(e.pattern, rest).is_some())?;
    let handler = endpoint
        .operations
        .iter()
        .find(|(op, _)| {
            *op == req.operation || (*op == Operation::Update && req.operation == Operation::Create)
        })
        .map(|(_, handler)| *handler);
    Some(match handler {
        Some(handler) => handler(node, req),
        None => Err(Error::UnsupportedOperation),
    })
}

/// A request the edge refused before it became canonical (a path with a
/// `..`, a parameter it cannot read...), as it was sent.
pub struct Refused<'a> {
    pub id: &'a str,
    pub method: &'a str,
    /// The path after `/v1/`, as sent.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub token: Option<&'a str>,
    pub remote_address: Option<std::net::IpAddr>,
    pub error: &'a str,
}

/// Records a refused request, so every attempt is on record, including
/// those spelled so that they could not be read; nothing is recorded while
/// sealed (nor served). The token is hashed, never looked up.
pub async fn audit_refused(node: &Node, refused: &Refused<'_>) -> Result<()> {
    let Ok(unsealed) = node.unsealed() else {
        return Ok(());
    };
    let data = refused.query.map(|q| serde_json::json!({ "query": q }));
    let entry = AuditEntry {
        kind: EntryKind::Request,
        auth: None,
        request: RequestInfo {
            id: refused.id.to_owned(),
            operation: refused.method.to_ascii_lowercase(),
            path: refused.path.to_owned(),
            client_token: refused.token.map(str::to_owned),
            data,
            remote_address: refused.remote_address.map(|a| a.to_string()),
            ..RequestInfo::default()
        },
        response: None,
        error: Some(refused.error.to_owned()),
    };
    let queued = unsealed.audit.begin(&entry);
    Ok(queued.finish_async().await?)
}

/// Where a path leads: an endpoint of a backend, with what it captured.
struct Routed {
    endpoint: &'static Endpoint,
    captures: Captures,
    mount: Option<MountEntry>,
    mount_type: &'static str,
}

/// The backend serving `path`: the system backend, a token's cubbyhole, an
/// auth method, or the secrets engine mounted there.
fn route(u: &Unsealed, path: &str) -> Result<Option<Routed>> {
    let in_backend = |table: &'static [Endpoint], rest: &str, mount, mount_type| {
        router::find(table, rest).map(|(endpoint, captures)| Routed {
            endpoint,
            captures,
            mount,
            mount_type,
        })
    };
    if let Some(rest) = path.strip_prefix("sys/") {
        return Ok(in_backend(sys::ENDPOINTS, rest, None, "system"));
    }
    if let Some(rest) = path.strip_prefix("cubbyhole/") {
        return Ok(in_backend(kv1::CUBBYHOLE, rest, None, "cubbyhole"));
    }
    if let Some(rest) = path.strip_prefix("auth/") {
        return match u.store.resolve_auth(rest) {
            Ok((mount, rest)) => {
                let table = match mount.kind {
                    MountType::Token => token::ENDPOINTS,
                    // Auth methods never sit in the secrets table, nor engines here.
                    MountType::KvV1 | MountType::KvV2 | MountType::Transit => return Ok(None),
                };
                Ok(in_backend(table, &rest, Some(mount), "token"))
            }
            Err(tresor_core::CoreError::NoMount(_)) => Ok(None),
            Err(e) => Err(e.into()),
        };
    }
    match u.store.resolve(path) {
        Ok((mount, rest)) => {
            let (table, mount_type) = match mount.kind {
                MountType::KvV1 => (kv1::ENDPOINTS, "kv"),
                MountType::KvV2 => (kv::ENDPOINTS, "kv"),
                MountType::Transit => (transit::ENDPOINTS, "transit"),
                MountType::Token => return Ok(None),
            };
            Ok(in_backend(table, &rest, Some(mount), mount_type))
        }
        Err(tresor_core::CoreError::NoMount(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Routes, authenticates (as the endpoint demands), checks the ACL,
/// audits, and serves.
fn authorized(node: &Node, u: &Unsealed, req: &mut Request) -> Outcome {
    let mut audit = Recorder {
        unsealed: u,
        deferred: reads_only(req.operation).then(Vec::new),
    };
    let routed = match route(u, &req.path) {
        Ok(routed) => routed,
        Err(e) => {
            let logged = audit.record(request_entry(req, None, None, Some(&e)));
            return audit.outcome(logged.and(Err(e)), false);
        }
    };
    let access = routed
        .as_ref()
        .map_or(Access::Policy, |r| r.endpoint.access);
    let caller = match auth::authenticate(u, req.client_token.as_ref()) {
        Ok(caller) => Some(caller),
        // Anyone may call these: a missing or bad token is no token.
        Err(Error::PermissionDenied) if access == Access::Anyone => None,
        Err(e) => {
            // Only a refused token counts against the client, not a store
            // that could not be asked.
            let denied = e.is_denial();
            let logged = audit.record(request_entry(req, None, routed.as_ref(), Some(&e)));
            return audit.outcome(logged.and(Err(e)), denied);
        }
    };
    let decision =
        refine_operation(node, u, caller.as_ref(), req, routed.as_ref()).and_then(|()| {
            match (&caller, access) {
                (Some(caller), Access::Policy) => check_acl(req, caller, routed.as_ref()),
                _ => Ok(()),
            }
        });
    let logged = audit.record(request_entry(
        req,
        caller.as_ref(),
        routed.as_ref(),
        decision.as_ref().err(),
    ));
    if let Err(e) = logged.and(decision) {
        return audit.outcome(Err(e), false);
    }
    let caller = match caller.map(|c| auth::consume_use(u, c)).transpose() {
        Ok(caller) => caller,
        Err(e) => {
            let denied = e.is_denial();
            return audit.outcome(Err(e), denied);
        }
    };
    let result = serve(node, u, caller.as_ref(), req, routed.as_ref());
    let logged = audit.record(response_entry(
        req,
        caller.as_ref(),
        routed.as_ref(),
        &result,
    ));
    audit.outcome(logged.and(result), false)
}

/// A write is `create` when its target does not exist yet (for endpoints
/// that can tell); the ACL and the audit log see the refined operation.
fn refine_operation(
    node: &Node,
    u: &Unsealed,
    caller: Option<&Caller>,
    req: &mut Request,
    routed: Option<&Routed>,
) -> Result<()> {
    let Some(routed) = routed else {
        return Ok(());
    };
    if req.operation != Operation::Update {
        return Ok(());
    }
    let Some(existence) = routed.endpoint.existence else {
        return Ok(());
    };
    let ctx = Ctx {
        node,
        unsealed: u,
        caller,
        request: req,
        mount: routed.mount.as_ref(),
        captures: &routed.captures,
    };
    if !existence(&ctx)? {
        req.operation = Operation::Create;
    }
    Ok(())
}

fn check_acl(req: &Request, caller: &Caller, routed: Option<&Routed>) -> Result<()> {
    let decision = caller.acl.check(req);
    let sudo = routed.is_some_and(|r| r.endpoint.sudo);
    let allowed = if sudo {
        decision.is_allowed_with_sudo()
    } else {
        decision.is_allowed()
    };
    // What a policy forbids on the other spelling, explicitly or by its
    // parameter constraints, it forbids on this one.
    let denied_elsewhere = routed.is_some_and(|r| {
        r.endpoint.alias.is_some_and(|alias| {
            let other = r.captures.fill(alias);
            matches!(
                caller.acl.check_at(&other, req),
                Decision::Deny(
                    DenyReason::ExplicitDeny
                        | DenyReason::ParameterDenied
                        | DenyReason::ParameterNotAllowed
                        | DenyReason::RequiredParameterMissing
                        | DenyReason::WrappingTtl
                )
            )
        })
    });
    if allowed && !denied_elsewhere {
        Ok(())
    } else {
        Err(Error::PermissionDenied)
    }
}

/// Runs the endpoint's handler; a request that asks for it gets its answer
/// wrapped.
fn serve(
    node: &Node,
    u: &Unsealed,
    caller: Option<&Caller>,
    req: &Request,
    routed: Option<&Routed>,
) -> Result<Response> {
    let routed = routed.ok_or_else(|| Error::UnsupportedPath(req.path.clone()))?;
    let handler = routed
        .endpoint
        .handler(req.operation)
        .ok_or(Error::UnsupportedOperation)?;
    let response = handler(&Ctx {
        node,
        unsealed: u,
        caller,
        request: req,
        mount: routed.mount.as_ref(),
        captures: &routed.captures,
    })?;
    match req.wrap_ttl {
        Some(ttl) if wrapping::wrappable(&response) => wrapping::wrap(u, &req.path, ttl, &response),
        _ => Ok(response),
    }
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
    fn record(&mut self, entry: AuditEntry) -> Result<()> {
        match &mut self.deferred {
            Some(entries) => {
                entries.push(entry);
                Ok(())
            }
            None => Ok(self.unsealed.audit.begin(&entry).finish()?),
        }
    }

    fn outcome(self, result: Result<Response>, auth_failed: bool) -> Outcome {
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

fn request_info(req: &Request, caller: Option<&Caller>, routed: Option<&Routed>) -> RequestInfo {
    RequestInfo {
        mount_type: routed.map(|r| r.mount_type.to_owned()),
        client_token_accessor: caller.map(|c| c.entry.accessor().expose().to_string()),
        ..RequestInfo::of(req)
    }
}

fn request_entry(
    req: &Request,
    caller: Option<&Caller>,
    routed: Option<&Routed>,
    error: Option<&Error>,
) -> AuditEntry {
    AuditEntry {
        kind: EntryKind::Request,
        auth: caller.map(auth_info),
        request: request_info(req, caller, routed),
        response: None,
        error: error.map(Error::to_string),
    }
}

fn response_entry(
    req: &Request,
    caller: Option<&Caller>,
    routed: Option<&Routed>,
    result: &Result<Response>,
) -> AuditEntry {
    let (response, error) = match result {
        Ok(response) => {
            let info = ResponseInfo {
                mount_type: routed.map(|r| r.mount_type.to_owned()),
                auth: response.auth_value().map(issued_auth),
                data: response
                    .data_value()
                    .filter(|d| !d.is_null())
                    .cloned()
                    .or_else(|| raw_body(response)),
                wrap_info: wrap_info(response),
            };
            (Some(info), None)
        }
        Err(e) => (None, Some(e.to_string())),
    };
    AuditEntry {
        kind: EntryKind::Response,
        auth: caller.map(auth_info),
        request: request_info(req, caller, routed),
        response,
        error,
    }
}

/// The wrapping token a wrapped answer handed out, for the audit log.
fn wrap_info(response: &Response) -> Option<WrapInfo> {
    let Response::Envelope(Envelope {
        wrap_info: Some(info),
        ..
    }) = response
    else {
        return None;
    };
    let text = |k: &str| {
        info.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Some(WrapInfo {
        token: text("token"),
        accessor: text("accessor"),
        ttl: info.get("ttl").and_then(Value::as_u64).unwrap_or(0),
        creation_path: text("creation_path"),
    })
}

fn raw_body(response: &Response) -> Option<Value> {
    match response {
        Response::Raw { body, .. } => Some(body.clone()),
        _ => None,
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

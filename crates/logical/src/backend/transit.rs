//! Transit endpoints of a mount (docs/transit.md is the map): named keys,
//! encrypt, decrypt, rewrap, data keys, export, mount settings.

use crate::params::{bool_param, duration_param, u64_param};
use crate::router::{Ctx, Endpoint};
use crate::{Envelope, Error, Response, Result};
use serde::Serialize;
use serde_json::{Map, Value, json};
use tresor_request::Operation::{self, Delete, List, Read, Update};
use tresor_transit::{
    Batch, CiphertextItem, CreateKey, DataKeyRequest, EncryptItem, KeyConfig, KeyType, MountConfig,
    TransitEngine, TransitError, Written,
};

pub(crate) const ENDPOINTS: &[Endpoint] = &[
    Endpoint::new("keys", &[(List, list_keys)]),
    Endpoint::new("keys/:name/config", &[(Update, configure_key)]),
    Endpoint::new("keys/:name/rotate", &[(Update, rotate_key)]),
    Endpoint::new("keys/:name/trim", &[(Update, trim_key)]),
    Endpoint::new(
        "keys/:name",
        &[(Read, read_key), (Update, create_key), (Delete, delete_key)],
    ),
    Endpoint::new("encrypt/:name", &[(Update, encrypt)]).existence(key_exists),
    Endpoint::new("decrypt/:name", &[(Update, decrypt)]),
    Endpoint::new("rewrap/:name", &[(Update, rewrap)]),
    Endpoint::new("datakey/:kind/:name", &[(Update, datakey)]),
    Endpoint::new("export/:type/:name", &[(Read, export)]),
    Endpoint::new("export/:type/:name/:version", &[(Read, export)]),
    Endpoint::new(
        "config/keys",
        &[(Read, read_config), (Update, write_config)],
    ),
];

fn engine(ctx: &Ctx<'_>) -> Result<TransitEngine> {
    ctx.transit()
}

fn name<'c>(ctx: &'c Ctx<'_>) -> &'c str {
    ctx.capture("name")
}

fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("transit answers serialize")
}

/// `data` with the write's warnings.
fn written<T: Serialize>(written: Written<T>) -> Response {
    Response::Envelope(Envelope {
        data: Some(to_value(&written.value)),
        warnings: written.warnings,
        ..Envelope::default()
    })
}

fn key_exists(ctx: &Ctx<'_>) -> Result<bool> {
    // A name the engine refuses is "existing": the handler says why.
    match engine(ctx)?.key_exists(name(ctx)) {
        Ok(exists) => Ok(exists),
        Err(TransitError::Invalid(_)) => Ok(true),
        Err(e) => Err(e.into()),
    }
}

fn key_type(data: &Map<String, Value>) -> Result<KeyType> {
    match data.get("type").and_then(Value::as_str) {
        None | Some("") => Ok(KeyType::Aes256Gcm96),
        Some(text) => Ok(KeyType::parse(text)?),
    }
}

fn list_keys(ctx: &Ctx<'_>) -> Result<Response> {
    let limit = u64_param(ctx.data(), "limit")?.map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let after = ctx.data().get("after").and_then(Value::as_str);
    let keys = engine(ctx)?.list_keys(after, limit)?;
    if keys.is_empty() {
        return Err(Error::NotFound);
    }
    Ok(Response::data(json!({ "keys": keys })))
}

fn read_key(ctx: &Ctx<'_>) -> Result<Response> {
    let info = engine(ctx)?.read_key(name(ctx))?.ok_or(Error::NotFound)?;
    Ok(Response::data(to_value(&info)))
}

fn create_key(ctx: &Ctx<'_>) -> Result<Response> {
    let data = ctx.data();
    let params = CreateKey {
        key_type: key_type(data)?,
        derived: bool_param(data, "derived")?.unwrap_or(false),
        convergent_encryption: bool_param(data, "convergent_encryption")?.unwrap_or(false),
        exportable: bool_param(data, "exportable")?.unwrap_or(false),
        allow_plaintext_backup: bool_param(data, "allow_plaintext_backup")?.unwrap_or(false),
        auto_rotate_period: duration_param(data, "auto_rotate_period")?.unwrap_or_default(),
    };
    Ok(written(engine(ctx)?.create_key(name(ctx), &params)?))
}

fn delete_key(ctx: &Ctx<'_>) -> Result<Response> {
    engine(ctx)?.delete_key(name(ctx))?;
    Ok(Response::NoContent)
}

/// A signed version number (Vault refuses negative ones with its own words).
fn version(data: &Map<String, Value>, field: &str) -> Result<Option<i64>> {
    let bad = || Error::bad_request(format!("`{field}` must be an integer"));
    match data.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

fn configure_key(ctx: &Ctx<'_>) -> Result<Response> {
    let data = ctx.data();
    let config = KeyConfig {
        min_decryption_version: version(data, "min_decryption_version")?,
        min_encryption_version: version(data, "min_encryption_version")?,
        deletion_allowed: bool_param(data, "deletion_allowed")?,
        exportable: bool_param(data, "exportable")?,
        allow_plaintext_backup: bool_param(data, "allow_plaintext_backup")?,
        auto_rotate_period: duration_param(data, "auto_rotate_period")?,
    };
    Ok(written(engine(ctx)?.configure_key(name(ctx), &config)?))
}

fn rotate_key(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(Response::data(to_value(
        &engine(ctx)?.rotate_key(name(ctx))?,
    )))
}

fn trim_key(ctx: &Ctx<'_>) -> Result<Response> {
    let min = version(ctx.data(), "min_available_version")?
        .ok_or_else(|| Error::bad_request("missing min_available_version"))?;
    Ok(Response::data(to_value(
        &engine(ctx)?.trim_key(name(ctx), min)?,
    )))
}

/// The request's items: its `batch_input`, or the request itself as one.
fn items<T: serde::de::DeserializeOwned>(ctx: &Ctx<'_>) -> Result<(Vec<T>, bool)> {
    let bad = |e: serde_json::Error| Error::bad_request(format!("failed to parse the input: {e}"));
    match ctx.data().get("batch_input") {
        Some(batch) => Ok((serde_json::from_value(batch.clone()).map_err(bad)?, true)),
        None => {
            let one = serde_json::from_value(Value::Object(ctx.data().clone())).map_err(bad)?;
            Ok((vec![one], false))
        }
    }
}

fn partial_failure_code(ctx: &Ctx<'_>) -> Result<Option<u16>> {
    Ok(u64_param(ctx.data(), "partial_failure_response_code")?.and_then(|c| u16::try_from(c).ok()))
}

/// A batch answer (`batch_results`, with Vault's status), or the one
/// result of a request made without `batch_input`, shown by `single`.
fn answer<T>(
    batch: Batch<T>,
    batched: bool,
    status: u16,
    warnings: Vec<String>,
    single: impl FnOnce(T) -> Value,
) -> Result<Response>
where
    T: tresor_transit::BatchResult + Clone + Serialize,
{
    let data = if batched {
        json!({ "batch_results": to_value(&batch.results) })
    } else {
        single(batch.into_single()?)
    };
    Ok(Response::Envelope(Envelope {
        data: Some(data),
        warnings,
        status: (status != 200).then_some(status),
        ..Envelope::default()
    }))
}

fn encrypt(ctx: &Ctx<'_>) -> Result<Response> {
    let (items, batched) = items::<EncryptItem>(ctx)?;
    // A create (the key does not exist and the ACL allowed creating it)
    // makes the key first, as Vault does.
    let upsert = match ctx.request.operation {
        Operation::Create => Some(CreateKey {
            key_type: key_type(ctx.data())?,
            ..CreateKey::default()
        }),
        _ => None,
    };
    let Written { value, warnings } = engine(ctx)?.encrypt(name(ctx), &items, upsert.as_ref())?;
    let status = value.status(partial_failure_code(ctx)?);
    answer(
        value,
        batched,
        status,
        warnings,
        |one| json!({ "ciphertext": one.ciphertext, "key_version": one.key_version }),
    )
}

fn decrypt(ctx: &Ctx<'_>) -> Result<Response> {
    let (items, batched) = items::<CiphertextItem>(ctx)?;
    let batch = engine(ctx)?.decrypt(name(ctx), &items)?;
    let status = batch.status(partial_failure_code(ctx)?);
    answer(
        batch,
        batched,
        status,
        Vec::new(),
        |one| json!({ "plaintext": one.plaintext.as_str() }),
    )
}

fn rewrap(ctx: &Ctx<'_>) -> Result<Response> {
    let (items, batched) = items::<CiphertextItem>(ctx)?;
    let batch = engine(ctx)?.rewrap(name(ctx), &items)?;
    // Vault answers a rewrap 200, its failures in the items.
    answer(
        batch,
        batched,
        200,
        Vec::new(),
        |one| json!({ "ciphertext": one.ciphertext, "key_version": one.key_version }),
    )
}

fn datakey(ctx: &Ctx<'_>) -> Result<Response> {
    let with_plaintext = match ctx.capture("kind") {
        "plaintext" => true,
        "wrapped" => false,
        _ => {
            return Err(Error::bad_request(
                "Invalid path, must be 'plaintext' or 'wrapped'",
            ));
        }
    };
    let data = ctx.data();
    let text = |k: &str| data.get(k).and_then(Value::as_str).map(String::from);
    let request = DataKeyRequest {
        with_plaintext,
        bits: u64_param(data, "bits")?.and_then(|b| u32::try_from(b).ok()),
        context: text("context"),
        key_version: u64_param(data, "key_version")?.and_then(|v| u32::try_from(v).ok()),
        associated_data: text("associated_data"),
    };
    Ok(Response::data(to_value(
        &engine(ctx)?.datakey(name(ctx), &request)?,
    )))
}

fn export(ctx: &Ctx<'_>) -> Result<Response> {
    let version = Some(ctx.capture("version")).filter(|v| !v.is_empty());
    let exported = engine(ctx)?
        .export(name(ctx), ctx.capture("type"), version)?
        .ok_or(Error::NotFound)?;
    Ok(Response::data(to_value(&exported)))
}

fn read_config(ctx: &Ctx<'_>) -> Result<Response> {
    Ok(Response::data(to_value(&engine(ctx)?.mount_config()?)))
}

fn write_config(ctx: &Ctx<'_>) -> Result<Response> {
    let engine = engine(ctx)?;
    let mut config: MountConfig = engine.mount_config()?;
    if let Some(disable) = bool_param(ctx.data(), "disable_upsert")? {
        config.disable_upsert = disable;
    }
    engine.set_mount_config(config)?;
    Ok(Response::data(to_value(&config)))
}

//! Typed readers of a request's parameters.

use crate::Error;
use serde_json::{Map, Value};
use std::time::Duration;

/// A non-negative integer (a JSON number or its text).
pub fn u64_param(data: &Map<String, Value>, name: &str) -> Result<Option<u64>, Error> {
    let bad = || Error::bad_request(format!("`{name}` must be a non-negative integer"));
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// A boolean (JSON, or the text `true`/`false`).
pub fn bool_param(data: &Map<String, Value>, name: &str) -> Result<Option<bool>, Error> {
    let bad = || Error::bad_request(format!("`{name}` must be a boolean"));
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// A duration: seconds as a number, or a string like `3h`.
pub fn duration_param(data: &Map<String, Value>, name: &str) -> Result<Option<Duration>, Error> {
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|s| Some(Duration::from_secs(s)))
            .ok_or_else(|| Error::bad_request(format!("`{name}` must be a duration"))),
        Some(Value::String(s)) => tresor_request::parse_duration(s)
            .map(Some)
            .map_err(|e| Error::bad_request(format!("`{name}`: {e}"))),
        Some(_) => Err(Error::bad_request(format!("`{name}` must be a duration"))),
    }
}

/// A list of strings (a JSON array, or a comma-separated string).
pub fn strings_param(data: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, Error> {
    let bad = || Error::bad_request(format!("`{name}` must be a list of strings"));
    match data.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        )),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(String::from).ok_or_else(bad))
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(bad()),
    }
}

/// A required string parameter.
pub fn required_str(data: &Map<String, Value>, name: &str) -> Result<String, Error> {
    match data.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        _ => Err(Error::bad_request(format!(
            "missing required parameter `{name}`"
        ))),
    }
}

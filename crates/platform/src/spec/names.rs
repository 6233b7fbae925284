//! The names Kubernetes accepts: Secret keys, resource names, labels.

use super::model::{Consumer, ConsumerKind};

pub(super) fn parse_consumer(text: &str) -> Result<Consumer, String> {
    let (kind, name) = text.split_once('/').ok_or_else(|| {
        format!("consumer `{text}` must be KIND/NAME, for example `deployment/mlflow-server`")
    })?;
    let kind = match kind {
        "deployment" | "deployments" | "deploy" => ConsumerKind::Deployment,
        "statefulset" | "statefulsets" | "sts" => ConsumerKind::StatefulSet,
        "daemonset" | "daemonsets" | "ds" => ConsumerKind::DaemonSet,
        _ => {
            return Err(format!(
                "consumer `{text}`: tresor restarts deployments, statefulsets and daemonsets; `{kind}` is none of them"
            ));
        }
    };
    if !is_dns_subdomain(name) {
        return Err(format!(
            "consumer `{text}`: `{name}` is not a valid Kubernetes name"
        ));
    }
    Ok(Consumer {
        kind,
        name: name.into(),
    })
}

/// Kubernetes' rule for Secret keys (`IsConfigMapKey`).
pub fn check_key_name(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > 253 {
        return Err("Kubernetes accepts key names of 1 to 253 characters".into());
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!(
            "`{key}` is not a valid Kubernetes key name: use only letters, digits, `-`, `_` and `.`"
        ));
    }
    if key == "." || key == ".." || key.starts_with("..") {
        return Err(format!(
            "`{key}` is not a valid Kubernetes key name: it may not be `.` or start with `..`"
        ));
    }
    Ok(())
}

pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(super) fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

pub(super) fn is_label_value(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

/// Why a call to the server failed. Never carries the token, nor a request
/// or response body (either may hold a secret): only the HTTP status and the
/// server's `errors` messages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status.
    #[error("{}", api_message(*status, errors))]
    Api { status: u16, errors: Vec<String> },
    /// The server could not be reached, or the connection failed.
    #[error(
        "cannot reach the server at {address}: {reason}; check TRESOR_ADDR (or VAULT_ADDR) and that the server is running"
    )]
    Transport { address: String, reason: String },
    /// The answer was not JSON.
    #[error(
        "the server at {address} answered with something that is not JSON ({reason}); is TRESOR_ADDR a tresor or Vault server?"
    )]
    Decode { address: String, reason: String },
    /// The client's configuration (address, CA file, token file) is unusable.
    #[error("{0}")]
    Config(String),
    /// No token was found anywhere.
    #[error("no token: set TRESOR_TOKEN (or VAULT_TOKEN), or run `tresor login`")]
    NoToken,
}

impl Error {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the request itself was at fault (bad input, nothing there,
    /// not allowed), as opposed to the server or the network failing.
    pub fn is_client_error(&self) -> bool {
        match self {
            Error::Api { status, .. } => (400..500).contains(status) && *status != 429,
            Error::Config(_) | Error::NoToken => true,
            Error::Transport { .. } | Error::Decode { .. } => false,
        }
    }
}

fn api_message(status: u16, errors: &[String]) -> String {
    let detail = if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    };
    let hint = match status {
        403 => "; check the token (TRESOR_TOKEN, or `tresor login`) and its policies",
        429 => "; too many failed authentications from this client, wait and retry",
        503 if errors.iter().any(|e| e.contains("sealed")) => {
            "; unseal it with `tresor operator unseal`"
        }
        _ => "",
    };
    format!("the server answered {status}{detail}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_status_and_what_to_do() {
        let denied = Error::Api {
            status: 403,
            errors: vec!["permission denied".into()],
        };
        assert!(denied.is_client_error());
        assert_eq!(
            denied.to_string(),
            "the server answered 403: permission denied; check the token (TRESOR_TOKEN, or `tresor login`) and its policies"
        );
        let sealed = Error::Api {
            status: 503,
            errors: vec!["Vault is sealed".into()],
        };
        assert!(!sealed.is_client_error());
        assert!(sealed.to_string().contains("tresor operator unseal"));
    }
}

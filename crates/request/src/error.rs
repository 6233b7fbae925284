/// Why a request could not be made canonical. Every variant is the client's
/// fault (a 4xx at the edge); the message says what to send instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    #[error("unsupported method {0}")]
    UnsupportedMethod(String),
    #[error("invalid path: {0}")]
    Path(&'static str),
    #[error("invalid query string: {0}")]
    Query(String),
    #[error("failed to parse JSON input: {0}")]
    Json(String),
    #[error("failed to parse the request body: {0}")]
    Body(String),
    #[error("PATCH requires the content type application/merge-patch+json")]
    PatchContentType,
    #[error(
        "query parameters are not read on a write ({0}); send them in the JSON body, as Vault reads them"
    )]
    QueryOnWrite(String),
    #[error("invalid X-Vault-Wrap-TTL header: {0}")]
    WrapTtl(String),
    #[error("invalid token header: {0}")]
    Token(&'static str),
}

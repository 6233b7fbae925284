//! The `postgres` rotator: changes a login role's password in PostgreSQL.
//!
//! The password is sent as a SCRAM-SHA-256 verifier built here
//! (`postgres_protocol::password::scram_sha_256`), so neither the server nor
//! its log (even with `log_statement=all`) ever sees the plaintext. Before a
//! password is promoted, a fresh connection logs in with it.

use crate::rotator::Rotator;
use crate::value;
use serde_json::Value;
use std::time::Duration;
use tokio_postgres::NoTls;
use tresor_kv::SecretMap;
use tresor_platform::{Generator, PostgresRotation, Strategy};
use zeroize::Zeroizing;

/// How long a connection attempt may take before the step fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Postgres {
    config: PostgresRotation,
    admin_user: Zeroizing<String>,
    admin_password: Zeroizing<String>,
    generator: Generator,
}

impl Postgres {
    pub fn new(
        config: PostgresRotation,
        admin_user: Zeroizing<String>,
        admin_password: Zeroizing<String>,
        generator: Generator,
    ) -> Self {
        Self {
            config,
            admin_user,
            admin_password,
            generator,
        }
    }

    fn login(&self, values: &SecretMap) -> Result<(Zeroizing<String>, Zeroizing<String>), String> {
        let role = value(values, &self.config.role_key)
            .ok_or_else(|| format!("the secret has no key `{}`", self.config.role_key))?;
        let password = value(values, &self.config.password_key)
            .ok_or_else(|| format!("the secret has no key `{}`", self.config.password_key))?;
        Ok((role, password))
    }

    fn where_(&self) -> String {
        format!(
            "{}:{}/{}",
            self.config.host, self.config.port, self.config.database
        )
    }

    /// Runs `work` on a connection as `user`.
    fn with_connection<T>(
        &self,
        user: &str,
        password: &str,
        work: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, Failure> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::Connect(format!("cannot start an I/O runtime: {e}")))?;
        runtime.block_on(async {
            let mut config = tokio_postgres::Config::new();
            config
                .host(&self.config.host)
                .port(self.config.port)
                .dbname(&self.config.database)
                .user(user)
                .password(password)
                .application_name("tresor-rotation")
                .connect_timeout(CONNECT_TIMEOUT);
            let (client, connection) = config
                .connect(NoTls)
                .await
                .map_err(|e| Failure::Connect(reason(&e)))?;
            let driver = tokio::spawn(connection);
            let result = work(&client).await.map_err(|e| Failure::Query(reason(&e)));
            drop(client);
            let _ = driver.await;
            result
        })
    }

    fn logs_in(&self, user: &str, password: &str) -> Result<(), Failure> {
        self.with_connection(user, password, async |c| {
            c.simple_query("SELECT 1").await.map(drop)
        })
    }

    fn as_admin<T>(
        &self,
        work: impl AsyncFnOnce(&tokio_postgres::Client) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, String> {
        self.with_connection(&self.admin_user, &self.admin_password, work)
            .map_err(|f| match f {
                Failure::Connect(why) => format!(
                    "cannot log in to {} as the admin `{}` (secret `{}`): {why}",
                    self.where_(),
                    *self.admin_user,
                    self.config.admin.secret
                ),
                Failure::Query(why) => why,
            })
    }

    /// The other login role of an alternating pair.
    fn other_role(&self, current: &str) -> Result<String, String> {
        let Strategy::AlternatingUsers { roles, .. } = &self.config.strategy else {
            return Ok(current.to_owned());
        };
        if current == roles[0] {
            Ok(roles[1].clone())
        } else if current == roles[1] {
            Ok(roles[0].clone())
        } else {
            Err(format!(
                "the current role `{current}` is neither `{}` nor `{}`; set `{}` to one of them",
                roles[0], roles[1], self.config.role_key
            ))
        }
    }
}

enum Failure {
    Connect(String),
    Query(String),
}

impl Rotator for Postgres {
    fn create(&self, current: &SecretMap) -> Result<SecretMap, String> {
        let (role, _) = self.login(current)?;
        let mut pending = SecretMap::new();
        pending.insert(
            self.config.role_key.clone(),
            Value::String(self.other_role(&role)?),
        );
        let password = self.generator.generate();
        pending.insert(
            self.config.password_key.clone(),
            Value::String(password.to_string()),
        );
        Ok(pending)
    }

    fn set(&self, _current: &SecretMap, pending: &SecretMap) -> Result<(), String> {
        let (role, password) = self.login(pending)?;
        // Already set (a resumed rotation): setting it again changes nothing.
        if self.logs_in(&role, &password).is_ok() {
            return Ok(());
        }
        let verifier = Zeroizing::new(postgres_protocol::password::scram_sha_256(
            password.as_bytes(),
        ));
        let alternating = match &self.config.strategy {
            Strategy::SingleUser => None,
            Strategy::AlternatingUsers { owner, .. } => Some(owner.clone()),
        };
        let statement = Zeroizing::new(format!(
            "ALTER ROLE {} PASSWORD {}{}",
            ident(&role),
            literal(&verifier),
            if alternating.is_some() {
                " VALID UNTIL 'infinity'"
            } else {
                ""
            }
        ));
        let where_ = self.where_();
        self.as_admin(async |c| {
            let found = c
                .query_opt("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", &[&role.as_str()])
                .await?;
            if found.is_none() {
                return Ok(Err(format!(
                    "role `{}` does not exist in {where_}; create it (CREATE ROLE {} LOGIN{}) and run the rotation again",
                    *role,
                    ident(&role),
                    alternating.as_deref().map(|o| format!(" IN ROLE {}", ident(o))).unwrap_or_default()
                )));
            }
            if let Some(owner) = &alternating {
                let member = c
                    .query_one("SELECT pg_has_role($1, $2, 'MEMBER')", &[&role.as_str(), &owner.as_str()])
                    .await?;
                if !member.get::<_, bool>(0) {
                    return Ok(Err(format!(
                        "role `{}` is not a member of the owner role `{owner}`; run GRANT {} TO {} and run the rotation again",
                        *role,
                        ident(owner),
                        ident(&role)
                    )));
                }
            }
            c.batch_execute(&statement).await?;
            Ok(Ok(()))
        })
        .and_then(|r| r)
    }

    fn test(&self, _current: &SecretMap, pending: &SecretMap) -> Result<(), String> {
        let (role, password) = self.login(pending)?;
        self.logs_in(&role, &password).map_err(|f| {
            let why = match f {
                Failure::Connect(why) | Failure::Query(why) => why,
            };
            format!(
                "a fresh login to {} as `{}` with the pending password failed: {why}",
                self.where_(),
                *role
            )
        })
    }

    fn retiring(&self, current: &SecretMap, pending: &SecretMap) -> Option<(String, Duration)> {
        let Strategy::AlternatingUsers { grace, .. } = &self.config.strategy else {
            return None;
        };
        let old = value(current, &self.config.role_key)?;
        let new = value(pending, &self.config.role_key)?;
        (old != new).then(|| (old.to_string(), *grace))
    }

    fn retire(&self, role: &str) -> Result<(), String> {
        let statement = format!(
            "ALTER ROLE {} VALID UNTIL '1970-01-01 00:00:00+00'",
            ident(role)
        );
        self.as_admin(async |c| c.batch_execute(&statement).await)
            .map_err(|why| format!("cannot retire role `{role}`: {why}"))
    }
}

/// A quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A quoted SQL string literal (a verifier holds no quote; escape anyway).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// What went wrong, as PostgreSQL said it, without the SQL that was sent.
fn reason(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

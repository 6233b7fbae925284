//! Validation of `rotation:`: the period, the rotator, and the keys a
//! `postgres` rotation names.

use super::model::{
    DEFAULT_ROTATION_EVERY, KeyPair, PostgresRotation, ROTATION_RECORD_PREFIX, Rotation,
    SecretSpec, Source, Strategy,
};
use super::raw::{RawPostgres, RawRotation};
use super::validate::{Problem, Validator};
use serde_saphyr::Spanned;
use std::time::Duration;

impl Validator {
    pub(super) fn rotation(&mut self, raw: Spanned<RawRotation>) -> Option<Rotation> {
        let at = raw.referenced;
        let raw = raw.value;
        let every = match raw.every {
            None => DEFAULT_ROTATION_EVERY,
            Some(text) => match humantime::parse_duration(&text) {
                Ok(every) if !every.is_zero() => every,
                _ => {
                    self.at(
                        at,
                        format!("rotation `every: {text}` is not a duration; write for example `90d` or `12h`"),
                    );
                    return None;
                }
            },
        };
        match (raw.rotator.as_deref(), &raw.postgres) {
            (None | Some("postgres"), Some(_)) | (None | Some("generate"), None) => {}
            (Some("generate"), Some(_)) => {
                self.at(at, "rotation `rotator: generate` and a `postgres` section contradict each other: keep the one that changes the value where it is checked");
                return None;
            }
            (Some("postgres"), None) => {
                self.at(at, "rotation `rotator: postgres` needs a `postgres` section saying which database and role (see docs/rotation.md)");
                return None;
            }
            (Some(other), _) => {
                self.at(
                    at,
                    format!("rotation `rotator: {other}` is unknown; use `generate` or `postgres`"),
                );
                return None;
            }
        }
        let rotator_named = raw.rotator.is_some() || raw.postgres.is_some();
        let postgres = match raw.postgres {
            Some(p) => Some(self.postgres(p)?),
            None => None,
        };
        Some(Rotation {
            every,
            postgres,
            rotator_named,
        })
    }

    fn postgres(&mut self, raw: Spanned<RawPostgres>) -> Option<PostgresRotation> {
        let at = raw.referenced;
        let raw = raw.value;
        let grace = match raw.grace.as_deref().map(humantime::parse_duration) {
            None => Duration::from_secs(3600),
            Some(Ok(grace)) => grace,
            Some(Err(_)) => {
                self.at(
                    at,
                    "rotation `postgres.grace` is not a duration; write for example `1h`",
                );
                return None;
            }
        };
        let strategy = match raw.strategy.as_deref().unwrap_or("single-user") {
            "single-user" => Strategy::SingleUser,
            "alternating-users" => {
                let Some(owner) = raw.owner else {
                    self.at(at, "strategy `alternating-users` needs `owner`: the NOLOGIN role both login roles are members of (roles default to `<owner>_a` and `<owner>_b`)");
                    return None;
                };
                let roles = match raw.roles {
                    Some(roles) => match <[String; 2]>::try_from(roles) {
                        Ok(roles) if roles[0] != roles[1] => roles,
                        _ => {
                            self.at(at, "rotation `postgres.roles` names two different login roles, for example `[mlflow_a, mlflow_b]`");
                            return None;
                        }
                    },
                    None => [format!("{owner}_a"), format!("{owner}_b")],
                };
                Strategy::AlternatingUsers {
                    owner,
                    roles,
                    grace,
                }
            }
            other => {
                self.at(at, format!("rotation strategy `{other}` is unknown; use `single-user` or `alternating-users`"));
                return None;
            }
        };
        Some(PostgresRotation {
            host: raw.host.unwrap_or_else(|| "127.0.0.1".into()),
            port: raw.port.unwrap_or(5432),
            database: raw.database,
            admin: KeyPair {
                secret: raw.admin.secret,
                username_key: raw.admin.username_key.unwrap_or_else(|| "username".into()),
                password_key: raw.admin.password_key.unwrap_or_else(|| "password".into()),
            },
            role_key: raw.role_key.unwrap_or_else(|| "username".into()),
            password_key: raw.password_key.unwrap_or_else(|| "password".into()),
            strategy,
        })
    }

    /// Each rotation names keys that exist and that it can rotate, and no
    /// secret lives where rotation keeps its records.
    pub(super) fn rotations(&mut self, secrets: &[SecretSpec]) {
        for s in secrets {
            let mut problem = |message: String| {
                self.problems.push(Problem {
                    line: s.line,
                    column: 1,
                    message: format!("secret `{}`: {message}", s.name),
                })
            };
            if s.path.starts_with(ROTATION_RECORD_PREFIX) {
                problem(format!(
                    "paths under `{ROTATION_RECORD_PREFIX}` hold tresor's rotation records; choose another `path`"
                ));
            }
            let Some(rotation) = &s.rotation else {
                continue;
            };
            let Some(pg) = &rotation.postgres else {
                if !s
                    .keys
                    .iter()
                    .any(|k| matches!(k.source, Source::Generate(_)))
                {
                    problem(
                        "`rotation` needs a generated key to rotate (or a `postgres` rotator)"
                            .into(),
                    );
                }
                continue;
            };
            match s.key(&pg.password_key).map(|k| &k.source) {
                Some(Source::Generate(_)) => {}
                Some(_) => problem(format!(
                    "the rotated password key `{}` must be generated (`generate: base64:32`)",
                    pg.password_key
                )),
                None => problem(format!(
                    "rotation `postgres.password_key` names `{}`, which is not a key of this secret",
                    pg.password_key
                )),
            }
            match (s.key(&pg.role_key).map(|k| &k.source), &pg.strategy) {
                (None, _) => problem(format!(
                    "rotation `postgres.role_key` names `{}`, which is not a key of this secret",
                    pg.role_key
                )),
                (Some(Source::Literal(v)), Strategy::AlternatingUsers { roles, .. })
                    if !roles.contains(&**v) =>
                {
                    problem(format!(
                        "with `alternating-users`, `{}` starts as one of the login roles `{}` or `{}`",
                        pg.role_key, roles[0], roles[1]
                    ))
                }
                (Some(Source::Literal(_)), _) => {}
                (Some(_), _) => problem(format!(
                    "the role key `{}` must hold the role name as a `value`",
                    pg.role_key
                )),
            }
            match secrets.iter().find(|a| a.name == pg.admin.secret) {
                None => problem(format!(
                    "rotation `postgres.admin.secret` names `{}`, which the spec does not declare",
                    pg.admin.secret
                )),
                Some(a) => {
                    for key in [&pg.admin.username_key, &pg.admin.password_key] {
                        if a.key(key).is_none() {
                            problem(format!("the admin secret `{}` has no key `{key}`", a.name));
                        }
                    }
                }
            }
        }
    }
}

//! A platform spec in a temporary directory with its embedded store, and
//! logins against a real PostgreSQL.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::SystemTime;
use tresor_core::Access;
use tresor_platform::{Opened, Spec};
use tresor_testpg::Cluster;

pub struct Platform {
    pub dir: tempfile::TempDir,
    pub spec: Spec,
    pub opened: Opened,
}

impl Platform {
    /// Writes `yaml` (with `store:` pointing into the temporary directory)
    /// and applies it, as `tresor apply` would.
    pub fn apply(yaml: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text =
            format!("version: 1\nname: test\nstore: {{path: store, key_file: store.key}}\n{yaml}");
        let file: PathBuf = dir.path().join("tresor.yaml");
        std::fs::write(&file, text).unwrap();
        let spec = tresor_platform::load(&file).unwrap();
        let opened = tresor_platform::open_store(
            &spec,
            true,
            Access::WriteOnDemand,
            &tresor_core::Locking::default(),
        )
        .unwrap()
        .unwrap();
        let plan = tresor_platform::plan(&spec, Some(opened.store()), SystemTime::now()).unwrap();
        plan.apply(opened.store()).unwrap();
        Self { dir, spec, opened }
    }

    pub fn value(&self, path: &str, key: &str) -> String {
        let data = self.opened.store().read(path).unwrap().data.unwrap();
        data.get(key).unwrap().as_str().unwrap().to_owned()
    }

    /// The `username` and `password` of one stored version, read at once.
    pub fn login(&self, path: &str) -> (String, String) {
        let data = self.opened.store().read(path).unwrap().data.unwrap();
        let get = |k: &str| data.get(k).unwrap().as_str().unwrap().to_owned();
        (get("username"), get("password"))
    }

    pub fn version(&self, path: &str) -> u64 {
        self.opened.store().read(path).unwrap().version
    }
}

/// A test cluster with a database `app`, logging every statement.
pub fn cluster() -> Cluster {
    let pg = Cluster::builder()
        .setting("log_statement", "all")
        .start()
        .unwrap();
    pg.create_database("app").unwrap();
    pg
}

/// The spec of an admin secret holding the cluster's superuser login.
pub fn admin_secret(pg: &Cluster) -> String {
    format!(
        "  pg-admin:\n    keys:\n      username: {{value: postgres}}\n      password: {{value: \"{}\", allow_weak: \"a throwaway test cluster\"}}\n",
        pg.password()
    )
}

/// Whether `user` logs in to database `app` with `password` on a fresh connection.
pub fn logs_in(pg: &Cluster, user: &str, password: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::Config::new()
            .host(pg.host())
            .port(pg.port())
            .dbname("app")
            .user(user)
            .password(password)
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| reason(&e))?;
        let driver = tokio::spawn(connection);
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| reason(&e))?;
        drop(client);
        let _ = driver.await;
        Ok(())
    })
}

fn reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => e.to_string(),
    }
}

/// Replaces one key's value in the store (a fault to inject, or its fix).
pub fn overwrite(p: &Platform, path: &str, key: &str, value: &str) {
    let store = p.opened.store();
    let stored = store.read(path).unwrap();
    let mut data = stored.data.unwrap();
    data.insert(key.into(), serde_json::Value::String(value.into()));
    assert!(store.write(path, &data, stored.version).unwrap());
}

/// Sets a role's password with psql (test setup only).
pub fn set_password(pg: &Cluster, role: &str, password: &str) {
    pg.psql("app", &format!("ALTER ROLE {role} PASSWORD '{password}'"))
        .unwrap();
}

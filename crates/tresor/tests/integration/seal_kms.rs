//! The AWS KMS seal against moto's KMS: a store initialized with a KMS key
//! opens with no key file; a wrong key id, a KMS that does not answer, or a
//! key that does not exist fail with a clear error and leave the store file
//! byte for byte as it was; recovery shares open it without the KMS; and a
//! store moves key file -> KMS -> key file keeping every secret and version,
//! each old seal refused once replaced.
#![cfg(feature = "aws")]

use crate::util;
use std::path::PathBuf;
use std::process::Output;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Env {
    dir: tempfile::TempDir,
    /// What points the AWS SDK at moto.
    aws: Vec<(&'static str, String)>,
}

impl Env {
    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        util::tresor()
            .arg("--store")
            .arg(self.store())
            .args(args)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env_remove("TRESOR_ADDR")
            .env_remove("VAULT_ADDR")
            .env_remove("TRESOR_KEY_FILE")
            .env_remove("TRESOR_UNSEAL_KEYS")
            .envs(self.aws.iter().map(|(k, v)| (*k, v.as_str())))
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        let out = self.run(args, env);
        assert!(out.status.success(), "tresor {args:?}: {}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn file_bytes(&self) -> Vec<u8> {
        std::fs::read(self.store().join("tresor.redb")).unwrap()
    }

    fn get(&self, path: &str, version: u32, env: &[(&str, &str)]) -> String {
        self.ok(
            &[
                "kv",
                "get",
                "-field=v",
                &format!("-version={version}"),
                path,
            ],
            env,
        )
        .trim_end()
        .to_owned()
    }
}

fn recovery_share(init_output: &str) -> String {
    init_output
        .lines()
        .find_map(|l| l.strip_prefix("Recovery Key 1: "))
        .expect("a recovery share is printed")
        .to_owned()
}

fn refused(out: &Output, words: &str) {
    assert!(!out.status.success(), "{}", text(out));
    assert!(
        text(out).contains(words),
        "wanted `{words}` in: {}",
        text(out)
    );
}

#[test]
fn a_kms_sealed_store_opens_without_a_key_file_and_fails_clearly() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    let moto = util::Moto::start();
    let key = moto.kms_key();
    let other = moto.kms_key();
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        aws: moto.env(),
    };

    // A key that does not exist: nothing is created.
    let missing = env.run(
        &[
            "operator",
            "init",
            "--kms-key-id",
            "alias/none",
            "--kms-endpoint",
            &moto.url,
        ],
        &[],
    );
    refused(&missing, "does not exist");
    assert!(!env.store().join("tresor.redb").exists());

    let init = env.ok(
        &[
            "operator",
            "init",
            "--kms-key-id",
            &key,
            "--kms-endpoint",
            &moto.url,
            "--recovery-shares",
            "1",
            "--recovery-threshold",
            "1",
        ],
        &[],
    );
    let share = recovery_share(&init);
    for i in 1..=3 {
        env.ok(&["kv", "put", "secret/app", &format!("v=value-{i}")], &[]);
    }
    assert!(
        !env.dir.path().join("config").exists(),
        "no key file anywhere"
    );
    assert_eq!(env.get("secret/app", 3, &[]), "value-3");
    let status = env.ok(&["operator", "unseal"], &[]);
    assert!(status.contains("awskms"), "{status}");

    let before = env.file_bytes();
    let wrong = env.run(
        &["kv", "get", "secret/app"],
        &[("TRESOR_AWSKMS_KEY_ID", &other)],
    );
    refused(&wrong, "was not wrapped by this key");
    let gone = env.run(
        &["kv", "put", "secret/app", "v=lost"],
        &[("TRESOR_AWSKMS_ENDPOINT", "http://127.0.0.1:1")],
    );
    refused(&gone, "did not answer");
    assert_eq!(env.file_bytes(), before, "a refused open changes nothing");

    // Recovery shares open the store while the KMS is away.
    let recovered = env.get(
        "secret/app",
        2,
        &[
            ("TRESOR_AWSKMS_ENDPOINT", "http://127.0.0.1:1"),
            ("TRESOR_UNSEAL_KEYS", &share),
        ],
    );
    assert_eq!(recovered, "value-2");
}

#[test]
fn migrate_seal_key_file_to_kms_and_back_keeps_every_secret() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    let moto = util::Moto::start();
    let key = moto.kms_key();
    let env = Env {
        dir: tempfile::tempdir().unwrap(),
        aws: moto.env(),
    };
    let first_key = env.dir.path().join("first.key");
    let first = first_key.to_str().unwrap();
    env.ok(&["operator", "init", "--key-file", first], &[]);
    let with_first = [("TRESOR_KEY_FILE", first)];
    for name in ["a", "b", "c"] {
        for i in 1..=2 {
            env.ok(
                &[
                    "kv",
                    "put",
                    &format!("secret/{name}"),
                    &format!("v={name}-{i}"),
                ],
                &with_first,
            );
        }
    }
    let check_all = |extra: &[(&str, &str)]| {
        for name in ["a", "b", "c"] {
            for i in 1..=2 {
                assert_eq!(
                    env.get(&format!("secret/{name}"), i, extra),
                    format!("{name}-{i}")
                );
            }
        }
    };

    // To a KMS key that does not exist: refused, nothing changed.
    let before = env.file_bytes();
    let wrong = env.run(
        &[
            "operator",
            "migrate-seal",
            "--to",
            "awskms",
            "--kms-key-id",
            "alias/none",
            "--kms-endpoint",
            &moto.url,
        ],
        &with_first,
    );
    refused(&wrong, "does not exist");
    assert_eq!(env.file_bytes(), before);

    let migrated = env.ok(
        &[
            "operator",
            "migrate-seal",
            "--to",
            "awskms",
            "--kms-key-id",
            &key,
            "--kms-endpoint",
            &moto.url,
            "--recovery-shares",
            "1",
            "--recovery-threshold",
            "1",
        ],
        &with_first,
    );
    assert!(migrated.contains("no longer opens the store"), "{migrated}");
    check_all(&[]);
    // The store now answers to its KMS only: the old key file is no way in.
    refused(
        &env.run(
            &["kv", "get", "secret/a"],
            &[
                with_first[0],
                ("TRESOR_AWSKMS_ENDPOINT", "http://127.0.0.1:1"),
            ],
        ),
        "did not answer",
    );

    let second_key = env.dir.path().join("second.key");
    env.ok(
        &[
            "operator",
            "migrate-seal",
            "--to",
            "key-file",
            "--new-key-file",
            second_key.to_str().unwrap(),
        ],
        &[],
    );
    // The KMS is no longer needed; the first key file still opens nothing.
    let with_second = [
        ("TRESOR_KEY_FILE", second_key.to_str().unwrap()),
        ("TRESOR_AWSKMS_ENDPOINT", "http://127.0.0.1:1"),
    ];
    check_all(&with_second);
    refused(
        &env.run(&["kv", "get", "secret/a"], &with_first),
        "the unseal key is wrong",
    );
}

/// `tresor server` with `[seal] kind = "awskms"`: `sys/init` hands out
/// recovery shares and leaves the store unsealed, a restart unseals it with
/// the KMS and no key file, and a wrong key id stops the start with a clear
/// error.
#[test]
fn a_server_sealed_by_kms_initializes_and_restarts_unsealed() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    let moto = util::Moto::start();
    let key_id = moto.kms_key();
    let dir = tempfile::tempdir().unwrap();
    let seal = |key: &str| {
        format!(
            "\n[seal]\nkind = \"awskms\"\nkey_id = \"{key}\"\nregion = \"{}\"\nendpoint = \"{}\"\n",
            util::REGION,
            moto.url
        )
    };
    let start = |config: &std::path::Path| {
        let mut command = util::tresor();
        command
            .args(["server", "--config"])
            .arg(config)
            .envs(moto.env());
        command
    };
    let config = util::config(dir.path(), &seal(&key_id));
    let server = util::TestServer::from_command(&mut start(&config));
    let anon = util::Api::new(&server.addr, "");
    let (status, init) = anon.call(
        "PUT",
        "sys/init",
        Some(&serde_json::json!({"recovery_shares": 3, "recovery_threshold": 2})),
    );
    assert_eq!(status, 200, "{init}");
    assert_eq!(init["keys"], serde_json::json!([]));
    assert_eq!(init["recovery_keys"].as_array().unwrap().len(), 3);
    let root = init["root_token"].as_str().unwrap().to_owned();
    let (_, sealed) = anon.get("sys/seal-status");
    assert_eq!(
        sealed["sealed"], false,
        "a KMS seal leaves the store unsealed"
    );
    assert_eq!(sealed["type"], "awskms");
    assert_eq!(sealed["recovery_seal"], true);
    assert_eq!(
        (sealed["t"].clone(), sealed["n"].clone()),
        (serde_json::json!(2), serde_json::json!(3))
    );
    let api = util::Api::new(&server.addr, &root);
    let written = api.post(
        "secret/data/app",
        serde_json::json!({"data": {"v": "kms-sealed"}}),
    );
    assert_eq!(written.0, 200, "{}", written.1);
    drop(server);

    let server = util::TestServer::from_command(&mut start(&config));
    let api = util::Api::new(&server.addr, &root);
    let (status, read) = api.get("secret/data/app");
    assert_eq!(status, 200, "unsealed by the KMS at start: {read}");
    assert_eq!(read["data"]["data"]["v"], "kms-sealed");
    drop(server);

    let wrong = util::config(dir.path(), &seal("00000000-0000-0000-0000-000000000000"));
    let refused = start(&wrong).output().unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("cannot unseal the store"), "{stderr}");

    // The refused start lost nothing: the right key opens the same secrets.
    let config = util::config(dir.path(), &seal(&key_id));
    let server = util::TestServer::from_command(&mut start(&config));
    let (status, read) = util::Api::new(&server.addr, &root).get("secret/data/app");
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["data"]["data"]["v"], "kms-sealed");
}

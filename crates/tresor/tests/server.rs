//! `tresor server` end to end: seal states, bad input, limits, audit, TLS
//! reload and graceful shutdown, against the real binary.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{Api, TestServer, config};

#[test]
fn init_unseal_seal_and_503_while_sealed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    let server = TestServer::with_config(&cfg);
    let anon = Api::new(&server.addr, "");
    assert_eq!(anon.get("sys/health").0, 501);
    assert_eq!(anon.get("sys/init").1["initialized"], false);
    let (status, init) = anon.call(
        "PUT",
        "sys/init",
        Some(&json!({"secret_shares": 3, "secret_threshold": 2})),
    );
    assert_eq!(status, 200, "{init}");
    let keys: Vec<String> = init["keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    let root = init["root_token"].as_str().unwrap().to_string();
    assert_eq!(keys.len(), 3);
    let api = Api::new(&server.addr, &root);

    assert_eq!(anon.get("sys/health").0, 503);
    assert_eq!(anon.get("sys/seal-status").1["sealed"], true);
    let (status, body) = api.get("secret/data/x");
    assert_eq!(
        (status, body["errors"][0].as_str()),
        (503, Some("Vault is sealed"))
    );
    assert_eq!(api.get("sys/mounts").0, 503);

    let (status, progress) = anon.call("PUT", "sys/unseal", Some(&json!({"key": keys[0]})));
    assert_eq!((status, progress["progress"].as_u64()), (200, Some(1)));
    let (status, _) = anon.call(
        "PUT",
        "sys/unseal",
        Some(&json!({"key": "bm90IGEgc2hhcmU="})),
    );
    assert_eq!(status, 400);
    assert_eq!(
        anon.get("sys/seal-status").1["progress"],
        0,
        "a bad share resets the progress"
    );
    anon.call("PUT", "sys/unseal", Some(&json!({"key": keys[2]})));
    let (_, status) = anon.call("PUT", "sys/unseal", Some(&json!({"key": keys[1]})));
    assert_eq!(status["sealed"], false);

    assert_eq!(
        api.post("secret/data/app", json!({"data": {"password": "pw"}}))
            .0,
        200
    );
    assert_eq!(api.call("PUT", "sys/seal", None).0, 204);
    assert_eq!(api.get("secret/data/app").0, 503);
    drop(server);

    let server = TestServer::with_config(&cfg);
    let anon = Api::new(&server.addr, "");
    assert_eq!(anon.get("sys/seal-status").1["sealed"], true);
    for key in &keys[..2] {
        anon.call("PUT", "sys/unseal", Some(&json!({"key": key})));
    }
    let api = Api::new(&server.addr, &root);
    assert_eq!(
        api.get("secret/data/app").1["data"]["data"]["password"],
        "pw"
    );
}

#[test]
fn key_file_stores_unseal_themselves() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("unseal.key");
    let init = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(["--store"])
        .arg(tmp.path().join("store"))
        .args(["--key-file"])
        .arg(&key)
        .args(["operator", "init"])
        .output()
        .unwrap();
    assert!(init.status.success());
    let root = Command::new(env!("CARGO_BIN_EXE_tresor"))
        .args(["--store"])
        .arg(tmp.path().join("store"))
        .args(["--key-file"])
        .arg(&key)
        .args(["operator", "generate-root", "-format=json"])
        .output()
        .unwrap();
    assert!(
        root.status.success(),
        "{}",
        String::from_utf8_lossy(&root.stderr)
    );
    let root: Value = serde_json::from_slice(&root.stdout).unwrap();
    let cfg = config(
        tmp.path(),
        &format!("\n[seal]\nkey_file = \"{}\"\n", key.display()),
    );
    let server = TestServer::with_config(&cfg);
    let health = Api::new(&server.addr, "").get("sys/health");
    assert_eq!((health.0, &health.1["sealed"]), (200, &Value::Bool(false)));
    let api = server.client(root["root_token"].as_str().unwrap());
    assert_eq!(
        api.post("secret/data/x", json!({"data": {"k": "v"}})).0,
        200
    );
    assert_eq!(
        api.get("auth/token/lookup-self").1["data"]["policies"],
        json!(["root"])
    );
}

#[test]
fn bad_input_gets_vault_shaped_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::dev();
    let api = server.client(&server.root_token);
    let malformed = api
        .raw(
            "POST",
            "secret/data/x",
            b"{not json".to_vec(),
            "application/json",
        )
        .unwrap();
    assert_eq!(malformed.0, 400);
    assert!(
        malformed.1["errors"][0]
            .as_str()
            .unwrap()
            .contains("failed to parse JSON")
    );
    assert_eq!(api.post("secret/data/x", json!({"data": "text"})).0, 400);
    assert_eq!(
        api.post(
            "secret/data/x",
            json!({"data": {"a": "b"}, "options": {"cas": "x"}})
        )
        .0,
        400
    );
    assert_eq!(
        api.post("secret/config", json!({"max_versions": -1})).0,
        400
    );
    assert_eq!(api.post("secret/data/x", json!({"data": {}})).0, 200);
    assert_eq!(api.get("nomount/data/x").0, 404);
    assert_eq!(api.get("sys/unknown").0, 404);
    let big = vec![b'a'; 33 * 1024 * 1024];
    let oversized = api.raw("POST", "secret/data/big", big, "application/json");
    if let Ok((status, body)) = oversized {
        assert_eq!(status, 413, "{body}");
    }
    let patch = api
        .raw(
            "PATCH",
            "secret/data/x",
            br#"{"data":{"a":"c"}}"#.to_vec(),
            "application/json",
        )
        .unwrap();
    assert_eq!(patch.0, 415);

    let denied = |api: &Api| {
        let (status, body) = api.get("secret/data/x");
        assert_eq!(
            (status, body),
            (403, json!({"errors": ["permission denied"]}))
        );
    };
    denied(&server.client(""));
    denied(&server.client("tvs.malformed-token"));
    denied(&server.client(&"x".repeat(10_000)));
    let (_, created) = api.post(
        "auth/token/create",
        json!({"policies": ["default"], "ttl": "1s"}),
    );
    let short = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(2100));
    denied(&server.client(&short));
    let (_, created) = api.post("auth/token/create", json!({"policies": ["root"]}));
    let revoked = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        api.post("auth/token/revoke", json!({"token": revoked})).0,
        204
    );
    denied(&server.client(&revoked));
    let (_, created) = api.post(
        "auth/token/create",
        json!({"policies": ["root"], "num_uses": 1}),
    );
    let once = server.client(created["auth"]["client_token"].as_str().unwrap());
    assert_eq!(once.get("secret/data/x").0, 200);
    denied(&once);
    drop(tmp);
}

#[test]
fn failed_authentications_are_limited_per_client() {
    let server = TestServer::dev();
    let bad = server.client("tvs.wrong");
    let statuses: Vec<u16> = (0..25).map(|_| bad.get("secret/data/x").0).collect();
    assert!(statuses[..20].iter().all(|s| *s == 403), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 429), "{statuses:?}");
    // Only the failures wait: a load balancer's health check and a valid
    // token from the same address are served.
    assert_eq!(server.client("").get("sys/health").0, 200);
    let root = server.client(&server.root_token);
    assert_eq!(root.get("auth/token/lookup-self").0, 200);
    assert_eq!(
        root.post("secret/data/x", json!({"data": {"a": "b"}})).0,
        200
    );
    assert_eq!(bad.get("secret/data/x").0, 429, "the guesses still wait");
}

#[test]
fn audit_log_hashes_every_secret_and_detects_tampering() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("audit.log");
    let server = TestServer::dev_with(&[&format!("-dev-audit-dir={}", tmp.path().display())]);
    let api = server.client(&server.root_token);
    assert_eq!(
        api.call(
            "PUT",
            "sys/audit/file",
            Some(&json!({"type": "file", "options": {"file_path": log}}))
        )
        .0,
        204
    );
    let secrets = ["s3cr3t-db-password-1", "api-key-0x51f2a9c07"];
    api.post("secret/data/db", json!({"data": {"password": secrets[0]}}));
    api.post("secret/data/api", json!({"data": {"key": secrets[1]}}));
    let (_, created) = api.post("auth/token/create", json!({"policies": ["default"]}));
    let child = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let accessor = created["auth"]["accessor"].as_str().unwrap().to_string();
    assert_eq!(
        api.get("secret/data/db").1["data"]["data"]["password"],
        secrets[0]
    );
    server.client(&child).get("auth/token/lookup-self");
    server
        .client("tvs.bogus-token-value-123")
        .get("secret/data/db");

    let text = std::fs::read_to_string(&log).unwrap();
    let logs = server.log.lock().unwrap().clone();
    for needle in [
        secrets[0],
        secrets[1],
        &child,
        &accessor,
        &server.root_token,
        "tvs.bogus-token-value-123",
    ] {
        assert!(!text.contains(needle), "the audit log holds `{needle}`");
        assert!(!logs.contains(needle), "the server log holds `{needle}`");
    }
    let (_, hash) = api.post("sys/audit-hash/file", json!({"input": secrets[0]}));
    assert!(
        text.contains(hash["data"]["hash"].as_str().unwrap()),
        "values are HMAC'd, not dropped"
    );
    assert!(text.lines().count() >= 12);

    let verify = |file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_tresor"))
            .args(["audit", "verify"])
            .arg(file)
            .output()
            .unwrap()
    };
    let intact = verify(&log);
    assert!(
        intact.status.success(),
        "{}",
        String::from_utf8_lossy(&intact.stderr)
    );

    let tampered = tmp.path().join("tampered.log");
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[3] = lines[3].replacen("\"type\":\"", "\"type\":\"x", 1);
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let out = verify(&tampered);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 4"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let deleted = tmp.path().join("deleted.log");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.remove(5);
    std::fs::write(&deleted, lines.join("\n") + "\n").unwrap();
    assert!(!verify(&deleted).status.success());
}

#[test]
fn a_stuck_audit_device_fails_requests_fast_instead_of_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("audit.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    // Hold the read end open without reading: writes fill the pipe, then block.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let cfg = config(
        tmp.path(),
        &format!(
            "\n[audit]\nwrite_timeout = \"500ms\"\napi_device_dir = \"{}\"\n",
            tmp.path().display()
        ),
    );
    let server = TestServer::with_config(&cfg);
    let anon = Api::new(&server.addr, "");
    let (_, init) = anon.call(
        "PUT",
        "sys/init",
        Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
    );
    anon.call(
        "PUT",
        "sys/unseal",
        Some(&json!({"key": init["keys_base64"][0]})),
    );
    let api = server.client(init["root_token"].as_str().unwrap());
    let enabled = api.call(
        "PUT",
        "sys/audit/fifo",
        Some(&json!({"type": "file", "options": {"file_path": fifo}})),
    );
    assert_eq!(enabled.0, 204, "{}", enabled.1);
    let mut refused = None;
    for i in 0..2000 {
        let started = Instant::now();
        let (status, body) = api.post(
            "secret/data/x",
            json!({"data": {"padding": "p".repeat(2000)}}),
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "request {i} hung for {:?}",
            started.elapsed()
        );
        if status == 500 {
            refused = Some(body);
            break;
        }
        assert_eq!(status, 200);
    }
    let body = refused.expect("the full pipe made the audit device fail");
    assert!(
        body["errors"][0].as_str().unwrap().contains("audit"),
        "{body}"
    );
    // Reads await their entries on the async workers: refused just as fast.
    let started = Instant::now();
    let (status, body) = api.get("secret/data/x");
    assert_eq!(status, 500, "{body}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(
        Api::new(&server.addr, "").get("sys/health").0,
        200,
        "unaudited endpoints still answer"
    );
}

fn openssl_cert(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
        ])
        .arg(format!("/CN={name}"))
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl could not make a certificate");
    (cert, key)
}

fn tls_agent(ca: &Path) -> ureq::Agent {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pem = std::fs::read(ca).unwrap();
    let cert = ureq::tls::Certificate::from_pem(&pem).unwrap().to_owned();
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
            cert,
        ])))
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .build()
        .into()
}

#[test]
fn tls_certificates_reload_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let (first, first_key) = openssl_cert(tmp.path(), "first");
    let (second, second_key) = openssl_cert(tmp.path(), "second");
    let live_cert = tmp.path().join("live.crt");
    let live_key = tmp.path().join("live.key");
    std::fs::copy(&first, &live_cert).unwrap();
    std::fs::copy(&first_key, &live_key).unwrap();
    let cfg = tmp.path().join("tls.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n[storage]\npath = \"{}\"\n",
            live_cert.display(),
            live_key.display(),
            tmp.path().join("store").display()
        ),
    )
    .unwrap();
    let server = TestServer::with_config(&cfg);
    assert!(server.addr.starts_with("https://"));
    let health = |ca: &Path| {
        Api::with_agent(tls_agent(ca), &server.addr, "").raw(
            "GET",
            "sys/health",
            Vec::new(),
            "application/json",
        )
    };
    assert_eq!(health(&first).unwrap().0, 501);
    assert!(
        health(&second).is_err(),
        "a client trusting only the second certificate is refused"
    );

    std::fs::copy(&second, &live_cert).unwrap();
    std::fs::copy(&second_key, &live_key).unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while health(&second).is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served after SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(health(&first).is_err());
}

fn tresor_offline(store: &Path, key: &Path, args: &[&str]) -> std::process::Output {
    support::offline(store, key).args(args).output().unwrap()
}

#[test]
fn lines_cut_from_the_end_of_an_audit_log_are_caught_by_the_saved_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, key) = (tmp.path().join("store"), tmp.path().join("unseal.key"));
    let log = tmp.path().join("audit.log");
    assert!(
        tresor_offline(&store, &key, &["operator", "init"])
            .status
            .success()
    );
    let root = tresor_offline(&store, &key, &["operator", "generate-root", "-format=json"]);
    let root: Value = serde_json::from_slice(&root.stdout).unwrap();
    let root = root["root_token"].as_str().unwrap().to_string();
    let cfg = config(
        tmp.path(),
        &format!(
            "\n[seal]\nkey_file = \"{}\"\n[audit]\ncheckpoint_interval = \"1s\"\napi_device_dir = \"{}\"\n",
            key.display(),
            tmp.path().display()
        ),
    );
    let mut server = TestServer::with_config(&cfg);
    let api = server.client(&root);
    let enable = json!({"type": "file", "options": {"file_path": log}});
    assert_eq!(api.call("PUT", "sys/audit/file", Some(&enable)).0, 204);
    for i in 0..5 {
        api.post("secret/data/app", json!({"data": {"n": i}}));
        api.get("secret/data/app");
    }

    // Against the running server: its saver stores the position within a second.
    let online = |file: &Path, token: &str| {
        Command::new(env!("CARGO_BIN_EXE_tresor"))
            .args(["audit", "verify", "--checkpoint"])
            .arg(file)
            .env("TRESOR_ADDR", &server.addr)
            .env("TRESOR_TOKEN", token)
            .output()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = online(&log, &root);
        if out.status.success() {
            assert!(String::from_utf8_lossy(&out.stdout).contains("saved checkpoint"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no checkpoint was saved: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (_, child) = api.post("auth/token/create", json!({"policies": ["default"]}));
    let child = child["auth"]["client_token"].as_str().unwrap().to_string();
    assert!(
        !online(&log, &child).status.success(),
        "reading checkpoints takes sudo"
    );

    // After a clean stop, the last line the server wrote is the checkpoint.
    server.signal("TERM");
    assert!(server.child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    let out = tresor_offline(
        &store,
        &key,
        &["audit", "verify", "--checkpoint", log.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("line {} of chain", last["chain"]["seq"])),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The chain alone cannot see lines cut from the end; the checkpoint does.
    let cut = tmp.path().join("cut.log");
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&cut, lines[..lines.len() - 2].join("\n") + "\n").unwrap();
    assert!(
        tresor_offline(&store, &key, &["audit", "verify", cut.to_str().unwrap()])
            .status
            .success()
    );
    let out = tresor_offline(
        &store,
        &key,
        &["audit", "verify", "--checkpoint", cut.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("removed from the end"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sigterm_finishes_requests_in_flight() {
    let mut server = TestServer::dev();
    let addr = server.addr.clone();
    let token = server.root_token.clone();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (addr, token) = (addr.clone(), token.clone());
            std::thread::spawn(move || {
                let api = Api::new(&addr, &token);
                let mut outcomes = Vec::new();
                for i in 0..400 {
                    let result = api.raw(
                        "POST",
                        &format!("secret/data/w{w}/k{i}"),
                        json!({"data": {"v": i}}).to_string().into_bytes(),
                        "application/json",
                    );
                    match result {
                        Ok((status, _)) => outcomes.push(status),
                        Err(_) => break,
                    }
                }
                outcomes
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    let status = server.child.wait().unwrap();
    assert!(
        status.success(),
        "the server did not exit cleanly: {status}"
    );
    for writer in writers {
        let outcomes = writer.join().unwrap();
        assert!(
            outcomes.iter().all(|s| *s == 200),
            "a request in flight failed: {outcomes:?}"
        );
    }
}

//! `tresor server` end to end: seal states, bad input, limits, audit, TLS
//! reload and graceful shutdown, against the real binary.

use crate::util;
use crate::util::{Api, TestServer, config};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

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
    // Given again, a share is ignored (as in Vault), not counted twice.
    let (_, progress) = anon.call("PUT", "sys/unseal", Some(&json!({"key": keys[0]})));
    assert_eq!(progress["progress"], 1);
    // A share that does not parse is refused without touching anyone's progress.
    let (status, _) = anon.call(
        "PUT",
        "sys/unseal",
        Some(&json!({"key": "%%% not a share"})),
    );
    assert_eq!(status, 400);
    assert_eq!(anon.get("sys/seal-status").1["progress"], 1);
    let (status, _) = anon.call(
        "PUT",
        "sys/unseal",
        Some(&json!({"key": "bm90IGEgc2hhcmU="})),
    );
    assert_eq!(status, 400);
    assert_eq!(
        anon.get("sys/seal-status").1["progress"],
        0,
        "enough shares that do not combine into the key are spent"
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
    let init = util::tresor()
        .args(["--store"])
        .arg(tmp.path().join("store"))
        .args(["--key-file"])
        .arg(&key)
        .args(["operator", "init"])
        .output()
        .unwrap();
    assert!(init.status.success());
    let root = util::tresor()
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
    // Refused on its announced length, before a byte of it is read.
    use std::io::Write;
    let mut announced = connect(&server.addr);
    announced
        .write_all(
            format!(
                "POST /v1/secret/data/big HTTP/1.1\r\nHost: tresor\r\nX-Vault-Token: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                server.root_token,
                33 * 1024 * 1024
            )
            .as_bytes(),
        )
        .unwrap();
    let (answer, _) = read_until_closed(&mut announced);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("request body too large"), "{answer}");
    // Sent without a length (chunked), refused once it passes the limit.
    let mut streamed = connect(&server.addr);
    streamed
        .write_all(
            format!(
                "POST /v1/secret/data/big HTTP/1.1\r\nHost: tresor\r\nX-Vault-Token: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
                server.root_token
            )
            .as_bytes(),
        )
        .unwrap();
    let chunk = vec![b'a'; 1024 * 1024];
    for _ in 0..40 {
        let sent = streamed
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .and_then(|()| streamed.write_all(&chunk))
            .and_then(|()| streamed.write_all(b"\r\n"));
        if sent.is_err() {
            break;
        }
    }
    let (answer, _) = read_until_closed(&mut streamed);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(api.get("secret/data/big").0, 404, "nothing was written");
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
        util::tresor()
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
    util::offline(store, key).args(args).output().unwrap()
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
        util::tresor()
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

    // The live log cut while the server is down: it refuses to start on it,
    // however often it is restarted, and the cut stays visible.
    std::fs::copy(&cut, &log).unwrap();
    for _ in 0..2 {
        let refused = exits_within(
            util::tresor().args(["server", "--config"]).arg(&cfg),
            Duration::from_secs(30),
        );
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("lines were cut"), "{stderr}");
        assert!(stderr.contains("--accept-audit-mismatch"), "{stderr}");
    }
    let out = tresor_offline(
        &store,
        &key,
        &["audit", "verify", "--checkpoint", log.to_str().unwrap()],
    );
    assert!(
        !out.status.success(),
        "the saved position did not move back"
    );
    // Accepted knowingly: the cut log is kept aside, a new chain records
    // where the saved one stood, and the cut is still reported.
    let server = TestServer::with_config_args(&cfg, &["--accept-audit-mismatch"]);
    assert_eq!(server.client(&root).get("secret/data/app").0, 200);
    let aside = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("audit.log.mismatch-"))
        .expect("the cut log is kept aside");
    let out = tresor_offline(
        &store,
        &key,
        &["audit", "verify", "--checkpoint", aside.to_str().unwrap()],
    );
    assert!(!out.status.success());
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["type"], "chain_start");
    assert_eq!(first["continues"]["seq"], last["chain"]["seq"]);
}

/// Runs `command` and waits for it to exit, failing the test after `limit`.
fn exits_within(command: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the command did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
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

/// A raw connection to `addr` (`http://host:port`).
fn connect(addr: &str) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(addr.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// Waits for the server to close `stream` (or answer on it); returns what it
/// sent and how long that took. Fails if it kept the connection 20 s.
fn read_until_closed(stream: &mut std::net::TcpStream) -> (String, Duration) {
    use std::io::Read;
    let started = Instant::now();
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!(
            "the server held the connection: {e} after {:?}",
            started.elapsed()
        ),
    }
    (
        String::from_utf8_lossy(&got).into_owned(),
        started.elapsed(),
    )
}

/// Sends a space every 300 ms on `stream` until the server closes it.
fn trickle(stream: &std::net::TcpStream) {
    use std::io::Write;
    let mut stream = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(300));
            if stream.write_all(b" ").is_err() {
                return;
            }
        }
    });
}

#[test]
fn slow_clients_are_cut_off_by_the_timeouts() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = util::config_listener(
        tmp.path(),
        "header_timeout = \"1s\"\nbody_timeout = \"1s\"\nidle_timeout = \"3s\"",
        "",
    );
    let server = TestServer::with_config(&cfg);

    // A request head that never ends, sent a byte at a time so the
    // connection never looks idle: only the header timeout ends it.
    let mut head = connect(&server.addr);
    head.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: tresor\r\nX-Slow: ")
        .unwrap();
    trickle(&head);
    let (_, after) = read_until_closed(&mut head);
    assert!(after < Duration::from_secs(10), "closed after {after:?}");

    // A body that never ends, trickled too: 408, and the connection is closed.
    let mut body = connect(&server.addr);
    body.write_all(
        b"PUT /v1/sys/init HTTP/1.1\r\nHost: tresor\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"secret_",
    )
    .unwrap();
    trickle(&body);
    let (answer, after) = read_until_closed(&mut body);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(after < Duration::from_secs(10), "answered after {after:?}");
    assert!(answer.contains("did not arrive"), "{answer}");

    // An idle keep-alive connection is closed too.
    let mut idle = connect(&server.addr);
    idle.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: tresor\r\n\r\n")
        .unwrap();
    let (answer, after) = read_until_closed(&mut idle);
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
    assert!(after < Duration::from_secs(10), "closed after {after:?}");

    // Served meanwhile: nothing above held the server.
    assert_eq!(Api::new(&server.addr, "").get("sys/health").0, 501);
}

#[test]
fn a_tls_handshake_that_never_starts_is_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = openssl_cert(tmp.path(), "server");
    let cfg = tmp.path().join("tls.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_handshake_timeout = \"1s\"\n[storage]\npath = \"{}\"\n",
            cert.display(),
            key.display(),
            tmp.path().join("store").display()
        ),
    )
    .unwrap();
    let server = TestServer::with_config(&cfg);
    let mut silent = connect(server.addr.trim_start_matches("https://"));
    let (_, after) = read_until_closed(&mut silent);
    assert!(after < Duration::from_secs(10), "closed after {after:?}");
    let api = Api::with_agent(tls_agent(&cert), &server.addr, "");
    assert_eq!(api.get("sys/health").0, 501, "a real client is served");
}

#[test]
fn connections_past_the_cap_wait_their_turn() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = util::config_listener(
        tmp.path(),
        "max_connections = 3\nheader_timeout = \"30s\"",
        "",
    );
    let server = TestServer::with_config(&cfg);
    let held: Vec<std::net::TcpStream> = (0..3)
        .map(|_| {
            let mut stream = connect(&server.addr);
            stream
                .write_all(b"GET /v1/sys/health HTTP/1.1\r\n")
                .unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut waiting = connect(&server.addr);
    waiting
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    waiting
        .write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: tresor\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 16];
    use std::io::Read;
    assert!(
        waiting.read(&mut first).is_err(),
        "a fourth connection was served while three were held"
    );
    drop(held);
    waiting
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (answer, _) = read_until_closed(&mut waiting);
    assert!(
        answer.starts_with("HTTP/1.1 501"),
        "served once a slot freed: {answer}"
    );
}

#[test]
fn running_out_of_file_descriptors_backs_off_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), "");
    let launcher = tmp.path().join("low-fd-limit.sh");
    std::fs::write(
        &launcher,
        format!(
            "#!/bin/sh\nulimit -n 48\nexec {} \"$@\"\n",
            env!("CARGO_BIN_EXE_tresor")
        ),
    )
    .unwrap();
    let mut mode = std::fs::metadata(&launcher).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut mode, 0o755);
    std::fs::set_permissions(&launcher, mode).unwrap();
    let mut server = util::TestServer::from_command(
        Command::new(&launcher)
            .args(["server", "--config"])
            .arg(&cfg),
    );
    let flood: Vec<std::net::TcpStream> = (0..120)
        .filter_map(|_| {
            std::net::TcpStream::connect(server.addr.trim_start_matches("http://")).ok()
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let complaints = server
        .log
        .lock()
        .unwrap()
        .matches("accepting connections fails")
        .count();
    assert!(
        (1..=2).contains(&complaints),
        "{complaints} log lines about failed accepts in 3 s"
    );
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let health = Api::new(&server.addr, "")
            .raw("GET", "sys/health", Vec::new(), "application/json")
            .map(|(status, _)| status);
        if matches!(health, Ok(501)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not recover: {health:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server.signal("TERM");
    assert!(server.child.wait().unwrap().success());
}

#[test]
fn sigterm_stops_within_the_grace_despite_a_half_sent_request_and_saves_the_checkpoint() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let (store, key) = (tmp.path().join("store"), tmp.path().join("unseal.key"));
    assert!(
        tresor_offline(&store, &key, &["operator", "init"])
            .status
            .success()
    );
    let root = tresor_offline(&store, &key, &["operator", "generate-root", "-format=json"]);
    let root: Value = serde_json::from_slice(&root.stdout).unwrap();
    let root = root["root_token"].as_str().unwrap().to_string();
    let log = tmp.path().join("audit.log");
    let cfg = util::config_listener(
        tmp.path(),
        "header_timeout = \"120s\"\nshutdown_grace = \"1s\"",
        &format!(
            "\n[seal]\nkey_file = \"{}\"\n[audit]\ncheckpoint_interval = \"1h\"\n[[audit.device]]\nfile_path = \"{}\"\n",
            key.display(),
            log.display()
        ),
    );
    let mut server = TestServer::with_config(&cfg);
    let api = server.client(&root);
    for i in 0..3 {
        assert_eq!(
            api.post("secret/data/app", json!({"data": {"n": i}})).0,
            200
        );
    }
    let mut half = connect(&server.addr);
    half.write_all(b"PUT /v1/secret/data/app HTTP/1.1\r\nHost: tresor\r\nContent-Len")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    server.signal("TERM");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "stopped after {:?}",
        started.elapsed()
    );
    // The position was saved at the stop (no interval save ran in the hour).
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
}

#[test]
fn a_sudo_token_cannot_make_the_server_write_a_file_of_its_choosing() {
    let tmp = tempfile::tempdir().unwrap();
    let server = TestServer::dev();
    let api = server.client(&server.root_token);
    let target = tmp.path().join("cron.d-evil");
    let (status, body) = api.call(
        "PUT",
        "sys/audit/evil",
        Some(&json!({"type": "file", "options": {"file_path": target}})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("api_device_dir"),
        "{body}"
    );
    assert!(!target.exists());

    let allowed = tmp.path().join("audit");
    std::fs::create_dir(&allowed).unwrap();
    let dir = format!("-dev-audit-dir={}", allowed.display());
    let server = TestServer::dev_with(&[&dir]);
    let api = server.client(&server.root_token);
    for (path, options) in [
        ("a", json!({"file_path": target})),
        ("b", json!({"file_path": allowed.join("../escape.log")})),
        (
            "c",
            json!({"file_path": allowed.join("x.log"), "prefix": "* * * * * root sh -c id\n"}),
        ),
        ("d", json!({"file_path": "relative.log"})),
    ] {
        let (status, body) = api.call(
            "PUT",
            &format!("sys/audit/{path}"),
            Some(&json!({"type": "file", "options": options})),
        );
        assert_eq!(status, 400, "{path}: {body}");
    }
    assert!(!target.exists() && !tmp.path().join("escape.log").exists());
    let (status, body) = api.call(
        "PUT",
        "sys/audit/ok",
        Some(&json!({"type": "file", "options": {"file_path": allowed.join("ok.log")}})),
    );
    assert_eq!(status, 204, "{body}");
}

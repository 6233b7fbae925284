//! Several `tresor server` processes on one PostgreSQL database (a real,
//! throwaway cluster): check-and-set across servers, revocation and policy
//! changes seen at once by the other server, database outages and a server
//! killed mid-write.

use crate::util;
use crate::util::{Api, TestServer};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tresor_testpg::Cluster;

/// A database, the servers on it, and the root token.
struct Fleet {
    cluster: Cluster,
    servers: Vec<TestServer>,
    root: String,
    _dir: tempfile::TempDir,
}

impl Fleet {
    /// `count` servers on a fresh database, initialized through the first
    /// (one Shamir share) and each unsealed on its own.
    fn start(count: usize) -> Self {
        let cluster = Cluster::start().expect("start PostgreSQL (scripts/setup/postgres.sh)");
        cluster.create_database("tresor").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url_file = dir.path().join("pg-url");
        std::fs::write(&url_file, cluster.url("tresor")).unwrap();
        let servers: Vec<TestServer> = (0..count)
            .map(|n| TestServer::with_config(&server_config(dir.path(), n, &url_file)))
            .collect();
        let anon = Api::new(&servers[0].addr, "");
        let (status, init) = anon.call(
            "PUT",
            "sys/init",
            Some(&json!({"secret_shares": 1, "secret_threshold": 1})),
        );
        assert_eq!(status, 200, "{init}");
        let key = init["keys_base64"][0].as_str().unwrap().to_string();
        for server in &servers {
            let anon = Api::new(&server.addr, "");
            assert_eq!(anon.get("sys/health").0, 503, "initialized, still sealed");
            let (status, body) = anon.call("PUT", "sys/unseal", Some(&json!({"key": key})));
            assert_eq!((status, &body["sealed"]), (200, &json!(false)), "{body}");
            assert_eq!(anon.get("sys/health").0, 200);
        }
        Self {
            cluster,
            servers,
            root: init["root_token"].as_str().unwrap().to_string(),
            _dir: dir,
        }
    }

    fn api(&self, n: usize) -> Api {
        self.servers[n].client(&self.root)
    }
}

fn server_config(dir: &Path, n: usize, url_file: &Path) -> std::path::PathBuf {
    let path = dir.join(format!("server{n}.toml"));
    std::fs::write(
        &path,
        format!(
            "[listener]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n\n\
             [storage]\nkind = \"postgres\"\nurl_file = \"{}\"\nconnect_timeout = \"2s\"\ntimeout = \"3s\"\n\n\
             [audit]\napi_device_dir = \"{}\"\n",
            url_file.display(),
            std::env::temp_dir().display()
        ),
    )
    .unwrap();
    path
}

/// Writers spread over both servers, all on one key with check-and-set:
/// every accepted write got its own version, the versions run 1..=n with no
/// gap, each writer saw its versions strictly increase, and each version
/// holds what its writer wrote.
#[test]
fn check_and_set_across_two_servers_loses_no_update() {
    util::need!("TRESOR_PG_BIN");
    const WRITERS: usize = 6;
    const EACH: usize = 12;
    let fleet = Fleet::start(2);
    let (status, body) = fleet.api(0).post(
        "secret/metadata/counter",
        json!({"max_versions": WRITERS * EACH + 10}),
    );
    assert!(status == 200 || status == 204, "{status} {body}");
    let accepted = Arc::new(Mutex::new(BTreeMap::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let apis = [fleet.api(0), fleet.api(1)];
            let accepted = Arc::clone(&accepted);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                let mut attempt = w;
                while mine.len() < EACH {
                    attempt += 1;
                    let api = &apis[attempt % 2];
                    let (_, current) = api.get("secret/data/counter");
                    let version = current["data"]["metadata"]["version"].as_u64().unwrap_or(0);
                    let (status, body) = apis[(attempt / 2) % 2].post(
                        "secret/data/counter",
                        json!({"options": {"cas": version}, "data": {"writer": w, "seq": mine.len()}}),
                    );
                    match status {
                        200 => {
                            let got = body["data"]["version"].as_u64().unwrap();
                            assert_eq!(got, version + 1, "{body}");
                            mine.push(got);
                            let previous = accepted.lock().unwrap().insert(got, (w, mine.len() - 1));
                            assert!(previous.is_none(), "version {got} accepted twice");
                        }
                        400 => {}
                        other => panic!("writer {w}: {other} {body}"),
                    }
                }
                assert!(mine.is_sorted() && mine.windows(2).all(|p| p[0] < p[1]));
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let accepted = accepted.lock().unwrap();
    let total = (WRITERS * EACH) as u64;
    assert_eq!(
        accepted.keys().copied().collect::<Vec<_>>(),
        (1..=total).collect::<Vec<_>>()
    );
    for (version, (writer, seq)) in accepted.iter() {
        let (status, body) = fleet
            .api(usize::try_from(*version).unwrap() % 2)
            .get(&format!("secret/data/counter?version={version}"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["data"], json!({"writer": writer, "seq": seq}));
    }
}

/// What one server changes, the other enforces on its very next request.
#[test]
fn revocation_and_policy_changes_on_one_server_bind_the_other_at_once() {
    util::need!("TRESOR_PG_BIN");
    let fleet = Fleet::start(2);
    let (a, b) = (fleet.api(0), fleet.api(1));
    let policy =
        |path: &str| json!({"policy": format!("path \"{path}\" {{ capabilities = [\"read\"] }}")});
    assert_eq!(
        a.call(
            "PUT",
            "sys/policies/acl/reader",
            Some(&policy("secret/data/x"))
        )
        .0,
        204
    );
    assert_eq!(a.post("secret/data/x", json!({"data": {"v": "1"}})).0, 200);
    let (status, created) = a.post("auth/token/create", json!({"policies": ["reader"]}));
    assert_eq!(status, 200, "{created}");
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let on_b = fleet.servers[1].client(&token);
    assert_eq!(
        on_b.get("secret/data/x").0,
        200,
        "B compiles and caches the ACL"
    );

    assert_eq!(
        a.call(
            "PUT",
            "sys/policies/acl/reader",
            Some(&policy("secret/data/y"))
        )
        .0,
        204
    );
    assert_eq!(on_b.get("secret/data/x").0, 403, "the policy changed on A");
    assert_eq!(
        a.call(
            "PUT",
            "sys/policies/acl/reader",
            Some(&policy("secret/data/x"))
        )
        .0,
        204
    );
    assert_eq!(on_b.get("secret/data/x").0, 200);

    assert_eq!(a.post("auth/token/revoke", json!({"token": token})).0, 204);
    assert_eq!(on_b.get("secret/data/x").0, 403, "revoked on A");
    assert_eq!(b.get("auth/token/lookup-self").0, 200);

    // A limited-use token spent from both servers at once: exactly its uses.
    let (status, created) = a.post(
        "auth/token/create",
        json!({"policies": ["reader"], "num_uses": 10}),
    );
    assert_eq!(status, 200, "{created}");
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let spenders: Vec<_> = (0..6)
        .map(|n| {
            let api = fleet.servers[n % 2].client(&token);
            std::thread::spawn(move || (0..5).filter(|_| api.get("secret/data/x").0 == 200).count())
        })
        .collect();
    let served: usize = spenders.into_iter().map(|s| s.join().unwrap()).sum();
    assert_eq!(served, 10);
}

#[test]
fn an_audit_device_enabled_on_one_server_records_the_other_and_disabling_stops_it() {
    util::need!("TRESOR_PG_BIN");
    let fleet = Fleet::start(2);
    let (a, b) = (fleet.api(0), fleet.api(1));
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("audit.log");
    let enabled = a.call(
        "PUT",
        "sys/audit/file",
        Some(&json!({"type": "file", "options": {"file_path": log}})),
    );
    assert_eq!(enabled.0, 204, "{}", enabled.1);
    assert_eq!(
        b.post("secret/data/from-b", json!({"data": {"v": "1"}})).0,
        200
    );
    assert_eq!(b.get("secret/data/from-b").0, 200);
    let (_, devices) = b.get("sys/audit");
    assert!(devices["data"]["file/"].is_object(), "{devices}");
    let recorded = std::fs::read_to_string(&log).unwrap();
    assert!(
        recorded.contains("secret/data/from-b"),
        "B's requests are in the device A enabled"
    );
    assert!(!recorded.contains("\"v\":\"1\""), "values are HMAC'd");

    assert_eq!(a.call("DELETE", "sys/audit/file", None).0, 204);
    assert_eq!(b.get("secret/data/from-b").0, 200);
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    assert_eq!(b.get("secret/data/from-b").0, 200);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        lines,
        "B stopped writing once A disabled the device"
    );
}

/// What one writer saw: how many requests got each status, and the keys
/// whose writes were acknowledged.
type WriterReport = (BTreeMap<u16, usize>, Vec<String>);

/// Writers of distinct keys against every server until told to stop.
struct Load {
    stop: Arc<AtomicBool>,
    writers: Vec<std::thread::JoinHandle<WriterReport>>,
}

impl Load {
    fn start(apis: Vec<Api>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let writers = apis
            .into_iter()
            .enumerate()
            .map(|(w, api)| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut statuses = BTreeMap::new();
                    let mut acknowledged = Vec::new();
                    for n in 0.. {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let key = format!("load/w{w}-{n}");
                        let status = api
                            .raw(
                                "POST",
                                &format!("secret/data/{key}"),
                                json!({"data": {"n": n}}).to_string().into_bytes(),
                                "application/json",
                            )
                            .map(|(status, _)| status)
                            .unwrap_or(0);
                        *statuses.entry(status).or_insert(0) += 1;
                        if status == 200 {
                            acknowledged.push(key);
                        } else {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    (statuses, acknowledged)
                })
            })
            .collect();
        Self { stop, writers }
    }

    fn finish(self) -> (BTreeMap<u16, usize>, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut statuses = BTreeMap::new();
        let mut acknowledged = Vec::new();
        for writer in self.writers {
            let (s, a) = writer.join().unwrap();
            for (status, n) in s {
                *statuses.entry(status).or_insert(0) += n;
            }
            acknowledged.extend(a);
        }
        (statuses, acknowledged)
    }
}

fn assert_all_present(api: &Api, keys: &[String]) {
    for key in keys {
        let (status, body) = api.get(&format!("secret/data/{key}"));
        assert_eq!(status, 200, "acknowledged write {key} is missing: {body}");
    }
}

fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// PostgreSQL stops under load: requests get a Vault-shaped 503 naming the
/// database (not its password) in bounded time, no server dies; PostgreSQL
/// starts again: both servers serve again by themselves, and every write
/// they acknowledged is there.
#[test]
fn database_outage_answers_503_and_service_resumes_by_itself() {
    util::need!("TRESOR_PG_BIN");
    let mut fleet = Fleet::start(2);
    let load = Load::start((0..4).map(|w| fleet.api(w % 2)).collect());
    std::thread::sleep(Duration::from_millis(800));
    fleet.cluster.stop().unwrap();

    let started = Instant::now();
    let (status, body) = fleet.api(1).get("secret/data/load/w0-0");
    let answered_in = started.elapsed();
    assert_eq!(status, 503, "{body}");
    let message = body["errors"][0].as_str().unwrap();
    assert!(message.starts_with("storage unavailable: "), "{message}");
    assert!(message.contains("/tresor"), "{message}");
    assert!(!message.contains(fleet.cluster.password()), "{message}");
    assert!(answered_in < Duration::from_secs(20), "{answered_in:?}");
    std::thread::sleep(Duration::from_millis(1500));
    for server in &mut fleet.servers {
        assert!(server.child.try_wait().unwrap().is_none(), "a server died");
    }

    fleet.cluster.restart().unwrap();
    for n in 0..2 {
        let api = fleet.api(n);
        wait_until("the server writes again", || {
            api.post("secret/data/after", json!({"data": {"n": n}})).0 == 200
        });
    }
    std::thread::sleep(Duration::from_millis(500));
    let (statuses, acknowledged) = load.finish();
    assert!(statuses.get(&503).copied().unwrap_or(0) > 0, "{statuses:?}");
    assert!(
        statuses.keys().all(|s| [200, 503].contains(s)),
        "only successes and 503s: {statuses:?}"
    );
    assert_all_present(&fleet.api(0), &acknowledged);
    for server in &fleet.servers {
        let log = server.log.lock().unwrap();
        assert!(!log.contains(fleet.cluster.password()), "{log}");
    }
}

/// A server SIGKILLed in the middle of writes: the other server reads every
/// write the killed one acknowledged.
#[test]
fn a_server_killed_mid_write_loses_nothing_it_acknowledged() {
    util::need!("TRESOR_PG_BIN");
    let mut fleet = Fleet::start(2);
    let load = Load::start((0..6).map(|_| fleet.api(0)).collect());
    std::thread::sleep(Duration::from_millis(1500));
    fleet.servers[0].child.kill().unwrap();
    fleet.servers[0].child.wait().unwrap();
    let (statuses, acknowledged) = load.finish();
    assert!(acknowledged.len() > 10, "{statuses:?}");
    assert_all_present(&fleet.api(1), &acknowledged);
}

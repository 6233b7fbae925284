//! `tresor rotate` and `tresor status -f` with the real binary on the
//! embedded store (the `generate` rotator; no database, no cluster).

use crate::util::Repo;

struct Env(Repo);

impl std::ops::Deref for Env {
    type Target = Repo;
    fn deref(&self) -> &Repo {
        &self.0
    }
}

impl Env {
    fn new(spec: &str) -> Self {
        Self(Repo::new(spec))
    }

    fn status_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "-f", "tresor.yaml", "--format", "json"]))
            .unwrap()
    }
}

const SPEC: &str = "\
version: 1
name: shop
secrets:
  api-secrets:
    consumers: [deployment/inference-api]
    # Shared with checkout, checked against the delivered value: the store
    # is where it is checked, so fresh values rotate it.
    rotation: {every: 2s, rotator: generate}
    keys:
      api-key: {generate: hex:32}
  checkout:
    keys:
      api-key: {ref: api-secrets/api-key}
  webhooks:
    rotation: {every: 90d}
    keys:
      signing-key: {generate: base64:32}
";

fn row<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["secret"] == name)
        .unwrap()
}

#[test]
fn status_before_and_after_a_short_policy_runs_out() {
    let env = Env::new(SPEC);
    env.ok(&["apply", "-f", "tresor.yaml"]);

    let fresh = env.ok(&["status", "-f", "tresor.yaml"]);
    assert!(fresh.starts_with("Secret "), "{fresh}");
    assert!(fresh.contains("api-secrets"), "{fresh}");
    assert!(!fresh.contains("OVERDUE"), "{fresh}");
    assert!(
        fresh.contains("no policy"),
        "checkout has no policy:\n{fresh}"
    );
    assert!(fresh.contains("store only"), "{fresh}");
    let api_key = env.get("api-secrets", "api-key");
    assert!(!fresh.contains(&api_key), "status printed a value");

    std::thread::sleep(std::time::Duration::from_millis(2500));
    let late = env.ok(&["status", "-f", "tresor.yaml"]);
    let line = late.lines().find(|l| l.starts_with("api-secrets")).unwrap();
    assert!(line.contains("OVERDUE"), "{late}");
    assert!(line.contains("never"), "{late}");
    assert!(
        late.contains("1 secret is overdue: run `tresor rotate -f tresor.yaml --due`"),
        "{late}"
    );
    let webhooks = late.lines().find(|l| l.starts_with("webhooks")).unwrap();
    assert!(!webhooks.contains("OVERDUE"), "{late}");
    let json = env.status_json();
    let api = row(&json, "api-secrets");
    assert_eq!(api["overdue"], true);
    assert_eq!(api["keys"], serde_json::json!(["api-key"]));
    assert_eq!(api["rotator"], "generate");
    assert_eq!(api["version"], 1);
    assert_eq!(api["last_rotated"], serde_json::Value::Null);

    let dry = env.ok(&["rotate", "-f", "tresor.yaml", "--due", "--dry-run"]);
    assert_eq!(
        dry,
        "api-secrets: would rotate (generate)\nDry run: nothing was rotated.\n"
    );
    assert_eq!(env.get("api-secrets", "api-key"), api_key);

    let out = env.ok(&["rotate", "-f", "tresor.yaml", "--due"]);
    assert!(
        out.contains("api-secrets: rotated; version 2 is current"),
        "{out}"
    );
    assert!(
        out.contains("checkout: follows `api-secrets` (a reference)"),
        "{out}"
    );
    assert!(
        out.contains("Not delivered to Kubernetes: the spec names no cluster"),
        "{out}"
    );
    let rotated = env.get("api-secrets", "api-key");
    assert_ne!(rotated, api_key);
    assert_eq!(env.get("checkout", "api-key"), rotated);
    // webhooks was not due: untouched.
    let json = env.status_json();
    let api = row(&json, "api-secrets");
    assert_eq!(api["overdue"], false);
    assert_eq!(api["version"], 2);
    assert_eq!(api["previous_version"], 1);
    assert!(api["last_rotated"].is_string());
    assert_eq!(row(&json, "webhooks")["version"], 1);

    // Apply afterwards keeps the rotated value.
    let plan = env.ok(&["apply", "-f", "tresor.yaml"]);
    assert!(plan.contains("No changes"), "{plan}");
    assert_eq!(env.get("api-secrets", "api-key"), rotated);
}

#[test]
fn named_secrets_rotate_even_when_not_due() {
    let env = Env::new(SPEC);
    env.ok(&["apply", "-f", "tresor.yaml"]);
    let before = env.get("webhooks", "signing-key");
    let out = env.ok(&["rotate", "-f", "tresor.yaml", "webhooks"]);
    assert!(
        out.contains("webhooks: rotated; version 2 is current"),
        "{out}"
    );
    assert_ne!(env.get("webhooks", "signing-key"), before);
}

#[test]
fn bad_requests_are_refused_and_change_nothing() {
    let env = Env::new(SPEC);
    env.ok(&["apply", "-f", "tresor.yaml"]);
    let (code, _, err) = env.run(&["rotate", "-f", "tresor.yaml"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("name the secrets to rotate, or pass --due"),
        "{err}"
    );
    let (code, _, err) = env.run(&["rotate", "-f", "tresor.yaml", "checkout"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("secret `checkout` has no `rotation` policy"),
        "{err}"
    );
    let (code, _, err) = env.run(&["rotate", "-f", "tresor.yaml", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("the spec declares no secret `nope`"), "{err}");
    assert_eq!(row(&env.status_json(), "api-secrets")["version"], 1);
}

#[test]
fn rotate_before_apply_says_what_to_run() {
    let env = Env::new(SPEC);
    let (code, _, err) = env.run(&["rotate", "-f", "tresor.yaml", "--due"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("run `tresor apply -f tresor.yaml` first"),
        "{err}"
    );
    // Status works without a store: nothing stored yet.
    let out = env.ok(&["status", "-f", "tresor.yaml"]);
    assert!(out.contains("not stored"), "{out}");
}

#[test]
fn bad_rotation_policies_are_spec_errors() {
    let env = Env::new(
        "version: 1
secrets:
  db:
    rotation:
      every: soon
    keys:
      password: {generate: base64:32}
  other:
    rotation:
      postgres: {database: app, admin: {secret: missing}, strategy: alternating-users}
    keys:
      username: {value: app}
      password: {value: \"literal-but-long-enough-Zq8#r\", allow_weak: test}
",
    );
    let (code, _, err) = env.run(&["rotate", "-f", "tresor.yaml", "--due"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("rotation `every: soon` is not a duration"),
        "{err}"
    );
    assert!(
        err.contains("strategy `alternating-users` needs `owner`"),
        "{err}"
    );
}

/// A generated key another secret refers to is a credential checked
/// somewhere else: `generate` may rotate it only when the spec says so.
#[test]
fn a_shared_credential_is_not_rotated_by_default() {
    let shared = SPEC.replace(
        "rotation: {every: 2s, rotator: generate}",
        "rotation: {every: 2s}",
    );
    let env = Env::new(&shared);
    let applied = env.run(&["apply", "-f", "tresor.yaml"]);
    assert_eq!(applied.0, 0, "{applied:?}");
    let declare = "Declare the rotator that changes it where it is checked";
    assert!(
        applied.2.contains("Warning: secret `api-secrets` is not rotated: the `generate` rotator would give `api-key` a fresh value in the store only, but `checkout/api-key` refers to it"),
        "{}",
        applied.2
    );
    assert!(applied.2.contains(declare), "{}", applied.2);
    let before = env.get("api-secrets", "api-key");

    let (code, _, err) = env.run(&["rotate", "-f", "tresor.yaml", "api-secrets"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(declare) && err.contains("`rotation: {rotator: generate}`"),
        "{err}"
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    let (code, out, err) = env.run(&["rotate", "-f", "tresor.yaml", "--due"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(declare), "{err}");
    assert!(
        err.contains("1 secret is due but not rotated: declare its rotator"),
        "{err}"
    );
    assert_eq!(env.get("api-secrets", "api-key"), before, "not rotated");

    let status = env.ok(&["status", "-f", "tresor.yaml"]);
    assert!(status.contains("refused: declare its rotator"), "{status}");
    assert!(status.contains(declare), "{status}");
    let json = env.status_json();
    assert!(
        json_refused(&json, "api-secrets").contains(declare),
        "{json}"
    );
    assert!(row(&json, "webhooks")["refused"].is_null());

    std::fs::write(env.dir().join("tresor.yaml"), SPEC).unwrap();
    env.ok(&["rotate", "-f", "tresor.yaml", "api-secrets"]);
    assert_ne!(
        env.get("api-secrets", "api-key"),
        before,
        "declared: rotated"
    );
}

fn json_refused(status: &serde_json::Value, name: &str) -> String {
    row(status, name)["refused"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

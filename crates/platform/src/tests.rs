use crate::*;
use std::path::Path;
use std::time::{Duration, SystemTime};
use tresor_core::{Access, Locking};

const EXAMPLE: &str = include_str!("../../../examples/mlops-platform/tresor.yaml");

fn problems(text: &str) -> Vec<Problem> {
    parse(text, Path::new("/p")).expect_err("the spec should be refused")
}

fn one_problem(text: &str) -> Problem {
    let mut p = problems(text);
    assert_eq!(p.len(), 1, "{p:?}");
    p.remove(0)
}

#[test]
fn the_example_parses() {
    let spec = parse(EXAMPLE, Path::new("/p")).unwrap();
    assert_eq!(spec.name, "mlops-platform");
    assert_eq!(
        spec.store,
        StoreSpec::Embedded {
            path: "/p/.tresor".into(),
            key_file: None,
            mount: "secret".into()
        }
    );
    let names: Vec<&str> = spec.secrets.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "api-secrets",
            "mlflow-secrets",
            "postgres-admin",
            "postgres-secrets"
        ]
    );
    let mlflow = &spec.secrets[1];
    assert_eq!(mlflow.namespace.as_deref(), Some("mlops"));
    assert_eq!(mlflow.consumers[0].to_string(), "deployment/mlflow-server");
    assert!(matches!(&mlflow.key("db-password").unwrap().source,
        Source::Ref(r) if r.to_string() == "postgres-secrets/postgres-password"));
    assert_eq!(
        spec.secrets[0].rotation,
        Some(Rotation {
            every: Duration::from_secs(90 * 86400),
            postgres: None,
            rotator_named: false,
        })
    );
    let pg = spec.secrets[3].rotation.as_ref().unwrap();
    assert!(pg.rotator_named);
    assert!(matches!(
        &pg.postgres.as_ref().unwrap().strategy,
        Strategy::AlternatingUsers { owner, roles, .. } if owner == "mlflow" && roles[0] == "mlflow_a"
    ));
}

#[test]
fn yaml_errors_carry_line_and_column_but_no_value() {
    let p = one_problem("version: 1\nsecrets:\n  a:\n    keys:\n      k: {value: \"s3cr3t-value\n");
    assert_eq!((p.line, p.column), (5, 18), "{p:?}");
    assert!(!p.message.contains("s3cr3t"), "{p:?}");
    let p = one_problem("version: 1\nsecrets:\n  a:\n    keys:\n      k: {value: x, bogus: 1}\n");
    assert_eq!(p.line, 5);
    assert!(p.message.contains("unknown field `bogus`"), "{p:?}");
    let p = one_problem(
        "version: 1\nsecrets:\n  a:\n    keys:\n      k:\n        generate: hex:32\n        lenght: 3\n",
    );
    assert_eq!(p.line, 7, "{p:?}");
    let p = one_problem(
        "version: 1\nsecrets:\n  a:\n    keys:\n      k: {generate: hex:32}\n      k: {generate: hex:32}\n",
    );
    assert_eq!(p.line, 6);
    assert!(p.message.contains("duplicate"), "{p:?}");
}

#[test]
fn references_must_exist_and_not_loop() {
    let p = one_problem(
        "version: 1\nsecrets:\n  a:\n    keys:\n      k: {ref: b/missing}\n  b:\n    keys:\n      x: {generate: hex:32}\n",
    );
    assert_eq!(p.line, 5);
    assert!(
        p.message.contains("secret `b` has no key `missing`"),
        "{p:?}"
    );
    let p = one_problem("version: 1\nsecrets:\n  a:\n    keys:\n      k: {ref: nope/k}\n");
    assert!(p.message.contains("declares no secret `nope`"), "{p:?}");
    let p = one_problem(
        "version: 1\nsecrets:\n  a:\n    keys:\n      k: {ref: b/x}\n  b:\n    keys:\n      x: {ref: a/k}\n",
    );
    assert!(p.message.contains("cycle: a/k -> b/x -> a/k"), "{p:?}");
    let p = one_problem("version: 1\nsecrets:\n  a:\n    keys:\n      k: {ref: a/k}\n");
    assert!(p.message.contains("cycle"), "{p:?}");
}

#[test]
fn kubernetes_names_are_checked() {
    let p =
        one_problem("version: 1\nsecrets:\n  a:\n    keys:\n      'bad key': {generate: hex:32}\n");
    assert!(
        p.message.contains("not a valid Kubernetes key name"),
        "{p:?}"
    );
    let p =
        one_problem("version: 1\nsecrets:\n  Bad_Name:\n    keys:\n      k: {generate: hex:32}\n");
    assert!(p.message.contains("secret name `Bad_Name`"), "{p:?}");
    let p = one_problem(
        "version: 1\nsecrets:\n  a:\n    namespace: Prod\n    keys:\n      k: {generate: hex:32}\n",
    );
    assert_eq!(p.line, 4);
    let p = one_problem(
        "version: 1\nsecrets:\n  a:\n    consumers: [pod/x]\n    keys:\n      k: {generate: hex:32}\n",
    );
    assert!(
        p.message
            .contains("deployments, statefulsets and daemonsets"),
        "{p:?}"
    );
    let p = one_problem("version: 1\nsecrets:\n  a:\n    keys:\n      ..k: {generate: hex:32}\n");
    assert!(p.message.contains("start with `..`"), "{p:?}");
}

#[test]
fn weak_values_need_a_reason() {
    let p =
        one_problem("version: 1\nsecrets:\n  a:\n    keys:\n      db-password: {value: hunter2}\n");
    assert_eq!(p.line, 5);
    assert!(p.message.contains("weak literal"), "{p:?}");
    assert!(!p.message.contains("hunter2"), "{p:?}");
    let ok = "version: 1\nsecrets:\n  a:\n    keys:\n      db-password: {value: hunter2, allow_weak: \"legacy appliance, 8 chars max\"}\n";
    assert!(parse(ok, Path::new("/p")).is_ok());
    let p = problems(
        "version: 1\nsecrets:\n  a:\n    keys:\n      db-password: {value: hunter2, allow_weak: \"\"}\n",
    );
    assert!(p[0].message.contains("needs a reason"), "{p:?}");
    let p =
        one_problem("version: 1\nsecrets:\n  a:\n    keys:\n      token: {generate: base64:8}\n");
    assert!(p.message.contains("64 bits"), "{p:?}");
    // Non-secret keys hold plain literals; a uuid under one is fine.
    assert!(parse("version: 1\nsecrets:\n  a:\n    keys:\n      user: {value: x}\n      id: {generate: uuid}\n", Path::new("/p")).is_ok());
    let p = one_problem(
        "version: 1\nsecrets:\n  a:\n    keys:\n      k: {value: x, generate: hex:32}\n",
    );
    assert!(p.message.contains("exactly one of"), "{p:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let p = problems(
        "version: 2\nsecrets:\n  a:\n    keys:\n      password: {value: abc}\n      k: {ref: z/z}\n",
    );
    assert_eq!(p.len(), 3, "{p:?}");
    assert_eq!(p[0].line, 1);
}

#[test]
fn password_generators_take_options() {
    let spec = parse(
        "version: 1\nsecrets:\n  a:\n    keys:\n      pw:\n        generate:\n          password: {length: 40, classes: [lower, digits], no_ambiguous: true}\n",
        Path::new("/p"),
    )
    .unwrap();
    let Source::Generate(g) = &spec.secrets[0].keys[0].source else {
        panic!()
    };
    assert_eq!(
        g.to_string(),
        "password:40 classes=lower,digits no-ambiguous"
    );
    let p = one_problem(
        "version: 1\nsecrets:\n  a:\n    keys:\n      pw:\n        generate:\n          password: {classes: [emoji]}\n",
    );
    assert!(
        p.message.contains("unknown password class `emoji`"),
        "{p:?}"
    );
}

fn example_in(dir: &Path) -> Spec {
    let mut spec = parse(EXAMPLE, dir).unwrap();
    spec.store = StoreSpec::Embedded {
        path: dir.join(".tresor"),
        key_file: Some(dir.join("key")),
        mount: "secret".into(),
    };
    spec
}

fn value(kv: &tresor_kv::KvEngine, path: &str, key: &str) -> String {
    let read = kv.read(path, None).unwrap().unwrap();
    read.data
        .unwrap()
        .get(key)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn apply_creates_then_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = example_in(tmp.path());
    let now = SystemTime::now();
    assert!(
        open_store(&spec, false, Access::ReadOnly, &Locking::default())
            .unwrap()
            .is_none()
    );
    let opened = open_store(&spec, true, Access::WriteOnDemand, &Locking::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        opened.created_key_file.as_deref(),
        Some(tmp.path().join("key").as_path())
    );
    let first = plan(&spec, Some(opened.store()), now).unwrap();
    assert!(first.secrets.iter().all(|s| s.action == Action::Create));
    assert_eq!(first.summary(), "4 to create, 0 to update, 0 unchanged.");
    assert_eq!(
        first.apply(opened.store()).unwrap(),
        Outcome {
            created: 4,
            updated: 0,
            unchanged: 0
        }
    );

    let pg = value(
        opened.local().unwrap(),
        "postgres-secrets",
        "postgres-password",
    );
    assert_eq!(pg.len(), 44);
    assert_eq!(
        value(opened.local().unwrap(), "mlflow-secrets", "db-password"),
        pg
    );
    assert_eq!(
        value(opened.local().unwrap(), "api-secrets", "api-key").len(),
        64
    );
    let meta = opened
        .local()
        .unwrap()
        .metadata("postgres-secrets")
        .unwrap()
        .unwrap();
    let custom = meta.custom_metadata.unwrap();
    assert!(custom["tresor-generated/postgres-password"].starts_with("base64:32 at "));
    assert_eq!(custom["managed-by"], "tresor");
    let table = first.table();
    assert!(
        !table.contains(&pg)
            && !table.contains(&value(opened.local().unwrap(), "api-secrets", "api-key"))
    );
    let row = "mlops/mlflow-secrets db-password ref postgres-secrets/postgres-password create";
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") == row),
        "{table}"
    );

    let second = plan(&spec, Some(opened.store()), now).unwrap();
    assert!(second.is_noop(), "{}", second.table());
    assert_eq!(second.summary(), "No changes: 4 secrets are up to date.");
    assert_eq!(second.apply(opened.store()).unwrap().unchanged, 4);
    assert_eq!(
        opened
            .local()
            .unwrap()
            .metadata("postgres-secrets")
            .unwrap()
            .unwrap()
            .current_version,
        1
    );
    assert_eq!(
        value(
            opened.local().unwrap(),
            "postgres-secrets",
            "postgres-password"
        ),
        pg
    );

    // 91 days later the generated values are due (rotation itself is another command).
    let later = plan(
        &spec,
        Some(opened.store()),
        now + Duration::from_secs(91 * 86400),
    )
    .unwrap();
    assert!(later.secrets.iter().filter(|s| s.rotate_due).count() == 2);
    assert!(later.table().contains("unchanged, rotate-due"));
    assert!(later.summary().contains("2 secrets are due for rotation"));
}

#[test]
fn changes_update_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = example_in(tmp.path());
    let opened = open_store(&spec, true, Access::WriteOnDemand, &Locking::default())
        .unwrap()
        .unwrap();
    plan(&spec, Some(opened.store()), SystemTime::now())
        .unwrap()
        .apply(opened.store())
        .unwrap();
    let pg = value(
        opened.local().unwrap(),
        "postgres-secrets",
        "postgres-password",
    );
    let api = value(opened.local().unwrap(), "api-secrets", "api-key");

    let text = EXAMPLE
        .replace(
            "postgres-db: {value: mlflow}",
            "postgres-db: {value: mlflow2}",
        )
        .replace(
            "api-key: {generate: hex:32}",
            "api-key: {generate: base64:48}",
        );
    let mut changed = parse(&text, tmp.path()).unwrap();
    changed.store = spec.store.clone();
    let p = plan(&changed, Some(opened.store()), SystemTime::now()).unwrap();
    let actions: Vec<(String, &str)> = p
        .secrets
        .iter()
        .flat_map(|s| {
            s.keys
                .iter()
                .map(move |k| (format!("{}/{}", s.name, k.key), k.action.name()))
        })
        .collect();
    assert!(
        actions.contains(&("postgres-secrets/postgres-db".into(), "update")),
        "{actions:?}"
    );
    assert!(actions.contains(&("postgres-secrets/postgres-password".into(), "unchanged")));
    assert!(actions.contains(&("api-secrets/api-key".into(), "regenerate")));
    p.apply(opened.store()).unwrap();
    assert_eq!(
        value(
            opened.local().unwrap(),
            "postgres-secrets",
            "postgres-password"
        ),
        pg
    );
    assert_ne!(
        value(opened.local().unwrap(), "api-secrets", "api-key"),
        api
    );
    assert_eq!(
        value(opened.local().unwrap(), "api-secrets", "api-key").len(),
        64
    );
}

#[test]
fn apply_writes_each_secret_with_its_metadata_in_one_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = example_in(tmp.path());
    let storage: std::sync::Arc<dyn tresor_storage::Backend> =
        std::sync::Arc::new(tresor_storage::Memory::new());
    let barrier = tresor_barrier::testing::unsealed(std::sync::Arc::clone(&storage));
    let kv = tresor_kv::KvEngine::new(barrier, "logical/t/");
    let p = plan(&spec, Some(&kv), SystemTime::now()).unwrap();
    let before = storage.generation().unwrap();
    assert_eq!(p.apply(&kv).unwrap().created, 4);
    assert_eq!(
        storage.generation().unwrap() - before,
        4,
        "one commit per secret"
    );
    let meta = kv.metadata("api-secrets").unwrap().unwrap();
    assert_eq!(meta.current_version, 1);
    assert_eq!(meta.custom_metadata.unwrap()["managed-by"], "tresor");
}

#[test]
fn a_concurrent_change_stops_apply_without_overwriting() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = example_in(tmp.path());
    let opened = open_store(&spec, true, Access::WriteOnDemand, &Locking::default())
        .unwrap()
        .unwrap();
    let p = plan(&spec, Some(opened.store()), SystemTime::now()).unwrap();
    let mut other = tresor_kv::SecretMap::new();
    other.insert("k".into(), "v".into());
    opened
        .local()
        .unwrap()
        .write("api-secrets", &other, None)
        .unwrap();
    let err = p.apply(opened.store()).unwrap_err();
    assert!(
        matches!(&err, PlatformError::Changed { secret } if secret == "api-secrets"),
        "{err}"
    );
    assert_eq!(value(opened.local().unwrap(), "api-secrets", "k"), "v");
}

#[test]
fn order_puts_referenced_secrets_first() {
    let spec = parse(EXAMPLE, Path::new("/p")).unwrap();
    let p = plan(&spec, None, SystemTime::now()).unwrap();
    let names: Vec<&str> = p.secrets.iter().map(|s| s.name.as_str()).collect();
    let pg = names.iter().position(|n| *n == "postgres-secrets").unwrap();
    let mlflow = names.iter().position(|n| *n == "mlflow-secrets").unwrap();
    assert!(pg < mlflow, "{names:?}");
}

//! `tresor apply` delivering to AWS Secrets Manager through the AWS SDK:
//! a local moto_server as the service, the AWS CLI reading back what tresor
//! wrote (values, tags, staging labels), its faults (a secret scheduled for
//! deletion, one owned by someone else, an unreachable endpoint, refused
//! credentials), and `tresor import --from aws`.

use crate::util;
use crate::util::{EXTRA, Moto, REGION, assert_all_undelivered, with_extra_secrets};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

const EXAMPLE: &str = include_str!("../../../../examples/mlops-platform-aws/tresor.yaml");
const NAMES: [&str; 3] = [
    "mlops-platform/mlflow/db-credentials",
    "mlops-platform/postgres/credentials",
    "mlops-platform/api/key",
];

fn spec_dir(spec: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tresor.yaml"), spec).unwrap();
    dir
}

fn tresor(dir: &Path, env: &[(&'static str, String)], args: &[&str]) -> Output {
    util::tresor()
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .output()
        .unwrap()
}

fn apply(dir: &Path, env: &[(&'static str, String)]) -> Output {
    let file = dir.join("tresor.yaml");
    tresor(dir, env, &["apply", "-f", file.to_str().unwrap()])
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn tags(moto: &Moto, name: &str) -> Vec<(String, String)> {
    let described = moto.cli_ok(&["describe-secret", "--secret-id", name]);
    let mut tags: Vec<(String, String)> = described["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["Key"].as_str().unwrap().to_owned(),
                t["Value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    tags.sort();
    tags
}

/// The version ids holding `AWSCURRENT` and `AWSPREVIOUS`.
fn labels(moto: &Moto, name: &str) -> (Option<String>, Option<String>, usize) {
    let stages = moto.stages(name);
    let map = stages.as_object().unwrap();
    let with = |label: &str| {
        map.iter()
            .find(|(_, v)| v.as_array().unwrap().iter().any(|s| s == label))
            .map(|(k, _)| k.clone())
    };
    (with("AWSCURRENT"), with("AWSPREVIOUS"), map.len())
}

#[test]
fn apply_writes_new_versions_only_on_change_with_coherent_labels() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    let moto = Moto::start();
    let dir = spec_dir(EXAMPLE);
    let first = apply(dir.path(), &moto.env());
    assert!(first.status.success(), "{}", text(&first));

    let mlflow = moto.value(NAMES[0], "AWSCURRENT");
    let postgres = moto.value(NAMES[1], "AWSCURRENT");
    let api = moto.value(NAMES[2], "AWSCURRENT");
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&mlflow), ["password", "username"]);
    assert_eq!(keys(&postgres), ["database", "password", "username"]);
    assert_eq!(keys(&api), ["api-key"]);
    assert_eq!(mlflow["username"], "mlflow_a");
    assert_eq!(postgres["username"], "postgres");
    assert_ne!(
        mlflow["password"], postgres["password"],
        "MLflow's login is not the superuser's"
    );
    for password in [&mlflow["password"], &postgres["password"]] {
        let password = password.as_str().unwrap();
        assert_eq!(password.len(), 44);
        assert!(!text(&first).contains(password), "a value was printed");
    }
    assert_eq!(
        tags(&moto, NAMES[1]),
        [
            ("managed-by".to_owned(), "tresor".to_owned()),
            ("tresor-platform".into(), "mlops-platform".into()),
            ("tresor-secret".into(), "postgres-admin".into()),
        ]
    );
    let (current, previous, versions) = labels(&moto, NAMES[0]);
    assert!(current.is_some() && previous.is_none() && versions == 1);

    let second = apply(dir.path(), &moto.env());
    assert!(second.status.success(), "{}", text(&second));
    assert!(
        text(&second).contains(&format!(
            "aws: api-secrets -> {} ({REGION}): unchanged",
            NAMES[2]
        )),
        "{}",
        text(&second)
    );
    for name in NAMES {
        assert_eq!(labels(&moto, name).2, 1, "a second apply wrote {name}");
    }

    let changed = EXAMPLE.replace(
        "db-username: {ref: postgres-secrets/postgres-user}",
        "db-username: {value: mlflow-app}",
    );
    std::fs::write(dir.path().join("tresor.yaml"), changed).unwrap();
    let third = apply(dir.path(), &moto.env());
    assert!(third.status.success(), "{}", text(&third));
    assert!(
        text(&third).contains(&format!(
            "aws: mlflow-secrets -> {} ({REGION}): updated",
            NAMES[0]
        )),
        "{}",
        text(&third)
    );
    let (new_current, new_previous, versions) = labels(&moto, NAMES[0]);
    assert_eq!(versions, 2);
    assert_eq!(new_previous, current, "the former version is AWSPREVIOUS");
    assert_ne!(new_current, current);
    assert_eq!(moto.value(NAMES[0], "AWSCURRENT")["username"], "mlflow-app");
    assert_eq!(moto.value(NAMES[0], "AWSPREVIOUS")["username"], "mlflow_a");
    assert_eq!(labels(&moto, NAMES[1]).2, 1, "postgres is untouched");
}

#[test]
fn a_secret_scheduled_for_deletion_is_named_and_a_rerun_completes() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    let moto = Moto::start();
    let dir = spec_dir(EXAMPLE);
    assert!(apply(dir.path(), &moto.env()).status.success());
    moto.cli_ok(&["delete-secret", "--secret-id", NAMES[2]]);
    let spec = EXAMPLE.replace("api-key: {generate: hex:32}", "api-key: {generate: hex:40}");
    std::fs::write(dir.path().join("tresor.yaml"), spec).unwrap();

    let out = apply(dir.path(), &moto.env());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains(&format!(
            "AWS secret `{}` in {REGION} is scheduled for deletion",
            NAMES[2]
        )),
        "{shown}"
    );
    assert!(shown.contains("restore-secret"), "{shown}");
    assert!(shown.contains("aws: 2 of 3 delivered"), "{shown}");

    moto.cli_ok(&["restore-secret", "--secret-id", NAMES[2]]);
    let rerun = apply(dir.path(), &moto.env());
    assert!(rerun.status.success(), "{}", text(&rerun));
    let api = moto.value(NAMES[2], "AWSCURRENT");
    assert_eq!(
        api["api-key"].as_str().unwrap().len(),
        80,
        "hex:40 delivered"
    );
}

#[test]
fn a_secret_owned_by_someone_else_is_not_overwritten() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    let moto = Moto::start();
    moto.cli_ok(&[
        "create-secret",
        "--name",
        NAMES[2],
        "--secret-string",
        r#"{"api-key":"theirs"}"#,
    ]);
    let dir = spec_dir(EXAMPLE);
    let out = apply(dir.path(), &moto.env());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains(&format!(
            "AWS secret `{}` in {REGION} exists and is not tresor's",
            NAMES[2]
        )),
        "{shown}"
    );
    assert!(!shown.contains("theirs"), "a value was printed");
    assert_eq!(moto.value(NAMES[2], "AWSCURRENT")["api-key"], "theirs");
    assert_eq!(labels(&moto, NAMES[0]).2, 1, "the others were delivered");
}

#[test]
fn an_unreachable_endpoint_is_named_and_a_rerun_completes() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    let moto = Moto::start();
    let dir = spec_dir(&with_extra_secrets(EXAMPLE, |i| {
        format!("{{aws: {{name: tresor-test/extra-{i:02}}}}}")
    }));
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let mut env = moto.env();
    env[0].1 = closed;
    let out = apply(dir.path(), &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains(&format!("cannot reach AWS Secrets Manager in {REGION}")),
        "{shown}"
    );
    assert_all_undelivered(&shown, "aws", NAMES.len() + EXTRA);

    let rerun = apply(dir.path(), &moto.env());
    assert!(rerun.status.success(), "{}", text(&rerun));
    for name in NAMES {
        assert_eq!(labels(&moto, name).2, 1);
    }
    assert_eq!(labels(&moto, "tresor-test/extra-39").2, 1);
}

#[test]
fn refused_credentials_are_access_denied() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    // With IAM checks on from the first request, moto refuses unknown keys.
    let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let dir = spec_dir(EXAMPLE);
    let out = apply(dir.path(), &moto.env());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains(&format!("AWS Secrets Manager in {REGION} denied")),
        "{shown}"
    );
    assert!(shown.contains("aws: 0 of 3 delivered"), "{shown}");
    assert!(!shown.contains("testing"), "a credential was printed");
}

/// Everything in Secrets Manager, and in IAM to change a user's policy.
const ADMIN: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
/// A deployer who may create secrets but not put new values into them.
const NO_PUT: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"},{"Effect":"Deny","Action":"secretsmanager:PutSecretValue","Resource":"*"}]}"#;
const DEPLOYER: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}]}"#;

#[test]
fn an_iam_deny_names_the_target_and_the_action_and_a_rerun_with_permission_completes() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    let moto = Moto::start();
    let admin = moto.iam_user("admin", ADMIN);
    let deployer = moto.iam_user("deployer", NO_PUT);
    moto.enforce_iam(&admin);
    let dir = spec_dir(EXAMPLE);
    let first = apply(dir.path(), &moto.env_as(&deployer));
    assert!(
        first.status.success(),
        "creating is allowed: {}",
        text(&first)
    );
    let key = moto.value(NAMES[2], "AWSCURRENT")["api-key"].clone();

    // A new value for the API key needs PutSecretValue; a new secret only CreateSecret.
    let spec = format!(
        "{}  reports-secrets:\n    keys: {{token: {{generate: hex:16}}}}\n    targets: {{aws: {{name: mlops-platform/reports/token}}}}\n",
        EXAMPLE.replace("api-key: {generate: hex:32}", "api-key: {generate: hex:40}")
    );
    std::fs::write(dir.path().join("tresor.yaml"), &spec).unwrap();
    let denied = apply(dir.path(), &moto.env_as(&deployer));
    assert_eq!(denied.status.code(), Some(1), "{}", text(&denied));
    let shown = text(&denied);
    assert!(
        shown.contains(&format!(
            "aws: api-secrets -> {} ({REGION}): FAILED: AWS Secrets Manager in {REGION} denied PutSecretValue on `{}`",
            NAMES[2], NAMES[2]
        )),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "aws: reports-secrets -> mlops-platform/reports/token ({REGION}): created"
        )) && shown.contains(&format!(
            "aws: mlflow-secrets -> {} ({REGION}): unchanged",
            NAMES[0]
        )),
        "the other targets are done and say so: {shown}"
    );
    assert!(shown.contains("aws: 3 of 4 delivered"), "{shown}");
    assert!(
        !shown.contains(&deployer.secret),
        "a credential was printed"
    );
    assert_eq!(
        moto.value(NAMES[2], "AWSCURRENT")["api-key"],
        key,
        "the former value stays"
    );
    assert_eq!(labels(&moto, NAMES[2]).2, 1);

    moto.iam_policy("deployer", DEPLOYER);
    let rerun = apply(dir.path(), &moto.env_as(&deployer));
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert!(
        text(&rerun).contains(&format!(
            "aws: api-secrets -> {} ({REGION}): updated",
            NAMES[2]
        )),
        "{}",
        text(&rerun)
    );
    assert_eq!(
        moto.value(NAMES[2], "AWSCURRENT")["api-key"]
            .as_str()
            .unwrap()
            .len(),
        80
    );
    assert_eq!(moto.value(NAMES[2], "AWSPREVIOUS")["api-key"], key);
}

#[test]
fn import_reads_into_the_store_and_apply_adopts() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    let moto = Moto::start();
    let value = r#"{"username":"svc-reporting","password":"Vq7-secret-from-before-tresor-3xZ"}"#;
    moto.cli_ok(&[
        "create-secret",
        "--name",
        "mlops-platform/reporting/db",
        "--secret-string",
        value,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tresor.yaml");
    let out = tresor(
        dir.path(),
        &moto.env(),
        &[
            "import",
            "--from",
            "aws",
            "mlops-platform/reporting/db",
            "-f",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let proposal = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(
        !text(&out).contains("Vq7-secret") && !text(&out).contains("svc-reporting"),
        "a value was printed: {}",
        text(&out)
    );
    assert!(
        proposal.contains("  mlops-platform-reporting-db:")
            && proposal.contains("aws: {name: mlops-platform/reporting/db, region: eu-west-1}"),
        "{proposal}"
    );
    // The proposal, as the spec: apply keeps the values and marks the secret as tresor's.
    std::fs::write(
        &file,
        format!("version: 1\nname: mlops-platform\n{proposal}"),
    )
    .unwrap();
    let applied = apply(dir.path(), &moto.env());
    assert!(applied.status.success(), "{}", text(&applied));
    assert!(text(&applied).contains("adopted"), "{}", text(&applied));
    assert_eq!(
        moto.value("mlops-platform/reporting/db", "AWSCURRENT"),
        serde_json::from_str::<Value>(value).unwrap()
    );
    assert_eq!(labels(&moto, "mlops-platform/reporting/db").2, 1);
    assert!(
        tags(&moto, "mlops-platform/reporting/db")
            .contains(&("managed-by".to_owned(), "tresor".to_owned()))
    );
}

/// One line per failed push, naming the target, the action and the fix,
/// never the SDK's debug rendering.
fn assert_one_line(shown: &str) {
    for line in shown.lines().filter(|l| l.contains("FAILED")) {
        assert!(
            !line.contains("DispatchFailure") && !line.contains("SdkBody") && !line.contains("{ "),
            "the SDK's debug chain: {line}"
        );
    }
}

#[test]
fn missing_credentials_say_where_they_come_from() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    let moto = Moto::start();
    let dir = spec_dir(EXAMPLE);
    let env: Vec<_> = moto
        .env()
        .into_iter()
        .filter(|(k, _)| !k.starts_with("AWS_ACCESS_KEY_ID") && !k.starts_with("AWS_SECRET"))
        .collect();
    let out = apply(dir.path(), &env);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains(&format!(
            "aws: api-secrets -> {} ({REGION}): FAILED: no AWS credentials for DescribeSecret on `{}` in {REGION}",
            NAMES[2], NAMES[2]
        )),
        "{shown}"
    );
    assert!(
        shown.contains("set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"),
        "{shown}"
    );
    assert_one_line(&shown);
}

#[test]
fn unreachable_and_denied_are_one_line() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    let moto = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let dir = spec_dir(EXAMPLE);
    let out = apply(dir.path(), &moto.env());
    let shown = text(&out);
    assert!(shown.contains("denied DescribeSecret"), "{shown}");
    assert_one_line(&shown);
    let mut env = moto.env();
    env[0].1 = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let shown = text(&apply(dir.path(), &env));
    assert!(
        shown.contains(&format!(
            "cannot reach AWS Secrets Manager in {REGION} (Connection refused"
        )),
        "{shown}"
    );
    assert_one_line(&shown);
}

/// moto never throttles: a stand-in answers every request as Secrets
/// Manager does past its request rate.
#[test]
fn throttling_past_the_retries_says_to_run_again_later() {
    util::need!("TRESOR_TEST_MOTO", "TRESOR_TEST_AWS_CLI");
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 65536];
            let _ = stream.read(&mut request);
            let body = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-errortype: ThrottlingException\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let moto = Moto::start();
    let mut env = moto.env();
    env[0].1 = url;
    env.push(("AWS_MAX_ATTEMPTS", "1".into()));
    let dir = spec_dir(EXAMPLE);
    let shown = text(&apply(dir.path(), &env));
    assert!(
        shown.contains(&format!(
            "aws: api-secrets -> {} ({REGION}): FAILED: AWS Secrets Manager in {REGION} throttled DescribeSecret on `{}`",
            NAMES[2], NAMES[2]
        )),
        "{shown}"
    );
    assert!(shown.contains("run again in a while"), "{shown}");
    assert_one_line(&shown);
}

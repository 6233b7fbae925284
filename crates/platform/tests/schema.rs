//! The published JSON Schema accepts the example, and it agrees with the
//! parser on the shape of specs.

use std::path::Path;

const SCHEMA: &str = include_str!("../../../schema/tresor.schema.json");
const EXAMPLE: &str = include_str!("../../../examples/mlops-platform/tresor.yaml");

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn schema_accepts(v: &jsonschema::Validator, yaml: &str) -> bool {
    let doc: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
    v.is_valid(&doc)
}

#[test]
fn the_example_validates() {
    let v = validator();
    let doc: serde_json::Value = serde_saphyr::from_str(EXAMPLE).unwrap();
    let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn parser_and_schema_agree() {
    let v = validator();
    let head = "version: 1\nsecrets:\n  app:\n";
    let cases = [
        "    keys:\n      k: {generate: hex:32}\n",
        "    keys:\n      k: {generate: password}\n",
        "    keys:\n      k: {generate: 'password:40'}\n",
        "    keys:\n      k: {generate: {password: {length: 40, classes: [lower, upper], no_ambiguous: true}}}\n",
        "    keys:\n      k: {generate: {password: }}\n",
        "    keys:\n      user: {value: app}\n      k: {ref: app/user}\n",
        "    namespace: prod\n    path: team/app\n    consumers: [deployment/api, sts/db]\n    rotation: {every: 90d}\n    keys:\n      k: {generate: base64:32}\n",
        "    keys:\n      k: {generate: hex:32, bogus: 1}\n",
        "    keyz:\n      k: {generate: hex:32}\n",
        "    keys:\n      k: {}\n",
        "    keys:\n      k: {value: a, generate: hex:32}\n",
        "    keys:\n      k: {generate: rot13:4}\n",
        "    keys:\n      k: {generate: {password: {colour: red}}}\n",
        "    keys:\n      'bad key': {generate: hex:32}\n",
        "    keys:\n      ..k: {generate: hex:32}\n",
        "    namespace: Prod\n    keys:\n      k: {generate: hex:32}\n",
        "    consumers: [pod/x]\n    keys:\n      k: {generate: hex:32}\n",
        "    rotation: {}\n    keys:\n      k: {generate: hex:32}\n",
        "    keys: {}\n",
        "    keys:\n      k: {ref: nope}\n",
        "    keys:\n      k: {value: x, allow_weak: ''}\n",
    ];
    for case in cases {
        let yaml = format!("{head}{case}");
        let parsed = tresor_platform::parse(&yaml, Path::new("/p")).is_ok();
        assert_eq!(schema_accepts(&v, &yaml), parsed, "disagree on:\n{yaml}");
    }
    for top in [
        "version: 2\nsecrets:\n  a:\n    keys:\n      k: {generate: hex:32}\n",
        "secrets:\n  a:\n    keys:\n      k: {generate: hex:32}\n",
        "version: 1\nsecrets: {}\n",
        "version: 1\nname: mlops\nstore: {path: .tresor, key_file: ~/k, mount: kv}\nkubernetes: {context: kind, namespace: mlops}\nsecrets:\n  a:\n    keys:\n      k: {generate: hex:32}\n",
        "version: 1\nstore: {path: x, colour: red}\nsecrets:\n  a:\n    keys:\n      k: {generate: hex:32}\n",
        "version: 1\nsecrets:\n  Bad_Name:\n    keys:\n      k: {generate: hex:32}\n",
    ] {
        let parsed = tresor_platform::parse(top, Path::new("/p")).is_ok();
        assert_eq!(schema_accepts(&v, top), parsed, "disagree on:\n{top}");
    }
}

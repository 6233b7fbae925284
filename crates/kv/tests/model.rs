//! Model-based test: random sequences of KV operations run against the engine
//! and against a deliberately simple reference model; every read, list and
//! metadata answer must agree.

use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use tresor_kv::{ConfigUpdate, KvEngine, KvError, MetadataUpdate, SecretMap};
use tresor_storage::Memory;

const MOUNT_MAX_VERSIONS: u32 = 4;
const PATHS: [&str; 6] = ["a", "b", "f/c", "f/d", "f/g/h", "z"];
const FOLDERS: [&str; 3] = ["", "f", "f/g"];

#[derive(Clone, Debug)]
enum Op {
    Write {
        path: usize,
        value: u8,
        cas: Option<u64>,
    },
    Patch {
        path: usize,
        key: u8,
        value: Option<u8>,
    },
    DeleteLatest {
        path: usize,
    },
    Delete {
        path: usize,
        versions: Vec<u64>,
    },
    Undelete {
        path: usize,
        versions: Vec<u64>,
    },
    Destroy {
        path: usize,
        versions: Vec<u64>,
    },
    MetaPut {
        path: usize,
        max_versions: Option<u32>,
        custom: Option<u8>,
        cas: Option<u64>,
    },
    MetaDelete {
        path: usize,
    },
    Read {
        path: usize,
        version: u64,
    },
    ReadMeta {
        path: usize,
    },
    List {
        folder: usize,
        after: Option<usize>,
        limit: Option<usize>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let path = 0..PATHS.len();
    let versions = prop::collection::vec(1u64..9, 1..4);
    prop_oneof![
        4 => (path.clone(), any::<u8>(), prop::option::of(0u64..6)).prop_map(|(path, value, cas)| Op::Write { path, value, cas }),
        2 => (path.clone(), 0u8..3, prop::option::of(any::<u8>())).prop_map(|(path, key, value)| Op::Patch { path, key, value }),
        1 => path.clone().prop_map(|path| Op::DeleteLatest { path }),
        1 => (path.clone(), versions.clone()).prop_map(|(path, versions)| Op::Delete { path, versions }),
        1 => (path.clone(), versions.clone()).prop_map(|(path, versions)| Op::Undelete { path, versions }),
        1 => (path.clone(), versions).prop_map(|(path, versions)| Op::Destroy { path, versions }),
        1 => (path.clone(), prop::option::of(0u32..4), prop::option::of(any::<u8>()), prop::option::of(0u64..8))
            .prop_map(|(path, max_versions, custom, cas)| Op::MetaPut { path, max_versions, custom, cas }),
        1 => path.clone().prop_map(|path| Op::MetaDelete { path }),
        3 => (path.clone(), 0u64..9).prop_map(|(path, version)| Op::Read { path, version }),
        2 => path.prop_map(|path| Op::ReadMeta { path }),
        2 => (0..FOLDERS.len(), prop::option::of(0usize..4), prop::option::of(1usize..4))
            .prop_map(|(folder, after, limit)| Op::List { folder, after, limit }),
    ]
}

#[derive(Clone, Debug, Default)]
struct ModelVersion {
    data: Option<BTreeMap<String, String>>,
    deleted: bool,
}

#[derive(Clone, Debug, Default)]
struct ModelSecret {
    current: u64,
    versions: BTreeMap<u64, ModelVersion>,
    max_versions: u32,
    custom: BTreeMap<String, String>,
    revision: u64,
}

impl ModelSecret {
    fn live(&self, n: u64) -> Option<&BTreeMap<String, String>> {
        let v = self.versions.get(&n)?;
        if v.deleted { None } else { v.data.as_ref() }
    }

    fn prune(&mut self) {
        let max = if self.max_versions > 0 {
            self.max_versions
        } else {
            MOUNT_MAX_VERSIONS
        };
        while self.versions.len() > max as usize {
            let first = *self.versions.keys().next().unwrap();
            self.versions.remove(&first);
        }
    }

    fn push(&mut self, data: BTreeMap<String, String>) {
        self.current += 1;
        self.versions.insert(
            self.current,
            ModelVersion {
                data: Some(data),
                deleted: false,
            },
        );
        self.prune();
        self.revision += 1;
    }

    fn oldest(&self) -> u64 {
        self.versions.keys().next().copied().unwrap_or(0)
    }
}

/// current, oldest, (version, deleted, destroyed), max_versions, custom metadata, metadata version
type MetaSummary = (
    u64,
    u64,
    Vec<(u64, bool, bool)>,
    u32,
    BTreeMap<String, String>,
    u64,
);

/// What an operation answered, in a form both sides can produce.
#[derive(Debug, PartialEq)]
enum Answer {
    Ok,
    Version(u64),
    CasMismatch,
    MetaCasMismatch,
    NotFound,
    Read(Option<Option<BTreeMap<String, String>>>),
    Meta(Option<MetaSummary>),
    List(Vec<String>),
}

fn list_model(
    model: &BTreeMap<String, ModelSecret>,
    folder: &str,
    after: Option<&str>,
    limit: Option<usize>,
) -> Vec<String> {
    let prefix = if folder.is_empty() {
        String::new()
    } else {
        format!("{folder}/")
    };
    let mut entries: Vec<String> = model
        .keys()
        .filter_map(|p| p.strip_prefix(&prefix))
        .map(|rest| match rest.find('/') {
            Some(i) => rest[..=i].to_string(),
            None => rest.to_string(),
        })
        .collect();
    entries.dedup();
    entries.retain(|e| after.is_none_or(|a| e.as_str() > a));
    entries.truncate(limit.unwrap_or(usize::MAX));
    entries
}

fn run_model(model: &mut BTreeMap<String, ModelSecret>, op: &Op) -> Answer {
    let afters = ["a", "b", "f/", "g"];
    match op {
        Op::Write { path, value, cas } => {
            let current = model.get(PATHS[*path]).map_or(0, |s| s.current);
            if cas.is_some_and(|c| c != current) {
                return Answer::CasMismatch;
            }
            let s = model.entry(PATHS[*path].into()).or_default();
            s.push([("v".to_string(), value.to_string())].into());
            Answer::Version(s.current)
        }
        Op::Patch { path, key, value } => {
            let Some(s) = model.get_mut(PATHS[*path]) else {
                return Answer::NotFound;
            };
            let Some(current) = s.live(s.current).cloned() else {
                return Answer::NotFound;
            };
            let mut next = current;
            match value {
                Some(v) => next.insert(format!("k{key}"), v.to_string()),
                None => next.remove(&format!("k{key}")),
            };
            s.push(next);
            Answer::Version(s.current)
        }
        Op::DeleteLatest { path } => {
            if let Some(s) = model.get_mut(PATHS[*path]) {
                let current = s.current;
                if let Some(v) = s
                    .versions
                    .get_mut(&current)
                    .filter(|v| v.data.is_some() && !v.deleted)
                {
                    v.deleted = true;
                    s.revision += 1;
                }
            }
            Answer::Ok
        }
        Op::Delete { path, versions }
        | Op::Undelete { path, versions }
        | Op::Destroy { path, versions } => {
            if let Some(s) = model.get_mut(PATHS[*path]) {
                let mut changed = false;
                for n in versions {
                    let Some(v) = s.versions.get_mut(n) else {
                        continue;
                    };
                    match op {
                        Op::Delete { .. } if v.data.is_some() && !v.deleted => {
                            v.deleted = true;
                            changed = true;
                        }
                        Op::Undelete { .. } if v.data.is_some() && v.deleted => {
                            v.deleted = false;
                            changed = true;
                        }
                        Op::Destroy { .. } if v.data.is_some() => {
                            v.data = None;
                            changed = true;
                        }
                        _ => {}
                    }
                }
                if changed {
                    s.revision += 1;
                }
            }
            Answer::Ok
        }
        Op::MetaPut {
            path,
            max_versions,
            custom,
            cas,
        } => {
            let revision = model.get(PATHS[*path]).map_or(0, |s| s.revision);
            if cas.is_some_and(|c| c != revision) {
                return Answer::MetaCasMismatch;
            }
            let s = model.entry(PATHS[*path].into()).or_default();
            if let Some(m) = max_versions {
                s.max_versions = *m;
            }
            if let Some(c) = custom {
                s.custom = [("owner".to_string(), c.to_string())].into();
            }
            s.prune();
            s.revision += 1;
            Answer::Ok
        }
        Op::MetaDelete { path } => {
            model.remove(PATHS[*path]);
            Answer::Ok
        }
        Op::Read { path, version } => {
            let Some(s) = model.get(PATHS[*path]) else {
                return Answer::Read(None);
            };
            let n = if *version == 0 { s.current } else { *version };
            if !s.versions.contains_key(&n) {
                return Answer::Read(None);
            }
            Answer::Read(Some(s.live(n).cloned()))
        }
        Op::ReadMeta { path } => Answer::Meta(model.get(PATHS[*path]).map(|s| {
            let versions = s
                .versions
                .iter()
                .map(|(n, v)| (*n, v.deleted, v.data.is_none()))
                .collect();
            (
                s.current,
                s.oldest(),
                versions,
                s.max_versions,
                s.custom.clone(),
                s.revision,
            )
        })),
        Op::List {
            folder,
            after,
            limit,
        } => Answer::List(list_model(
            model,
            FOLDERS[*folder],
            after.map(|a| afters[a]),
            *limit,
        )),
    }
}

fn to_strings(data: &SecretMap) -> BTreeMap<String, String> {
    data.iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn run_engine(kv: &KvEngine, op: &Op) -> Answer {
    let afters = ["a", "b", "f/", "g"];
    let answer = |r: Result<(), KvError>| match r {
        Ok(()) => Answer::Ok,
        Err(e) => panic!("unexpected error: {e}"),
    };
    match op {
        Op::Write { path, value, cas } => {
            let data: SecretMap = serde_json::from_value(json!({"v": value.to_string()})).unwrap();
            match kv.write(PATHS[*path], &data, *cas) {
                Ok(info) => Answer::Version(info.version),
                Err(KvError::CasMismatch { .. }) => Answer::CasMismatch,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        Op::Patch { path, key, value } => {
            let patch = json!({ format!("k{key}"): value.map_or(Value::Null, |v| Value::String(v.to_string())) });
            match kv.patch(PATHS[*path], &patch, None) {
                Ok(info) => Answer::Version(info.version),
                Err(KvError::NotFound(_)) => Answer::NotFound,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        Op::DeleteLatest { path } => answer(kv.delete_latest(PATHS[*path])),
        Op::Delete { path, versions } => answer(kv.delete_versions(PATHS[*path], versions)),
        Op::Undelete { path, versions } => answer(kv.undelete_versions(PATHS[*path], versions)),
        Op::Destroy { path, versions } => answer(kv.destroy_versions(PATHS[*path], versions)),
        Op::MetaPut {
            path,
            max_versions,
            custom,
            cas,
        } => {
            let update = MetadataUpdate {
                max_versions: *max_versions,
                custom_metadata: custom
                    .map(|c| [("owner".to_string(), Some(c.to_string()))].into()),
                cas: *cas,
                ..Default::default()
            };
            match kv.write_metadata(PATHS[*path], &update) {
                Ok(_) => Answer::Ok,
                Err(KvError::MetadataCasMismatch { .. }) => Answer::MetaCasMismatch,
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        Op::MetaDelete { path } => answer(kv.delete_metadata(PATHS[*path])),
        Op::Read { path, version } => {
            let read = kv.read(PATHS[*path], Some(*version)).unwrap();
            Answer::Read(read.map(|r| r.data.as_ref().map(to_strings)))
        }
        Op::ReadMeta { path } => Answer::Meta(kv.metadata(PATHS[*path]).unwrap().map(|m| {
            let versions = m
                .versions
                .iter()
                .map(|(n, v)| {
                    (
                        n.parse().unwrap(),
                        (!v.deletion_time.is_empty(), v.destroyed),
                    )
                })
                .collect::<BTreeMap<u64, _>>()
                .into_iter()
                .map(|(n, (d, x))| (n, d, x))
                .collect();
            (
                m.current_version,
                m.oldest_version,
                versions,
                m.max_versions,
                m.custom_metadata.unwrap_or_default(),
                m.metadata_version,
            )
        })),
        Op::List {
            folder,
            after,
            limit,
        } => Answer::List(
            kv.list(FOLDERS[*folder], after.map(|a| afters[a]), *limit)
                .unwrap(),
        ),
    }
}

fn engine() -> KvEngine {
    let barrier = tresor_barrier::testing::unsealed(Arc::new(Memory::new()));
    let kv = KvEngine::new(barrier, "logical/model/");
    kv.set_config(ConfigUpdate {
        max_versions: Some(MOUNT_MAX_VERSIONS),
        ..Default::default()
    })
    .unwrap();
    kv
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn engine_agrees_with_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let kv = engine();
        let mut model = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            let want = run_model(&mut model, op);
            let got = run_engine(&kv, op);
            prop_assert_eq!(got, want, "step {} {:?}", i, op);
        }
        for path in 0..PATHS.len() {
            let op = Op::ReadMeta { path };
            prop_assert_eq!(run_engine(&kv, &op), run_model(&mut model, &op));
        }
    }
}

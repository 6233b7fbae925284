//! The tables and function tresor keeps in its database, created and
//! migrated when a server starts. Migrations run one server at a time (under
//! an advisory lock) and each in one transaction.

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i32 = 1;

/// Class of tresor's advisory locks (`pg_advisory_xact_lock(CLASS, n)`), so
/// they never meet another application's in the same database ('tres').
pub(crate) const LOCK_CLASS: i32 = 0x7472_6573;

/// The lock number migrations hold.
const MIGRATION_LOCK: i32 = 0;

/// Each step takes the schema from version `index` to `index + 1`.
const STEPS: [&str; SCHEMA_VERSION as usize] = [V1];

/// Keys in the "C" collation sort byte-wise (code point order, as every
/// other backend sorts them), so a prefix listing is a range scan of the
/// primary key's index.
const V1: &str = r#"
CREATE TABLE tresor_kv (
    key text COLLATE "C" PRIMARY KEY,
    value bytea NOT NULL
);

CREATE FUNCTION tresor_commit(
    locks int4[],
    cond_keys text[],
    cond_values bytea[],
    put_keys text[],
    put_values bytea[],
    delete_keys text[]
) RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
DECLARE
    i int;
    held bytea;
BEGIN
    PERFORM pg_advisory_xact_lock(1953654131, h) FROM unnest(locks) AS h;
    FOR i IN 1 .. coalesce(array_length(cond_keys, 1), 0) LOOP
        held := (SELECT value FROM tresor_kv WHERE key = cond_keys[i]);
        IF held IS DISTINCT FROM cond_values[i] THEN
            RETURN cond_keys[i];
        END IF;
    END LOOP;
    DELETE FROM tresor_kv WHERE key = ANY (delete_keys);
    INSERT INTO tresor_kv (key, value)
        SELECT * FROM unnest(put_keys, put_values)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value;
    RETURN NULL;
END
$$;
"#;

/// Why the schema could not be brought to [`SCHEMA_VERSION`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum SchemaError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error(
        "the database holds tresor schema version {0}, newer than this tresor understands ({SCHEMA_VERSION}); run a newer tresor"
    )]
    Newer(i32),
}

/// Creates or upgrades the schema; returns the version found before.
pub(crate) async fn migrate(client: &mut tokio_postgres::Client) -> Result<i32, SchemaError> {
    let txn = client.transaction().await?;
    txn.execute(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[&LOCK_CLASS, &MIGRATION_LOCK],
    )
    .await?;
    txn.batch_execute("CREATE TABLE IF NOT EXISTS tresor_schema (version int4 NOT NULL)")
        .await?;
    let found: i32 = match txn
        .query_opt("SELECT version FROM tresor_schema", &[])
        .await?
    {
        Some(row) => row.get(0),
        None => {
            txn.execute("INSERT INTO tresor_schema (version) VALUES (0)", &[])
                .await?;
            0
        }
    };
    if found > SCHEMA_VERSION {
        return Err(SchemaError::Newer(found));
    }
    for step in &STEPS[usize::try_from(found).unwrap_or(0)..] {
        txn.batch_execute(step).await?;
    }
    txn.execute("UPDATE tresor_schema SET version = $1", &[&SCHEMA_VERSION])
        .await?;
    txn.commit().await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_function_locks_in_tresors_class() {
        assert!(super::V1.contains(&super::LOCK_CLASS.to_string()));
    }
}

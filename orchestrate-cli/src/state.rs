//! Where the command line keeps executions, and the workflow definitions
//! it ran, so that another invocation can resume them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orchestrate_core::call::digest;
use orchestrate_core::store::Store;
use orchestrate_core::ExecutionId;
use orchestrate_graph::WorkflowDef;
use serde_json::Value;

use crate::error::CliError;

/// The store used when none is named: embedded, under the current
/// directory.
pub const DEFAULT_STORE: &str = ".orchestrate/state.db";

/// Opens the store `url` names (`sqlite://PATH`, a path, or
/// `postgres://..`), or the default one.
///
/// # Errors
///
/// [`CliError::Usage`] for a URL of no known kind, [`CliError::Io`] when
/// the default store's directory cannot be made, store errors.
pub async fn open_store(url: Option<&str>) -> Result<Arc<dyn Store>, CliError> {
    let url = url.unwrap_or(DEFAULT_STORE);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return open_postgres(url).await;
    }
    if let Some((scheme, _)) = url.split_once("://") {
        if scheme != "sqlite" {
            return Err(CliError::Usage(format!(
                "--store `{url}`: expected a SQLite path (`sqlite://PATH`) or `postgres://..`"
            )));
        }
    }
    let path = Path::new(url.strip_prefix("sqlite://").unwrap_or(url));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| CliError::Io {
            path: dir.to_owned(),
            source,
        })?;
    }
    let store = orchestrate_store::sqlite::SqliteStore::open(path).await?;
    Ok(Arc::new(store))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> Result<Arc<dyn Store>, CliError> {
    Ok(Arc::new(
        orchestrate_store::postgres::PostgresStore::connect(url).await?,
    ))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(url: &str) -> Result<Arc<dyn Store>, CliError> {
    Err(CliError::Usage(format!(
        "--store `{url}`: this build has no PostgreSQL support (feature `postgres`)"
    )))
}

/// The key of the last definition of workflow `name` at `version` kept.
fn latest_key(name: &str, version: &str) -> String {
    format!("orchestrate-cli/workflow/{name}@{version}")
}

/// The key of execution `id`'s definition.
fn execution_key(id: &ExecutionId) -> String {
    format!("orchestrate-cli/execution/{id}")
}

/// Keeps `def` in the store, for `resume` and `cancel` in another process:
/// under its content (an edited file under the same name and version is
/// another definition), and as the latest of its name and version.
/// Returns the key it is kept under, for [`keep_execution_definition`].
///
/// # Errors
///
/// Store errors.
pub async fn keep_definition(store: &dyn Store, def: &WorkflowDef) -> Result<String, CliError> {
    let value = serde_json::to_value(def)
        .map_err(|e| CliError::Usage(format!("workflow `{}` does not serialise: {e}", def.name)))?;
    let latest = latest_key(&def.name, &def.version);
    let key = format!("{latest}#{:016x}", digest(&value));
    store.kv_put(&key, value.clone(), None).await?;
    store.kv_put(&latest, value, None).await?;
    Ok(key)
}

/// Records that execution `id` runs the definition kept under `key`
/// (unless it was recorded already: an idempotency key returned an
/// execution started before).
///
/// # Errors
///
/// Store errors.
pub async fn keep_execution_definition(
    store: &dyn Store,
    id: &ExecutionId,
    key: &str,
) -> Result<(), CliError> {
    store
        .kv_put_if_absent(&execution_key(id), Value::String(key.to_owned()), None)
        .await?;
    Ok(())
}

/// The definition execution `id` of workflow `name` at `version` runs:
/// the one recorded for it, or (an execution started by `serve`, or one
/// killed before its definition was recorded) the latest kept of that
/// name and version; `None` when none was kept.
///
/// # Errors
///
/// Store errors; [`CliError::Usage`] for a kept value that is no workflow.
pub async fn definition(
    store: &dyn Store,
    id: &ExecutionId,
    name: &str,
    version: &str,
) -> Result<Option<WorkflowDef>, CliError> {
    let key = match store.kv_get(&execution_key(id)).await? {
        Some(Value::String(key)) => key,
        _ => latest_key(name, version),
    };
    let Some(value) = store.kv_get(&key).await? else {
        return Ok(None);
    };
    serde_json::from_value::<WorkflowDef>(value)
        .map(Some)
        .map_err(|e| CliError::Usage(format!("the kept definition of `{name}@{version}`: {e}")))
}

/// Reads `path` as text.
pub(crate) fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Parses `--input`: JSON, or `@FILE` for a file's JSON.
pub(crate) fn input(arg: Option<&str>) -> Result<Value, CliError> {
    let Some(arg) = arg else {
        return Ok(Value::Null);
    };
    let (text, origin) = match arg.strip_prefix('@') {
        Some(file) => (read(&PathBuf::from(file))?, file.to_owned()),
        None => (arg.to_owned(), "--input".to_owned()),
    };
    serde_json::from_str(&text).map_err(|e| CliError::Usage(format!("{origin}: not JSON: {e}")))
}

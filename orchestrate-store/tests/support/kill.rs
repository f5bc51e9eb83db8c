//! What the crash tests share: seeded kill points and a process killed at
//! one of them.

use std::process::Command;
use std::time::{Duration, Instant};

/// The next number of the splitmix64 sequence seeded with `state`.
pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Starts `command` and kills it with SIGKILL `after` its start, unless it
/// ended by itself first; waits for it either way.
pub(crate) fn run_until_killed(mut command: Command, after: Duration) -> Result<(), String> {
    let mut child = command.spawn().map_err(|e| e.to_string())?;
    let started = Instant::now();
    while started.elapsed() < after {
        if child.try_wait().map_err(|e| e.to_string())?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().map_err(|e| e.to_string())?; // SIGKILL
    child.wait().map_err(|e| e.to_string())?;
    Ok(())
}

/// The `main` of a crash test binary with one SQLite case: run with
/// `--worker <db> <ledger>` it is the process that gets killed (`worker`);
/// otherwise it runs `test` in a fresh directory as case `name` of suite
/// `suite`, unless `cargo test`'s filter leaves it out, and reports as
/// libtest does.
#[allow(dead_code)]
pub(crate) fn crash_main<W, T>(
    name: &str,
    suite: &str,
    worker: impl FnOnce(String, String) -> W,
    test: impl FnOnce(std::path::PathBuf) -> T,
) where
    W: std::future::Future<Output = ()>,
    T: std::future::Future<Output = Result<(), String>>,
{
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if args.get(1).map(String::as_str) == Some("--worker") {
        rt.block_on(worker(args[2].clone(), args[3].clone()));
        return;
    }
    // `cargo test` may pass a filter: run the case if its name contains it.
    let filters: Vec<&String> = args
        .iter()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
        println!("\n{suite}: 0 passed, 0 failed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    match rt.block_on(test(dir.path().to_owned())) {
        Ok(()) => {
            println!("test {name} ... ok");
            println!("\n{suite}: 1 passed, 0 failed");
        }
        Err(e) => {
            eprintln!("test {name} ... FAILED\n{e}");
            println!("\n{suite}: 0 passed, 1 failed");
            std::process::exit(1);
        }
    }
}

/// The first execution in the SQLite file `db` and its journal, read as
/// another process would (the store closed after).
#[allow(dead_code)]
pub(crate) async fn first_execution(
    db: &str,
) -> Option<(
    orchestrate_core::ExecutionId,
    Vec<orchestrate_core::journal::Event>,
)> {
    use orchestrate_core::store::{ExecutionQuery, Store};
    let store = orchestrate_store::sqlite::SqliteStore::open(db)
        .await
        .unwrap();
    let all = store.list_executions(&ExecutionQuery::all()).await.unwrap();
    let found = match all.first() {
        Some(summary) => Some((
            summary.id.clone(),
            store.load(&summary.id, 0).await.unwrap(),
        )),
        None => None,
    };
    store.close().await;
    found
}

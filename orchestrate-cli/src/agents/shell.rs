use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use orchestrate_core::{agent_fn, Agent, AgentError};

use super::bounded::bounded;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

/// How much of each of stdout and stderr is kept (the rest is cut, and
/// said so): an output is journaled.
const MAX_CAPTURE: usize = 1 << 20;

/// The input of agent [`shell`].
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ShellInput {
    /// The program, looked up in `PATH`.
    pub program: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Its working directory (default: the current one).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// Variables added to its environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Written to its standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// After this long it is killed and the attempt fails (transient).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Agent `shell`: runs a program ([`ShellInput`]) without a shell between,
/// and returns `{"stdout", "stderr", "exit_code"}`. A non-zero exit is a
/// permanent failure naming the code and the end of stderr; a timeout is
/// transient. The program sees `ORCHESTRATE_IDEMPOTENCY_KEY`, the same on
/// every attempt and after a resume, to make its side effects idempotent.
/// Cancelled, the program is killed.
pub fn shell() -> impl Agent {
    agent_fn("shell", |input: Value, ctx| async move {
        let input: ShellInput = serde_json::from_value(input)
            .map_err(|e| AgentError::permanent(format!("shell: bad input: {e}")))?;
        let mut command = Command::new(&input.program);
        command
            .args(&input.args)
            .envs(&input.env)
            .env("ORCHESTRATE_IDEMPOTENCY_KEY", ctx.idempotency_key())
            .stdin(if input.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &input.dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|e| {
            AgentError::permanent(format!("shell: cannot start `{}`: {e}", input.program))
        })?;
        // Written while its output is read: a program that answers before
        // it has read all its input would otherwise block on a full pipe,
        // and so would this.
        let feeding = match (input.stdin, child.stdin.take()) {
            (Some(text), Some(mut stdin)) => futures::future::Either::Left(async move {
                // A program that exits without reading its input is not a
                // failure; dropping `stdin` closes it.
                let _ = stdin.write_all(text.as_bytes()).await;
            }),
            _ => futures::future::Either::Right(std::future::ready(())),
        };
        let run = async { futures::join!(feeding, child.wait_with_output()).1 };
        let what = format!("shell: `{}`", input.program);
        let output = bounded(run, input.timeout_ms, &ctx, &what)
            .await?
            .map_err(|e| AgentError::permanent(format!("{what}: {e}")))?;
        let stdout = captured(&output.stdout);
        let stderr = captured(&output.stderr);
        match output.status.code() {
            Some(0) => Ok(json!({"stdout": stdout, "stderr": stderr, "exit_code": 0})),
            code => {
                let tail: String = {
                    let chars: Vec<char> = stderr.trim_end().chars().collect();
                    chars[chars.len().saturating_sub(500)..].iter().collect()
                };
                let how = code.map_or_else(
                    || "was killed by a signal".to_owned(),
                    |c| format!("exited with {c}"),
                );
                Err(AgentError::permanent(format!(
                    "shell: `{}` {how}: {tail}",
                    input.program
                )))
            }
        }
    })
}

/// `bytes` as text, cut at [`MAX_CAPTURE`].
fn captured(bytes: &[u8]) -> String {
    let kept = &bytes[..bytes.len().min(MAX_CAPTURE)];
    let mut text = String::from_utf8_lossy(kept).into_owned();
    if bytes.len() > MAX_CAPTURE {
        text.push_str("\n[truncated]");
    }
    text
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use orchestrate_core::{Context, Retry};
    use std::time::Duration;

    async fn call(input: Value) -> Result<Value, AgentError> {
        shell().call(input, &Context::detached("step")).await
    }

    #[tokio::test]
    async fn captures_output_and_passes_the_idempotency_key() {
        let out = call(json!({"program": "sh", "args": ["-c", "printf %s \"$ORCHESTRATE_IDEMPOTENCY_KEY\"; echo err >&2"]}))
            .await
            .unwrap();
        assert!(out["stdout"].as_str().unwrap().ends_with("/step"), "{out}");
        assert_eq!(out["stderr"], "err\n");
        assert_eq!(out["exit_code"], 0);
    }

    #[tokio::test]
    async fn input_larger_than_a_pipe_is_written_while_the_output_is_read() {
        // `cat` answers as it reads: neither side may wait for the other.
        let big = "x".repeat(300_000);
        let run = call(json!({"program": "cat", "stdin": big, "timeout_ms": 10_000}));
        // Bounded here too: blocked on the pipe, the agent's own timeout
        // was never reached.
        let out = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("not blocked")
            .unwrap();
        assert_eq!(out["stdout"].as_str().map(str::len), Some(300_000));
    }

    #[tokio::test]
    async fn a_non_zero_exit_is_permanent_and_a_timeout_transient() {
        let failed = call(json!({"program": "sh", "args": ["-c", "echo why >&2; exit 4"]}))
            .await
            .unwrap_err();
        assert_eq!(failed.retry(), Retry::Permanent);
        assert!(
            failed.to_string().contains("exited with 4: why"),
            "{failed}"
        );
        let slow = call(json!({"program": "sleep", "args": ["5"], "timeout_ms": 50}))
            .await
            .unwrap_err();
        assert_eq!(slow.retry(), Retry::Transient);
        let missing = call(json!({"program": "no-such-program-anywhere"}))
            .await
            .unwrap_err();
        assert!(missing.to_string().contains("cannot start"), "{missing}");
        let bad = call(json!({"program": "true", "argz": []}))
            .await
            .unwrap_err();
        assert!(bad.to_string().contains("unknown field `argz`"), "{bad}");
    }
}

//! `orchestrate run` on a terminal (a pseudo-terminal, as a user's
//! terminal emulator gives): the live display redraws in place, shows
//! each running step with its agent and attempt, and prints retries as
//! they happen.
#![cfg(unix)]

use std::io::Read as _;

use portable_pty::{native_pty_system, CommandBuilder, PtySize};

#[test]
fn a_run_on_a_terminal_shows_the_live_display() {
    let dir = tempfile::tempdir().unwrap();
    // `flaky` hangs past its timeout the first time (a transient failure,
    // retried) and answers the second.
    let flaky = r#"if [ -f tried ]; then sleep 0.4; echo ok; else touch tried; exec sleep 30; fi"#;
    let workflow = serde_json::json!({"name": "live", "steps": [
        {"id": "nap", "agent": "sleep", "input": 700},
        {"id": "flaky", "agent": "shell", "input": {
            "program": "sh", "args": ["-c", flaky], "timeout_ms": 1000}},
        {"id": "after", "agent": "echo", "input": "done", "depends_on": ["nap", "flaky"]}
    ]});
    std::fs::write(dir.path().join("live.json"), workflow.to_string()).unwrap();

    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    let mut command = CommandBuilder::new(env!("CARGO_BIN_EXE_orchestrate"));
    command.args(["run", "live.json"]);
    command.cwd(dir.path());
    command.env_remove("ORCHESTRATE_STORE");
    command.env("TERM", "xterm-256color");
    let mut child = pair.slave.spawn_command(command).unwrap();
    // Only the child holds the terminal now: its exit ends the reading.
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let mut screen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break, // EOF, or EIO once the child is gone
            Ok(n) => screen.extend_from_slice(&buf[..n]),
        }
    }
    let status = child.wait().unwrap();
    let screen = String::from_utf8_lossy(&screen);
    assert!(status.success(), "{screen}");

    // Redrawn in place: cursor movements and line clears.
    assert!(screen.contains("\x1b[2K"), "{screen:?}");
    // A line per running step, with its agent and attempt; the overall bar.
    assert!(screen.contains("agent `sleep`, attempt 1"), "{screen:?}");
    assert!(screen.contains("agent `shell`, attempt 2"), "{screen:?}");
    assert!(screen.contains("1/3 steps"), "{screen:?}");
    assert!(screen.contains("3/3 steps"), "{screen:?}");
    // Retries as they happen, then the end.
    assert!(
        screen.contains("step `flaky` attempt 1 failed"),
        "{screen:?}"
    );
    assert!(screen.contains("step `flaky` retries in"), "{screen:?}");
    assert!(
        screen.contains("execution finished: Succeeded"),
        "{screen:?}"
    );
    assert!(screen.contains(r#"output: "done""#), "{screen:?}");
}

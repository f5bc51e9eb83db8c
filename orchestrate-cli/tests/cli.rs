//! The real `orchestrate` binary, run as a user would: a workflow of
//! `shell` steps to its end, an invalid one refused with every problem, a
//! run killed with SIGKILL finished by `resume` without running finished
//! steps again, exit codes.

use std::io::{BufRead, BufReader, Lines};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use serde_json::Value;

/// A working directory of its own, with its default store in it.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_orchestrate"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("ORCHESTRATE_STORE");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A step that appends `line` to file `marks` (a count of its runs).
fn mark(id: &str, line: &str, marks: &Path, after: Option<&str>) -> String {
    let depends = after.map_or(String::new(), |a| format!(r#", "depends_on": ["{a}"]"#));
    format!(
        r#"{{"id": "{id}", "agent": "shell", "input": {{"program": "sh", "args": ["-c", "echo {line} >> {}"]}}{depends}}}"#,
        marks.display()
    )
}

#[test]
fn a_workflow_of_shell_steps_runs_to_its_end_in_the_default_sqlite_store() {
    let project = Project::new();
    let file = project.write(
        "greet.json",
        r#"{"name": "greet", "steps": [
            {"id": "hello", "agent": "shell", "input": {"program": "echo", "args": ["hello ${input.who}"]}},
            {"id": "shout", "agent": "shell", "depends_on": ["hello"],
             "input": {"program": "tr", "args": ["a-z", "A-Z"], "stdin": "${steps.hello.output.stdout}"}}
        ]}"#,
    );
    let out = project.run(&[
        "run",
        file.to_str().unwrap(),
        "--input",
        r#"{"who": "ada"}"#,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("step `hello` succeeded"), "{stdout}");
    // Not a terminal: plain lines, no drawing.
    assert!(!stdout.contains('\x1b'), "{stdout:?}");
    assert!(stdout.contains("execution finished: Succeeded"), "{stdout}");
    assert!(
        stdout.contains(r#"output: {"exit_code":0,"stderr":"","stdout":"HELLO ADA\n"}"#),
        "{stdout}"
    );
    assert!(project.path(".orchestrate/state.db").exists());

    let listed = text(&project.run(&["list"]).stdout);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed.contains("greet") && listed.contains("Succeeded"),
        "{listed}"
    );

    // `--json`: one event per line, from the start to the end.
    let out = project.run(&[
        "run",
        file.to_str().unwrap(),
        "--json",
        "--input",
        r#"{"who": "bo"}"#,
    ]);
    assert_eq!(out.status.code(), Some(0));
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["type"], "execution_started");
    assert_eq!(events.last().unwrap()["type"], "execution_finished");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
}

#[test]
fn an_invalid_workflow_exits_2_with_every_problem_and_its_json_path() {
    let project = Project::new();
    let file = project.write(
        "bad.json",
        r#"{"name": "bad", "steps": [
            {"id": "a", "agent": "nope", "depends_on": ["ghost"]},
            {"id": "a", "agent": "echo"}
        ]}"#,
    );
    for command in ["validate", "run"] {
        let out = project.run(&[command, file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = text(&out.stderr);
        for expected in [
            "bad.json: 3 problem(s)",
            "$.steps[1].id: step `a`: duplicate id",
            "$.steps[0].depends_on: step `a`: depends on unknown step `ghost`",
            "$.steps[0].agent: step `a`: unknown agent `nope`",
        ] {
            assert!(
                stderr.contains(expected),
                "{command}: {expected} in {stderr}"
            );
        }
    }
    // Nothing was stored for the refused run.
    assert_eq!(text(&project.run(&["list"]).stdout).lines().count(), 1);

    let broken = project.write("broken.json", "{\"name\": \"x\", \"steps\": [");
    let out = project.run(&["validate", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("line 1, column"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        project.run(&["run"]).status.code(),
        Some(2),
        "a missing argument"
    );
    assert_eq!(project.run(&["--version"]).status.code(), Some(0));
}

#[test]
fn a_failed_step_exits_1_and_inspect_names_its_error() {
    let project = Project::new();
    let file = project.write(
        "fail.json",
        r#"{"name": "fail", "steps": [
            {"id": "boom", "agent": "shell", "input": {"program": "sh", "args": ["-c", "echo broken >&2; exit 3"]}}
        ]}"#,
    );
    let out = project.run(&["run", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let first: Value = serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    let id = first["execution_id"].as_str().unwrap();
    let inspected = text(&project.run(&["inspect", id]).stdout);
    assert!(inspected.contains("status    Failed"), "{inspected}");
    assert!(inspected.contains("exited with 3: broken"), "{inspected}");
    assert_eq!(
        project.run(&["inspect", "no-such-id"]).status.code(),
        Some(2)
    );
}

/// A run in a process of its own, with `--json`.
struct Running {
    child: Child,
    /// Its event lines not read yet.
    lines: Lines<BufReader<ChildStdout>>,
    /// The execution's id.
    id: String,
}

impl Project {
    /// Starts `run FILE --json` and reads its events until step `step`
    /// (or, with `None`, any step) has started.
    fn start_run(&self, file: &Path, step: Option<&str>) -> Running {
        let mut child = self
            .command(&["run", file.to_str().unwrap(), "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut id = None;
        for line in lines.by_ref() {
            let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
            id.get_or_insert_with(|| event["execution_id"].as_str().unwrap().to_owned());
            if event["type"] == "step_started" && step.is_none_or(|s| event["step"] == s) {
                break;
            }
        }
        Running {
            child,
            lines,
            id: id.unwrap(),
        }
    }
}

/// Runs a workflow `first` → `wait` (1.5 s) → `last`, each shell step
/// marking file `marks`, and kills its process with SIGKILL while `wait`
/// runs; returns the execution's id.
#[cfg(unix)]
fn killed_while_waiting(project: &Project, marks: &Path) -> String {
    let file = project.write(
        "slow.json",
        &format!(
            r#"{{"name": "slow", "steps": [{}, {{"id": "wait", "agent": "sleep", "input": 1500, "depends_on": ["first"]}}, {}]}}"#,
            mark("first", "first", marks, None),
            mark("last", "last", marks, Some("wait")),
        ),
    );
    let Running { mut child, id, .. } = project.start_run(&file, Some("wait"));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(std::fs::read_to_string(marks).unwrap(), "first\n");
    id
}

#[cfg(unix)]
#[test]
fn a_run_killed_with_sigkill_is_finished_by_resume_without_rerunning_finished_steps() {
    let project = Project::new();
    let marks = project.path("marks");
    let id = killed_while_waiting(&project, &marks);
    let listed = text(&project.run(&["list", "--status", "running"]).stdout);
    assert!(listed.contains(&id), "{listed}");

    // `wait` was in flight: it runs again; `first` does not.
    let out = project.run(&["resume", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("resumed (1 step(s) to run again)"),
        "{stdout}"
    );
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "first\nlast\n");
    let inspected = text(&project.run(&["inspect", &id]).stdout);
    assert!(inspected.contains("status    Succeeded"), "{inspected}");
    // Resuming a finished execution runs nothing.
    assert_eq!(project.run(&["resume", &id]).status.code(), Some(0));
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "first\nlast\n");
}

#[cfg(unix)]
#[test]
fn resume_runs_the_definition_the_execution_started_with_not_an_edited_one() {
    let project = Project::new();
    let marks = project.path("marks");
    let id = killed_while_waiting(&project, &marks);
    // The file is edited (same name, same version) and run again.
    let edited = project.write(
        "slow.json",
        &format!(
            r#"{{"name": "slow", "steps": [{}, {{"id": "wait", "agent": "sleep", "input": 1, "depends_on": ["first"]}}, {}]}}"#,
            mark("first", "first", &marks, None),
            mark("last", "NEW-last", &marks, Some("wait")),
        ),
    );
    let out = project.run(&["run", edited.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = project.run(&["resume", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&marks).unwrap(),
        "first\nfirst\nNEW-last\nlast\n"
    );
}

#[cfg(unix)]
#[test]
fn an_execution_whose_process_was_killed_is_cancelled_by_id() {
    let project = Project::new();
    let marks = project.path("marks");
    let id = killed_while_waiting(&project, &marks);
    // No process takes the request: after `--wait`, it is ended here.
    let out = project.run(&["cancel", &id, "--wait", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no process took the request within 1s"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("Cancelled"),
        "{}",
        text(&out.stdout)
    );
    let inspected = text(&project.run(&["inspect", &id]).stdout);
    assert!(inspected.contains("status    Cancelled"), "{inspected}");
    // Nothing ran after the kill.
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "first\n");
    assert_eq!(
        project.run(&["cancel", "no-such-id"]).status.code(),
        Some(2)
    );
}

#[test]
fn cancel_from_a_second_process_stops_a_running_execution() {
    let project = Project::new();
    let file = project.write(
        "long.json",
        r#"{"name": "long", "steps": [
            {"id": "nap", "agent": "sleep", "input": 60000},
            {"id": "after", "agent": "echo", "depends_on": ["nap"], "input": "never"}
        ]}"#,
    );
    let Running {
        child: mut runner,
        lines,
        id,
    } = project.start_run(&file, None);

    // Long enough that only the running process can have ended it.
    let out = project.run(&["cancel", &id, "--wait", "50"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("Cancelled"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));

    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(runner.wait().unwrap().code(), Some(130), "{rest:?}");
    let last: Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(last["type"], "execution_finished");
    assert_eq!(last["status"], "cancelled");
    let inspected = text(&project.run(&["inspect", &id]).stdout);
    assert!(inspected.contains("status    Cancelled"), "{inspected}");
    assert!(!inspected.contains("never"), "{inspected}");
}

#[test]
fn init_writes_the_tested_template_and_a_manifest_cargo_reads() {
    let project = Project::new();
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let checkout = here.parent().unwrap().to_str().unwrap();
    let out = project.run(&["init", "My Agents", "--orchestrate-path", checkout]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let dir = project.path("My Agents");
    // The files are the template this crate builds and tests.
    for file in [
        "src/main.rs",
        "src/agents.rs",
        "workflows/hello.json",
        "tests/workflow.rs",
    ] {
        assert_eq!(
            std::fs::read_to_string(dir.join(file)).unwrap(),
            std::fs::read_to_string(here.join("template").join(file)).unwrap(),
            "{file}"
        );
    }
    let metadata = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--no-deps",
            "--offline",
            "--format-version",
            "1",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(metadata.status.success(), "{}", text(&metadata.stderr));
    let metadata: Value = serde_json::from_slice(&metadata.stdout).unwrap();
    let package = &metadata["packages"][0];
    assert_eq!(package["name"], "my-agents");
    let paths: Vec<&str> = package["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert_eq!(
        paths,
        [
            here.to_str().unwrap(),
            &format!("{checkout}/orchestrate-core")
        ],
        "{package}"
    );
    assert!(!project.path(".orchestrate").exists(), "no store was made");

    // Nothing is overwritten.
    std::fs::write(dir.join("src/agents.rs"), "mine").unwrap();
    let again = project.run(&["init", "My Agents"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("exists already"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("src/agents.rs")).unwrap(),
        "mine"
    );
}

#[test]
fn a_second_run_with_the_same_key_is_the_first() {
    let project = Project::new();
    let marks = project.path("marks");
    let file = project.write(
        "once.json",
        &format!(
            r#"{{"name": "once", "steps": [{}]}}"#,
            mark("only", "ran", &marks, None)
        ),
    );
    let run = || {
        let out = project.run(&["run", file.to_str().unwrap(), "--key", "deploy-7", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let first: Value = serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
        first["execution_id"].as_str().unwrap().to_owned()
    };
    assert_eq!(run(), run());
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "ran\n");
}

#[test]
fn a_closed_pipe_stops_the_output_but_not_the_run() {
    let project = Project::new();
    let file = project.write(
        "nap.json",
        r#"{"name": "nap", "steps": [
            {"id": "nap", "agent": "sleep", "input": 300},
            {"id": "after", "agent": "echo", "depends_on": ["nap"], "input": "done"}
        ]}"#,
    );
    for json in [false, true] {
        let mut args = vec!["run", file.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        // What `orchestrate run nap.json | head -1` does.
        let mut child = project
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        assert!(
            !text(&out.stderr).contains("panicked"),
            "{}",
            text(&out.stderr)
        );
    }
    let listed = text(&project.run(&["list"]).stdout);
    assert_eq!(listed.matches("Succeeded").count(), 2, "{listed}");
}

#[test]
fn inspect_export_plan_and_help_show_what_they_say() {
    let project = Project::new();
    let long = "x".repeat(20_000);
    let file = project.write(
        "show.json",
        &format!(
            r#"{{"name": "show", "steps": [
                {{"id": "first", "agent": "echo", "input": {{"api_token": "s3cret", "note": "{long}"}}}},
                {{"id": "second", "agent": "echo", "depends_on": ["first"], "input": 2}}
            ]}}"#
        ),
    );
    let out = project.run(&["run", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let first: Value = serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    let id = first["execution_id"].as_str().unwrap();

    let inspected = text(&project.run(&["inspect", id, "--tree", "--gantt"]).stdout);
    for expected in [
        "status    Succeeded",
        "second",
        "calls:",
        "gantt",
        "dateFormat x",
        "section steps",
    ] {
        assert!(inspected.contains(expected), "{expected} in {inspected}");
    }

    // The journal, redacted and capped.
    let exported = text(&project.run(&["export", id]).stdout);
    let journal: Value = serde_json::from_str(&exported).unwrap();
    assert!(
        journal.to_string().contains("execution_finished"),
        "{journal}"
    );
    assert!(!exported.contains("s3cret"), "a secret was exported");
    assert!(exported.contains("[redacted]") && exported.contains("[truncated]"));
    assert!(exported.len() < long.len(), "the long field was cut");

    let dot = text(
        &project
            .run(&["plan", file.to_str().unwrap(), "--format", "dot"])
            .stdout,
    );
    assert!(
        dot.contains("digraph") && dot.contains("first") && dot.contains("second"),
        "{dot}"
    );
    let plain = text(&project.run(&["plan", file.to_str().unwrap()]).stdout);
    assert!(
        plain.contains("first") && plain.contains("second"),
        "{plain}"
    );

    let schema: Value = serde_json::from_slice(&project.run(&["schema"]).stdout).unwrap();
    assert!(schema["properties"]["steps"].is_object(), "{schema}");

    // An example for every command.
    for command in [
        "init", "validate", "plan", "run", "serve", "schema", "list", "inspect", "logs", "export",
        "cancel", "resume", "approve", "reject",
    ] {
        let help = text(&project.run(&[command, "--help"]).stdout);
        assert!(help.contains("Example:"), "`{command} --help`: {help}");
    }
}

#[test]
fn the_shipped_workflows_validate_and_run() {
    let project = Project::new();
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/hello.json");
    assert_eq!(project.run(&["validate", hello]).status.code(), Some(0));
    let out = project.run(&["run", hello, "--input", r#"{"who": "Ada"}"#]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(r#""stdout":"HELLO, ADA!\n""#),
        "{}",
        text(&out.stdout)
    );
    let plan = text(&project.run(&["plan", hello, "--format", "mermaid"]).stdout);
    assert!(plan.contains("greet") && plan.contains("shout"), "{plan}");
}

#[test]
fn logs_follow_an_execution_running_in_another_process_to_its_end() {
    let project = Project::new();
    let file = project.write(
        "nap.json",
        r#"{"name": "nap", "steps": [
            {"id": "nap", "agent": "sleep", "input": 700},
            {"id": "after", "agent": "echo", "depends_on": ["nap"], "input": "done"}
        ]}"#,
    );
    let mut runner = project
        .command(&["run", file.to_str().unwrap(), "--json"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(runner.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    let id = first["execution_id"].as_str().unwrap().to_owned();

    let followed = project.run(&["logs", &id, "--follow"]);
    assert_eq!(followed.status.code(), Some(0));
    let followed = text(&followed.stdout);
    let order: Vec<usize> = [
        "workflow `nap`",
        "step `nap` started",
        "step `after` succeeded",
        "execution finished: Succeeded",
    ]
    .iter()
    .map(|s| {
        followed
            .find(s)
            .unwrap_or_else(|| panic!("{s} in {followed}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{followed}");
    assert!(runner.wait().unwrap().success());

    // Finished: the same lines, at once; as JSON, every event.
    let again = text(&project.run(&["logs", &id]).stdout);
    assert_eq!(again, followed);
    let events = text(&project.run(&["logs", &id, "--json"]).stdout);
    assert!(events
        .lines()
        .all(|l| serde_json::from_str::<Value>(l).is_ok()));
    assert_eq!(project.run(&["logs", "no-such-id"]).status.code(), Some(2));
}

#[test]
fn a_parked_execution_is_approved_or_rejected_from_the_command_line() {
    let project = Project::new();
    let file = project.write(
        "ship.json",
        r#"{"name": "ship", "steps": [
            {"id": "ask", "agent": "approval", "input": {"question": "ship it?"}},
            {"id": "ship", "agent": "echo", "depends_on": ["ask"], "input": "shipped ${steps.ask.output}"}
        ]}"#,
    );
    let start = |project: &Project| {
        let out = project.run(&["run", file.to_str().unwrap(), "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let events: Vec<Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(events.last().unwrap()["type"], "execution_parked");
        events[0]["execution_id"].as_str().unwrap().to_owned()
    };
    let id = start(&project);
    assert!(text(&project.run(&["list", "--status", "parked"]).stdout).contains(&id));
    // Resumed, a parked execution still waits: the command says so.
    let resumed = project.run(&["resume", &id]);
    assert_eq!(resumed.status.code(), Some(0));
    assert!(
        text(&resumed.stderr).contains("waits for a decision"),
        "{}",
        text(&resumed.stderr)
    );
    let out = project.run(&["approve", &id, "ask", "--value", r#""v1""#]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(r#"output: "shipped v1""#),
        "{}",
        text(&out.stdout)
    );

    let id = start(&project);
    let out = project.run(&["reject", &id, "ask", "--reason", "not today"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a rejected step fails the workflow"
    );
    let inspected = text(&project.run(&["inspect", &id]).stdout);
    assert!(inspected.contains("not today"), "{inspected}");
    // Not waiting any more.
    assert_eq!(project.run(&["approve", &id, "ask"]).status.code(), Some(2));
}

#[tokio::test]
async fn serve_answers_over_http_and_its_runs_are_in_the_store() {
    let project = Project::new();
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/hello.json");
    let mut server = project
        .command(&[
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--workflow",
            hello,
            "--token",
            "t0k",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let base = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    let client = reqwest::Client::new();
    let started: Value = client
        .post(format!("{base}/workflows/hello/executions"))
        .bearer_auth("t0k")
        .json(&serde_json::json!({"who": "Bo"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let status: Value = client
            .get(format!("{base}/executions/{id}"))
            .bearer_auth("t0k")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] == "succeeded" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{status}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let refused = client
        .get(format!("{base}/workflows"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    server.kill().unwrap();
    server.wait().unwrap();
    // The run is in the project's store, for the command line to read.
    let inspected = text(&project.run(&["inspect", &id]).stdout);
    assert!(inspected.contains("status    Succeeded"), "{inspected}");
}

#[cfg(unix)]
#[test]
fn ctrl_c_cancels_the_run_gracefully_and_exits_130() {
    let project = Project::new();
    let file = project.write(
        "long.json",
        r#"{"name": "long", "steps": [{"id": "nap", "agent": "sleep", "input": 60000}]}"#,
    );
    let Running {
        mut child,
        lines,
        id,
    } = project.start_run(&file, None);
    // What a terminal's Ctrl-C sends.
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    let last: Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(last["type"], "execution_finished");
    assert_eq!(last["status"], "cancelled");
    let inspected = text(&project.run(&["inspect", &id]).stdout);
    assert!(inspected.contains("status    Cancelled"), "{inspected}");
}

#[test]
fn a_run_kept_in_postgresql_is_read_back_by_another_invocation() {
    let Ok(url) = std::env::var("ORCHESTRATE_TEST_POSTGRES_URL") else {
        eprintln!("skipped: ORCHESTRATE_TEST_POSTGRES_URL is not set");
        return;
    };
    let project = Project::new();
    let hello = concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/hello.json");
    let out = project.run(&[
        "--store",
        &url,
        "run",
        hello,
        "--json",
        "--input",
        r#"{"who": "Pg"}"#,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let first: Value = serde_json::from_str(text(&out.stdout).lines().next().unwrap()).unwrap();
    let id = first["execution_id"].as_str().unwrap().to_owned();
    // From the environment this time, and nothing written locally.
    let inspected = project
        .command(&["inspect", &id])
        .env("ORCHESTRATE_STORE", &url)
        .output()
        .unwrap();
    let inspected = text(&inspected.stdout);
    assert!(inspected.contains("status    Succeeded"), "{inspected}");
    assert!(!project.path(".orchestrate").exists());
}

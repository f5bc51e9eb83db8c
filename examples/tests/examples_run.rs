//! The examples run in CI: their code is compiled in here and executed.

#[path = "../hello_workflow.rs"]
#[allow(dead_code)]
mod hello_workflow;

#[path = "../research_pipeline.rs"]
#[allow(dead_code)]
mod research_pipeline;

use orchestrate_core::ExecutionStatus;
use serde_json::json;

#[tokio::test]
async fn hello_workflow_interpolates_and_reports() {
    let report = hello_workflow::run().await.unwrap();
    assert!(
        report.contains("greet -> {\"greeting\":\"Hello, orchestrate\"}"),
        "{report}"
    );
    assert!(
        report.contains("shout -> \"HELLO, ORCHESTRATE!!!\""),
        "{report}"
    );
    assert!(
        report.contains("Batch 1: [greet]\nBatch 2: [shout]"),
        "{report}"
    );
    assert!(report.contains("journal: 6 events"), "{report}");
}

// Paused: the stand-in tools' sleeps run on tokio's virtual clock.
#[tokio::test(start_paused = true)]
async fn research_pipeline_fans_out_and_joins() {
    let done = research_pipeline::run("rust").await.unwrap();
    assert_eq!(done.status(), ExecutionStatus::Succeeded);
    assert_eq!(
        done.output("report"),
        Some(&json!({"title": "Report: rust", "sources": 3}))
    );
    // The two searches overlap: each starts before the other finishes.
    let web = done.step("web").unwrap();
    let papers = done.step("papers").unwrap();
    assert!(web.started_us < papers.finished_us && papers.started_us < web.finished_us);
}

#[path = "../durable_resume.rs"]
#[allow(dead_code)]
mod durable_resume;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_resume_stops_then_finishes_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("resume.db");
    // The first invocation runs on a runtime of its own, dropped when it
    // stops: its tasks die as they would with the process.
    let first = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(durable_resume::run(&db, Some(3))).unwrap()
        })
        .await
        .unwrap()
    };
    assert!(
        matches!(first, durable_resume::Outcome::Stopped(3)),
        "{first:?}"
    );
    match durable_resume::run(&db, None).await.unwrap() {
        durable_resume::Outcome::Finished { view, resumed } => {
            assert!(resumed);
            assert_eq!(view.status(), ExecutionStatus::Succeeded);
            assert_eq!(
                view.output("publish"),
                Some(
                    &json!({"text": "Durable agents +fetch +clean +summarize +translate +review +publish"})
                )
            );
        }
        other => panic!("expected a finished run, got {other:?}"),
    }
    // Steps finished before the stop ran once; only the rest ran after it.
    use orchestrate_core::store::{ExecutionQuery, Store};
    let store = orchestrate_store::sqlite::SqliteStore::open(&db)
        .await
        .unwrap();
    let id = store.list_executions(&ExecutionQuery::all()).await.unwrap()[0]
        .id
        .clone();
    let events = store.load(&id, 0).await.unwrap();
    for step in ["fetch", "clean", "summarize"] {
        let starts = events
            .iter()
            .filter(|e| {
                e.kind.name() == "step_started" && e.kind.step().is_some_and(|s| &**s == step)
            })
            .count();
        assert_eq!(starts, 1, "{step} ran again after the resume");
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind.name() == "execution_resumed")
            .count(),
        1
    );
}

#[path = "../deep_research.rs"]
#[allow(dead_code)]
mod deep_research;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_research_maps_under_a_budget_and_stops_the_branch_that_overruns() {
    let dir = tempfile::tempdir().unwrap();
    let (output, tree) = deep_research::run(
        &dir.path().join("research.db"),
        "why is the sky blue and what is at the bottom of the rabbit hole and how do tides work?",
    )
    .await
    .unwrap();
    assert_eq!(
        output["report"],
        json!("why is the sky blue and what is at the bottom of the rabbit hole and how do tides work?: 2 findings from 4 sources")
    );
    let dropped = output["dropped"].as_array().unwrap();
    assert_eq!(dropped.len(), 1);
    assert!(
        dropped[0]["why"].as_str().unwrap().contains("budget"),
        "{output}"
    );
    // Three researchers under the planner, the overrun one failed, then the
    // writer; budgets as the journal has them.
    assert!(tree.contains("research/1 → researcher [failed"), "{tree}");
    assert!(tree.contains("budget 300/300 used"), "{tree}");
    assert!(tree.contains("research/3 → writer [completed"), "{tree}");
    // 50 + 200 + 300 + 200 + 80 tokens.
    assert!(
        tree.contains("execution budget: 830/2000 used, 1170 left"),
        "{tree}"
    );
}

#[path = "../support_desk.rs"]
#[allow(dead_code)]
mod support_desk;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_desk_hands_off_and_its_gate_sends_one_answer_back() {
    let dir = tempfile::tempdir().unwrap();
    let (output, tree) = support_desk::run(&dir.path().join("desk.db"), "Where is my refund?")
        .await
        .unwrap();
    assert_eq!(
        output["answer"],
        json!("your refund was issued; it reaches your account within 5 working days")
    );
    assert_eq!(output["hops"], json!(3));
    assert_eq!(output["state"], json!({"ticket": "T-1042"}));
    assert_eq!(
        output["history"][1]["rejected"],
        json!("tell the customer when to expect it")
    );
    assert!(
        tree.contains(
            "◆ hop h0 = {\"from\":\"triage\",\"reason\":\"mentions a refund\",\"to\":\"billing\"}"
        ),
        "{tree}"
    );
    assert!(tree.contains("desk/h1.g0 → reviewer [completed"), "{tree}");
    assert!(
        tree.contains("◆ gate h2.g0 = {\"gate\":\"reviewer\",\"pass\":true}"),
        "{tree}"
    );
}

#[path = "../research_team.rs"]
#[allow(dead_code)]
mod research_team;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn research_team_stops_the_branch_that_overruns_its_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (output, tree) = research_team::run(&dir.path().join("team.db"))
        .await
        .unwrap();
    let topics = output["results"].as_array().unwrap();
    assert_eq!(
        topics[0]["results"][0],
        json!({"question": "how tides work", "tokens": 120})
    );
    assert_eq!(topics[1]["results"][0]["$stopped"]["node"], json!("ana-3"));
    assert_eq!(
        topics[1]["results"][1],
        json!({"question": "how deep wells go", "tokens": 160})
    );
    assert!(
        tree.contains("team/s1.0/s0.0/0 → analyse [failed"),
        "{tree}"
    );
    // 120 + 160 + 160: the stopped branch consumed nothing.
    assert!(tree.contains("execution budget: 440/2000 used"), "{tree}");
}

#[path = "../worker_pool.rs"]
#[allow(dead_code)]
mod worker_pool;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_pool_restarts_then_quarantines_its_flaky_worker() {
    let dir = tempfile::tempdir().unwrap();
    let report = worker_pool::run(&dir.path().join("pool.db")).await.unwrap();
    let expected: Vec<i64> = (1..=24).map(|n| n * 10).collect();
    assert_eq!(report.output, json!(expected));
    assert_eq!(
        report.flaky_instances, 2,
        "the first instance and one restart"
    );
    assert_eq!(report.recoveries, ["restart flaky", "quarantine flaky"]);
    let flaky = &report.health[1];
    assert_eq!((flaky.successes, flaky.failures, flaky.restarts), (0, 4, 1));
    assert!(
        report.tree.contains("◆ reassign t1.1 = \"steady-2\""),
        "{}",
        report.tree
    );
}

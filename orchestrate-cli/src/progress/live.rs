//! Progress on a terminal: a line per running step (its agent, attempt
//! and elapsed time) and an overall bar, redrawn in place, with what
//! happens (retries, breaker changes, steps ending) printed above them.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use orchestrate_core::journal::{Event, EventKind};

use super::describe;

/// How often the running steps' spinners and times are redrawn.
const TICK: Duration = Duration::from_millis(100);

/// The live display of one execution.
pub(crate) struct Live {
    bars: MultiProgress,
    overall: ProgressBar,
    /// The line of each running step, and its agent.
    running: HashMap<Arc<str>, (ProgressBar, Arc<str>)>,
}

impl Live {
    /// Whether standard output is a terminal the bars can be drawn on.
    pub(crate) fn can_draw() -> bool {
        !ProgressDrawTarget::stdout().is_hidden()
    }

    /// A display drawn on standard output, which must be a terminal.
    pub(crate) fn new() -> Self {
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let overall = bars.add(ProgressBar::new(0));
        overall.set_style(style(
            "{bar:30.cyan/blue} {pos}/{len} steps  {elapsed}  {msg}",
            ProgressStyle::default_bar(),
        ));
        Self {
            bars,
            overall,
            running: HashMap::new(),
        }
    }

    /// Shows `event`.
    ///
    /// # Errors
    ///
    /// When the terminal cannot be written.
    pub(crate) fn show(&mut self, event: &Event) -> io::Result<()> {
        match &event.kind {
            EventKind::ExecutionStarted(start) => {
                self.overall
                    .set_length(u64::try_from(start.steps.len()).unwrap_or(u64::MAX));
                self.overall.set_message(start.workflow.to_string());
                // Drawn from here: its length is known.
                self.overall.enable_steady_tick(TICK);
            }
            EventKind::StepStarted { step, agent } => {
                let bar = self
                    .bars
                    .insert_before(&self.overall, ProgressBar::new_spinner());
                bar.set_style(style(
                    "{spinner:.green} {prefix:.bold} {msg}  {elapsed}",
                    ProgressStyle::default_spinner(),
                ));
                bar.set_prefix(step.to_string());
                bar.set_message(format!("agent `{agent}`, attempt 1"));
                bar.enable_steady_tick(TICK);
                self.running.insert(step.clone(), (bar, agent.clone()));
                return Ok(());
            }
            EventKind::AttemptStarted { step, attempt } => {
                if let Some((bar, agent)) = self.running.get(step) {
                    bar.set_message(format!("agent `{agent}`, attempt {attempt}"));
                }
                return Ok(());
            }
            EventKind::RetryScheduled {
                step,
                next_attempt,
                delay_ms,
            } => {
                if let Some((bar, agent)) = self.running.get(step) {
                    bar.set_message(format!(
                        "agent `{agent}`, attempt {next_attempt} in {delay_ms} ms"
                    ));
                }
            }
            EventKind::StepSucceeded { step, .. }
            | EventKind::StepFailed { step, .. }
            | EventKind::StepSkipped { step, .. }
            | EventKind::StepCancelled { step } => {
                self.stop(step);
                self.overall.inc(1);
                // `inc` draws at most so often; a step's end is shown.
                self.overall.force_draw();
            }
            EventKind::StepInterrupted { step, .. } => self.stop(step),
            EventKind::ExecutionFinished { .. } | EventKind::ExecutionParked { .. } => {
                self.finish();
            }
            _ => {}
        }
        match describe(event) {
            Some(line) => self.println(&line),
            None => Ok(()),
        }
    }

    /// Prints `text` on standard error without garbling the bars.
    pub(crate) fn note(&self, text: &str) {
        self.bars.suspend(|| eprintln!("{text}"));
    }

    /// Clears the bars: what is printed next goes below the lines above.
    pub(crate) fn finish(&mut self) {
        for (_, (bar, _)) in self.running.drain() {
            bar.finish_and_clear();
        }
        self.overall.finish_and_clear();
    }

    fn stop(&mut self, step: &str) {
        if let Some((bar, _)) = self.running.remove(step) {
            bar.finish_and_clear();
            self.bars.remove(&bar);
        }
    }

    fn println(&self, line: &str) -> io::Result<()> {
        if self.overall.is_finished() {
            println!("{line}");
            return Ok(());
        }
        self.bars.println(line)
    }
}

/// The style `template` draws, or `fallback` should it not parse.
fn style(template: &str, fallback: ProgressStyle) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or(fallback)
}

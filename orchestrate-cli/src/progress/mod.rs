//! How a run shows its progress: redrawn in place on a terminal
//! ([`Live`]), as plain timestamped lines that stay readable in a log
//! file ([`Lines`]), or as one JSON event per line for scripts.

mod live;

use std::fmt::Write as _;
use std::io::{self, IsTerminal as _, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use orchestrate_core::journal::{Event, EventKind};

pub(crate) use live::Live;

/// Where a followed execution's events go.
pub(crate) enum Display {
    /// One JSON event per line.
    Json,
    /// Plain, timestamped lines.
    Lines(Lines),
    /// The live display.
    Live(Live),
    /// Nothing: standard output was closed (`| head`).
    Closed,
}

impl Display {
    /// JSON when asked for; otherwise live on a terminal that can redraw
    /// (not `TERM=dumb`), lines elsewhere.
    pub(crate) fn choose(json: bool) -> Self {
        if json {
            Display::Json
        } else if io::stdout().is_terminal() && Live::can_draw() {
            Display::Live(Live::new())
        } else {
            Display::Lines(Lines::default())
        }
    }

    /// Shows `event`.
    ///
    /// # Errors
    ///
    /// When standard output cannot be written (a closed pipe).
    pub(crate) fn show(&mut self, event: &Event) -> io::Result<()> {
        let line = match self {
            Display::Live(live) => return live.show(event),
            Display::Closed => return Ok(()),
            Display::Json => serde_json::to_string(event).ok(),
            Display::Lines(lines) => lines.line(event),
        };
        let Some(line) = line else { return Ok(()) };
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{line}")?;
        stdout.flush()
    }

    /// Prints `text` on standard error, around the live display if any.
    pub(crate) fn note(&self, text: &str) {
        match self {
            Display::Live(live) => live.note(text),
            _ => eprintln!("{text}"),
        }
    }

    /// Ends the live display, if any, so that what follows prints below.
    pub(crate) fn finish(&mut self) {
        if let Display::Live(live) = self {
            live.finish();
        }
    }
}

/// Turns events into lines, each stamped with the time it happened.
#[derive(Default)]
pub(crate) struct Lines {
    /// When the execution started, in ms since the Unix epoch.
    started_at_ms: Option<u64>,
}

impl Lines {
    /// The line for `event`, or `None` for events too fine to show
    /// (calls, decisions, budgets: `inspect --tree` shows those).
    pub(crate) fn line(&mut self, event: &Event) -> Option<String> {
        if let EventKind::ExecutionStarted(start) = &event.kind {
            self.started_at_ms = Some(start.started_at_ms);
        }
        let what = describe(event)?;
        // Events read back from the journal (a resumed run's first ones)
        // keep the time they happened.
        let at = match self.started_at_ms {
            Some(ms) => UNIX_EPOCH + Duration::from_millis(ms) + Duration::from_micros(event.at_us),
            None => SystemTime::now(),
        };
        Some(format!("{}  {what}", timestamp(at)))
    }
}

/// What `event` says, or `None` for events too fine to show.
pub(crate) fn describe(event: &Event) -> Option<String> {
    let what = match &event.kind {
        EventKind::ExecutionStarted(start) => format!(
            "execution {} started: workflow `{}` ({} steps)",
            event.execution_id,
            start.workflow,
            start.steps.len()
        ),
        EventKind::ExecutionResumed { rerun } => format!(
            "execution {} resumed ({} step(s) to run again)",
            event.execution_id,
            rerun.len()
        ),
        EventKind::StepStarted { step, agent } => {
            format!("step `{step}` started (agent `{agent}`)")
        }
        EventKind::AttemptStarted { step, attempt } => {
            format!("step `{step}` attempt {attempt} started")
        }
        EventKind::AttemptFailed {
            step,
            attempt,
            error,
        } => format!("step `{step}` attempt {attempt} failed: {error}"),
        EventKind::RetryScheduled {
            step,
            next_attempt,
            delay_ms,
        } => format!("step `{step}` retries in {delay_ms} ms (attempt {next_attempt})"),
        EventKind::Throttled { step, delay_ms, .. } => {
            format!("step `{step}` throttled for {delay_ms} ms")
        }
        EventKind::AttemptRejected { step, reason, .. } => {
            format!("step `{step}` attempt rejected: {reason}")
        }
        EventKind::BreakerTransition {
            step,
            breaker,
            from,
            to,
        } => format!("step `{step}`: breaker `{breaker}` {from:?} -> {to:?}"),
        EventKind::StepSucceeded { step, attempts, .. } => {
            format!("step `{step}` succeeded after {attempts} attempt(s)")
        }
        EventKind::StepFailed {
            step,
            error,
            attempts,
        } => format!("step `{step}` failed after {attempts} attempt(s): {error}"),
        EventKind::StepInterrupted { step, .. } => {
            format!("step `{step}` waits for a decision (approve or reject)")
        }
        EventKind::StepDecided { step, approved, .. } => format!(
            "step `{step}` {}",
            if *approved { "approved" } else { "rejected" }
        ),
        EventKind::StepSkipped { step, reason } => format!("step `{step}` skipped ({reason:?})"),
        EventKind::StepCancelled { step } => format!("step `{step}` cancelled"),
        EventKind::CancelRequested => "cancel requested".to_owned(),
        EventKind::ExecutionParked { steps } => {
            format!("execution parked: waiting on {}", steps.join(", "))
        }
        EventKind::ExecutionFinished { status, error } => {
            let mut text = format!("execution finished: {status:?}");
            if let Some(error) = error {
                let _ = write!(text, ": {error}");
            }
            text
        }
        _ => return None,
    };
    Some(what)
}

/// `at` as an RFC 3339 UTC time with milliseconds.
pub(crate) fn timestamp(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// The date `days` after 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = UNIX_EPOCH + Duration::from_millis(1_764_957_601_123);
        assert_eq!(timestamp(at), "2025-12-05T18:00:01.123Z");
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(timestamp(leap), "2000-02-29T00:00:00.000Z");
    }
}

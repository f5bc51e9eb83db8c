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

//! Progress of long steps: a spinner on a terminal, log lines elsewhere.

use std::sync::Mutex;

use indicatif::ProgressBar;

/// The step last shown, for the message of a Ctrl-C (cli/interrupt.rs).
static LAST_STEP: Mutex<Option<String>> = Mutex::new(None);

/// Shows a step on the spinner, or logs it when there is none.
pub fn step(progress: Option<&ProgressBar>, message: String) {
    *LAST_STEP.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.clone());
    if let Some(p) = progress {
        p.reset_elapsed();
        p.set_message(message);
    } else {
        tracing::info!("{message}");
    }
}

/// The step last shown in this process, if any.
pub fn last_step() -> Option<String> {
    LAST_STEP.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

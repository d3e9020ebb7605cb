//! Progress of long steps: a spinner on a terminal, log lines elsewhere.

use indicatif::ProgressBar;

/// Shows a step on the spinner, or logs it when there is none.
pub fn step(progress: Option<&ProgressBar>, message: String) {
    if let Some(p) = progress {
        p.reset_elapsed();
        p.set_message(message);
    } else {
        tracing::info!("{message}");
    }
}

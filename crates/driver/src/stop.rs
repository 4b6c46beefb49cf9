//! A request to stop the running command early, for hosts that cannot
//! kill the process (the Python package stops a run on Ctrl-C this way).
//!
//! [`request`] sets a process-wide flag; the learning loop checks it before
//! every iteration and the final H pass before every block, and the
//! command then fails with [`DriverError::Interrupted`] — outputs are
//! written under temporary names until complete, so nothing is left under a
//! final name (a checkpoint written at an earlier epoch stays, as after a
//! killed run). [`reset`] clears the flag before the next command. The flag
//! is shared by every command running in the process.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::DriverError;

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks the running command(s) to stop at the next iteration or block.
pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

/// Clears a stop request (before starting a command).
pub fn reset() {
    STOP.store(false, Ordering::SeqCst);
}

/// `Err(Interrupted)` when a stop was requested.
pub(crate) fn check() -> Result<(), DriverError> {
    if STOP.load(Ordering::SeqCst) {
        return Err(DriverError::Interrupted);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_fails_the_check_until_reset() {
        reset();
        assert!(check().is_ok());
        request();
        let err = check().unwrap_err();
        assert!(matches!(err, DriverError::Interrupted) && !err.is_input_error());
        reset();
        assert!(check().is_ok());
    }
}

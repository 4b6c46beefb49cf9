//! Log lines and summaries that can never stop a run.
//!
//! `println!`/`eprintln!` panic when their stream is closed (`inmf run … |
//! head -1`, a terminal that went away); a log line is not worth a run.
//! These write the text and ignore every error: the outputs are written
//! the same, and the exit code tells whether the run succeeded.

use std::io::Write;

/// Writes `text` and a newline to stderr, ignoring errors.
pub fn line(text: &str) {
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(text.as_bytes());
    let _ = e.write_all(b"\n");
}

/// Writes `text` to stdout as it is, ignoring errors.
pub fn out(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

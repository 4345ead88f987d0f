//! The console destination: messages printed to standard output, one block each.
//!
//! A write that fails is worth retrying, never a dead letter: the output may come back.
//! Log lines go to standard error and are not this module's.

use tokio::io::AsyncWriteExt;

use super::Outcome;

/// Prints `[name] text`, continuation lines indented, then flushes so that a message is
/// visible at once even when stdout is a pipe.
pub(super) async fn print(name: &str, body: &[u8]) -> Outcome {
    let text = String::from_utf8_lossy(body);
    let block = format!("[{name}] {}\n", text.replace('\n', "\n    "));
    let mut stdout = tokio::io::stdout();
    let written = async {
        stdout.write_all(block.as_bytes()).await?;
        stdout.flush().await
    };
    match written.await {
        Ok(()) => Outcome::Sent,
        Err(err) => Outcome::Retry {
            reason: format!("stdout: {err}"),
            after: None,
        },
    }
}

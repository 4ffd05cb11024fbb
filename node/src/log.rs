//! A build's log on the node: written synchronously by the build steps,
//! shipped to the API in batches (every 200 ms or 64 KiB) by a background
//! task, at increasing byte offsets so that a retried batch is stored once.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::client::NodeClient;

const FLUSH_EVERY: Duration = Duration::from_millis(200);
const FLUSH_BYTES: usize = 64 << 10;
/// Lines kept for `status.logSnippet`.
const SNIPPET_LINES: usize = 5;

#[derive(Clone)]
pub struct BuildLog {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

pub struct LogShipper {
    task: tokio::task::JoinHandle<()>,
}

impl BuildLog {
    pub fn start(client: NodeClient, ns: String, name: String) -> (BuildLog, LogShipper) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let task = tokio::spawn(async move {
            let mut pos: i64 = 0;
            let mut pending: Vec<u8> = Vec::new();
            let mut open = true;
            while open {
                let deadline = tokio::time::sleep(FLUSH_EVERY);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        chunk = rx.recv() => match chunk {
                            Some(c) => {
                                pending.extend_from_slice(&c);
                                if pending.len() >= FLUSH_BYTES { break; }
                            }
                            None => { open = false; break; }
                        },
                        _ = &mut deadline => break,
                    }
                }
                if pending.is_empty() {
                    continue;
                }
                // Retried a few times: the log is worth a short wait, not
                // the build.
                let mut sent = false;
                for attempt in 0..5u32 {
                    match client.append_log(&ns, &name, pos, &pending).await {
                        Ok(()) => {
                            sent = true;
                            break;
                        }
                        Err(e) if e.is_final() => break,
                        Err(e) => {
                            tracing::warn!(build = %name, error = %e, attempt, "sending the build log");
                            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                        }
                    }
                }
                if sent {
                    pos += pending.len() as i64;
                }
                pending.clear();
            }
        });
        (
            BuildLog {
                tx,
                tail: Arc::default(),
            },
            LogShipper { task },
        )
    }

    pub fn write(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if let Ok(mut tail) = self.tail.lock() {
            for line in String::from_utf8_lossy(bytes).lines() {
                if line.trim().is_empty() {
                    continue;
                }
                if tail.len() == SNIPPET_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.to_string());
            }
        }
        let _ = self.tx.send(bytes.to_vec());
    }

    pub fn line(&self, text: &str) {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        if !text.ends_with('\n') {
            bytes.push(b'\n');
        }
        self.write(&bytes);
    }

    /// The last lines, for a failed build's `logSnippet`.
    pub fn snippet(&self) -> String {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl LogShipper {
    /// Waits until everything written before `log` was dropped is sent.
    pub async fn finish(self, log: BuildLog) {
        drop(log);
        let _ = self.task.await;
    }
}

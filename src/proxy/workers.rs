//! The threads that serve client connections: one single-threaded tokio runtime per core, each
//! with its own pool of upstream connections (nginx's shape: a worker per core, each on its
//! own event loop). A connection accepted by the proxy's accept loop is handed to the next
//! worker and stays there with everything it does: its requests, their upstream connections,
//! their bodies. Nothing of a request crosses threads, so no request pays for waking another
//! thread (a multi-threaded runtime moves tasks between its workers and wakes idle ones: futex
//! calls and cache traffic on every request when the work per request is small).
//!
//! What may take long or must outlive a worker (a token refresh, reading the vault) runs on
//! the runtime `serve` was called on, as before.

use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::proxy::upstream::Upstream;

/// One worker thread.
pub(crate) struct Worker {
    pub(crate) handle: Handle,
    pub(crate) upstream: Arc<Upstream>,
    /// Dropped (with the worker) to stop the thread; its runtime and every task on it go.
    _stop: oneshot::Sender<()>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Worker")
    }
}

/// How many workers: one per core the process may use (at least one).
pub(crate) fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Starts `count` worker threads; their upstream clients send the device headers of
/// `device_id`.
pub(crate) async fn start(count: usize, device_id: &str) -> Result<Vec<Worker>> {
    let mut workers = Vec::with_capacity(count);
    for i in 0..count.max(1) {
        let (handle_tx, handle_rx) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("kimi-vault-proxy-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                // Runs the connections spawned onto it until the worker is dropped.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(|e| Error::io("cannot start a proxy worker thread", e))?;
        let handle = handle_rx
            .await
            .map_err(|_| {
                Error::io(
                    "a proxy worker thread ended at its start",
                    std::io::Error::other("no runtime"),
                )
            })?
            .map_err(|e| Error::io("cannot start a proxy worker's runtime", e))?;
        workers.push(Worker {
            handle,
            upstream: Arc::new(Upstream::new(device_id)),
            _stop: stop,
        });
    }
    Ok(workers)
}

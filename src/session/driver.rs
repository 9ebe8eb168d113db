//! Running the async HTTP exchanges from the session's blocking core: on the session's own
//! current-thread runtime (command line, built only when a request must be made), or on the
//! caller's runtime from a blocking thread (the proxy).

use std::future::Future;

use tokio::runtime::{Handle, Runtime};

use crate::error::{Error, Result};

/// Where the futures run.
pub(crate) enum Driver<'a> {
    /// A runtime this process owns and nobody else drives.
    Own(&'a Runtime),
    /// A multi-thread runtime driven by its own workers; we are on a blocking thread of it.
    Shared(Handle),
}

impl Driver<'_> {
    /// Runs `future` to completion.
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        match self {
            Driver::Own(rt) => rt.block_on(future),
            Driver::Shared(handle) => handle.block_on(future),
        }
    }
}

/// A current-thread runtime with I/O and timers.
pub(crate) fn current_thread() -> Result<Runtime> {
    tracing::debug!("starting an async runtime (current thread) for a request");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", e))
}

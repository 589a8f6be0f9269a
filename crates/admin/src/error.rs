//! flare-admin's errors. Each says what failed and, where there is one, what
//! to do about it. Exit codes: 1 for every error here, 2 for usage errors
//! (wrong arguments), which [`AdminError::exit_code`] tells apart.

use std::path::PathBuf;

use flare_net::PeerError;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Wrong arguments (exit code 2).
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Peer(#[from] PeerError),
    #[error("{addr} answered [{reply}] to `{command}`")]
    Refused {
        addr: String,
        command: String,
        reply: String,
    },
    #[error("{addr} sent an unexpected reply: {what}")]
    Protocol { addr: String, what: String },
    /// A precondition of a change does not hold; nothing was changed.
    #[error("{0}")]
    Precondition(String),
    /// A change stopped midway: what happened, the cluster's state, and
    /// the command that resumes it.
    #[error("{what}\n  state now: {state}\n  to resume: {resume}")]
    Midway {
        what: String,
        state: String,
        resume: String,
    },
    #[error("aborted: nothing was changed")]
    Aborted,
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a flare-admin dump file ({reason})")]
    DumpFormat { path: PathBuf, reason: String },
    #[error("{0}")]
    Failed(String),
}

impl AdminError {
    pub fn exit_code(&self) -> i32 {
        match self {
            AdminError::Usage(_) => 2,
            _ => 1,
        }
    }

    pub fn file(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AdminError + '_ {
        move |source| AdminError::File {
            path: path.to_path_buf(),
            source,
        }
    }
}

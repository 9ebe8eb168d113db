//! The `kimi-vault` binary: the command line at the edge of the library. Arguments and the
//! environment are read here, once; exit codes, hints, human text and `--json` output are
//! decided here. Everything else is the `kimi_vault` library.

#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(cli::main())
}

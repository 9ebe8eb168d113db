//! The `kimi-vault` binary: a thin shell over the library.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(kimi_vault::cli::main())
}

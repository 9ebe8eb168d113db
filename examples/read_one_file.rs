//! The anchor of the `token` benchmark: a program that does the least `token` must do (start,
//! read one small file, write it to stdout), built like the release binary
//! (scripts/release-build.sh: static, non-PIE, panic=abort). `read_one_file FILE`.

use std::io::Write;

fn main() -> std::process::ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        return std::process::ExitCode::from(2);
    };
    match std::fs::read(path) {
        Ok(data) if std::io::stdout().lock().write_all(&data).is_ok() => {
            std::process::ExitCode::SUCCESS
        }
        _ => std::process::ExitCode::FAILURE,
    }
}

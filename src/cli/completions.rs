//! `kimi-vault completions SHELL` (clap_complete) and `kimi-vault man` (clap_mangen): generated
//! from the same definition as the parser, so they never drift from it.

use std::io::Write;
use std::path::Path;

use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use crate::cli::command;
use crate::cli::failure::{CmdResult, Failure, exit};

/// The binary's name, as completions register it and man pages are named.
const BIN: &str = "kimi-vault";

/// Prints the completion script for `shell` on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> CmdResult {
    let mut cmd = command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut out);
    match shell {
        clap_complete::Shell::Bash => out = fix_bash_hyphenated_bin(&out, BIN).into_bytes(),
        clap_complete::Shell::Fish => {
            out.extend_from_slice(fish_positional_values(&cmd).as_bytes())
        }
        _ => {}
    }
    write_stdout(&out)
}

/// clap_complete's fish generator completes the values of options but not those of a
/// subcommand's positional argument (`completions <TAB>` offered file names): one `complete`
/// line per such argument of a top-level subcommand, with the generator's own condition.
fn fish_positional_values(cmd: &clap::Command) -> String {
    let condition = format!("__fish_{}_using_subcommand", BIN.replace('-', "_"));
    let mut out = String::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        for arg in sub.get_positionals().filter(|a| !a.is_hide_set()) {
            let values: Vec<String> = arg
                .get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_owned())
                .collect();
            if !values.is_empty() {
                out.push_str(&format!(
                    "complete -c {BIN} -n \"{condition} {}\" -f -a \"{}\"\n",
                    sub.get_name(),
                    values.join(" ")
                ));
            }
        }
    }
    out
}

/// Works around clap_complete's bash generator for a binary name with a hyphen
/// (clap-rs/clap#6421, open as of clap_complete 4.6.11): the loop that follows the words sets
/// `cmd="kimi__vault__subcmd__login"`, but the case arms that complete a subcommand's flags
/// and values read `kimi__subcmd__vault__subcmd__login)` (the bin name's hyphen escaped with
/// the subcommand separator), so nothing after a subcommand ever completed. The arms are
/// renamed to what the loop sets. Once clap_complete spells both alike, the wrong spelling is
/// absent and this changes nothing.
fn fix_bash_hyphenated_bin(script: &[u8], bin: &str) -> String {
    let script = String::from_utf8_lossy(script);
    if !bin.contains('-') {
        return script.into_owned();
    }
    let wrong = format!("{}__subcmd__", bin.replace('-', "__subcmd__"));
    let right = format!("{}__subcmd__", bin.replace('-', "__"));
    script
        .lines()
        .map(|line| {
            // Only case-arm labels (`        kimi__subcmd__vault__subcmd__login)`).
            let label = line.trim_start();
            if label.starts_with(&wrong) && label.ends_with(')') {
                line.replacen(&wrong, &right, 1)
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Every command with a page: the tool, then each subcommand (depth first), each with its page
/// name (`kimi-vault`, `kimi-vault-login`, `kimi-vault-profiles-use` …).
fn pages() -> Vec<(String, clap::Command)> {
    fn walk(cmd: &clap::Command, name: &str, out: &mut Vec<(String, clap::Command)>) {
        out.push((name.to_owned(), cmd.clone()));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub, &format!("{name}-{}", sub.get_name()), out);
        }
    }
    let mut root = command().disable_help_subcommand(true);
    root.build();
    let mut out = Vec::new();
    walk(&root, BIN, &mut out);
    out
}

/// One page. `linked`: the other pages are installed beside it (`man --dir`), so it may name
/// them in SEE ALSO; a page printed alone names no other page (none may exist).
fn render_page(name: &str, cmd: &clap::Command, linked: bool, all: &[String]) -> Vec<u8> {
    // The page's own name, shown in the title and the synopsis ("kimi-vault login").
    let shown = match name.strip_prefix(&format!("{BIN}-")) {
        Some(rest) => format!("{BIN} {}", rest.replace('-', " ")),
        None => BIN.to_owned(),
    };
    let cmd = cmd
        .clone()
        .display_name(name.to_owned())
        .bin_name(shown.clone());
    let man = Man::new(cmd.clone())
        .title(name.to_uppercase())
        .source(format!("{BIN} {}", env!("CARGO_PKG_VERSION")))
        .manual("kimi-vault manual");
    let mut out = Vec::new();
    let mut roff = Roff::new();
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        let _ = man.render_options_section(&mut out);
    }
    let subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).collect();
    if !subs.is_empty() {
        // The commands by their names, not as page references (`kimi-vault-login(1)`), which
        // a page printed alone cannot promise.
        roff.control("SH", ["COMMANDS"]);
        for sub in &subs {
            roff.control("TP", []);
            roff.text([bold(format!("{shown} {}", sub.get_name()))]);
            if let Some(about) = sub.get_about() {
                roff.text([roman(about.to_string())]);
            }
        }
    }
    // The examples, the environment and the exit codes keep their columns: no filling.
    if let Some(after) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        roff.control("SH", ["NOTES"]);
        roff.control("nf", []);
        for line in after.to_string().lines() {
            roff.text([roman(line.to_owned())]);
        }
        roff.control("fi", []);
    }
    roff.control("SH", ["SEE ALSO"]);
    if linked {
        let related: Vec<&String> = all
            .iter()
            .filter(|other| {
                *other != name
                    && (other.starts_with(&format!("{name}-"))
                        || name.starts_with(&format!("{}-", other)))
            })
            .collect();
        for (i, other) in related.iter().enumerate() {
            let sep = if i + 1 < related.len() { "," } else { "" };
            roff.text([bold(other.to_string()), roman(format!("(1){sep}"))]);
        }
    } else {
        roff.text([roman(format!(
            "`{BIN} man COMMAND` prints one command's page; `{BIN} man --dir DIR` writes every page ({BIN}.1, {BIN}-login.1 ...) into DIR; `{BIN} COMMAND --help` says the same in short."
        ))]);
    }
    let _ = roff.to_writer(&mut out);
    if cmd.get_version().is_some() {
        let _ = man.render_version_section(&mut out);
    }
    // Each section rendered alone starts with the same two-line preamble: keep the first.
    let text = String::from_utf8_lossy(&out).into_owned();
    let mut seen = std::collections::HashSet::new();
    let mut page = String::with_capacity(text.len());
    for line in text.lines() {
        if (line.starts_with(".ie \\n(.g .ds Aq") || line.starts_with(".el .ds Aq"))
            && !seen.insert(line.to_owned())
        {
            continue;
        }
        page.push_str(line);
        page.push('\n');
    }
    page.into_bytes()
}

/// `man [COMMAND] [--dir DIR]`: the tool's page or one command's page on stdout; with `--dir`,
/// every page written into DIR (created when missing), one line per file on stdout.
pub(crate) fn man(command: Option<&str>, dir: Option<&Path>) -> CmdResult {
    let pages = pages();
    let names: Vec<String> = pages.iter().map(|(n, _)| n.clone()).collect();
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::Other(format!("cannot create {}: {e}", dir.display())))?;
        let mut written = Vec::new();
        for (name, cmd) in &pages {
            let path = dir.join(format!("{name}.1"));
            std::fs::write(&path, render_page(name, cmd, true, &names))
                .map_err(|e| Failure::Other(format!("cannot write {}: {e}", path.display())))?;
            written.push(path);
        }
        for path in &written {
            crate::cli::output::outln!("{}", path.display());
        }
        eprintln!(
            "{} pages written to {}; `man {BIN}` finds them in a man1 directory that man searches (~/.cargo/share/man/man1 when ~/.cargo/bin is on PATH, or one under MANPATH).",
            written.len(),
            dir.display()
        );
        return Ok(exit::OK);
    }
    let wanted = match command {
        None => BIN.to_owned(),
        Some(c) => format!("{BIN}-{}", c.trim().replace(' ', "-")),
    };
    let Some((name, cmd)) = pages.iter().find(|(n, _)| *n == wanted) else {
        let known: Vec<&str> = names.iter().skip(1).map(|n| &n[BIN.len() + 1..]).collect();
        return Err(Failure::Usage(format!(
            "no man page for '{}': the commands are {}",
            kimi_vault::sanitize::for_terminal(command.unwrap_or_default()),
            known.join(", ")
        )));
    };
    write_stdout(&render_page(name, cmd, false, &names))
}

fn write_stdout(bytes: &[u8]) -> CmdResult {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(Failure::Output)?;
    Ok(exit::OK)
}

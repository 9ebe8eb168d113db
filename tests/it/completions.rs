//! Shell completions and man pages, checked in the real programs: each completion script is
//! loaded by its own shell (bash, zsh, fish: every one Debian packages) and asked to complete
//! a subcommand's flags and values, as a user pressing TAB would; every man page is rendered
//! by `man -l`. These programs must be installed (`.ci/run` installs them: apt-get install
//! bash-completion zsh fish man-db groff-base); a missing one fails its test with that line.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

fn bin() -> std::path::PathBuf {
    assert_cmd::cargo::cargo_bin("kimi-vault")
}

fn script(shell: &str) -> String {
    let out = Command::new(bin())
        .args(["completions", shell])
        .output()
        .unwrap();
    assert!(out.status.success(), "completions {shell}");
    String::from_utf8(out.stdout).unwrap()
}

/// The interpreter, or a failure that says what to install.
fn need(program: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(
        found,
        "{program} is not installed: apt-get install {package} (.ci/run installs it); this test runs the real {program}"
    );
}

/// Runs `cmd` with a deadline; its stdout.
fn run_for(mut cmd: Command, secs: u64) -> String {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        if out.stderr.is_empty() {
            String::new()
        } else {
            format!("\n[stderr] {}", String::from_utf8_lossy(&out.stderr))
        }
    )
}

/// What the user types before TAB, and words the completions must include.
const CASES: &[(&str, &[&str])] = &[
    (
        "kimi-vault ",
        &["login", "exec", "profiles", "man", "completions"],
    ),
    (
        "kimi-vault login --",
        &["--no-browser", "--region", "--profile"],
    ),
    ("kimi-vault login --region ", &["cn", "global"]),
    (
        "kimi-vault exec --proxy --for ",
        &["claude", "kimi", "openai"],
    ),
    ("kimi-vault exec --", &["--proxy", "--env", "--for"]),
    (
        "kimi-vault completions ",
        &["bash", "zsh", "fish", "powershell", "elvish"],
    ),
    ("kimi-vault token --", &["--min-valid", "--refresh"]),
    ("kimi-vault profiles ", &["use"]),
    ("kimi-vault proxy --", &["--port", "--check"]),
];

fn check(shell: &str, line: &str, got: &[String], want: &[&str]) {
    for w in want {
        assert!(
            got.iter().any(|g| g == w),
            "{shell}: `{line}<TAB>` does not offer {w}; it offers {got:?}"
        );
    }
}

#[test]
fn bash_completes_subcommand_flags_and_values() {
    need("bash", "bash");
    let env = TestEnv::new();
    let file = env.dir.path().join("kimi-vault.bash");
    std::fs::write(&file, script("bash")).unwrap();
    for (line, want) in CASES {
        // COMP_WORDS as bash splits the line; the function gets (command, word, previous word).
        let mut words: Vec<&str> = line.split(' ').collect();
        if line.ends_with(' ') {
            words.pop();
            words.push("");
        }
        let cword = words.len() - 1;
        let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
        let prog = format!(
            "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={cword}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\nfn=$(complete -p kimi-vault | sed -E 's/.* -F ([^ ]+) .*/\\1/')\n\"$fn\" kimi-vault '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
            file.display(),
            quoted.join(" "),
            words[cword],
            if cword > 0 { words[cword - 1] } else { "" }
        );
        let mut cmd = Command::new("bash");
        cmd.args(["--norc", "--noprofile", "-c", &prog]);
        let out = run_for(cmd, 20);
        let got: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
        check("bash", line, &got, want);
    }
    // And where the README installs it for one user: bash-completion's loader finds it there
    // the first time `kimi-vault` is completed.
    let loader = Path::new("/usr/share/bash-completion/bash_completion");
    assert!(
        loader.exists(),
        "bash-completion is not installed: apt-get install bash-completion (.ci/run installs it)"
    );
    let home = env.dir.path().join("user");
    let dir = home.join(".local/share/bash-completion/completions");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&file, dir.join("kimi-vault")).unwrap();
    let prog = format!(
        "source '{}'\n_completion_loader kimi-vault\ncomplete -p kimi-vault",
        loader.display()
    );
    let mut cmd = Command::new("bash");
    cmd.args(["--norc", "--noprofile", "-c", &prog])
        .env("HOME", &home)
        .env_remove("XDG_DATA_HOME")
        .env_remove("BASH_COMPLETION_USER_DIR");
    let out = run_for(cmd, 20);
    assert!(
        out.contains(" -F ") && out.trim_end().ends_with(" kimi-vault"),
        "{out}"
    );
}

#[test]
fn zsh_completes_subcommand_flags_and_values() {
    need("zsh", "zsh");
    let env = TestEnv::new();
    let fpath = env.dir.path().join("zfunc");
    std::fs::create_dir_all(&fpath).unwrap();
    std::fs::write(fpath.join("_kimi-vault"), script("zsh")).unwrap();
    // An interactive zsh on a pseudo-terminal (zsh/zpty) with compinit and the script on
    // fpath, as a user has it; compadd is wrapped to print every match it is given.
    let init = env.dir.path().join("init.zsh");
    std::fs::write(
        &init,
        format!(
            r#"PROMPT=
fpath=('{}' $fpath)
autoload -U compinit && compinit -u -D
bindkey '^I' complete-word
zstyle ':completion:*' list-grouped false
zstyle ':completion:*' insert-tab false
comppostfuncs=( exit )
compadd () {{
  if [[ ${{@[1,(i)(-|--)]}} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi
  typeset -a __hits
  builtin compadd -A __hits "$@"
  local h; for h in $__hits; do print -r -- "MATCH:$h"; done
}}
"#,
            fpath.display()
        ),
    )
    .unwrap();
    let driver = env.dir.path().join("driver.zsh");
    std::fs::write(
        &driver,
        r#"zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "source ${(q)1}"
zpty -w z "$2"$'\t'
local line
while zpty -r z line; do print -r -- "$line"; done
"#,
    )
    .unwrap();
    for (line, want) in CASES {
        let mut cmd = Command::new("zsh");
        cmd.arg("-f")
            .arg(&driver)
            .arg(&init)
            .arg(line)
            .env("HOME", env.dir.path());
        let out = run_for(cmd, 20);
        let got: Vec<String> = out
            .lines()
            .filter_map(|l| l.trim_end_matches('\r').split_once("MATCH:"))
            .map(|(_, m)| m.to_owned())
            .collect();
        check("zsh", line, &got, want);
    }
}

#[test]
fn fish_completes_subcommand_flags_and_values() {
    need("fish", "fish");
    let env = TestEnv::new();
    let file = env.dir.path().join("kimi-vault.fish");
    std::fs::write(&file, script("fish")).unwrap();
    for (line, want) in CASES {
        let mut cmd = Command::new("fish");
        cmd.args([
            "--no-config",
            "-c",
            &format!("source '{}'; complete -C '{line}'", file.display()),
        ])
        .env("HOME", env.dir.path());
        let out = run_for(cmd, 20);
        // `complete -C` prints "candidate<TAB>description".
        let got: Vec<String> = out
            .lines()
            .filter_map(|l| l.split('\t').next())
            .map(str::to_owned)
            .collect();
        check("fish", line, &got, want);
    }
}

#[test]
fn the_bash_workaround_changes_only_the_case_arms() {
    // clap-rs/clap#6421: the case arms must be spelled as the word loop sets `cmd`.
    let s = script("bash");
    assert!(!s.contains("kimi__subcmd__vault"), "{s}");
    assert!(s.contains("cmd=\"kimi__vault__subcmd__login\""));
    assert!(s.contains("        kimi__vault__subcmd__login)"));
    assert!(s.contains("        kimi__vault__subcmd__profiles__subcmd__use)"));
}

/// `man -l` renders a page as a user reads it (no pager, fixed width); its warnings too.
fn render(page: &Path) -> (String, String) {
    let out = Command::new("man")
        .args(["-l", "--warnings", "-E", "UTF-8"])
        .arg(page)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    assert!(out.status.success(), "man -l {}", page.display());
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn man_pages_one_per_command_render_and_link_only_to_pages_that_exist() {
    need("man", "man-db groff-base");
    let env = TestEnv::new();
    let dir = env.dir.path().join("man1");
    let out = Command::new(bin())
        .args(["man", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for want in [
        "kimi-vault.1",
        "kimi-vault-login.1",
        "kimi-vault-exec.1",
        "kimi-vault-proxy.1",
        "kimi-vault-profiles.1",
        "kimi-vault-profiles-use.1",
        "kimi-vault-man.1",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    // stdout lists the files written.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        names.len()
    );
    let refs = regex_lite_refs;
    for name in &names {
        let (text, warnings) = render(&dir.join(name));
        assert!(warnings.trim().is_empty(), "{name}: {warnings}");
        // Every page it names exists beside it.
        for r in refs(&text) {
            assert!(
                names.contains(&format!("{r}.1")),
                "{name} names {r}(1), which does not exist"
            );
        }
    }
    // A subcommand's own options appear on its page.
    let (login, _) = render(&dir.join("kimi-vault-login.1"));
    assert!(
        login.contains("--no-browser") && login.contains("--region"),
        "{login}"
    );
    let (exec, _) = render(&dir.join("kimi-vault-exec.1"));
    assert!(exec.contains("--proxy") && exec.contains("--for"), "{exec}");
    // The examples keep their columns (no filling into one paragraph).
    let (root, _) = render(&dir.join("kimi-vault.1"));
    let line = root
        .lines()
        .find(|l| l.contains("kimi-vault status") && l.contains("where the credential lives"))
        .unwrap_or_else(|| panic!("the status example is not on a line of its own:\n{root}"));
    assert!(
        line.contains("status                       where"),
        "{line}"
    );
    assert!(root.contains("kimi-vault login"), "{root}");
    assert!(root.contains("kimi-vault-login(1)"), "{root}");
}

/// `name(1)` references in rendered text.
fn regex_lite_refs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("(1)") {
        let before = &text[..i];
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .map_or(0, |p| p + 1);
        let name = &before[start..];
        if name.starts_with("kimi-vault") {
            out.push(name.to_owned());
        }
    }
    out
}

#[test]
fn man_prints_the_tools_page_or_one_commands_page_on_stdout() {
    need("man", "man-db groff-base");
    let env = TestEnv::new();
    for (args, want) in [
        (vec!["man"], "kimi-vault - "),
        (vec!["man", "login"], "--no-browser"),
        (vec!["man", "profiles-use"], "NAME"),
        (vec!["man", "profiles use"], "default-profile"),
    ] {
        let out = Command::new(bin()).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let page = env.dir.path().join("page.1");
        std::fs::write(&page, &out.stdout).unwrap();
        let (text, warnings) = render(&page);
        assert!(warnings.trim().is_empty(), "{args:?}: {warnings}");
        let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(words.contains(want), "{args:?}: {text}");
        // A page printed alone names no other page: none may be installed.
        assert!(regex_lite_refs(&text).is_empty(), "{args:?}: {text}");
    }
    let out = Command::new(bin()).args(["man", "logn"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no man page for 'logn'") && err.contains("login"),
        "{err}"
    );
}

//! The operator's manual (`docs/manual.md`) runs as written.
//!
//! The convention is the one the manual states at its top: every ```` ```sh ```` block is run, in
//! the order of the file, by one `bash -euo pipefail` in an empty temporary folder with this
//! build's `anpr` on PATH, so later blocks use the files earlier ones made; a failure names the
//! block's line in the manual and shows what it printed. ```` ```text ```` blocks (root, systemd,
//! a camera, a broker) are not run, but every `anpr` command line in them, as in the `sh` blocks,
//! must name a subcommand that exists and only flags its `--help` lists.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::repo;

/// Longest the `sh` blocks may run together; they take a few seconds.
const RUN_LIMIT: Duration = Duration::from_mins(2);

/// Words that mark a command needing root, systemd or the network: such commands go in
/// `text` blocks, never in the blocks the test runs.
const NOT_IN_RUN_BLOCKS: [&str; 8] = [
    "sudo",
    "systemctl",
    "apt-get",
    "install-service",
    "journalctl",
    "scp",
    "ssh",
    "mosquitto",
];

/// One fenced block of the manual.
struct Block {
    /// The word after the opening fence (`sh`, `text`, `toml`, ...).
    lang: String,
    /// Line of the opening fence in the manual, from 1.
    line: usize,
    /// The block's lines, without the fence's indentation.
    body: String,
}

fn manual_path() -> PathBuf {
    repo().join("docs/manual.md")
}

fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize, usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut open {
            None => {
                if let Some(lang) = trimmed.strip_prefix("```") {
                    open = Some((lang.trim().to_string(), i + 1, indent, String::new()));
                }
            }
            Some((_, _, fence_indent, body)) => {
                if trimmed == "```" {
                    let (lang, line, _, body) = open.take().unwrap();
                    out.push(Block { lang, line, body });
                } else {
                    let cut = line
                        .char_indices()
                        .take_while(|(n, c)| *n < *fence_indent && *c == ' ')
                        .count();
                    body.push_str(&line[cut..]);
                    body.push('\n');
                }
            }
        }
    }
    assert!(
        open.is_none(),
        "docs/manual.md: a fenced block is not closed"
    );
    out
}

#[test]
fn the_manuals_sh_blocks_run_as_written_in_order() {
    let manual = manual_path();
    let text = std::fs::read_to_string(&manual).unwrap();
    let runnable: Vec<Block> = blocks(&text)
        .into_iter()
        .filter(|b| b.lang == "sh")
        .collect();
    assert!(
        runnable.len() >= 15,
        "docs/manual.md has only {} sh blocks; the test expects the provisioning, custody, export and verification commands to be runnable",
        runnable.len()
    );
    for b in &runnable {
        for word in b
            .body
            .split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '|')
        {
            assert!(
                !NOT_IN_RUN_BLOCKS.contains(&word),
                "docs/manual.md line {}: `{word}` in an sh block, which the test runs; put commands that need root, systemd or the network in a text block",
                b.line
            );
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_anpr"), bin.join("anpr")).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();

    let mut script = String::from("exec 2>&1\n");
    for b in &runnable {
        writeln!(script, "echo '@@manual-block {}'", b.line).unwrap();
        script.push_str(&b.body);
    }
    let script_path = dir.path().join("manual.sh");
    std::fs::write(&script_path, script).unwrap();
    let out_path = dir.path().join("output.txt");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = Instant::now();
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail"])
        .arg(&script_path)
        .current_dir(&work)
        .env("PATH", path)
        .env_remove("ANPR_LOG")
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > RUN_LIMIT {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&out_path).unwrap();
    let markers: Vec<(usize, usize)> = output
        .match_indices("@@manual-block ")
        .map(|(at, m)| {
            let rest = &output[at + m.len()..];
            let line = rest[..rest.find('\n').unwrap_or(rest.len())]
                .parse()
                .unwrap();
            (at, line)
        })
        .collect();
    let ran_ok = status.is_some_and(|s| s.success());
    if !ran_ok || markers.len() != runnable.len() {
        let (at, line) = markers.last().copied().unwrap_or((0, 0));
        let block = runnable.iter().find(|b| b.line == line);
        let printed = &output[at..];
        let why = match status {
            None => format!("did not finish within {} s", RUN_LIMIT.as_secs()),
            Some(s) => format!("failed ({s})"),
        };
        panic!(
            "{}: the sh block at line {line} {why}\n--- the block ---\n{}--- what it printed ---\n{printed}",
            manual.display(),
            block.map_or("", |b| b.body.as_str()),
        );
    }
    eprintln!(
        "{} sh blocks of docs/manual.md ran in {:.1} s",
        runnable.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The `--help` of `anpr <path>`, cached.
struct Helps {
    anpr: PathBuf,
    seen: HashMap<Vec<String>, String>,
}

impl Helps {
    fn of(&mut self, path: &[String]) -> Option<&str> {
        if !self.seen.contains_key(path) {
            let out = Command::new(&self.anpr)
                .args(path)
                .arg("--help")
                .output()
                .unwrap();
            if !out.status.success() {
                return None;
            }
            self.seen
                .insert(path.to_vec(), String::from_utf8(out.stdout).unwrap());
        }
        self.seen.get(path).map(String::as_str)
    }
}

/// The subcommands a `--help` lists under `Commands:`.
fn subcommands(help: &str) -> Vec<&str> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .collect()
}

/// Whether `help` lists the long flag `flag` (as a whole word).
fn lists_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(at, _)| {
        let before = help[..at].chars().next_back();
        let after = help[at + flag.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '-')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_')
    })
}

/// The argument lists of the `anpr` commands in a block: continuation lines joined, one entry
/// per command, each with the line it starts on.
fn anpr_commands(block: &Block) -> Vec<(usize, Vec<String>)> {
    let mut logical: Vec<(usize, String)> = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in block.body.lines().enumerate() {
        let line_no = block.line + 1 + i;
        let (start, mut text) = pending.take().unwrap_or((line_no, String::new()));
        if let Some(head) = line.strip_suffix('\\') {
            text.push_str(head);
            text.push(' ');
            pending = Some((start, text));
        } else {
            text.push_str(line);
            logical.push((start, text));
        }
    }
    logical.extend(pending);
    let mut out = Vec::new();
    for (line, text) in logical {
        let text = text.split(" #").next().unwrap_or("");
        let tokens: Vec<&str> = text.split_whitespace().collect();
        for segment in tokens.split(|t| matches!(*t, "&&" | "||" | ";" | "|")) {
            let mut rest = segment;
            loop {
                match rest {
                    ["$" | "sudo", tail @ ..] | ["-u", _, tail @ ..] => rest = tail,
                    [env, tail @ ..] if env.contains('=') && !env.starts_with('-') => rest = tail,
                    _ => break,
                }
            }
            if let [cmd, args @ ..] = rest
                && (*cmd == "anpr" || cmd.ends_with("/bin/anpr"))
            {
                out.push((line, args.iter().map(ToString::to_string).collect()));
            }
        }
    }
    out
}

#[test]
fn every_anpr_command_shown_in_the_manual_names_a_subcommand_and_flags_that_exist() {
    let manual = manual_path();
    let text = std::fs::read_to_string(&manual).unwrap();
    let mut helps = Helps {
        anpr: PathBuf::from(env!("CARGO_BIN_EXE_anpr")),
        seen: HashMap::new(),
    };
    let mut checked = 0;
    let mut problems = Vec::new();
    for block in blocks(&text)
        .iter()
        .filter(|b| matches!(b.lang.as_str(), "sh" | "text" | "console"))
    {
        for (line, args) in anpr_commands(block) {
            checked += 1;
            let mut path: Vec<String> = Vec::new();
            let mut args = args.iter().peekable();
            while let Some(next) = args.peek() {
                let help = helps.of(&path).unwrap();
                let subs = subcommands(help);
                if next.starts_with('-') {
                    break;
                }
                if subs.contains(&next.as_str()) {
                    path.push((*next).clone());
                    args.next();
                } else {
                    if !subs.is_empty() {
                        problems.push(format!(
                            "line {line}: `anpr {} {next}`: no such subcommand (there are: {})",
                            path.join(" "),
                            subs.join(", ")
                        ));
                    }
                    break;
                }
            }
            let help = helps.of(&path).unwrap().to_string();
            for arg in args.filter(|a| a.starts_with("--")) {
                let flag = arg.split('=').next().unwrap();
                if !lists_flag(&help, flag) {
                    problems.push(format!(
                        "line {line}: `anpr {}` has no flag `{flag}` (see `anpr {} --help`)",
                        path.join(" "),
                        path.join(" ")
                    ));
                }
            }
        }
    }
    assert!(
        checked >= 20,
        "only {checked} anpr commands found in {}",
        manual.display()
    );
    assert!(
        problems.is_empty(),
        "{}: commands that do not run as written:\n{}",
        manual.display(),
        problems.join("\n")
    );
}

#[test]
fn the_block_parser_finds_indented_blocks_and_continued_lines() {
    let text = "x\n```sh\nanpr verify --queue q\n```\n1. step\n\n   ```text\n   anpr central --db c \\\n     --report && anpr pki init --dir d\n   ```\n";
    let found = blocks(text);
    assert_eq!(found.len(), 2);
    assert_eq!((found[1].lang.as_str(), found[1].line), ("text", 7));
    assert!(
        found[1].body.starts_with("anpr central"),
        "{}",
        found[1].body
    );
    let cmds = anpr_commands(&found[1]);
    assert_eq!(cmds.len(), 2);
    assert_eq!(cmds[0].0, 8);
    assert_eq!(cmds[0].1, ["central", "--db", "c", "--report"]);
    assert_eq!(cmds[1].1, ["pki", "init", "--dir", "d"]);
    assert!(lists_flag("  --report  Print", "--report"));
    assert!(!lists_flag("  --report-all  Print", "--report"));
}

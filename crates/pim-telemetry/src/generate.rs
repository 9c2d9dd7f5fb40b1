//! `completions <shell>` and `man` for both binaries: generated from the binary's own clap
//! definition, the one `--help` prints (clap_complete, clap_mangen), so neither drifts from the
//! flags (issue 16).

use std::io::{self, Write};

/// Writes the completion script of `command` for `shell` to `out`.
///
/// # Errors
/// The write error, e.g. a closed pipe.
pub fn completions(
    shell: clap_complete::Shell,
    mut command: clap::Command,
    out: &mut dyn Write,
) -> io::Result<()> {
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, out);
    out.flush()
}

/// Writes the man page (roff, section 1) of `command` to `out`.
///
/// # Errors
/// The write error, e.g. a closed pipe.
pub fn man(command: clap::Command, out: &mut dyn Write) -> io::Result<()> {
    clap_mangen::Man::new(command).render(out)?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    /// A command shaped like the binaries': flags and the two generating subcommands.
    fn cli() -> Command {
        Command::new("pim-example")
            .arg(Arg::new("demo").long("demo").action(ArgAction::SetTrue))
            .arg(Arg::new("fail-on").long("fail-on").value_name("VERDICT"))
            .subcommand(Command::new("completions").arg(Arg::new("shell").required(true)))
            .subcommand(Command::new("man"))
    }

    fn text(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        write(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_shell_gets_a_script_that_names_the_subcommands_and_flags() {
        let command = cli();
        let name = command.get_name().to_owned();
        let subcommands: Vec<String> = command
            .get_subcommands()
            .map(|s| s.get_name().to_owned())
            .collect();
        assert!(subcommands.iter().any(|s| s == "completions"));
        assert!(subcommands.iter().any(|s| s == "man"));
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
            clap_complete::Shell::PowerShell,
        ] {
            let script = text(|out| completions(shell, command.clone(), out));
            assert!(script.contains(&name), "{shell}: no {name}");
            for s in &subcommands {
                assert!(script.contains(s.as_str()), "{shell}: no subcommand {s}");
            }
            for arg in command.get_arguments() {
                if let Some(long) = arg.get_long() {
                    assert!(script.contains(long), "{shell}: no --{long}");
                }
            }
        }
    }

    #[test]
    fn the_man_page_names_the_binary_subcommands_and_flags() {
        let command = cli();
        let page = text(|out| man(command.clone(), out));
        assert!(page.starts_with(".ie"), "{}", &page[..page.len().min(80)]);
        assert!(page.contains(&format!(".TH {}", command.get_name())));
        for s in command.get_subcommands() {
            assert!(
                page.contains(s.get_name()),
                "no subcommand {}",
                s.get_name()
            );
        }
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long() {
                // roff escapes the dashes of a flag.
                assert!(
                    page.contains(&format!("\\-\\-{}", long.replace('-', "\\-"))),
                    "no --{long}"
                );
            }
        }
    }
}

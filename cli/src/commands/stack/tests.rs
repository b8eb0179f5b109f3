//! The command line of `rswarm stack`: Docker's flags and defaults.

use clap::{CommandFactory, Parser};

use super::resolve::ResolveImage;
use super::*;

#[derive(Parser, Debug)]
struct Cli {
    #[command(subcommand)]
    stack: StackCommand,
}

fn parse(args: &[&str]) -> StackCommand {
    let mut argv = vec!["stack"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .stack
}

#[test]
fn deploy_takes_dockers_flags_and_defaults() {
    Cli::command().debug_assert();
    let StackCommand::Deploy(d) = parse(&["deploy", "-c", "a.yml", "shop"]) else {
        panic!("not a deploy");
    };
    assert_eq!(d.compose_file, ["a.yml"]);
    assert_eq!(d.stack, "shop");
    // Docker 26+: detached unless --detach=false.
    assert_eq!(d.detach, None);
    assert!(!d.prune && !d.quiet);
    assert_eq!(d.resolve_image, "never");
    let StackCommand::Deploy(d) = parse(&[
        "deploy",
        "--compose-file",
        "a.yml",
        "-c",
        "-",
        "--prune",
        "--detach=false",
        "-q",
        "--resolve-image",
        "changed",
        "shop",
    ]) else {
        panic!("not a deploy");
    };
    assert_eq!(d.compose_file, ["a.yml", "-"]);
    assert_eq!(d.detach, Some(false));
    assert_eq!(d.resolve_image, "changed");
    assert!(d.prune && d.quiet);
    let StackCommand::Deploy(d) = parse(&["up", "-c", "a.yml", "-d", "shop"]) else {
        panic!("not a deploy");
    };
    assert_eq!(d.detach, Some(true));
    assert!(!d.with_registry_auth);
    let StackCommand::Deploy(d) = parse(&["deploy", "-c", "a.yml", "--with-registry-auth", "shop"])
    else {
        panic!("not a deploy");
    };
    assert!(d.with_registry_auth);
}

#[test]
fn resolve_image_takes_dockers_three_values() {
    assert_eq!(ResolveImage::parse("always").unwrap(), ResolveImage::Always);
    assert_eq!(
        ResolveImage::parse("changed").unwrap(),
        ResolveImage::Changed
    );
    assert_eq!(ResolveImage::parse("never").unwrap(), ResolveImage::Never);
    assert_eq!(
        ResolveImage::parse("sometimes").unwrap_err().to_string(),
        "invalid value \"sometimes\" for --resolve-image: must be always, changed or never"
    );
}

#[test]
fn ls_services_ps_rm_take_dockers_flags() {
    assert!(matches!(
        parse(&["ls", "--format", "{{.Name}}"]),
        StackCommand::Ls(_)
    ));
    let StackCommand::Services(s) = parse(&["services", "-q", "--format", "json", "shop"]) else {
        panic!("not services");
    };
    assert!(s.list.quiet && s.stack == "shop");
    let StackCommand::Ps(p) = parse(&[
        "ps",
        "--no-trunc",
        "-q",
        "-f",
        "desired-state=running",
        "shop",
    ]) else {
        panic!("not ps");
    };
    assert!(p.list.no_trunc && p.list.quiet && p.stack == "shop");
    for alias in ["rm", "remove", "down"] {
        let StackCommand::Rm(r) = parse(&[alias, "shop", "blog"]) else {
            panic!("not rm");
        };
        assert_eq!(r.stacks, ["shop", "blog"]);
    }
}

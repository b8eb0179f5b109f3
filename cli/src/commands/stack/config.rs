//! `stack config`: loads, merges, interpolates and checks the files and
//! prints the result, without a daemon.

use super::files::read_sources;
use super::ConfigArgs;
use crate::compose::{self, Problems};

pub(super) fn config(args: ConfigArgs) -> anyhow::Result<()> {
    let (sources, dir) = read_sources(&args.compose_file)?;
    let environ = |k: &str| std::env::var(k).ok();
    let loaded =
        compose::load(&sources, &dir, args.env_file.as_deref(), &environ).map_err(Problems)?;
    for w in &loaded.warnings {
        eprintln!("{w}");
    }
    print!("{}", compose::to_yaml(&loaded.project));
    Ok(())
}

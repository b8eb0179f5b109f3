//! `rswarm image ls | pull | rm | load`: the local image store of the node
//! whose daemon answers, through its Images API, with Docker's output.

use std::path::Path;

use clap::{Args, Subcommand};
use rswarm_proto::daemon::images_client::ImagesClient;
use rswarm_proto::daemon::{
    ImageSummary, ListImagesRequest, LoadImageRequest, PullImageRequest, RemoveImageRequest,
};
use tonic::transport::Channel;

use super::task::now_nanos;
use crate::client::{status_error, ClientOpts, Target};
use crate::format;
use crate::servicespec::reference::ImageRef;

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Load an image from a tar archive (docker save or OCI layout)
    Load(LoadArgs),
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a Go template, "table TEMPLATE" or "json"
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Only images of this repository (and tag)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub reference: String,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file (read by the daemon, on its node)
    #[arg(short, long, required = true, value_name = "FILE")]
    pub input: String,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

pub async fn run(opts: &ClientOpts, cmd: ImageCommand) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Ls(a) => ls(opts, a).await,
        ImageCommand::Pull(a) => pull(opts, a).await,
        ImageCommand::Rm(a) => rm(opts, a).await,
        ImageCommand::Load(a) => load(opts, a).await,
    }
}

async fn client(opts: &ClientOpts) -> anyhow::Result<(ImagesClient<Channel>, Target)> {
    let (channel, target) = opts.connect().await?;
    Ok((ImagesClient::new(channel), target))
}

async fn list(images: &mut ImagesClient<Channel>) -> anyhow::Result<Vec<ImageSummary>> {
    Ok(images
        .list_images(ListImagesRequest {})
        .await
        .map_err(status_error)?
        .into_inner()
        .images)
}

/// Whether a stored image is the one `wanted` (a repository, maybe with a
/// tag) names.
fn matches_reference(image: &ImageSummary, wanted: &ImageRef) -> bool {
    match ImageRef::parse(&image.reference) {
        Ok(have) => {
            have.name() == wanted.name()
                && wanted
                    .tag
                    .as_ref()
                    .is_none_or(|t| have.tag.as_ref() == Some(t))
        }
        Err(_) => false,
    }
}

async fn ls(opts: &ClientOpts, a: LsArgs) -> anyhow::Result<()> {
    let wanted = a.reference.as_deref().map(ImageRef::parse).transpose()?;
    let (mut images, _) = client(opts).await?;
    let mut all = list(&mut images).await?;
    if let Some(w) = &wanted {
        all.retain(|i| matches_reference(i, w));
    }
    print!(
        "{}",
        format::images::render_image_list(
            &all,
            now_nanos(),
            a.format.as_deref(),
            a.quiet,
            a.digests,
            a.no_trunc
        )?
    );
    Ok(())
}

async fn pull(opts: &ClientOpts, a: PullArgs) -> anyhow::Result<()> {
    let parsed = ImageRef::parse(&a.reference)?;
    let defaulted = parsed.tag.is_none() && parsed.digest.is_none();
    let full = parsed.clone().with_default_tag();
    let (mut images, _) = client(opts).await?;
    let before = list(&mut images).await?;
    if !a.quiet {
        if defaulted {
            println!("Using default tag: latest");
        }
        let what = full
            .tag
            .clone()
            .or_else(|| full.digest.clone())
            .unwrap_or_default();
        println!("{what}: Pulling from {}", full.path);
    }
    let pulled = images
        .pull_image(PullImageRequest {
            reference: full.to_string(),
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .image
        .unwrap_or_default();
    let reference = if pulled.reference.is_empty() {
        full.to_string()
    } else {
        pulled.reference.clone()
    };
    if !a.quiet {
        let up_to_date = before.iter().any(|i| {
            i.reference == reference
                && (i.id == pulled.id || (!i.digest.is_empty() && i.digest == pulled.digest))
        });
        if !pulled.digest.is_empty() {
            println!("Digest: {}", pulled.digest);
        }
        let familiar = full.familiar_tagged();
        if up_to_date {
            println!("Status: Image is up to date for {familiar}");
        } else {
            println!("Status: Downloaded newer image for {familiar}");
        }
    }
    println!("{reference}");
    Ok(())
}

async fn rm(opts: &ClientOpts, a: RmArgs) -> anyhow::Result<()> {
    let (mut images, _) = client(opts).await?;
    let mut errors = Vec::new();
    for reference in &a.images {
        match images
            .remove_image(RemoveImageRequest {
                reference: reference.clone(),
                force: a.force,
            })
            .await
        {
            Ok(r) => {
                let r = r.into_inner();
                for u in r.untagged {
                    println!("Untagged: {u}");
                }
                for d in r.deleted {
                    println!("Deleted: {d}");
                }
            }
            Err(s) if s.code() == tonic::Code::NotFound => {
                errors.push(anyhow::anyhow!(
                    "Error response from daemon: No such image: {reference}"
                ));
            }
            Err(s) => errors.push(status_error(s)),
        }
    }
    match errors.pop() {
        None => Ok(()),
        Some(last) => {
            for e in errors {
                eprintln!("{e}");
            }
            Err(last)
        }
    }
}

async fn load(opts: &ClientOpts, a: LoadArgs) -> anyhow::Result<()> {
    // The daemon opens the file: hand it an absolute path.
    let path = std::path::absolute(Path::new(&a.input))
        .map_err(|e| anyhow::anyhow!("open {}: {e}", a.input))?;
    let (mut images, target) = client(opts).await?;
    if matches!(target, Target::Unix(_)) && !path.exists() {
        anyhow::bail!("open {}: no such file or directory", a.input);
    }
    let loaded = images
        .load_image(LoadImageRequest {
            path: path.to_string_lossy().into_owned(),
        })
        .await
        .map_err(status_error)?
        .into_inner()
        .images;
    if !a.quiet {
        for image in loaded {
            if image.reference.is_empty() {
                println!("Loaded image ID: {}", image.id);
            } else {
                let shown = ImageRef::parse(&image.reference)
                    .map_or_else(|_| image.reference.clone(), |r| r.familiar_tagged());
                println!("Loaded image: {shown}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser, Debug)]
    struct Cli {
        #[command(subcommand)]
        cmd: ImageCommand,
    }

    #[test]
    fn takes_dockers_command_lines() {
        use clap::{CommandFactory, Parser};
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["image", "load", "-i", "busybox.tar"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(cli.cmd, ImageCommand::Load(LoadArgs { ref input, quiet: false }) if input == "busybox.tar")
        );
        assert!(Cli::try_parse_from(["image", "load"]).is_err());
        let cli =
            Cli::try_parse_from(["image", "rm", "-f", "a", "b"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(cli.cmd, ImageCommand::Rm(RmArgs { force: true, ref images }) if images.len() == 2)
        );
    }

    #[test]
    fn repository_filters_match_tags() {
        let image = ImageSummary {
            reference: "docker.io/library/busybox:1.36".into(),
            ..Default::default()
        };
        let want = |s: &str| ImageRef::parse(s).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches_reference(&image, &want("busybox")));
        assert!(matches_reference(&image, &want("busybox:1.36")));
        assert!(!matches_reference(&image, &want("busybox:latest")));
        assert!(!matches_reference(
            &image,
            &want("registry.local:5000/busybox")
        ));
    }
}

//! `stack deploy --resolve-image always|changed|never`: which image reference
//! each planned service runs, decided before the diff, as Docker's CLI does.
//!
//! * `always`: every service's tag is resolved to the digest its registry
//!   has now and the spec pinned to `name:tag@sha256:…` (Docker's familiar
//!   form, `:latest` added when no tag was written).
//! * `changed`: only services that are new, or whose image as written in the
//!   file (the `com.docker.stack.image` label) differs from the deployed
//!   one's, are resolved; the others keep the reference they run, pinned or
//!   not, so a redeploy does not update them.
//! * `never`: nothing is asked; a service whose written image did not
//!   change keeps the reference it runs (a digest pinned by an earlier
//!   deploy stays), the others take the image as written. It is rswarm's
//!   default where Docker's is `always`: images loaded on the nodes
//!   (`image load`, the quickstart's) would otherwise send every deploy to
//!   Docker Hub and print a warning for each.
//!
//! "Keeps the reference it runs" holds only while that reference is the
//! written one with or without a digest: an image changed by hand with
//! `service update --image` is put back to the file's.
//!
//! Registries are asked by the node the CLI talks to (the `ResolveImage`
//! call of its Images API on the local socket), with its mirrors, insecure
//! registries and credentials, and with the credentials the spec carries
//! (`--with-registry-auth`) for the registry they name. A reference that
//! already has a digest is not resolved. When the registry cannot give a
//! digest (an image that only exists on the nodes, `image load`; a registry
//! that is down), Docker's warning is printed and the reference is kept as
//! written. The Images API is not served on a manager's `tcp://` port, so
//! resolving needs a node's socket: that is refused with a clear error.

use std::collections::{BTreeMap, HashSet};

use rswarm_proto::daemon::images_client::ImagesClient;
use rswarm_proto::daemon::ResolveImageRequest;
use rswarm_proto::spec::reference::ImageRef;
use rswarm_proto::types::{Service, ServiceSpec};
use tonic::transport::Channel;

use crate::client::status_error;
use crate::compose::to_spec::IMAGE_LABEL;

/// The `--resolve-image` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ResolveImage {
    Always,
    Changed,
    Never,
}

impl ResolveImage {
    pub(super) fn parse(value: &str) -> anyhow::Result<ResolveImage> {
        match value {
            "always" => Ok(ResolveImage::Always),
            "changed" => Ok(ResolveImage::Changed),
            "never" => Ok(ResolveImage::Never),
            _ => anyhow::bail!(
                "invalid value {value:?} for --resolve-image: must be always, changed or never"
            ),
        }
    }

    fn word(self) -> &'static str {
        match self {
            ResolveImage::Always => "always",
            ResolveImage::Changed => "changed",
            ResolveImage::Never => "never",
        }
    }
}

/// What a planned service's image becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Choice {
    /// The reference the deployed service runs.
    Keep(String),
    /// The written reference, pinned to its registry digest if it has one.
    Resolve,
    /// The written reference as it is.
    AsWritten,
}

fn image_of(spec: &ServiceSpec) -> &str {
    spec.task
        .as_ref()
        .and_then(|t| t.container.as_ref())
        .map_or("", |c| c.image.as_str())
}

fn written_image(spec: &ServiceSpec) -> Option<&str> {
    spec.annotations
        .as_ref()
        .and_then(|a| a.labels.get(IMAGE_LABEL))
        .map(String::as_str)
}

fn registry_auth(spec: &ServiceSpec) -> &str {
    spec.task
        .as_ref()
        .and_then(|t| t.container.as_ref())
        .and_then(|c| c.pull_options.as_ref())
        .map_or("", |p| p.registry_auth.as_str())
}

/// Whether `running` is `written`, with or without a digest added.
fn is_written_or_pinned(running: &str, written: &str) -> bool {
    if running == written {
        return true;
    }
    let (Ok(run), Ok(wrote)) = (ImageRef::parse(running), ImageRef::parse(written)) else {
        return false;
    };
    if wrote.digest.is_some() {
        return false;
    }
    let unpinned = ImageRef {
        digest: None,
        ..run
    };
    unpinned.with_default_tag() == wrote.with_default_tag()
}

/// Docker's rule for one service: `planned` as the file gives it, `stored`
/// the spec of the deployed service of that name, if any.
pub(super) fn choose(
    mode: ResolveImage,
    planned: &ServiceSpec,
    stored: Option<&ServiceSpec>,
) -> Choice {
    let written = image_of(planned);
    let unchanged = stored.filter(|s| {
        written_image(s) == Some(written) && is_written_or_pinned(image_of(s), written)
    });
    match (mode, unchanged) {
        (ResolveImage::Always, _) => Choice::Resolve,
        (_, Some(s)) => Choice::Keep(image_of(s).to_string()),
        (ResolveImage::Changed, None) => Choice::Resolve,
        (ResolveImage::Never, None) => Choice::AsWritten,
    }
}

/// `written` pinned to `digest`: `name:tag@digest`, familiar form.
pub(super) fn pinned(written: &str, digest: &str) -> Option<String> {
    let r = ImageRef::parse(written).ok()?.with_default_tag();
    Some(
        ImageRef {
            digest: Some(digest.to_string()),
            ..r
        }
        .familiar(),
    )
}

/// Docker's words when a registry gives no digest (its line breaks too).
pub(super) fn digest_warning(image: &str) -> String {
    format!(
        "image {image} could not be accessed on a registry to record\nits digest. Each node will access {image} independently,\npossibly leading to different nodes running different\nversions of the image.\n"
    )
}

fn set_image(spec: &mut ServiceSpec, image: String) {
    if let Some(c) = spec.task.as_mut().and_then(|t| t.container.as_mut()) {
        c.image = image;
    }
}

/// Sets the image of every planned service by `mode` (see the module doc),
/// asking the node behind `channel` for the digests needed, once per image
/// and credentials. Warnings go to stderr.
pub(super) async fn pin_images(
    mode: ResolveImage,
    planned: &mut [ServiceSpec],
    existing: &[Service],
    channel: &Channel,
) -> anyhow::Result<()> {
    let stored_of = |spec: &ServiceSpec| {
        let name = spec.annotations.as_ref().map(|a| a.name.as_str());
        existing
            .iter()
            .find(|s| {
                s.spec
                    .as_ref()
                    .and_then(|sp| sp.annotations.as_ref())
                    .map(|a| a.name.as_str())
                    == name
            })
            .and_then(|s| s.spec.as_ref())
    };
    let choices: Vec<Choice> = planned
        .iter()
        .map(|spec| choose(mode, spec, stored_of(spec)))
        .collect();
    // (written image, credentials) → resolved reference (None: kept as written).
    let mut wanted: BTreeMap<(String, String), Option<String>> = BTreeMap::new();
    for (spec, choice) in planned.iter().zip(&choices) {
        let written = image_of(spec);
        let has_digest = ImageRef::parse(written).is_ok_and(|r| r.digest.is_some());
        if *choice == Choice::Resolve && !has_digest {
            wanted.insert((written.to_string(), registry_auth(spec).to_string()), None);
        }
    }
    let asks = wanted.keys().cloned().map(|(image, auth)| {
        let mut images = ImagesClient::new(channel.clone());
        async move {
            let answer = images
                .resolve_image(ResolveImageRequest {
                    reference: image.clone(),
                    registry_auth: auth.clone(),
                })
                .await;
            ((image, auth), answer)
        }
    });
    let mut warned: HashSet<String> = HashSet::new();
    for (key, answer) in futures::future::join_all(asks).await {
        match answer {
            Ok(r) => {
                let digest = r.into_inner().digest;
                wanted.insert(key.clone(), pinned(&key.0, &digest));
            }
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                tracing::debug!(image = %key.0, reason = %s.message(), "no registry digest");
                if warned.insert(key.0.clone()) {
                    eprintln!("{}", digest_warning(&key.0));
                }
            }
            Err(s) if s.code() == tonic::Code::Unimplemented => anyhow::bail!(
                "--resolve-image {} needs a node's local socket: registries are asked by a node's image store, which a manager's tcp:// port does not serve; run the deploy on a node, or use --resolve-image never",
                mode.word()
            ),
            Err(s) => return Err(status_error(s)),
        }
    }
    for (spec, choice) in planned.iter_mut().zip(choices) {
        let image = match choice {
            Choice::Keep(image) => image,
            Choice::AsWritten => continue,
            Choice::Resolve => {
                let key = (image_of(spec).to_string(), registry_auth(spec).to_string());
                match wanted.get(&key) {
                    Some(Some(pinned)) => pinned.clone(),
                    _ => continue,
                }
            }
        };
        set_image(spec, image);
    }
    Ok(())
}

#[cfg(test)]
#[path = "resolve_tests.rs"]
mod tests;

//! Local images in Docker's shapes: the `image ls` row (REPOSITORY, TAG,
//! IMAGE ID as 12 hex digits, CREATED as "2 weeks ago", SIZE as "4.86MB"),
//! with `--digests` adding DIGEST.
//!
//! Reads `rswarm_proto::daemon::ImageSummary`; `output` does `--format` / `-q`.

use rswarm_proto::daemon::ImageSummary;
use serde_json::{Map, Value};

use super::humanize::{go_format_g, go_time};
use super::output::{render_list, ListFormat};
use super::table::HeaderNames;
use super::tasks::{human_duration, SHORT_ID_LEN};
use super::FormatError;
use crate::servicespec::reference::ImageRef;

/// Docker's default `image ls` table.
pub const IMAGE_LS_TABLE: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
/// Docker's `image ls --digests` table.
pub const IMAGE_LS_DIGESTS_TABLE: &str =
    "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// Docker's column titles for the `image ls` fields.
pub const IMAGE_LS_HEADERS: &[(&str, &str)] = &[
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("ID", "IMAGE ID"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
];

const NONE: &str = "<none>";

/// go-units' `HumanSizeWithPrecision(size, 3)`: decimal units, three
/// significant digits (`4.86MB`, `1.2kB`, `512B`).
pub fn human_size(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", go_format_g(size, 3), UNITS[unit])
}

/// An image ID as `image ls` shows it: 12 hex digits, or whole with `--no-trunc`.
pub fn image_id(id: &str, no_trunc: bool) -> String {
    if no_trunc {
        return id.to_string();
    }
    let hex = id.split_once(':').map_or(id, |(_, h)| h);
    hex.chars().take(SHORT_ID_LEN).collect()
}

/// Repository and tag of a stored reference, familiar (`redis`, `latest`);
/// `<none>` for what is missing.
pub fn repository_and_tag(reference: &str) -> (String, String) {
    match ImageRef::parse(reference) {
        Ok(r) => (r.familiar_name(), r.tag.unwrap_or_else(|| NONE.to_string())),
        Err(_) if reference.is_empty() => (NONE.to_string(), NONE.to_string()),
        Err(_) => (reference.to_string(), NONE.to_string()),
    }
}

/// One `image ls` row with Docker's template fields, in `--format json`
/// order: `CreatedAt`, `CreatedSince`, `Digest`, `ID`, `Repository`,
/// `Size`, `Tag`. `now` is unix nanoseconds.
pub fn image_ls_row(image: &ImageSummary, now: i64, no_trunc: bool) -> Value {
    let (repository, tag) = repository_and_tag(&image.reference);
    let created_ns = image.created.saturating_mul(1_000_000_000);
    let since = if image.created == 0 {
        "N/A".to_string()
    } else {
        format!("{} ago", human_duration(now - created_ns))
    };
    let digest = if image.digest.is_empty() {
        NONE.to_string()
    } else {
        image.digest.clone()
    };
    let mut row = Map::new();
    row.insert("CreatedAt".into(), go_time(created_ns).into());
    row.insert("CreatedSince".into(), since.into());
    row.insert("Digest".into(), digest.into());
    row.insert("ID".into(), image_id(&image.id, no_trunc).into());
    row.insert("Repository".into(), repository.into());
    row.insert("Size".into(), human_size(image.size as f64).into());
    row.insert("Tag".into(), tag.into());
    Value::Object(row)
}

/// Everything `rswarm image ls` prints: newest first, for `--format`,
/// `-q`, `--digests` and `--no-trunc`.
pub fn render_image_list(
    images: &[ImageSummary],
    now: i64,
    format: Option<&str>,
    quiet: bool,
    digests: bool,
    no_trunc: bool,
) -> Result<String, FormatError> {
    let mut sorted: Vec<&ImageSummary> = images.iter().collect();
    sorted.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| a.reference.cmp(&b.reference))
    });
    let rows: Vec<Value> = sorted
        .into_iter()
        .map(|i| image_ls_row(i, now, no_trunc))
        .collect();
    let list = ListFormat {
        default_table: if digests {
            IMAGE_LS_DIGESTS_TABLE
        } else {
            IMAGE_LS_TABLE
        },
        headers: HeaderNames::new(IMAGE_LS_HEADERS),
        row_type: "image",
    };
    render_list(&rows, format, quiet, &list)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000_000;
    const ID: &str = "sha256:3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741";

    fn image(reference: &str, age_secs: i64, size: i64) -> ImageSummary {
        ImageSummary {
            reference: reference.into(),
            id: ID.into(),
            digest: "sha256:b5d6fe0712636ceb7430189de28819e195e8966372edfc2d9409d79402a0dc16"
                .into(),
            size,
            created: NOW / 1_000_000_000 - age_secs,
        }
    }

    #[test]
    fn image_ls_default_table() {
        let images = [
            image(
                "docker.io/library/busybox:latest",
                15 * 24 * 3600,
                4_261_550,
            ),
            image("registry.local:5000/busybox:1", 90, 1_240),
        ];
        let out = render_image_list(&images, NOW, None, false, false, false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            out,
            concat!(
                "REPOSITORY                    TAG       IMAGE ID       CREATED              SIZE\n",
                "registry.local:5000/busybox   1         3f57d9401f8d   About a minute ago   1.24kB\n",
                "busybox                       latest    3f57d9401f8d   2 weeks ago          4.26MB\n",
            )
        );
        let quiet = render_image_list(&images, NOW, None, true, false, false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(quiet, "3f57d9401f8d\n3f57d9401f8d\n");
        let digests = render_image_list(&images[1..], NOW, None, false, true, true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(digests.starts_with("REPOSITORY                    TAG       DIGEST"));
        assert!(digests.contains(ID));
    }

    #[test]
    fn sizes_and_references() {
        assert_eq!(human_size(512.0), "512B");
        assert_eq!(human_size(4_261_550.0), "4.26MB");
        assert_eq!(human_size(1_000_000_000.0), "1GB");
        assert_eq!(
            repository_and_tag(
                "redis@sha256:b5d6fe0712636ceb7430189de28819e195e8966372edfc2d9409d79402a0dc16"
            ),
            ("redis".to_string(), "<none>".to_string())
        );
        assert_eq!(
            repository_and_tag(""),
            ("<none>".to_string(), "<none>".to_string())
        );
        assert_eq!(image_id("sha256:0123456789abcdef", false), "0123456789ab");
    }
}

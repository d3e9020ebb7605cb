//! Drift: a box that runs an older image than the newest of its line
//! (`box.image_tag`/`image_name`), said by `status`, `list`, `doctor`,
//! `create` on an existing box, and `upgrade --all --dry-run`.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::provider::ImageSummary;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    /// What the box runs (None: unknown).
    pub image_id: Option<String>,
    /// Images of its line newer than that one.
    pub newer: usize,
    pub newest: String,
    pub newest_published: Option<DateTime<Utc>>,
}

impl Drift {
    /// Against the line's images (newest first): None when the box runs
    /// the newest, or the line is empty (an image pinned by id, a local
    /// box). An image no longer in the line (deregistered) counts every
    /// image of the line as newer.
    pub fn of(image_id: Option<&str>, line: &[ImageSummary]) -> Option<Drift> {
        let newest = line.first()?;
        let newer = match image_id {
            Some(id) => line.iter().position(|i| i.id == id).unwrap_or(line.len()),
            None => line.len(),
        };
        (newer > 0).then(|| Drift { image_id: image_id.map(String::from), newer, newest: newest.id.clone(), newest_published: newest.created_at })
    }

    /// "2 newer images, newest published 2026-12-01; `workstation upgrade dev`"
    pub fn sentence(&self, name: &str) -> String {
        let count = match self.newer {
            1 => "1 newer image".to_string(),
            n => format!("{n} newer images"),
        };
        let when = self.newest_published.map(|t| format!(", newest published {}", t.format("%Y-%m-%d"))).unwrap_or_default();
        format!("{count} ({}{when}); `workstation upgrade {name}`", self.newest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ids: &[&str]) -> Vec<ImageSummary> {
        ids.iter()
            .enumerate()
            .map(|(n, id)| ImageSummary { id: id.to_string(), created_at: DateTime::from_timestamp(1_800_000_000 - n as i64 * 86_400, 0) })
            .collect()
    }

    #[test]
    fn drift_counts_the_images_newer_than_the_box_s() {
        let images = line(&["ami-3", "ami-2", "ami-1"]);
        assert_eq!(Drift::of(Some("ami-3"), &images), None);
        let d = Drift::of(Some("ami-1"), &images).unwrap();
        assert_eq!((d.newer, d.newest.as_str()), (2, "ami-3"));
        assert!(d.sentence("dev").starts_with("2 newer images (ami-3, newest published 2027-01-15)"), "{}", d.sentence("dev"));
        assert!(d.sentence("dev").ends_with("`workstation upgrade dev`"));
        // Deregistered, or unknown: everything in the line is newer.
        assert_eq!(Drift::of(Some("ami-0"), &images).unwrap().newer, 3);
        assert_eq!(Drift::of(None, &images).unwrap().newer, 3);
        // Pinned by id, or local: no line, no drift.
        assert_eq!(Drift::of(Some("ami-1"), &[]), None);
    }
}

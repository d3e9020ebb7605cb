//! The comment CI posts on the pull request (`--output markdown`).

use super::{Mode, PreviewReport};
use crate::stack::services::{Health, ProgramStatus};

/// Markdown: the URL, the commit, what the upload did, and each service's
/// state and health.
pub fn markdown(r: &PreviewReport) -> String {
    let mut out = format!("### Preview #{} {}\n\n", r.number, if r.healthy { "is up" } else { "is NOT healthy" });
    if let Some(url) = &r.url {
        out += &format!("**{url}**\n\n");
    }
    let upload = match r.upload.mode {
        Mode::Full => format!("the whole tree ({} files)", r.upload.written),
        Mode::Changes => {
            format!("{} changed and {} deleted files since `{}`", r.upload.written, r.upload.deleted, short(r.upload.from.as_deref().unwrap_or("?")))
        }
        Mode::Unchanged => "nothing (already at this commit)".into(),
    };
    out += &format!("Commit `{}` on box `{}` ({}); uploaded {upload}.", short(&r.commit), r.info.name, r.info.owner);
    if !r.applied.installed.is_empty() {
        out += &format!(" Ran {}.", r.applied.installed.iter().map(|c| format!("`{}`", cell(c))).collect::<Vec<_>>().join(", "));
    }
    if !r.applied.install_failed.is_empty() {
        out += &format!(" **Failed:** {}.", r.applied.install_failed.iter().map(|c| format!("`{}`", cell(c))).collect::<Vec<_>>().join(", "));
    }
    out += &format!(" Expires {}.\n\n", r.expires.format("%Y-%m-%d %H:%M UTC"));
    if !r.hostnames.is_empty() {
        out += &format!(
            "Hostnames: {}. On a laptop: `workstation share --preview {}`.\n\n",
            r.hostnames.iter().map(|h| format!("`{h}`")).collect::<Vec<_>>().join(", "),
            r.number
        );
    }
    out += &programs(&r.programs);
    out
}

fn programs(programs: &[ProgramStatus]) -> String {
    if programs.is_empty() {
        return String::new();
    }
    let mut out = String::from("| Service | State | Health |\n|---|---|---|\n");
    for p in programs {
        let health = match &p.health {
            Health::Healthy => "healthy".to_owned(),
            Health::NoCheck => "no check".to_owned(),
            Health::Unhealthy(why) => format!("unhealthy: {}", cell(why)),
        };
        out += &format!("| {} | {} | {} |\n", cell(&p.name), cell(&p.state), health);
    }
    out
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// Text from the box in a table cell: one line, no column breaks, no
/// backticks that would end a code span.
fn cell(text: &str) -> String {
    text.replace(['\n', '\r'], " ").replace('|', "\\|").replace('`', "'")
}

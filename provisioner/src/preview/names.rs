//! A preview's names: its box `pr-N`, its hostnames with `pr-N` as a
//! label, its URL, and the manifest as the preview runs it.

use std::net::IpAddr;

use super::Repo;
use crate::manifest::name::BoxName;
use crate::manifest::LoadedManifest;

/// The variables every service of a preview gets.
pub const PREVIEW_ENV: &str = "WORKSTATION_PREVIEW";
pub const PREVIEW_URL_ENV: &str = "WORKSTATION_PREVIEW_URL";

/// The box of pull request `number`.
pub fn box_name(number: u32) -> BoxName {
    format!("pr-{number}").parse().expect("pr-N is a box name")
}

/// The manifest's hostnames for preview `number`: `pr-N` after the first
/// label (a one-label name gets it as a suffix: `api` -> `api.pr-N`).
pub fn hostnames(names: &[String], number: u32) -> Vec<String> {
    labelled(names, &format!("pr-{number}"))
}

/// The manifest's hostnames with `label` after their first label: how a
/// preview's and a team box's names differ from engineers' own.
pub fn labelled(names: &[String], label: &str) -> Vec<String> {
    names
        .iter()
        .map(|n| match n.split_once('.') {
            Some((first, rest)) => format!("{first}.{label}.{rest}"),
            None => format!("{n}.{label}"),
        })
        .collect()
}

/// Where reviewers open the preview: its first hostname, else its address.
pub fn url(hostnames: &[String], address: Option<IpAddr>) -> Option<String> {
    hostnames.first().map(|h| format!("http://{h}")).or_else(|| address.map(|a| format!("http://{a}")))
}

/// The manifest as preview `number` runs it: its hostnames, and the
/// preview variables in every service's environment.
pub fn manifest_for(manifest: &LoadedManifest, number: u32, url: Option<&str>) -> LoadedManifest {
    let mut m = manifest.clone();
    m.manifest.hostnames = hostnames(&manifest.manifest.hostnames, number);
    for service in m.manifest.services.values_mut() {
        service.environment.insert(PREVIEW_ENV.into(), number.to_string());
        service.environment.insert(PREVIEW_URL_ENV.into(), url.unwrap_or_default().into());
    }
    m
}

/// Where the tree goes on the box, relative to its root: `sync.path`, else
/// `src/<repository directory name>` (where `sync` puts a checkout).
pub fn checkout_path(manifest: &LoadedManifest, repo: &Repo) -> String {
    let name = repo.root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "checkout".into());
    manifest.manifest.sync.path.clone().unwrap_or_else(|| format!("src/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preview_hostnames_take_the_pull_request_as_a_label() {
        let names = vec!["api.dev.example.com".to_owned(), "web.dev.example.com".to_owned(), "api".to_owned()];
        assert_eq!(hostnames(&names, 123), ["api.pr-123.dev.example.com", "web.pr-123.dev.example.com", "api.pr-123"]);
        assert_eq!(url(&hostnames(&names, 7), None).as_deref(), Some("http://api.pr-7.dev.example.com"));
        assert_eq!(url(&[], Some("10.0.0.5".parse().unwrap())).as_deref(), Some("http://10.0.0.5"));
        assert_eq!(box_name(42).as_str(), "pr-42");
    }

    #[test]
    fn every_service_gets_the_preview_variables() {
        let m = crate::manifest::Manifest::parse(
            "hostnames = [\"api.dev.example.com\"]\n[box]\ninstance_type = \"t3.micro\"\ndisk_gib = 8\nimage_id = \"ami-1\"\n\
             [services.api]\ncommand = \"x\"\nenvironment = { KEEP = \"1\" }\n[services.web]\ncommand = \"y\"\n",
        )
        .unwrap();
        let loaded = LoadedManifest { path: "workstation.toml".into(), manifest: m, hash: "h".into() };
        let p = manifest_for(&loaded, 9, Some("http://api.pr-9.dev.example.com"));
        assert_eq!(p.manifest.hostnames, ["api.pr-9.dev.example.com"]);
        for s in p.manifest.services.values() {
            assert_eq!(s.environment[PREVIEW_ENV], "9");
            assert_eq!(s.environment[PREVIEW_URL_ENV], "http://api.pr-9.dev.example.com");
        }
        assert_eq!(p.manifest.services["api"].environment["KEEP"], "1");
    }
}

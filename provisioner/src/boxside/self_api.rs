//! The box acting on itself, through one client: an EC2 instance through
//! its own API (identity and its own tags from IMDSv2; the instance role
//! allows tagging and stopping only itself and reading nothing, see
//! terraform/), a local-provider box through its record on this machine.

use std::path::Path;

use aws_config::imds;
use aws_sdk_ec2::error::DisplayErrorContext;
use aws_sdk_ec2::types::Tag;
use chrono::{DateTime, Utc};

use super::BoxSideError;
use crate::laptop::paths::Paths;
use crate::laptop::settings::Settings;
use crate::provider::local::LocalProvider;
use crate::provider::{tags, Provider};

/// Instance metadata is local to the box; waiting this long means it is busy.
const IMDS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub enum SelfApi {
    Ec2 { client: aws_sdk_ec2::Client, imds: imds::Client, id: String },
    Local { provider: LocalProvider, id: String },
}

impl SelfApi {
    /// The box whose root is `root`: a local box when the local provider
    /// has one there (its root sits beside its record), else this EC2
    /// instance (id and region as given, else from IMDSv2).
    pub async fn for_root(root: &Path, id: Option<String>, region: Option<String>) -> Result<SelfApi, BoxSideError> {
        match Self::local_at(root)? {
            Some(api) => Ok(api),
            None => Self::ec2(id, region).await,
        }
    }

    /// This EC2 instance: id and region as given, else from IMDSv2.
    pub async fn ec2(id: Option<String>, region: Option<String>) -> Result<SelfApi, BoxSideError> {
        // The SDK's 1 s connect timeout is for probing whether this is EC2
        // at all; here it is, and a busy box (a build at full CPU) must not
        // turn a slow answer into a failed idle check.
        let imds = imds::Client::builder().connect_timeout(IMDS_TIMEOUT).read_timeout(IMDS_TIMEOUT).max_attempts(4).build();
        let (id, region) = match (id, region) {
            (Some(id), Some(region)) => (id, region),
            (id, region) => {
                let (imds_id, imds_region) = instance_identity(&imds).await?;
                (id.unwrap_or(imds_id), region.unwrap_or(imds_region))
            }
        };
        let sdk = crate::provider::aws::sdk::config(None, Some(region)).await;
        Ok(SelfApi::Ec2 { client: aws_sdk_ec2::Client::new(&sdk), imds, id })
    }

    fn local_at(root: &Path) -> Result<Option<SelfApi>, BoxSideError> {
        // A local box's root is its data volume's directory in the machine
        // directory (an older box's: its own there, or beside its box.json);
        // an image-built box's is /var/lib/workstation.
        let machine = Path::new(crate::provider::machine::MACHINE_DIR);
        let in_machine = root.starts_with(machine.join("volumes")) || root.starts_with(machine.join("boxes"));
        if !in_machine && !root.parent().is_some_and(|d| d.join("box.json").is_file()) {
            return Ok(None);
        }
        let local = |e: &dyn std::fmt::Display| BoxSideError::Io(format!("reading the local box record of {}: {e}", root.display()));
        let paths = Paths::from_env().map_err(|e| local(&e))?;
        let settings = Settings::load(&paths, &|k| std::env::var(k).ok()).map_err(|e| local(&e))?;
        let provider = LocalProvider::new(paths.local_boxes(), settings.local, settings.local_idle_check_every).map_err(|e| local(&e))?;
        // A root that looks local but is no box's is an error, not an EC2
        // instance to ask the metadata service about.
        match provider.box_at(root).map_err(|e| local(&e))? {
            Some(id) => Ok(Some(SelfApi::Local { provider, id })),
            None => Err(local(&"no local box of this HOME has that root (`workstation ssh NAME -- 'echo $WORKSTATION_BOX_ROOT'` shows a box's)")),
        }
    }

    pub fn id(&self) -> &str {
        match self {
            SelfApi::Ec2 { id, .. } | SelfApi::Local { id, .. } => id,
        }
    }

    pub async fn tag(&self, key: &str, value: &str) -> Result<(), BoxSideError> {
        match self {
            SelfApi::Ec2 { client, id, .. } => {
                let tag = Tag::builder().key(key).value(value).build();
                client.create_tags().resources(id).tags(tag).send().await.map_err(api("CreateTags"))?;
            }
            SelfApi::Local { provider, id } => provider.record_tag(id, key, value).map_err(local)?,
        }
        Ok(())
    }

    pub async fn keep_until(&self) -> Result<Option<DateTime<Utc>>, BoxSideError> {
        match self {
            // Instance metadata has the instance's own tags (the launch
            // turns InstanceMetadataTags on), so the role needs no
            // region-wide DescribeTags.
            SelfApi::Ec2 { imds, .. } => match imds.get(&format!("/latest/meta-data/tags/instance/{}", tags::KEEP_UNTIL)).await {
                Ok(value) => Ok(crate::provider::parse_time(Some(value.as_ref().trim()))),
                Err(imds::client::error::ImdsError::ErrorResponse(r)) if r.response().status().as_u16() == 404 => Ok(None),
                Err(e) => Err(BoxSideError::Metadata { what: "the keep-until tag", message: DisplayErrorContext(&e).to_string() }),
            },
            SelfApi::Local { provider, id } => Ok(provider.describe(id).await.map_err(local)?.keep_until),
        }
    }

    /// Whether this is a team box (`workstation env`), which follows the
    /// manifest's `[team_idle]`: its `workstation:team` tag.
    pub async fn is_team_box(&self) -> Result<bool, BoxSideError> {
        match self {
            SelfApi::Ec2 { imds, .. } => match imds.get(&format!("/latest/meta-data/tags/instance/{}", tags::TEAM)).await {
                Ok(_) => Ok(true),
                Err(imds::client::error::ImdsError::ErrorResponse(r)) if r.response().status().as_u16() == 404 => Ok(false),
                Err(e) => Err(BoxSideError::Metadata { what: "the team tag", message: DisplayErrorContext(&e).to_string() }),
            },
            SelfApi::Local { provider, id } => Ok(provider.describe(id).await.map_err(local)?.team.is_some()),
        }
    }

    /// Stops this box; `hibernate` (the manifest's box.hibernate) keeps
    /// its memory on an instance launched with hibernation.
    pub async fn stop(&self, hibernate: bool) -> Result<(), BoxSideError> {
        match self {
            SelfApi::Ec2 { client, id, .. } => {
                let stop = |hibernate: bool| client.stop_instances().instance_ids(id).set_hibernate(hibernate.then_some(true)).send();
                match stop(hibernate).await {
                    Err(e) if hibernate && crate::provider::aws::hibernation_refused(&e) => stop(false).await.map(drop),
                    result => result.map(drop),
                }
                .map_err(api("StopInstances"))?;
            }
            SelfApi::Local { provider, id } => provider.stop(id, false).await.map_err(local)?,
        }
        Ok(())
    }
}

/// This instance's id and region, from IMDSv2 (session token first).
pub async fn instance_identity(client: &imds::Client) -> Result<(String, String), BoxSideError> {
    let get = |what: &'static str, path: &'static str| async move {
        client.get(path).await.map(|v| v.as_ref().trim().to_string()).map_err(|e| BoxSideError::Metadata { what, message: DisplayErrorContext(&e).to_string() })
    };
    Ok((get("instance id", "/latest/meta-data/instance-id").await?, get("region", "/latest/meta-data/placement/region").await?))
}

fn local(e: crate::provider::ProviderError) -> BoxSideError {
    BoxSideError::Io(e.to_string())
}

fn api<E: std::error::Error + 'static>(operation: &'static str) -> impl Fn(E) -> BoxSideError {
    move |e| BoxSideError::Api { operation, message: DisplayErrorContext(&e).to_string() }
}

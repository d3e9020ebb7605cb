//! A preview reported to GitHub: a Deployment of environment `pr-N` (its
//! URL, a link to the run's log) moved through `in_progress` to `success`
//! or `failure`, and a Check run on the commit carrying the summary the
//! pull request comment carries; `preview down` marks the environment's
//! deployments `inactive`. GitHub's REST API through octocrab, with the
//! workflow's token (`GITHUB_TOKEN`), never an argument.
//!
//! The request bodies follow GitHub's documentation: "Create a deployment"
//! and "List deployments" (docs.github.com/en/rest/deployments/deployments),
//! "Create a deployment status" (…/deployments/statuses), "Create a check
//! run" (…/checks/runs).

use serde::Deserialize;
use serde_json::json;

/// The variable holding the token (the workflow passes `github.token`).
pub const TOKEN_ENV: &str = "GITHUB_TOKEN";
/// The check run's name on the pull request.
pub const CHECK_NAME: &str = "workstation preview";
/// GitHub's limits: a deployment status' description, a check run's
/// summary.
const DESCRIPTION_MAX: usize = 140;
const SUMMARY_MAX: usize = 65_535;

#[derive(Debug, thiserror::Error)]
pub enum GitHubError {
    #[error(
        "--github needs {0} (GitHub Actions sets GITHUB_REPOSITORY, GITHUB_API_URL and GITHUB_RUN_ID; pass the token as `env: GITHUB_TOKEN: ${{{{ github.token }}}}`, with permissions deployments: write and checks: write)"
    )]
    Missing(&'static str),
    #[error("GITHUB_REPOSITORY {0:?} is not OWNER/REPO")]
    Repository(String),
    #[error("GitHub's API ({what}): {detail}")]
    Api { what: String, detail: String },
}

/// Where a preview is reported, and as whom.
pub struct GitHub {
    client: octocrab::Octocrab,
    owner: String,
    repo: String,
    /// The workflow run's page: the deployment's and a failed check's log link.
    log_url: Option<String>,
}

/// How a preview run ended, as GitHub shows it.
pub enum Outcome<'a> {
    /// The preview is up; `healthy` says whether its stack is.
    Up { url: Option<&'a str>, healthy: bool, summary: &'a str },
    /// The run failed before the preview was up.
    Failed { error: &'a str },
}

#[derive(Deserialize)]
struct Created {
    id: u64,
}

impl GitHub {
    /// From the environment GitHub Actions sets: on with `forced`
    /// (`--github`), which then needs all of it; otherwise on only in
    /// Actions with a token.
    pub fn from_env(forced: bool) -> Result<Option<GitHub>, GitHubError> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let in_actions = var("GITHUB_ACTIONS").as_deref() == Some("true");
        let wanted = forced || (in_actions && var(TOKEN_ENV).is_some());
        if !wanted {
            return Ok(None);
        }
        let token = var(TOKEN_ENV).ok_or(GitHubError::Missing(TOKEN_ENV))?;
        let repository = var("GITHUB_REPOSITORY").ok_or(GitHubError::Missing("GITHUB_REPOSITORY"))?;
        let (owner, repo) = match repository.split_once('/') {
            Some((o, r)) if is_name(o) && is_name(r) => (o.to_owned(), r.to_owned()),
            _ => return Err(GitHubError::Repository(repository)),
        };
        let api = var("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into());
        let log_url = match (var("GITHUB_SERVER_URL"), var("GITHUB_RUN_ID")) {
            (Some(server), Some(run)) => Some(format!("{}/{repository}/actions/runs/{run}", server.trim_end_matches('/'))),
            _ => None,
        };
        let api_error = |e: octocrab::Error| GitHubError::Api { what: format!("client for {api}"), detail: e.to_string() };
        // Bounded, and never retried: a POST retried after GitHub took it
        // would make a second deployment or check run.
        let client = octocrab::Octocrab::builder()
            .base_uri(api.as_str())
            .map_err(api_error)?
            .personal_token(token)
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(std::time::Duration::from_secs(10)))
            .set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .build()
            .map_err(api_error)?;
        Ok(Some(GitHub { client, owner, repo, log_url }))
    }

    fn route(&self, path: &str) -> String {
        format!("/repos/{}/{}/{path}", self.owner, self.repo)
    }

    async fn post(&self, what: &str, path: &str, body: serde_json::Value) -> Result<Created, GitHubError> {
        self.client.post(self.route(path), Some(&body)).await.map_err(|e| api(what, e))
    }

    /// A deployment of `sha` to environment `pr-N`, in progress.
    pub async fn start(&self, number: u32, sha: &str) -> Result<u64, GitHubError> {
        let deployment = self
            .post(
                "creating the deployment",
                "deployments",
                json!({
                    "ref": sha,
                    "environment": environment(number),
                    "description": format!("preview of pull request #{number}"),
                    // A preview deploys the commit it is given: no merge of
                    // the default branch, no wait for other checks.
                    "auto_merge": false,
                    "required_contexts": [],
                    // Gone once the pull request closes.
                    "transient_environment": true,
                    "production_environment": false,
                }),
            )
            .await?;
        self.status(deployment.id, "in_progress", None, "bringing the preview up").await?;
        Ok(deployment.id)
    }

    /// The deployment's end, and a check run on `sha` saying the same.
    pub async fn finish(&self, deployment: u64, sha: &str, outcome: &Outcome<'_>) -> Result<(), GitHubError> {
        let (ok, url, title, summary) = match outcome {
            Outcome::Up { url, healthy: true, summary } => (true, *url, "The preview is up".to_string(), summary.to_string()),
            Outcome::Up { url, healthy: false, summary } => (false, *url, "The preview is NOT healthy".to_string(), summary.to_string()),
            Outcome::Failed { error } => (false, None, "The preview failed".to_string(), format!("```\n{}\n```", error.replace("```", "'''"))),
        };
        let state = if ok { "success" } else { "failure" };
        self.status(deployment, state, url, &title).await?;
        let mut summary = summary;
        if let (false, Some(log)) = (ok, &self.log_url) {
            summary += &format!("\n\n[The run's log]({log})");
        }
        let mut check = json!({
            "name": CHECK_NAME,
            "head_sha": sha,
            "status": "completed",
            "conclusion": state,
            "output": { "title": title, "summary": truncate(&summary, SUMMARY_MAX) },
        });
        if let Some(details) = url.map(str::to_owned).or_else(|| self.log_url.clone()) {
            check["details_url"] = json!(details);
        }
        self.post("creating the check run", "check-runs", check).await?;
        Ok(())
    }

    /// Marks every deployment of `pr-N` inactive; returns how many.
    pub async fn deactivate(&self, number: u32) -> Result<usize, GitHubError> {
        let route = format!("{}?environment={}&per_page=100", self.route("deployments"), environment(number));
        let deployments: Vec<Created> = self.client.get(route, None::<&()>).await.map_err(|e| api("listing the deployments", e))?;
        for d in &deployments {
            self.status(d.id, "inactive", None, "the pull request's preview is down").await?;
        }
        Ok(deployments.len())
    }

    async fn status(&self, deployment: u64, state: &str, url: Option<&str>, description: &str) -> Result<(), GitHubError> {
        let mut body = json!({ "state": state, "description": truncate(description, DESCRIPTION_MAX) });
        if let Some(url) = url {
            body["environment_url"] = json!(url);
        }
        if let Some(log) = &self.log_url {
            body["log_url"] = json!(log);
        }
        self.post(&format!("setting the deployment {state}"), &format!("deployments/{deployment}/statuses"), body).await?;
        Ok(())
    }
}

/// The GitHub environment of pull request `number`'s preview.
pub fn environment(number: u32) -> String {
    format!("pr-{number}")
}

fn api(what: &str, e: octocrab::Error) -> GitHubError {
    let detail = match &e {
        octocrab::Error::GitHub { source, .. } => format!("{} ({})", source.message, source.status_code),
        other => other.to_string(),
    };
    GitHubError::Api { what: what.into(), detail }
}

/// An owner or repository name as GitHub allows them.
fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 100 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) && s != "." && s != ".."
}

/// At most `max` bytes, cut at a character boundary.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max - 3;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_and_names_fit_githubs_limits() {
        assert_eq!(truncate("short", 140), "short");
        let long = "é".repeat(100);
        let cut = truncate(&long, DESCRIPTION_MAX);
        assert!(cut.len() <= DESCRIPTION_MAX && cut.ends_with("..."), "{cut}");
        assert!(is_name("my-org") && is_name("repo.rs") && !is_name("..") && !is_name("a/b") && !is_name(""));
        assert_eq!(environment(12), "pr-12");
    }
}

//! SSH over AWS Systems Manager Session Manager (`connect = "ssm"`): no
//! inbound port on the box at all. The AWS CLI's `ssm start-session` with
//! AWS's `AWS-StartSSHSession` document (it runs the Session Manager plugin)
//! forwards the session to the box's sshd, and SSH runs over its stdin and
//! stdout: the host key is checked against the pin as on any other path,
//! so Session Manager carries bytes but is not trusted with identity.

use serde::{Deserialize, Serialize};

/// How the laptop reaches a box's sshd.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Connect {
    /// TCP to the box's address (VPN, Transit Gateway, or the local bridge);
    /// "vpn" too, as terraform's `connect` output says it.
    #[default]
    #[serde(alias = "vpn")]
    Direct,
    /// Session Manager port forwarding (terraform's connect = "ssm").
    Ssm,
}

impl std::str::FromStr for Connect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "direct" | "vpn" => Ok(Connect::Direct),
            "ssm" => Ok(Connect::Ssm),
            other => Err(format!("{other:?} is not a way to connect; use \"direct\" or \"ssm\"")),
        }
    }
}

/// AWS's document that forwards a session to a port of the instance.
pub const DOCUMENT: &str = "AWS-StartSSHSession";

/// The AWS CLI invocation that opens a session to `instance_id`'s `port`:
/// `aws ssm start-session --target ID --document-name AWS-StartSSHSession
/// --parameters portNumber=PORT` (AWS Systems Manager User Guide, "Allow and
/// control permissions for SSH connections through Session Manager").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartSession {
    pub region: Option<String>,
    pub profile: Option<String>,
}

impl StartSession {
    pub fn argv(&self, instance_id: &str, port: &str) -> Vec<String> {
        let mut argv: Vec<String> =
            ["aws", "ssm", "start-session", "--target", instance_id, "--document-name", DOCUMENT, "--parameters"].map(String::from).to_vec();
        argv.push(format!("portNumber={port}"));
        argv.extend(self.region.iter().flat_map(|r| ["--region".to_string(), r.clone()]));
        argv.extend(self.profile.iter().flat_map(|p| ["--profile".to_string(), p.clone()]));
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_forwards_to_sshd_with_the_ssh_document() {
        let s = StartSession { region: Some("eu-west-1".into()), profile: Some("dev".into()) };
        assert_eq!(
            s.argv("i-0abc", "22").join(" "),
            "aws ssm start-session --target i-0abc --document-name AWS-StartSSHSession --parameters portNumber=22 --region eu-west-1 --profile dev"
        );
        assert_eq!(StartSession::default().argv("i-1", "%p").len(), 9);
        assert_eq!("ssm".parse::<Connect>().unwrap(), Connect::Ssm);
        assert_eq!("vpn".parse::<Connect>().unwrap(), Connect::Direct, "terraform's connect output as it is");
        assert!("tcp".parse::<Connect>().is_err());
    }
}

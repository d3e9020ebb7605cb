//! terraform/network.tf gives a box a way to every AWS API it calls, with
//! no route out at all (box_internet = "none"): each service the code and
//! the image call has a VPC endpoint. The list is derived from what runs on
//! the box: the SDK calls of provisioner/src/boxside/ (the box's own
//! client), seeds fetched from S3 presigned URLs (stack/seed/), and the
//! Session Manager agent the image enables (images/workstation.nix).

use std::collections::BTreeSet;
use std::process::Command;

use workstation_tests::{repo_root, run_ok};

const HCL2_PYTHON: &str = "/opt/workstation-ci/hcl2/bin/python";

fn read(rel: &str) -> String {
    read_path(&repo_root().join(rel))
}

/// A file, or every file under a folder.
fn read_path(path: &std::path::Path) -> String {
    if path.is_dir() {
        std::fs::read_dir(path).unwrap().map(|e| read_path(&e.unwrap().path())).collect()
    } else {
        std::fs::read_to_string(path).unwrap()
    }
}

/// The AWS services a box calls, from the code and the image.
fn box_services() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let boxside: String = read("provisioner/src/boxside").split_whitespace().collect();
    // The box's own client is an EC2 client: every `ec2.` or `client.` call
    // in boxside/ is the EC2 API.
    assert!(boxside.contains("aws_sdk_ec2"), "boxside/ calls EC2");
    out.insert("ec2".to_string());
    // The SDK's credential chain on an instance asks STS for nothing, but
    // the AWS CLI and agents check their identity with it.
    out.insert("sts".to_string());
    if read("provisioner/src/stack/seed").contains("presigned") {
        out.insert("s3".to_string());
    }
    if read("images/workstation.nix").contains("services.amazon-ssm-agent.enable = true") {
        out.extend(["ssm", "ssmmessages", "ec2messages"].map(String::from));
    }
    out
}

/// Endpoint services network.tf creates: the interface list and the
/// gateway endpoints' service names.
fn endpoints() -> BTreeSet<String> {
    let script = r#"
import hcl2, json, sys
doc = hcl2.load(open(sys.argv[1]))
out = []
for block in doc.get("locals", []):
    out += block.get("box_interface_services", [])
for block in doc.get("resource", []):
    for kind, named in block.items():
        if kind.strip('"') == "aws_vpc_endpoint":
            for name, body in named.items():
                out.append(body["service_name"])
json.dump(out, sys.stdout)
"#;
    let path = repo_root().join("terraform/network.tf");
    let names: Vec<String> = serde_json::from_str(&run_ok(Command::new(HCL2_PYTHON).arg("-c").arg(script).arg(&path))).unwrap();
    names
        .iter()
        .filter_map(|n| {
            let n = n.trim_matches('"');
            // `com.amazonaws.${var.region}.s3`, or the for_each's value.
            if n.contains("each.value") {
                None
            } else {
                Some(n.rsplit('.').next().unwrap().to_string())
            }
        })
        .collect()
}

#[test]
fn every_api_a_box_calls_has_an_endpoint() {
    let services = box_services();
    assert!(services.contains("ssm") && services.contains("s3"), "the derivation sees the agent and the seeds: {services:?}");
    let endpoints = endpoints();
    let missing: Vec<_> = services.difference(&endpoints).collect();
    assert!(missing.is_empty(), "terraform/network.tf has no endpoint for {missing:?}, which boxes call; endpoints: {endpoints:?}");

    // And without an endpoint the NAT is the route: box_internet = "nat"
    // routes 0.0.0.0/0 through it.
    let network = read("terraform/network.tf");
    let squeezed: String = network.split_whitespace().collect();
    assert!(squeezed.contains("destination_cidr_block=\"0.0.0.0/0\"nat_gateway_id=aws_nat_gateway.boxes[0].id"), "the NAT route");
    // connect = "ssm" opens no port: the only ingress is for "vpn".
    assert!(squeezed.contains("for_each=var.connect==\"vpn\"?"), "ingress only with connect = vpn");
}

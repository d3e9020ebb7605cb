//! moto's EC2 server (PyPI `moto[server]`) on a free loopback port.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{BlockDeviceMapping, EbsBlockDevice};
use aws_sdk_ec2::Client;

use crate::{free_port, REGION};

/// moto imports a lot of Python on start; a loaded CI machine needs seconds.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Moto {
    pub url: String,
    child: Child,
}

impl Moto {
    /// moto on loopback.
    pub fn start() -> Moto {
        Moto::start_on("127.0.0.1")
    }

    /// moto on `host`: the test bridge's gateway lets boxes (namespaces)
    /// reach it too, as an EC2 box reaches the EC2 API.
    pub fn start_on(host: &str) -> Moto {
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", host, "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server starts (pip install 'moto[server]')");
        let mut moto = Moto { url: format!("http://{host}:{port}"), child };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect((host, port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto exited with {status} before listening");
            }
            assert!(Instant::now() < deadline, "moto did not listen on port {port} within {START_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }

    /// Environment that points the SDK (and so the CLI) at this moto.
    pub fn client_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", REGION),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub fn client(&self) -> Client {
        let conf = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build();
        Client::from_conf(conf)
    }

    /// The EBS direct APIs (snapshot blocks), from the same server.
    pub fn ebs_client(&self) -> aws_sdk_ebs::Client {
        let conf = aws_sdk_ebs::Config::builder()
            .behavior_version(aws_sdk_ebs::config::BehaviorVersion::latest())
            .region(aws_sdk_ebs::config::Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            // moto answers a block never put with a server error: no retries.
            .retry_config(aws_sdk_ebs::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_ebs::Client::from_conf(conf)
    }

    /// S3 (seeds, the deployed manifest), from the same server, path-style.
    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Route 53 (preview hostnames), from the same server.
    pub fn route53_client(&self) -> aws_sdk_route53::Client {
        let conf = aws_sdk_route53::Config::builder()
            .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
            .region(aws_sdk_route53::config::Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build();
        aws_sdk_route53::Client::from_conf(conf)
    }

    /// EC2 Instance Connect (keys pushed to team boxes), from the same server.
    pub fn instance_connect_client(&self) -> aws_sdk_ec2instanceconnect::Client {
        let conf = aws_sdk_ec2instanceconnect::Config::builder()
            .behavior_version(aws_sdk_ec2instanceconnect::config::BehaviorVersion::latest())
            .region(aws_sdk_ec2instanceconnect::config::Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build();
        aws_sdk_ec2instanceconnect::Client::from_conf(conf)
    }

    /// Systems Manager (parameters), from the same server.
    pub fn ssm_client(&self) -> aws_sdk_ssm::Client {
        let conf = aws_sdk_ssm::Config::builder()
            .behavior_version(aws_sdk_ssm::config::BehaviorVersion::latest())
            .region(aws_sdk_ssm::config::Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build();
        aws_sdk_ssm::Client::from_conf(conf)
    }

    /// Secrets Manager, from the same server.
    pub fn secretsmanager_client(&self) -> aws_sdk_secretsmanager::Client {
        let conf = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(aws_sdk_secretsmanager::config::Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build();
        aws_sdk_secretsmanager::Client::from_conf(conf)
    }

    /// SQS, from the same server.
    pub fn sqs_client(&self) -> aws_sdk_sqs::Client {
        let conf = aws_sdk_sqs::Config::builder()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new(REGION))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .build();
        aws_sdk_sqs::Client::from_conf(conf)
    }

    /// A VPC owning the whole test network, this env's subnet in it, and a
    /// registered image. Returns (subnet id, image name).
    pub fn prepare(&self, subnet: ipnet::Ipv4Net) -> (String, String) {
        let client = self.client();
        block_on(async {
            let vpc = client.create_vpc().cidr_block(crate::NETWORK).send().await.unwrap();
            let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).unwrap().to_string();
            let sub = client.create_subnet().vpc_id(&vpc_id).cidr_block(subnet.to_string()).send().await.unwrap();
            let subnet_id = sub.subnet().and_then(|s| s.subnet_id()).unwrap().to_string();
            let name = "workstation-nixos-test".to_string();
            client
                .register_image()
                .name(&name)
                .root_device_name("/dev/xvda")
                .block_device_mappings(
                    BlockDeviceMapping::builder()
                        .device_name("/dev/xvda")
                        .ebs(EbsBlockDevice::builder().snapshot_id("snap-12345678").volume_size(8).build())
                        .build(),
                )
                .send()
                .await
                .unwrap();
            (subnet_id, name)
        })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// Launches `n` boxes named `dev` (RunInstances calls of 500, owners
/// u0, u1, ... one per call), as a fleet for reap and activity; returns
/// their ids.
pub fn launch_fleet(client: &Client, n: usize) -> Vec<String> {
    use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
    block_on(async {
        let mut ids = Vec::new();
        for call in 0..n.div_ceil(500) {
            let count = (n - call * 500).min(500) as i32;
            let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
            let spec = TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .tags(tag("workstation:owner", &format!("u{call}")))
                .tags(tag("workstation:name", "dev"))
                .build();
            let out = client.run_instances().image_id("ami-12c6146b").min_count(count).max_count(count).tag_specifications(spec).send().await.unwrap();
            ids.extend(out.instances().iter().filter_map(|i| i.instance_id().map(String::from)));
        }
        ids
    })
}

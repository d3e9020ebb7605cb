//! The deployed manifest: the copy the platform published to S3
//! (`workstation manifest publish`, terraform's `manifest_url`), which the
//! reaper reads, so a manifest change needs no terraform apply; `doctor`
//! says when it differs from the engineer's.

use std::fmt;

use aws_sdk_s3::primitives::ByteStream;

/// The most a deployed manifest may be: it is a small text file, and the
/// reaper reads it on every run.
const MAX_BYTES: usize = 1 << 20;

/// `s3://BUCKET/KEY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub key: String,
}

impl S3Url {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.strip_prefix("s3://").and_then(|rest| rest.split_once('/')) {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(S3Url { bucket: bucket.into(), key: key.into() }),
            _ => Err(format!("{s:?} is not an S3 object URI; use s3://BUCKET/KEY")),
        }
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployedError {
    #[error("cannot read the deployed manifest {url}; check your credentials and terraform's manifest_url output")]
    Get {
        url: S3Url,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot write the deployed manifest {url}; it needs terraform's manifest_publisher policy")]
    Put {
        url: S3Url,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the deployed manifest {url} is larger than {MAX_BYTES} bytes or not UTF-8: not a workstation.toml")]
    NotAManifest { url: S3Url },
}

/// The deployed manifest's text.
pub async fn fetch(s3: &aws_sdk_s3::Client, url: &S3Url) -> Result<String, DeployedError> {
    let get = |source: Box<dyn std::error::Error + Send + Sync>| DeployedError::Get { url: url.clone(), source };
    let out = s3.get_object().bucket(&url.bucket).key(&url.key).send().await.map_err(|e| get(Box::new(aws_sdk_s3::Error::from(e))))?;
    if out.content_length().is_some_and(|n| n > MAX_BYTES as i64) {
        return Err(DeployedError::NotAManifest { url: url.clone() });
    }
    let bytes = out.body.collect().await.map_err(|e| get(Box::new(e)))?.into_bytes();
    if bytes.len() > MAX_BYTES {
        return Err(DeployedError::NotAManifest { url: url.clone() });
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| DeployedError::NotAManifest { url: url.clone() })
}

/// Publishes `text` (an already validated manifest) as the deployed one.
pub async fn publish(s3: &aws_sdk_s3::Client, url: &S3Url, text: &str) -> Result<(), DeployedError> {
    s3.put_object()
        .bucket(&url.bucket)
        .key(&url.key)
        .content_type("application/toml")
        .body(ByteStream::from(text.as_bytes().to_vec()))
        .send()
        .await
        .map_err(|e| DeployedError::Put { url: url.clone(), source: Box::new(aws_sdk_s3::Error::from(e)) })?;
    Ok(())
}

/// The lines where two manifests differ, for `doctor` (line numbers of
/// `local`; at most `limit` of them).
pub fn differing_lines(local: &str, deployed: &str, limit: usize) -> Vec<usize> {
    let (a, b): (Vec<&str>, Vec<&str>) = (local.lines().collect(), deployed.lines().collect());
    (0..a.len().max(b.len())).filter(|&i| a.get(i) != b.get(i)).map(|i| i + 1).take(limit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_key() {
        assert_eq!(S3Url::parse("s3://b/manifest/workstation.toml").unwrap(), S3Url { bucket: "b".into(), key: "manifest/workstation.toml".into() });
        for bad in ["s3://b", "s3:///k", "https://b/k", "b/k", "s3://b/"] {
            assert!(S3Url::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(S3Url::parse("s3://b/k").unwrap().to_string(), "s3://b/k");
    }

    #[test]
    fn differing_lines_are_counted_from_one() {
        assert_eq!(differing_lines("a\nb\nc\n", "a\nB\nc\nd\n", 10), [2, 4]);
        assert!(differing_lines("a\n", "a\n", 10).is_empty());
    }
}

//! The S3 backend (`s3://bucket/prefix`). Not implemented yet.

use super::OpenOpts;

pub struct S3Backend;

impl S3Backend {
    pub async fn open(_rest: &str, _opts: &OpenOpts) -> anyhow::Result<super::local::LocalBackend> {
        anyhow::bail!("s3:// stores are not implemented yet")
    }
}

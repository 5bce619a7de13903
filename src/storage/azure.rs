//! The Azure Blob backend (`az://container/prefix`). Not implemented yet.

use super::OpenOpts;

pub struct AzureBackend;

impl AzureBackend {
    pub fn open(_rest: &str, _opts: &OpenOpts) -> anyhow::Result<super::local::LocalBackend> {
        anyhow::bail!("az:// stores are not implemented yet")
    }
}

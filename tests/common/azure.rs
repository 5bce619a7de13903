//! Azurite (the Azure Storage emulator from npm, installed by tests/run.sh) started on a free port in
//! a temp directory and stopped on drop. Containers are created with the azure-storage-blob Python
//! SDK (installed beside moto) so that no test signs requests by hand.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::process::{Killed, free_port, must_succeed, wait_for_port};

/// Azurite's well-known development account (public, documented by Microsoft).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub struct Azurite {
    _child: Killed,
    pub port: u16,
    pub endpoint: String,
    dir: tempfile::TempDir,
}

pub fn python() -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home).join(".cache/rewind-tests/moto/bin/python")
}

impl Azurite {
    pub fn start() -> Azurite {
        Self::start_with(false)
    }

    /// Starts Azurite with its debug log (every request, see `requests`).
    pub fn start_with_debug_log() -> Azurite {
        Self::start_with(true)
    }

    fn start_with(debug: bool) -> Azurite {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("azurite.log")).unwrap();
        let mut cmd = Command::new("azurite-blob");
        if debug {
            cmd.arg("--debug").arg(dir.path().join("debug.log"));
        }
        let child = cmd
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--location",
                dir.path().to_str().unwrap(),
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start azurite-blob (run tests/run.sh to install it)");
        wait_for_port("azurite", port);
        Azurite {
            _child: Killed(child),
            port,
            endpoint: format!("http://127.0.0.1:{port}/{ACCOUNT}"),
            dir,
        }
    }

    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={};",
            self.endpoint
        )
    }

    /// How many requests Azurite logged whose method and URL contain `method` and `url_part` (needs
    /// `start_with_debug_log`).
    pub fn requests(&self, method: &str, url_part: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("debug.log")).unwrap_or_default();
        let needle = format!("RequestMethod={method} RequestURL=");
        log.lines()
            .filter_map(|l| l.split_once(&needle))
            .filter(|(_, rest)| rest.split(' ').next().unwrap_or("").contains(url_part))
            .count()
    }

    /// A container SAS token with the given permissions (e.g. "rwl": read, write, list; no delete).
    pub fn container_sas(&self, container: &str, permissions: &str) -> String {
        let out = Command::new(python())
            .args([
                "-c",
                "import sys, datetime\nfrom azure.storage.blob import generate_container_sas\nprint(generate_container_sas(sys.argv[1], sys.argv[2], account_key=sys.argv[3], permission=sys.argv[4], expiry=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)))",
                ACCOUNT,
                container,
                KEY,
                permissions,
            ])
            .output()
            .expect("run python with azure-storage-blob");
        let out = must_succeed(out, &format!("container SAS for {container}"));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn create_container(&self, name: &str) {
        let out = Command::new(python())
            .args([
                "-c",
                "import sys\nfrom azure.storage.blob import BlobServiceClient\nBlobServiceClient.from_connection_string(sys.argv[1]).create_container(sys.argv[2])",
                &self.connection_string(),
                name,
            ])
            .output()
            .expect("run python with azure-storage-blob");
        must_succeed(out, &format!("create container {name}"));
    }

    /// The store options a script passes to reach this Azurite.
    pub fn opts_json(&self) -> String {
        format!(
            r#"{{"account": "{ACCOUNT}", "access_key": "{KEY}", "endpoint": "{}", "part_size": 5242880}}"#,
            self.endpoint
        )
    }
}

//! Test support: real Apache Kafka and Apache Cassandra processes from `scripts/services.sh`,
//! on free loopback ports, stopped when dropped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What to start.
#[derive(Clone, Copy)]
pub struct Options {
    /// Cassandra nodes (on 127.0.0.1 … 127.0.0.N).
    pub cassandra_nodes: usize,
    /// Replication factor of the keyspace.
    pub replication: usize,
    /// Also run an SSL listener that requires client certificates.
    pub ssl: bool,
}

/// Running Kafka and Cassandra.
pub struct Services {
    env: Vec<(String, String)>,
    /// Where the services keep their data (and the certificates under `certs/`).
    pub data: PathBuf,
}

impl Services {
    /// Runs `scripts/services.sh args…` with this deployment's ports; panics on failure.
    pub fn run(&self, args: &[&str]) {
        let st = Command::new("bash")
            .arg(repo().join("scripts/services.sh"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .status()
            .expect("run scripts/services.sh");
        assert!(st.success(), "scripts/services.sh {args:?} failed");
    }

    /// Starts Kafka (topics `flint-tx` and `flint-tx-admin`) and Cassandra (keyspace `flint`) with data in `data`.
    pub fn start(data: &Path, o: Options) -> Services {
        let mut env: Vec<(String, String)> = vec![
            ("SERVICES_DATA".into(), data.display().to_string()),
            ("KAFKA_PORT".into(), free_port().to_string()),
            ("KAFKA_CONTROLLER_PORT".into(), free_port().to_string()),
            ("CASSANDRA_PORT".into(), free_port().to_string()),
            ("CASSANDRA_STORAGE_PORT".into(), free_port().to_string()),
            ("CASSANDRA_NODES".into(), o.cassandra_nodes.to_string()),
        ];
        if o.ssl {
            env.push(("KAFKA_SSL_PORT".into(), free_port().to_string()));
        }
        let s = Services {
            env,
            data: data.to_path_buf(),
        };
        s.run(&["kafka", "start"]);
        s.run(&["topic", "flint-tx"]);
        s.run(&["topic", "flint-tx-admin"]);
        s.run(&["cassandra", "start"]);
        s.run(&["keyspace", "flint", &o.replication.to_string()]);
        s
    }

    /// The value of one of the port variables.
    pub fn port(&self, name: &str) -> &str {
        &self.env.iter().find(|(k, _)| k == name).unwrap().1
    }

    /// The number of Cassandra nodes.
    pub fn cassandra_nodes(&self) -> usize {
        self.port("CASSANDRA_NODES").parse().unwrap()
    }

    /// A certificate or key file made by `scripts/services.sh certs`.
    pub fn cert(&self, name: &str) -> String {
        self.data.join("certs").join(name).display().to_string()
    }

    /// Environment of a Flint node over PLAINTEXT Kafka.
    pub fn node_env(&self, consistency: &str) -> Vec<(&'static str, String)> {
        let cassandra = (1..=self.cassandra_nodes())
            .map(|i| format!("127.0.0.{i}:{}", self.port("CASSANDRA_PORT")))
            .collect::<Vec<_>>()
            .join(",");
        vec![
            (
                "DB_KAFKA_BOOTSTRAP_SERVERS",
                format!("127.0.0.1:{}", self.port("KAFKA_PORT")),
            ),
            ("DB_CASSANDRA_CONTACT_POINTS", cassandra),
            ("DB_CASSANDRA_PUT_CONSISTENCY_LEVEL", consistency.into()),
        ]
    }

    /// Environment of a Flint node over SSL with a client certificate: PEM files, or the
    /// PKCS#12 key store when `pkcs12`.
    pub fn node_env_ssl(&self, consistency: &str, pkcs12: bool) -> Vec<(&'static str, String)> {
        let mut env = self.node_env(consistency);
        env[0].1 = format!("127.0.0.1:{}", self.port("KAFKA_SSL_PORT"));
        env.push(("DB_KAFKA_SECURITY_PROTOCOL", "SSL".into()));
        env.push(("DB_KAFKA_SSL_CA_LOCATION", self.cert("ca.pem")));
        if pkcs12 {
            env.push(("DB_KAFKA_SSL_KEYSTORE_LOCATION", self.cert("client.p12")));
            env.push(("DB_KAFKA_SSL_KEYSTORE_PASSWORD", "flint-secret".into()));
        } else {
            env.push(("DB_KAFKA_SSL_CERTIFICATE_LOCATION", self.cert("client.pem")));
            env.push(("DB_KAFKA_SSL_KEY_LOCATION", self.cert("client.key")));
        }
        env
    }
}

/// Passwords of the key stores made by [`Services::key_stores`].
pub const TRUSTSTORE_PASSWORD: &str = "trust-secret";
/// The key store's password.
pub const KEYSTORE_PASSWORD: &str = "store-secret";

/// The shell block of docs/deployment/distributed.md that creates the key stores with keytool
/// (the one after the comment that names this file).
fn key_store_recipe() -> String {
    let doc = std::fs::read_to_string(repo().join("docs/deployment/distributed.md")).unwrap();
    let marker = doc
        .find("<!-- crates/flint-e2e/tests/common/services.rs runs the next block")
        .expect("the key store recipe in docs/deployment/distributed.md");
    let rest = &doc[marker..];
    let start = rest.find("```sh\n").expect("its sh block") + "```sh\n".len();
    let end = start + rest[start..].find("```").unwrap();
    rest[start..end].to_string()
}

impl Services {
    /// Makes `kafka.truststore.jks` and `blaze.keystore.jks` in `dir` of keytool's
    /// `store_type` (JKS or PKCS12) by running the guide's recipe, the client certificate signed
    /// by the test CA; returns the environment of a node using them over SSL. The JKS key gets
    /// a password of its own (PKCS#12 has one for both).
    pub fn node_env_key_stores(
        &self,
        consistency: &str,
        dir: &Path,
        store_type: &str,
    ) -> Vec<(&'static str, String)> {
        let key_password = if store_type == "JKS" {
            "key-secret"
        } else {
            KEYSTORE_PASSWORD
        };
        let store = |name: &str| dir.join(name).display().to_string();
        if !dir.join("blaze.keystore.jks").exists() {
            std::fs::create_dir_all(dir).unwrap();
            for f in ["ca.pem", "ca.key"] {
                std::fs::copy(self.cert(f), dir.join(f)).unwrap();
            }
            let recipe = key_store_recipe();
            assert!(recipe.starts_with("STORETYPE=JKS "), "{recipe}");
            let script = recipe.replace("STORETYPE=JKS", &format!("STORETYPE={store_type}"));
            let out = Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .current_dir(dir)
                .env("TRUSTSTORE_PASSWORD", TRUSTSTORE_PASSWORD)
                .env("KEYSTORE_PASSWORD", KEYSTORE_PASSWORD)
                .env("KEY_PASSWORD", key_password)
                .output()
                .expect("run the key store recipe");
            assert!(
                out.status.success(),
                "the key store recipe failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // The CA's key stays with the CA.
            std::fs::remove_file(dir.join("ca.key")).unwrap();
        }
        let magic = std::fs::read(dir.join("blaze.keystore.jks")).unwrap()[..4].to_vec();
        assert_eq!(
            magic == [0xFE, 0xED, 0xFE, 0xED],
            store_type == "JKS",
            "keytool wrote a {store_type} store"
        );
        let mut env = self.node_env(consistency);
        env[0].1 = format!("127.0.0.1:{}", self.port("KAFKA_SSL_PORT"));
        env.push(("DB_KAFKA_SECURITY_PROTOCOL", "SSL".into()));
        env.push((
            "DB_KAFKA_SSL_TRUSTSTORE_LOCATION",
            store("kafka.truststore.jks"),
        ));
        env.push((
            "DB_KAFKA_SSL_TRUSTSTORE_PASSWORD",
            TRUSTSTORE_PASSWORD.into(),
        ));
        env.push((
            "DB_KAFKA_SSL_KEYSTORE_LOCATION",
            store("blaze.keystore.jks"),
        ));
        env.push(("DB_KAFKA_SSL_KEYSTORE_PASSWORD", KEYSTORE_PASSWORD.into()));
        env.push(("DB_KAFKA_SSL_KEY_PASSWORD", key_password.into()));
        env
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        self.run(&["stop"]);
    }
}

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

impl Drop for Services {
    fn drop(&mut self) {
        self.run(&["stop"]);
    }
}

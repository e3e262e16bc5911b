//! Key stores made by `keytool` in a temporary directory, read back and refused for each
//! start-up error. The file names deliberately lie about the format (a JKS file named `.p12`,
//! a PKCS#12 file named `.jks`): the form is decided by content.

use super::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// keytool from PATH, `JAVA_HOME` or `/usr/lib/jvm`; these tests fail when there is none.
fn keytool() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("keytool"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        candidates.push(Path::new(&home).join("bin/keytool"));
    }
    if let Ok(dirs) = std::fs::read_dir("/usr/lib/jvm") {
        candidates.extend(dirs.flatten().map(|d| d.path().join("bin/keytool")));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .expect("keytool (a JDK) is needed by these tests: install one or set JAVA_HOME")
}

/// A directory of key stores made with keytool.
struct Kt {
    dir: tempfile::TempDir,
    keytool: PathBuf,
}

impl Kt {
    fn new() -> Kt {
        Kt {
            dir: tempfile::tempdir().unwrap(),
            keytool: keytool(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// Runs keytool in the directory; panics with its output on failure.
    fn run(&self, args: &[&str]) {
        let out = Command::new(&self.keytool)
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run keytool");
        assert!(
            out.status.success(),
            "keytool {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A key pair with a self-signed certificate (EC P-256, quick to make) in `store`.
    fn genkey(&self, store: &str, kind: &str, alias: &str, store_pw: &str, key_pw: &str) {
        self.genkey_dated(store, kind, alias, store_pw, key_pw, None, "30");
    }

    #[allow(clippy::too_many_arguments)]
    fn genkey_dated(
        &self,
        store: &str,
        kind: &str,
        alias: &str,
        store_pw: &str,
        key_pw: &str,
        start: Option<&str>,
        days: &str,
    ) {
        let dname = format!("CN={alias}");
        let mut args = vec![
            "-genkeypair",
            "-alias",
            alias,
            "-dname",
            &dname,
            "-keyalg",
            "EC",
            "-groupname",
            "secp256r1",
            "-validity",
            days,
            "-storetype",
            kind,
            "-keystore",
            store,
            "-storepass",
            store_pw,
            "-keypass",
            key_pw,
        ];
        if let Some(s) = start {
            args.extend(["-startdate", s]);
        }
        self.run(&args);
    }

    /// The certificate of `alias` as PEM, in `file`.
    fn export(&self, store: &str, alias: &str, store_pw: &str, file: &str) -> X509 {
        self.run(&[
            "-exportcert",
            "-rfc",
            "-alias",
            alias,
            "-keystore",
            store,
            "-storepass",
            store_pw,
            "-file",
            file,
        ]);
        X509::from_pem(&std::fs::read(self.path(file)).unwrap()).unwrap()
    }

    /// A trust store of kind `kind` holding the certificate in the PEM `file`.
    fn trust(&self, store: &str, kind: &str, pw: &str, alias: &str, file: &str) {
        self.run(&[
            "-importcert",
            "-noprompt",
            "-alias",
            alias,
            "-file",
            file,
            "-storetype",
            kind,
            "-keystore",
            store,
            "-storepass",
            pw,
        ]);
    }
}

fn err(ssl: &KafkaSsl) -> String {
    match ssl.load() {
        Ok(_) => panic!("{ssl:?} loaded"),
        Err(e) => e,
    }
}

/// Asserts the material is this certificate (as the CA and the client's) with its key.
fn assert_material(m: &SslMaterial, cert: &X509) {
    let ca = X509::stack_from_pem(m.ca_pem.as_ref().unwrap().as_bytes()).unwrap();
    assert_eq!(ca.len(), 1);
    assert_eq!(ca[0].to_der().unwrap(), cert.to_der().unwrap());
    let (chain, key) = m.identity.as_ref().unwrap();
    let chain = X509::stack_from_pem(chain.as_bytes()).unwrap();
    assert_eq!(chain[0].to_der().unwrap(), cert.to_der().unwrap());
    assert!(
        key.starts_with("-----BEGIN PRIVATE KEY-----"),
        "unencrypted PKCS#8"
    );
    let key = PKey::private_key_from_pem(key.as_bytes()).unwrap();
    assert!(chain[0].public_key().unwrap().public_eq(&key));
    let props = m.properties();
    let names: Vec<&str> = props.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["ssl.ca.pem", "ssl.certificate.pem", "ssl.key.pem"],
        "handed over in memory, never as file locations"
    );
}

#[test]
fn jks_stores_are_read_with_their_key_password() {
    let kt = Kt::new();
    // A JKS key store whose key has its own password, named like a PKCS#12 file.
    kt.genkey("client.p12", "JKS", "client", "store-pw", "key-pw");
    let cert = kt.export("client.p12", "client", "store-pw", "client.pem");
    kt.trust("truststore.p12", "JKS", "trust-pw", "ca", "client.pem");
    let ok = KafkaSsl {
        truststore_location: kt.path("truststore.p12"),
        truststore_password: "trust-pw".into(),
        keystore_location: kt.path("client.p12"),
        keystore_password: "store-pw".into(),
        key_password: "key-pw".into(),
        ..KafkaSsl::default()
    };
    assert_material(&ok.load().unwrap(), &cert);
    // Java reads a trust store without a password unchecked; so does Flint.
    let unchecked = KafkaSsl {
        truststore_password: String::new(),
        ..ok.clone()
    };
    assert_material(&unchecked.load().unwrap(), &cert);

    let e = err(&KafkaSsl {
        keystore_password: "wrong".into(),
        ..ok.clone()
    });
    assert!(
        e.starts_with("DB_KAFKA_SSL_KEYSTORE_PASSWORD is wrong") && e.contains("client.p12"),
        "{e}"
    );
    let e = err(&KafkaSsl {
        key_password: "wrong".into(),
        ..ok.clone()
    });
    assert!(
        e.starts_with("DB_KAFKA_SSL_KEY_PASSWORD is wrong for the key `client`"),
        "{e}"
    );
    // Without a key password the store password is tried, and the message says what to set.
    let e = err(&KafkaSsl {
        key_password: String::new(),
        ..ok.clone()
    });
    assert!(
        e.starts_with("DB_KAFKA_SSL_KEYSTORE_PASSWORD is wrong for the key `client`")
            && e.contains("set DB_KAFKA_SSL_KEY_PASSWORD"),
        "{e}"
    );
    let e = err(&KafkaSsl {
        truststore_password: "wrong".into(),
        ..ok.clone()
    });
    assert!(
        e.starts_with("DB_KAFKA_SSL_TRUSTSTORE_PASSWORD is wrong") && e.contains("truststore.p12"),
        "{e}"
    );
    let e = err(&KafkaSsl {
        keystore_password: String::new(),
        ..ok.clone()
    });
    assert!(e.contains("needs DB_KAFKA_SSL_KEYSTORE_PASSWORD"), "{e}");

    // The same key store, with the store password as the key's (the common case).
    kt.genkey("same.jks", "JKS", "client", "store-pw", "store-pw");
    let same = kt.export("same.jks", "client", "store-pw", "same.pem");
    let m = KafkaSsl {
        ca_location: kt.path("same.pem"),
        keystore_location: kt.path("same.jks"),
        keystore_password: "store-pw".into(),
        ..KafkaSsl::default()
    }
    .load()
    .unwrap();
    assert_material(&m, &same);
}

#[test]
fn pkcs12_stores_are_read_by_content() {
    let kt = Kt::new();
    // keytool's default store type is PKCS#12; the names say JKS, as in Blaze's deployment.
    kt.genkey(
        "blaze.keystore.jks",
        "PKCS12",
        "blaze",
        "store-pw",
        "store-pw",
    );
    let cert = kt.export("blaze.keystore.jks", "blaze", "store-pw", "blaze.pem");
    kt.trust(
        "kafka.truststore.jks",
        "PKCS12",
        "trust-pw",
        "ca",
        "blaze.pem",
    );
    let ok = KafkaSsl {
        truststore_location: kt.path("kafka.truststore.jks"),
        truststore_password: "trust-pw".into(),
        keystore_location: kt.path("blaze.keystore.jks"),
        keystore_password: "store-pw".into(),
        ..KafkaSsl::default()
    };
    assert_material(&ok.load().unwrap(), &cert);

    let e = err(&KafkaSsl {
        keystore_password: "wrong".into(),
        ..ok.clone()
    });
    assert!(
        e.starts_with("DB_KAFKA_SSL_KEYSTORE_PASSWORD is wrong") && e.contains("PKCS#12"),
        "{e}"
    );
    let e = err(&KafkaSsl {
        truststore_password: "wrong".into(),
        ..ok.clone()
    });
    assert!(
        e.starts_with("DB_KAFKA_SSL_TRUSTSTORE_PASSWORD is wrong"),
        "{e}"
    );
    // A store as Java wrote them before 8u301/11.0.12 (RC2-40 and 3DES, in OpenSSL 3's
    // legacy provider).
    kt.run(&[
        "-J-Dkeystore.pkcs12.legacy",
        "-genkeypair",
        "-alias",
        "old-java",
        "-dname",
        "CN=old-java",
        "-keyalg",
        "EC",
        "-groupname",
        "secp256r1",
        "-storetype",
        "PKCS12",
        "-keystore",
        "legacy.jks",
        "-storepass",
        "store-pw",
    ]);
    let legacy = std::fs::read(kt.path("legacy.jks")).unwrap();
    let rc2_40 = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x0C, 0x01, 0x06];
    assert!(
        legacy.windows(10).any(|w| w == rc2_40),
        "keytool wrote RC2-40"
    );
    let old = kt.export("legacy.jks", "old-java", "store-pw", "old.pem");
    let m = KafkaSsl {
        ca_location: kt.path("old.pem"),
        keystore_location: kt.path("legacy.jks"),
        keystore_password: "store-pw".into(),
        ..KafkaSsl::default()
    }
    .load()
    .unwrap();
    assert_material(&m, &old);

    // A trust store as the key store: no key in it.
    let e = err(&KafkaSsl {
        keystore_location: kt.path("kafka.truststore.jks"),
        keystore_password: "trust-pw".into(),
        ..ok.clone()
    });
    assert!(e.contains("holds no private key"), "{e}");
}

#[test]
fn a_jks_key_store_needs_exactly_one_private_key() {
    let kt = Kt::new();
    kt.genkey("ca.jks", "JKS", "ca", "pw-123456", "pw-123456");
    kt.export("ca.jks", "ca", "pw-123456", "ca.pem");
    kt.trust("only-trusted.jks", "JKS", "pw-123456", "ca", "ca.pem");
    let e = err(&KafkaSsl {
        keystore_location: kt.path("only-trusted.jks"),
        keystore_password: "pw-123456".into(),
        ..KafkaSsl::default()
    });
    assert!(
        e.starts_with("DB_KAFKA_SSL_KEYSTORE_LOCATION=")
            && e.contains("holds no private-key entry"),
        "{e}"
    );

    kt.genkey("two.jks", "JKS", "node-a", "pw-123456", "pw-123456");
    kt.genkey("two.jks", "JKS", "node-b", "pw-123456", "pw-123456");
    let e = err(&KafkaSsl {
        keystore_location: kt.path("two.jks"),
        keystore_password: "pw-123456".into(),
        ..KafkaSsl::default()
    });
    assert!(
        e.contains("holds 2 private-key entries (node-a, node-b)") && e.contains("ambiguous"),
        "{e}"
    );
}

#[test]
fn certificates_outside_their_validity_are_refused() {
    let kt = Kt::new();
    kt.genkey_dated(
        "old.jks",
        "JKS",
        "old",
        "pw-123456",
        "pw-123456",
        Some("-10d"),
        "2",
    );
    let e = err(&KafkaSsl {
        keystore_location: kt.path("old.jks"),
        keystore_password: "pw-123456".into(),
        ..KafkaSsl::default()
    });
    assert!(
        e.starts_with("DB_KAFKA_SSL_KEYSTORE_LOCATION=") && e.contains("CN=old has expired"),
        "{e}"
    );
    kt.genkey_dated(
        "future.p12",
        "PKCS12",
        "future",
        "pw-123456",
        "pw-123456",
        Some("+10d"),
        "30",
    );
    let e = err(&KafkaSsl {
        keystore_location: kt.path("future.p12"),
        keystore_password: "pw-123456".into(),
        ..KafkaSsl::default()
    });
    assert!(e.contains("CN=future is not valid yet"), "{e}");
    // An expired CA in the trust store.
    kt.export("old.jks", "old", "pw-123456", "old.pem");
    kt.trust("trust.jks", "JKS", "pw-123456", "old-ca", "old.pem");
    let e = err(&KafkaSsl {
        truststore_location: kt.path("trust.jks"),
        truststore_password: "pw-123456".into(),
        ..KafkaSsl::default()
    });
    assert!(
        e.starts_with("DB_KAFKA_SSL_TRUSTSTORE_LOCATION=") && e.contains("has expired"),
        "{e}"
    );
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused() {
    let kt = Kt::new();
    kt.genkey("a.jks", "JKS", "a", "pw-123456", "pw-123456");
    kt.genkey("b.jks", "JKS", "b", "pw-123456", "pw-123456");
    kt.export("a.jks", "a", "pw-123456", "a.pem");
    // b's key, taken out of its store by the reader itself.
    let b = KafkaSsl {
        keystore_location: kt.path("b.jks"),
        keystore_password: "pw-123456".into(),
        ..KafkaSsl::default()
    }
    .load()
    .unwrap();
    let (_, b_key) = b.identity.unwrap();
    std::fs::write(kt.path("b.key"), &b_key).unwrap();
    let pair = KafkaSsl {
        certificate_location: kt.path("a.pem"),
        key_location: kt.path("b.key"),
        ..KafkaSsl::default()
    };
    let e = err(&pair);
    assert!(
        e.contains("the private key does not match its certificate (CN=a)"),
        "{e}"
    );
    // The matching PEM pair is accepted, and so is one PEM file with both as the key store.
    let a_key = KafkaSsl {
        keystore_location: kt.path("a.jks"),
        keystore_password: "pw-123456".into(),
        ..KafkaSsl::default()
    }
    .load()
    .unwrap()
    .identity
    .unwrap()
    .1;
    std::fs::write(kt.path("a.key"), &a_key).unwrap();
    let a = X509::from_pem(&std::fs::read(kt.path("a.pem")).unwrap()).unwrap();
    let m = KafkaSsl {
        ca_location: kt.path("a.pem"),
        key_location: kt.path("a.key"),
        ..pair.clone()
    }
    .load()
    .unwrap();
    assert_material(&m, &a);
    // An encrypted PEM key opens with DB_KAFKA_SSL_KEY_PASSWORD, and only with it.
    let encrypted = PKey::private_key_from_pem(a_key.as_bytes())
        .unwrap()
        .private_key_to_pem_pkcs8_passphrase(openssl::symm::Cipher::aes_256_cbc(), b"pem-pw")
        .unwrap();
    std::fs::write(kt.path("a-enc.key"), encrypted).unwrap();
    let enc = KafkaSsl {
        ca_location: kt.path("a.pem"),
        certificate_location: kt.path("a.pem"),
        key_location: kt.path("a-enc.key"),
        key_password: "pem-pw".into(),
        ..KafkaSsl::default()
    };
    assert_material(&enc.load().unwrap(), &a);
    let e = err(&KafkaSsl {
        key_password: "wrong".into(),
        ..enc.clone()
    });
    assert!(
        e.starts_with("DB_KAFKA_SSL_KEY_PASSWORD is wrong")
            && e.contains("DB_KAFKA_SSL_KEY_LOCATION="),
        "{e}"
    );
    let e = err(&KafkaSsl {
        key_password: String::new(),
        ..enc.clone()
    });
    assert!(
        e.contains("encrypted; set DB_KAFKA_SSL_KEY_PASSWORD"),
        "{e}"
    );
    let e = err(&KafkaSsl {
        truststore_location: kt.path("b.jks"),
        ..enc.clone()
    });
    assert!(e.contains("name different files"), "{e}");

    let both = format!("{}{a_key}", String::from_utf8(a.to_pem().unwrap()).unwrap());
    std::fs::write(kt.path("a-both.pem"), both).unwrap();
    let m = KafkaSsl {
        ca_location: kt.path("a.pem"),
        keystore_location: kt.path("a-both.pem"),
        ..KafkaSsl::default()
    }
    .load()
    .unwrap();
    assert_material(&m, &a);
}

#[test]
fn damaged_files_are_errors_not_panics() {
    let kt = Kt::new();
    kt.genkey("k.jks", "JKS", "k", "pw-123456", "pw-123456");
    let bytes = std::fs::read(kt.path("k.jks")).unwrap();
    let ssl = KafkaSsl {
        keystore_location: kt.path("cut.jks"),
        keystore_password: "pw-123456".into(),
        ..KafkaSsl::default()
    };
    // Every prefix of a real store (the digest stops the ones whose entries parse).
    for n in 0..bytes.len() {
        std::fs::write(kt.path("cut.jks"), &bytes[..n]).unwrap();
        let e = err(&ssl);
        assert!(e.starts_with("DB_KAFKA_SSL_KEYSTORE_"), "{n}: {e}");
    }
    // One flipped bit in the middle: the integrity digest.
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 1;
    std::fs::write(kt.path("cut.jks"), &flipped).unwrap();
    assert!(err(&ssl).contains("integrity check fails"));
    // Neither JKS, PKCS#12 nor PEM.
    std::fs::write(kt.path("cut.jks"), b"not a key store").unwrap();
    assert!(err(&ssl).contains("neither a Java key store (JKS), PKCS#12 nor PEM"));
    let e = err(&KafkaSsl {
        keystore_location: kt.path("missing.jks"),
        ..ssl.clone()
    });
    assert!(e.contains("missing.jks: cannot read the file"), "{e}");
}

//! The SSL material of the Kafka connection, read at start-up whatever form it has: a Java key
//! store (JKS, magic `FEEDFEED`), a PKCS#12 file (what keytool writes by default, often still
//! named `.jks`) or PEM, decided by content. The certificates and the decrypted key go to
//! librdkafka in memory (`ssl.ca.pem`, `ssl.certificate.pem`, `ssl.key.pem`), never to disk.
//! Every problem (wrong password, no or several keys, a certificate out of its validity, a key
//! that does not match its certificate) is an error naming the variable to fix.
//!
//! JKS is read by this module (the format is small and no maintained crate reads it): entries,
//! the store's SHA-1 integrity digest (keyed with the store password, "Mighty Aphrodite"), and
//! the private keys' protection of Sun's `KeyProtector` (OID 1.3.6.1.4.1.42.2.17.1.1: a SHA-1
//! keystream XORed over the PKCS#8 key, followed by a SHA-1 check digest). PKCS#12, PEM and
//! X.509 are read by OpenSSL, which librdkafka links already.

use openssl::asn1::Asn1Time;
use openssl::pkcs12::Pkcs12;
use openssl::pkey::{PKey, Private};
use openssl::sha::Sha1;
use openssl::x509::X509;
use std::cmp::Ordering;

/// The SSL variables of Blaze's distributed deployment; an empty string is an unset variable.
#[derive(Clone, Default)]
pub struct KafkaSsl {
    /// `DB_KAFKA_SSL_CA_LOCATION`: the CA certificates (PEM, JKS or PKCS#12).
    pub ca_location: String,
    /// `DB_KAFKA_SSL_TRUSTSTORE_LOCATION`: Blaze's name for the CA file.
    pub truststore_location: String,
    /// `DB_KAFKA_SSL_TRUSTSTORE_PASSWORD`: checks a JKS trust store, opens a PKCS#12 one.
    pub truststore_password: String,
    /// `DB_KAFKA_SSL_CERTIFICATE_LOCATION`: the client certificate (chain) as PEM.
    pub certificate_location: String,
    /// `DB_KAFKA_SSL_KEY_LOCATION`: the client key as PEM.
    pub key_location: String,
    /// `DB_KAFKA_SSL_KEY_PASSWORD`: the password of the key (a JKS entry's or an encrypted PEM's).
    pub key_password: String,
    /// `DB_KAFKA_SSL_KEYSTORE_LOCATION`: the client key store (JKS, PKCS#12 or PEM).
    pub keystore_location: String,
    /// `DB_KAFKA_SSL_KEYSTORE_PASSWORD`: the key store's password.
    pub keystore_password: String,
}

impl std::fmt::Debug for KafkaSsl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |p: &str| if p.is_empty() { "" } else { "***" };
        f.debug_struct("KafkaSsl")
            .field("ca_location", &self.ca_location)
            .field("truststore_location", &self.truststore_location)
            .field("truststore_password", &hidden(&self.truststore_password))
            .field("certificate_location", &self.certificate_location)
            .field("key_location", &self.key_location)
            .field("key_password", &hidden(&self.key_password))
            .field("keystore_location", &self.keystore_location)
            .field("keystore_password", &hidden(&self.keystore_password))
            .finish()
    }
}

/// The material read from the files, as librdkafka takes it.
pub struct SslMaterial {
    /// The trusted CA certificates as PEM (`ssl.ca.pem`), if any were configured.
    pub ca_pem: Option<String>,
    /// The client certificate and its chain as PEM (`ssl.certificate.pem`), and the unencrypted
    /// PKCS#8 key as PEM (`ssl.key.pem`), if a client identity was configured.
    pub identity: Option<(String, String)>,
}

impl std::fmt::Debug for SslMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SslMaterial")
            .field("ca_pem", &self.ca_pem.is_some())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

impl SslMaterial {
    /// The librdkafka properties that hand the material over in memory.
    pub fn properties(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if let Some(ca) = &self.ca_pem {
            p.push(("ssl.ca.pem".to_string(), ca.clone()));
        }
        if let Some((cert, key)) = &self.identity {
            p.push(("ssl.certificate.pem".to_string(), cert.clone()));
            p.push(("ssl.key.pem".to_string(), key.clone()));
        }
        p
    }
}

/// A start-up error: what is wrong, naming the variable.
type Res<T> = std::result::Result<T, String>;

/// The form of a store file.
enum Form {
    Jks,
    Pkcs12,
    Pem,
}

fn form_of(bytes: &[u8]) -> Option<Form> {
    if bytes.starts_with(&[0xFE, 0xED, 0xFE, 0xED]) {
        Some(Form::Jks)
    } else if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        Some(Form::Pem)
    } else if bytes.first() == Some(&0x30) {
        // DER SEQUENCE: a PKCS#12 PFX (anything else fails to parse as one).
        Some(Form::Pkcs12)
    } else {
        None
    }
}

fn read(var: &str, path: &str) -> Res<Vec<u8>> {
    std::fs::read(path).map_err(|e| format!("{var}={path}: cannot read the file: {e}"))
}

fn unknown_form(var: &str, path: &str) -> String {
    format!("{var}={path}: neither a Java key store (JKS), PKCS#12 nor PEM")
}

impl KafkaSsl {
    /// Reads the configured files: the trust store and the client identity, checked.
    pub fn load(&self) -> Res<SslMaterial> {
        self.load_at(&Asn1Time::days_from_now(0).map_err(|e| e.to_string())?)
    }

    fn load_at(&self, now: &Asn1Time) -> Res<SslMaterial> {
        let ca_pem = self.trust(now)?;
        let identity = self.identity(now)?;
        Ok(SslMaterial { ca_pem, identity })
    }

    /// The trusted certificates from `DB_KAFKA_SSL_CA_LOCATION` or `_TRUSTSTORE_LOCATION`.
    fn trust(&self, now: &Asn1Time) -> Res<Option<String>> {
        let (var, path) = match (self.ca_location.as_str(), self.truststore_location.as_str()) {
            ("", "") => return Ok(None),
            (ca, ts) if !ca.is_empty() && !ts.is_empty() && ca != ts => {
                return Err(format!(
                    "DB_KAFKA_SSL_CA_LOCATION={ca} and DB_KAFKA_SSL_TRUSTSTORE_LOCATION={ts} \
                     name different files; set one of them"
                ));
            }
            ("", ts) => ("DB_KAFKA_SSL_TRUSTSTORE_LOCATION", ts),
            (ca, _) => ("DB_KAFKA_SSL_CA_LOCATION", ca),
        };
        let pw_var = "DB_KAFKA_SSL_TRUSTSTORE_PASSWORD";
        let password = &self.truststore_password;
        let bytes = read(var, path)?;
        let certs = match form_of(&bytes).ok_or_else(|| unknown_form(var, path))? {
            Form::Pem => X509::stack_from_pem(&bytes)
                .map_err(|e| format!("{var}={path}: unreadable PEM certificates: {e}"))?,
            Form::Jks => {
                let store = Jks::parse(&bytes).map_err(|e| format!("{var}={path}: {e}"))?;
                if !password.is_empty() && !store.verify(password) {
                    return Err(wrong_store_password(pw_var, var, path));
                }
                let mut certs = Vec::new();
                for e in &store.entries {
                    if let JksBody::Trusted(der) = &e.body {
                        certs.push(x509(der, var, path, &e.alias)?);
                    }
                }
                certs
            }
            Form::Pkcs12 => {
                let parsed = pkcs12(&bytes, password, pw_var, var, path)?;
                parsed.ca.into_iter().flatten().chain(parsed.cert).collect()
            }
        };
        if certs.is_empty() {
            return Err(format!("{var}={path}: holds no trusted certificate"));
        }
        let mut pem = String::new();
        for c in &certs {
            check_validity(c, now, var, path)?;
            pem.push_str(&to_pem(c)?);
        }
        Ok(Some(pem))
    }

    /// The client certificate chain and key: from the key store, or the PEM pair.
    fn identity(&self, now: &Asn1Time) -> Res<Option<(String, String)>> {
        let key_pw = (!self.key_password.is_empty()).then_some(self.key_password.as_str());
        let (var, path, chain, key) = if !self.keystore_location.is_empty() {
            if !self.certificate_location.is_empty() || !self.key_location.is_empty() {
                return Err(
                    "DB_KAFKA_SSL_KEYSTORE_LOCATION and DB_KAFKA_SSL_CERTIFICATE_LOCATION/\
                            DB_KAFKA_SSL_KEY_LOCATION are both set; set one of them"
                        .to_string(),
                );
            }
            let (var, path) = ("DB_KAFKA_SSL_KEYSTORE_LOCATION", &self.keystore_location);
            let bytes = read(var, path)?;
            let (chain, key) = match form_of(&bytes).ok_or_else(|| unknown_form(var, path))? {
                Form::Jks => self.jks_identity(&bytes, path)?,
                Form::Pkcs12 => {
                    let p = pkcs12(
                        &bytes,
                        &self.keystore_password,
                        "DB_KAFKA_SSL_KEYSTORE_PASSWORD",
                        var,
                        path,
                    )?;
                    let (Some(key), Some(cert)) = (p.pkey, p.cert) else {
                        return Err(format!(
                            "{var}={path}: the PKCS#12 store holds no private key with its \
                             certificate"
                        ));
                    };
                    let mut chain = vec![cert];
                    chain.extend(p.ca.into_iter().flatten());
                    (chain, key)
                }
                Form::Pem => pem_identity((&bytes, var, path), (&bytes, var, path), key_pw)?,
            };
            (var, path.as_str(), chain, key)
        } else if !self.certificate_location.is_empty() || !self.key_location.is_empty() {
            let c_var = "DB_KAFKA_SSL_CERTIFICATE_LOCATION";
            let k_var = "DB_KAFKA_SSL_KEY_LOCATION";
            if self.certificate_location.is_empty() || self.key_location.is_empty() {
                return Err(format!("{c_var} and {k_var} go together; set both"));
            }
            let cert = read(c_var, &self.certificate_location)?;
            let key = read(k_var, &self.key_location)?;
            let path = self.certificate_location.as_str();
            let (chain, key) = pem_identity(
                (&cert, c_var, path),
                (&key, k_var, &self.key_location),
                key_pw,
            )?;
            (c_var, path, chain, key)
        } else {
            return Ok(None);
        };
        let leaf = &chain[0];
        let public = leaf.public_key().map_err(|e| e.to_string())?;
        if !public.public_eq(&key) {
            return Err(format!(
                "{var}={path}: the private key does not match its certificate ({})",
                subject(leaf)
            ));
        }
        let mut pem = String::new();
        for c in &chain {
            check_validity(c, now, var, path)?;
            pem.push_str(&to_pem(c)?);
        }
        let key_pem = key.private_key_to_pem_pkcs8().map_err(|e| e.to_string())?;
        let key_pem = String::from_utf8(key_pem).map_err(|e| e.to_string())?;
        Ok(Some((pem, key_pem)))
    }

    /// The one private-key entry of a JKS key store, decrypted.
    fn jks_identity(&self, bytes: &[u8], path: &str) -> Res<(Vec<X509>, PKey<Private>)> {
        let var = "DB_KAFKA_SSL_KEYSTORE_LOCATION";
        let store_pw = &self.keystore_password;
        let store = Jks::parse(bytes).map_err(|e| format!("{var}={path}: {e}"))?;
        if store_pw.is_empty() {
            return Err(format!(
                "{var}={path}: a JKS key store needs DB_KAFKA_SSL_KEYSTORE_PASSWORD"
            ));
        }
        if !store.verify(store_pw) {
            return Err(wrong_store_password(
                "DB_KAFKA_SSL_KEYSTORE_PASSWORD",
                var,
                path,
            ));
        }
        let keys: Vec<&JksEntry> = store
            .entries
            .iter()
            .filter(|e| matches!(e.body, JksBody::Key { .. }))
            .collect();
        let entry = match keys.as_slice() {
            [one] => *one,
            [] => {
                return Err(format!(
                    "{var}={path}: the key store holds no private-key entry (only trusted \
                     certificates?): the client key and certificate are missing"
                ));
            }
            several => {
                let aliases: Vec<&str> = several.iter().map(|e| e.alias.as_str()).collect();
                return Err(format!(
                    "{var}={path}: the key store holds {} private-key entries ({}); which one \
                     is the client's is ambiguous: keep only one (keytool -delete -alias …)",
                    several.len(),
                    aliases.join(", ")
                ));
            }
        };
        let JksBody::Key { protected, chain } = &entry.body else {
            unreachable!("filtered to key entries")
        };
        let (pw_var, key_pw) = if self.key_password.is_empty() {
            ("DB_KAFKA_SSL_KEYSTORE_PASSWORD", store_pw)
        } else {
            ("DB_KAFKA_SSL_KEY_PASSWORD", &self.key_password)
        };
        let pkcs8 = recover_key(protected, key_pw).map_err(|e| match e {
            KeyError::WrongPassword => format!(
                "{pw_var} is wrong for the key `{}` in {var}={path} (its check digest does not \
                 match){}",
                entry.alias,
                if self.key_password.is_empty() {
                    "; set DB_KAFKA_SSL_KEY_PASSWORD if the key has its own password"
                } else {
                    ""
                }
            ),
            KeyError::Other(e) => format!("{var}={path}: key `{}`: {e}", entry.alias),
        })?;
        let key = PKey::private_key_from_pkcs8(&pkcs8).map_err(|e| {
            format!(
                "{var}={path}: key `{}` is not a readable PKCS#8 key: {e}",
                entry.alias
            )
        })?;
        if chain.is_empty() {
            return Err(format!(
                "{var}={path}: key `{}` has no certificate",
                entry.alias
            ));
        }
        let chain = chain
            .iter()
            .map(|der| x509(der, var, path, &entry.alias))
            .collect::<Res<Vec<_>>>()?;
        Ok((chain, key))
    }
}

fn wrong_store_password(pw_var: &str, var: &str, path: &str) -> String {
    format!(
        "{pw_var} is wrong for {var}={path} (the store's integrity check fails), or the file \
         was altered"
    )
}

fn pkcs12(
    bytes: &[u8],
    password: &str,
    pw_var: &str,
    var: &str,
    path: &str,
) -> Res<openssl::pkcs12::ParsedPkcs12_2> {
    let p12 = Pkcs12::from_der(bytes).map_err(|_| unknown_form(var, path))?;
    let parsed = p12.parse2(password).or_else(|e| {
        // Java before 8u301 and 11.0.12 encrypted PKCS#12 stores with RC2-40 and 3DES, which
        // OpenSSL 3 keeps in its legacy provider: load it and try once more.
        let mac_failure = format!("{e}").contains("mac verify failure");
        if !mac_failure && legacy_provider() {
            p12.parse2(password)
        } else {
            Err(e)
        }
    });
    parsed.map_err(|e| {
        // OpenSSL reports a failed MAC check for a wrong password.
        if format!("{e}").contains("mac verify failure") {
            if password.is_empty() {
                format!("{var}={path}: a PKCS#12 store needs {pw_var}")
            } else {
                format!("{pw_var} is wrong for {var}={path} (the PKCS#12 MAC check fails)")
            }
        } else {
            format!("{var}={path}: cannot open the PKCS#12 store with {pw_var}: {e}")
        }
    })
}

/// Whether OpenSSL's legacy provider (old PKCS#12 ciphers) is loaded; loaded on first use,
/// with the default provider kept.
fn legacy_provider() -> bool {
    static LEGACY: std::sync::OnceLock<Option<openssl::provider::Provider>> =
        std::sync::OnceLock::new();
    LEGACY
        .get_or_init(|| openssl::provider::Provider::try_load(None, "legacy", true).ok())
        .is_some()
}

/// A certificate chain and key from PEM, each with its variable and file (they may be one).
fn pem_identity(
    (cert, var, path): (&[u8], &str, &str),
    (key, k_var, k_path): (&[u8], &str, &str),
    password: Option<&str>,
) -> Res<(Vec<X509>, PKey<Private>)> {
    let chain = X509::stack_from_pem(cert)
        .map_err(|e| format!("{var}={path}: unreadable PEM certificate: {e}"))?;
    if chain.is_empty() {
        return Err(format!("{var}={path}: holds no PEM certificate"));
    }
    let (var, path) = (k_var, k_path);
    let encrypted = key.windows(9).any(|w| w == b"ENCRYPTED");
    let key = match (encrypted, password) {
        (true, None) => {
            return Err(format!(
                "{var}={path}: the private key is encrypted; set DB_KAFKA_SSL_KEY_PASSWORD"
            ));
        }
        (true, Some(pw)) => {
            PKey::private_key_from_pem_passphrase(key, pw.as_bytes()).map_err(|_| {
                format!(
                    "DB_KAFKA_SSL_KEY_PASSWORD is wrong for the private key in {var}={path} \
                     (or the key is unreadable)"
                )
            })?
        }
        (false, _) => PKey::private_key_from_pem(key)
            .map_err(|e| format!("{var}={path}: no readable PEM private key: {e}"))?,
    };
    Ok((chain, key))
}

fn x509(der: &[u8], var: &str, path: &str, alias: &str) -> Res<X509> {
    X509::from_der(der)
        .map_err(|e| format!("{var}={path}: entry `{alias}` is not an X.509 certificate: {e}"))
}

fn to_pem(c: &X509) -> Res<String> {
    String::from_utf8(c.to_pem().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
}

fn subject(c: &X509) -> String {
    c.subject_name()
        .entries()
        .map(|e| {
            format!(
                "{}={}",
                e.object().nid().short_name().unwrap_or("?"),
                e.data().to_string().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Refuses a certificate that is expired or not yet valid at `now`.
fn check_validity(c: &X509, now: &Asn1Time, var: &str, path: &str) -> Res<()> {
    let cmp = |t: &openssl::asn1::Asn1TimeRef| now.compare(t).map_err(|e| e.to_string());
    if cmp(c.not_before())? == Ordering::Less {
        return Err(format!(
            "{var}={path}: the certificate {} is not valid yet (from {})",
            subject(c),
            c.not_before()
        ));
    }
    if cmp(c.not_after())? == Ordering::Greater {
        return Err(format!(
            "{var}={path}: the certificate {} has expired ({})",
            subject(c),
            c.not_after()
        ));
    }
    Ok(())
}

// --- JKS ---------------------------------------------------------------------------------------

/// A parsed JKS file.
struct Jks<'a> {
    entries: Vec<JksEntry>,
    /// Everything before the digest, and the digest.
    body: &'a [u8],
    digest: &'a [u8],
}

struct JksEntry {
    alias: String,
    body: JksBody,
}

enum JksBody {
    Trusted(Vec<u8>),
    Key {
        protected: Vec<u8>,
        chain: Vec<Vec<u8>>,
    },
}

/// A bounds-checked reader of the big-endian JKS fields.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Res<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let end = end.ok_or("the JKS file is truncated")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Res<u16> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Res<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn utf(&mut self) -> Res<String> {
        let n = self.u16()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn bytes(&mut self) -> Res<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn cert(&mut self, version: u32) -> Res<Vec<u8>> {
        if version == 2 {
            let kind = self.utf()?;
            if kind != "X.509" {
                return Err(format!("holds a certificate of type {kind}, not X.509"));
            }
        }
        self.bytes()
    }
}

impl<'a> Jks<'a> {
    /// Parses the entries (the digest is checked by [`Jks::verify`]).
    fn parse(buf: &'a [u8]) -> Res<Self> {
        let mut r = Reader { buf, pos: 0 };
        if r.u32()? != 0xFEED_FEED {
            return Err("not a JKS file".into());
        }
        let version = r.u32()?;
        if version != 1 && version != 2 {
            return Err(format!("unknown JKS version {version}"));
        }
        let count = r.u32()?;
        let mut entries = Vec::new();
        for _ in 0..count {
            let tag = r.u32()?;
            let alias = r.utf()?;
            let _created_ms = r.take(8)?;
            let body = match tag {
                1 => {
                    let protected = r.bytes()?;
                    let n = r.u32()?;
                    let mut chain = Vec::new();
                    for _ in 0..n {
                        chain.push(r.cert(version)?);
                    }
                    JksBody::Key { protected, chain }
                }
                2 => JksBody::Trusted(r.cert(version)?),
                t => {
                    return Err(format!(
                        "entry `{alias}` has type {t} (a secret key or JCEKS entry), which \
                         Kafka cannot use"
                    ));
                }
            };
            entries.push(JksEntry { alias, body });
        }
        let body = &buf[..r.pos];
        let digest = r.take(20)?;
        if r.pos != buf.len() {
            return Err("the JKS file has trailing bytes".into());
        }
        Ok(Jks {
            entries,
            body,
            digest,
        })
    }

    /// Whether the integrity digest matches the store password.
    fn verify(&self, password: &str) -> bool {
        let mut h = Sha1::new();
        h.update(&utf16be(password));
        h.update(b"Mighty Aphrodite");
        h.update(self.body);
        openssl::memcmp::eq(&h.finish(), self.digest)
    }
}

/// A password as Java's `char[]` bytes (UTF-16, big-endian), as the JKS digests take it.
fn utf16be(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

enum KeyError {
    WrongPassword,
    Other(String),
}

/// The OID of Sun's JKS key protection, 1.3.6.1.4.1.42.2.17.1.1, DER-encoded.
const KEY_PROTECTOR_OID: &[u8] = &[0x2B, 0x06, 0x01, 0x04, 0x01, 0x2A, 0x02, 0x11, 0x01, 0x01];

/// One DER element: (tag, contents, rest).
fn der(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let n = (first & 0x7F) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Decrypts a JKS private key: `EncryptedPrivateKeyInfo` with Sun's key protection, whose
/// data is salt (20) ‖ key XOR keystream ‖ SHA-1(password ‖ key) (20); the keystream blocks
/// are SHA-1(password ‖ previous block), starting from the salt.
fn recover_key(protected: &[u8], password: &str) -> std::result::Result<Vec<u8>, KeyError> {
    let bad = || KeyError::Other("not a JKS-protected private key".into());
    let (0x30, info, _) = der(protected).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x30, algorithm, rest) = der(info).ok_or_else(bad)? else {
        return Err(bad());
    };
    let (0x06, oid, _) = der(algorithm).ok_or_else(bad)? else {
        return Err(bad());
    };
    if oid != KEY_PROTECTOR_OID {
        return Err(KeyError::Other(
            "the key is protected by an algorithm other than JKS's (a JCEKS store?)".into(),
        ));
    }
    let (0x04, data, _) = der(rest).ok_or_else(bad)? else {
        return Err(bad());
    };
    if data.len() < 40 {
        return Err(bad());
    }
    let (salt, rest) = data.split_at(20);
    let (encrypted, check) = rest.split_at(rest.len() - 20);
    let pw = utf16be(password);
    let mut block = salt.to_vec();
    let mut key = Vec::with_capacity(encrypted.len());
    for chunk in encrypted.chunks(20) {
        let mut h = Sha1::new();
        h.update(&pw);
        h.update(&block);
        block = h.finish().to_vec();
        key.extend(chunk.iter().zip(&block).map(|(c, k)| c ^ k));
    }
    let mut h = Sha1::new();
    h.update(&pw);
    h.update(&key);
    if !openssl::memcmp::eq(&h.finish(), check) {
        return Err(KeyError::WrongPassword);
    }
    Ok(key)
}

#[cfg(test)]
mod tests;

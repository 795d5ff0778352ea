//! The cluster's certificates and the mutual TLS the log service speaks.
//!
//! Owns the files of a certificate directory (`ca.pem`, `ca.key`, and `NAME.pem`, `NAME.key`
//! for each node or aggregator), making them (`dvip tls init`, `dvip tls issue`), and turning
//! them into rustls settings in which both sides must show a certificate the cluster's CA
//! signed. An operator's own CA works the same way: put its `ca.pem` and the issued pairs in
//! the directory. It must not open sockets or know the log protocol.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use rustls;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

/// Where dvip keeps certificates unless told otherwise.
pub const TLS_DIR_DEFAULT: &str = "/etc/dvip/tls";

/// How long a CA certificate lasts unless told otherwise: ten years.
pub const CA_DAYS_DEFAULT: u32 = 3650;

/// How long a node's or aggregator's certificate lasts unless told otherwise: two years.
pub const ISSUE_DAYS_DEFAULT: u32 = 730;

/// Why a certificate could not be made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: cannot {doing}: {source}")]
    Io {
        path: PathBuf,
        doing: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// `init` found a CA already there.
    #[error(
        "{path} already holds a CA; every certificate it issued depends on it. Use --force to \
         replace it (and issue every node's and aggregator's certificate again)"
    )]
    CaExists { path: PathBuf },
    /// `issue` found no CA.
    #[error(
        "{path} has no CA: run `dvip tls init` first, or put your own CA's ca.pem and ca.key there"
    )]
    NoCa { path: PathBuf },
    /// A name that cannot be a file name or a certificate's subject.
    #[error("`{name}` is not a usable name: use letters, digits, `.`, `-` and `_`")]
    BadName { name: String },
    /// A PEM file that does not hold what it should.
    #[error("{path}: {what}")]
    BadPem { path: PathBuf, what: String },
    /// rcgen refused to make a certificate.
    #[error("cannot make the certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// rustls refused the certificates.
    #[error("the certificates cannot be used for TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client verifier could not be built (an empty or unusable CA).
    #[error("the CA cannot verify clients: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// What a command made.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Issued {
    /// The name in the certificate (its subject's common name and DNS name).
    pub name: String,
    /// The certificate file.
    pub certificate: PathBuf,
    /// The private key file (mode 0600).
    pub key: PathBuf,
    /// When the certificate stops being valid, RFC 3339.
    pub not_after: String,
    /// SHA-256 of the certificate's DER, in lowercase hex with colons.
    pub sha256: String,
}

/// The files of one certificate directory.
#[derive(Clone, Debug)]
pub struct TlsDir {
    dir: PathBuf,
}

impl TlsDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// `NAME.pem` and `NAME.key`.
    pub fn pair(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
        )
    }

    /// Makes the cluster's CA, named `cluster` in its subject. Refuses to replace one unless
    /// `force`.
    pub fn init(&self, cluster: &str, days: u32, force: bool) -> Result<Issued, TlsError> {
        check_name(cluster)?;
        if !force && self.ca_cert().exists() {
            return Err(TlsError::CaExists {
                path: self.ca_cert(),
            });
        }
        create_dir(&self.dir)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(&format!("dvip cluster CA {cluster}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let (not_before, not_after) = validity(days);
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        write_pair(
            &self.ca_cert(),
            &cert.pem(),
            &self.ca_key(),
            &key.serialize_pem(),
        )?;
        Ok(Issued {
            name: cluster.to_owned(),
            certificate: self.ca_cert(),
            key: self.ca_key(),
            not_after: rfc3339(not_after),
            sha256: fingerprint(cert.der()),
        })
    }

    /// Issues `NAME.pem` and `NAME.key`, signed by the directory's CA, for a node or an
    /// aggregator: good for both ends of a connection, named `name` (and `also`, names or
    /// addresses it is reached by).
    pub fn issue(&self, name: &str, also: &[String], days: u32) -> Result<Issued, TlsError> {
        check_name(name)?;
        if !self.ca_cert().exists() || !self.ca_key().exists() {
            return Err(TlsError::NoCa {
                path: self.dir.clone(),
            });
        }
        let ca_pem = read_text(&self.ca_cert())?;
        let ca_key =
            KeyPair::from_pem(&read_text(&self.ca_key())?).map_err(|e| TlsError::BadPem {
                path: self.ca_key(),
                what: format!("not a private key rcgen can sign with: {e}"),
            })?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| TlsError::BadPem {
            path: self.ca_cert(),
            what: format!("not a CA certificate: {e}"),
        })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = subject(name);
        params.subject_alt_names = std::iter::once(name)
            .chain(also.iter().map(String::as_str))
            .map(san)
            .collect::<Result<_, _>>()?;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let (not_before, not_after) = validity(days);
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        let (cert_path, key_path) = self.pair(name);
        write_pair(&cert_path, &cert.pem(), &key_path, &key.serialize_pem())?;
        Ok(Issued {
            name: name.to_owned(),
            certificate: cert_path,
            key: key_path,
            not_after: rfc3339(not_after),
            sha256: fingerprint(cert.der()),
        })
    }

    /// The server side: `NAME`'s certificate, and only clients whose certificate the CA
    /// signed are let in. TLS 1.3 only.
    pub fn server_config(&self, name: &str) -> Result<ServerConfig, TlsError> {
        let roots = Arc::new(self.roots()?);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider()).build()?;
        let (chain, key) = self.identity(name)?;
        Ok(ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)?)
    }

    /// The client side: `NAME`'s certificate shown, and only servers whose certificate the CA
    /// signed are trusted. TLS 1.3 only.
    pub fn client_config(&self, name: &str) -> Result<ClientConfig, TlsError> {
        let (chain, key) = self.identity(name)?;
        Ok(ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(chain, key)?)
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let path = self.ca_cert();
        let mut roots = RootCertStore::empty();
        for cert in certificates(&path)? {
            roots.add(cert).map_err(|e| TlsError::BadPem {
                path: path.clone(),
                what: format!("not a usable CA certificate: {e}"),
            })?;
        }
        Ok(roots)
    }

    fn identity(
        &self,
        name: &str,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        let (cert_path, key_path) = self.pair(name);
        let chain = certificates(&cert_path)?;
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| TlsError::BadPem {
            path: key_path.clone(),
            what: format!("no private key: {e}"),
        })?;
        Ok((chain, key))
    }
}

/// The name a server is checked against: the name its certificate was issued for.
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsError::BadName {
        name: name.to_owned(),
    })
}

/// ring, which builds with a C compiler alone; aws-lc-rs (rustls's choice, with post-quantum
/// key exchange) needs more of the build machine. A later change can swap it here alone.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let all: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::BadPem {
            path: path.to_owned(),
            what: format!("cannot read certificates: {e}"),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_owned(),
            what: format!("a certificate does not parse: {e}"),
        })?;
    if all.is_empty() {
        return Err(TlsError::BadPem {
            path: path.to_owned(),
            what: "holds no certificate".into(),
        });
    }
    Ok(all)
}

fn check_name(name: &str) -> Result<(), TlsError> {
    let fits = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if fits {
        Ok(())
    } else {
        Err(TlsError::BadName {
            name: name.to_owned(),
        })
    }
}

fn subject(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "dvip");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn san(name: &str) -> Result<SanType, TlsError> {
    if let Ok(address) = name.parse() {
        return Ok(SanType::IpAddress(address));
    }
    let dns = name.to_owned().try_into().map_err(|_| TlsError::BadName {
        name: name.to_owned(),
    })?;
    Ok(SanType::DnsName(dns))
}

/// From an hour ago (a neighbour's clock a little behind) to `days` from now.
fn validity(days: u32) -> (OffsetDateTime, OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    (
        now - Duration::hours(1),
        now + Duration::days(i64::from(days)),
    )
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn read_text(path: &Path) -> Result<String, TlsError> {
    fs::read_to_string(path).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        doing: "read",
        source,
    })
}

fn create_dir(dir: &Path) -> Result<(), TlsError> {
    fs::create_dir_all(dir).map_err(|source| TlsError::Io {
        path: dir.to_owned(),
        doing: "create the directory",
        source,
    })?;
    // Keys live here: nobody but root looks in.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| TlsError::Io {
        path: dir.to_owned(),
        doing: "restrict the directory",
        source,
    })
}

/// Writes the key (0600) then the certificate, each under a temporary name renamed into
/// place, so a crash never leaves a certificate without its key or half a file.
fn write_pair(cert: &Path, cert_pem: &str, key: &Path, key_pem: &str) -> Result<(), TlsError> {
    if let Some(dir) = cert.parent() {
        create_dir(dir)?;
    }
    write_whole(key, key_pem, 0o600)?;
    write_whole(cert, cert_pem, 0o644)
}

fn write_whole(path: &Path, text: &str, mode: u32) -> Result<(), TlsError> {
    let io = |doing| {
        move |source| TlsError::Io {
            path: path.to_owned(),
            doing,
            source,
        }
    };
    let mut staging = path.as_os_str().to_owned();
    staging.push(".new");
    let staging = PathBuf::from(staging);
    let _ = fs::remove_file(&staging);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&staging)
        .map_err(io("create"))?;
    file.write_all(text.as_bytes()).map_err(io("write"))?;
    file.sync_all().map_err(io("sync"))?;
    fs::rename(&staging, path).map_err(io("rename into place"))
}

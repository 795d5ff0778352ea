//! Certificates made by `TlsDir`, checked by OpenSSL's own verifier and by real TLS 1.3
//! handshakes in memory: a client or server without a certificate from the cluster's CA gets
//! nothing through.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::Arc;

use dvip_tls::{server_name, TlsDir, TlsError};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;

/// Runs a handshake to its end and sends one line each way; the first error either side
/// meets.
fn talk(server: ServerConfig, client: ClientConfig, name: &str) -> Result<String, rustls::Error> {
    let mut server = ServerConnection::new(Arc::new(server))?;
    let mut client = ClientConnection::new(Arc::new(client), server_name(name).expect("name"))?;
    client
        .writer()
        .write_all(b"hello from the aggregator\n")
        .expect("buffered");
    let mut heard = String::new();
    for _ in 0..20 {
        let mut wire = Vec::new();
        client.write_tls(&mut wire).expect("to memory");
        server.read_tls(&mut wire.as_slice()).expect("from memory");
        server.process_new_packets()?;
        let mut got = String::new();
        let _ = server.reader().read_to_string(&mut got);
        if !got.is_empty() {
            server
                .writer()
                .write_all(format!("node heard: {got}").as_bytes())
                .expect("buffered");
        }
        let mut wire = Vec::new();
        server.write_tls(&mut wire).expect("to memory");
        client.read_tls(&mut wire.as_slice()).expect("from memory");
        client.process_new_packets()?;
        let _ = client.reader().read_to_string(&mut heard);
        if !heard.is_empty() {
            return Ok(heard);
        }
    }
    panic!("the handshake did not finish in 20 rounds")
}

fn cluster() -> (tempfile::TempDir, TlsDir) {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = TlsDir::new(tmp.path().join("tls"));
    dir.init("mail-fleet", 30, false).expect("a CA");
    dir.issue("node1", &["198.51.100.10".into()], 30)
        .expect("a node");
    dir.issue("collector", &[], 30).expect("an aggregator");
    (tmp, dir)
}

#[test]
fn a_node_and_an_aggregator_of_one_ca_talk() {
    let (_tmp, dir) = cluster();
    let heard = talk(
        dir.server_config("node1").expect("server"),
        dir.client_config("collector").expect("client"),
        "node1",
    )
    .expect("the handshake succeeds");
    assert_eq!(heard, "node heard: hello from the aggregator\n");
    // The address given at issue is in the certificate too.
    talk(
        dir.server_config("node1").expect("server"),
        dir.client_config("collector").expect("client"),
        "198.51.100.10",
    )
    .expect("reached by address");
}

#[test]
fn a_client_with_another_ca_s_certificate_or_none_gets_nothing() {
    let (_tmp, dir) = cluster();
    let (_other_tmp, other) = cluster();
    let err = talk(
        dir.server_config("node1").expect("server"),
        other.client_config("collector").expect("client"),
        "node1",
    )
    .expect_err("a stranger's certificate is refused");
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
    // No certificate at all, though the client trusts the node.
    let mut roots = RootCertStore::empty();
    for cert in
        rustls_pki_types::CertificateDer::pem_file_iter(dir.path().join("ca.pem")).expect("ca.pem")
    {
        roots.add(cert.expect("a certificate")).expect("a root");
    }
    let anonymous = ClientConfig::builder_with_provider(dvip_tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let err = talk(
        dir.server_config("node1").expect("server"),
        anonymous,
        "node1",
    )
    .expect_err("no certificate, no data");
    assert!(
        matches!(err, rustls::Error::NoCertificatesPresented),
        "{err:?}"
    );
}

#[test]
fn an_aggregator_does_not_trust_a_server_of_another_ca_nor_a_wrong_name() {
    let (_tmp, dir) = cluster();
    let (_other_tmp, other) = cluster();
    let err = talk(
        other.server_config("node1").expect("server"),
        dir.client_config("collector").expect("client"),
        "node1",
    )
    .expect_err("a stranger's node");
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
    let err = talk(
        dir.server_config("node1").expect("server"),
        dir.client_config("collector").expect("client"),
        "node2",
    )
    .expect_err("node1's certificate does not name node2");
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[test]
fn openssl_verifies_what_was_issued_and_keys_are_private() {
    let (_tmp, dir) = cluster();
    let ca = dir.path().join("ca.pem");
    for name in ["node1", "collector"] {
        let (cert, key) = dir.pair(name);
        let out = Command::new("openssl")
            .args(["verify", "-x509_strict", "-CAfile"])
            .arg(&ca)
            .arg(&cert)
            .output()
            .expect("openssl runs");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && said.contains(": OK"), "{said}");
        let mode = std::fs::metadata(&key).expect("key").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}'s key");
    }
    let mode = std::fs::metadata(dir.path().join("ca.key"))
        .expect("ca.key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_second_init_is_refused_unless_forced_and_issuing_needs_a_ca_and_a_plain_name() {
    let (tmp, dir) = cluster();
    assert!(matches!(
        dir.init("mail-fleet", 30, false),
        Err(TlsError::CaExists { .. })
    ));
    let old = std::fs::read(dir.path().join("ca.pem")).expect("ca.pem");
    dir.init("mail-fleet", 30, true).expect("forced");
    assert_ne!(
        std::fs::read(dir.path().join("ca.pem")).expect("ca.pem"),
        old
    );
    let empty = TlsDir::new(tmp.path().join("none"));
    assert!(matches!(
        empty.issue("node1", &[], 30),
        Err(TlsError::NoCa { .. })
    ));
    for bad in ["", "../etc/passwd", "a b", ".hidden"] {
        assert!(
            matches!(dir.issue(bad, &[], 30), Err(TlsError::BadName { .. })),
            "{bad:?}"
        );
    }
}

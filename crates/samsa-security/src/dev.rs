//! `samsa serve --dev-tls`: a self-signed CA and a broker certificate it
//! signs, generated once into a directory and reused on later starts.
//!
//! Files (PEM): `ca.pem` (the CA certificate clients trust, `ssl.ca.location`),
//! `broker.pem` (the broker's private key followed by its certificate and
//! the CA: the `ssl.keystore.location` file). They are written to a
//! temporary name and renamed, so a crash leaves either no file or a whole
//! one; a directory with both files is reused as it is.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// Why the development certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DevTlsError {
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the development CA and broker key store are.
#[derive(Debug, Clone)]
pub struct DevTls {
    pub ca: PathBuf,
    pub keystore: PathBuf,
    /// True when this call created them.
    pub created: bool,
}

fn write(path: &Path, text: &str) -> Result<(), DevTlsError> {
    let err = |source| DevTlsError::Write {
        path: path.to_owned(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    std::fs::rename(&tmp, path).map_err(err)
}

/// Makes (once) a CA and a broker certificate for `hosts` (DNS names or IP
/// addresses) in `dir`.
pub fn ensure(dir: &Path, hosts: &[String]) -> Result<DevTls, DevTlsError> {
    let ca_path = dir.join("ca.pem");
    let keystore_path = dir.join("broker.pem");
    if ca_path.is_file() && keystore_path.is_file() {
        return Ok(DevTls {
            ca: ca_path,
            keystore: keystore_path,
            created: false,
        });
    }
    std::fs::create_dir_all(dir).map_err(|source| DevTlsError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "samsa development CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;
    let mut names = hosts.to_vec();
    for default in ["localhost", "127.0.0.1"] {
        if !names.iter().any(|n| n == default) {
            names.push(default.to_owned());
        }
    }
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "samsa broker");
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    write(&ca_path, &ca.pem())?;
    write(
        &keystore_path,
        &format!("{}{}{}", key.serialize_pem(), cert.pem(), ca.pem()),
    )?;
    Ok(DevTls {
        ca: ca_path,
        keystore: keystore_path,
        created: true,
    })
}

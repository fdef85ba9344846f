//! Certificates for the tests, made with `openssl`: a private CA and the
//! server and client certificates it issues (valid, expired, not yet valid,
//! wrong name, from an unknown CA), and a lone self-signed certificate for a
//! name.

use std::path::{Path, PathBuf};

use super::{run_ok, tool};

/// Certificates made with openssl in a directory: a private CA, server
/// certificates it issues (valid, expired, not yet valid, wrong name), a
/// self-signed one, one from an unknown CA, and client certificates (one
/// from the CA, one from another).
pub(crate) struct Pki {
    /// The directory holding every file.
    pub(crate) dir: PathBuf,
    openssl: PathBuf,
}

/// The name every server certificate is for (`.test`: reserved, never
/// resolves).
pub(crate) const NAME: &str = "www.example.test";

impl Pki {
    /// Makes the CA and every certificate in `dir`.
    pub(crate) fn new(openssl: &Path, dir: &Path) -> Pki {
        let pki = Pki { dir: dir.to_path_buf(), openssl: openssl.to_path_buf() };
        pki.ca("ca");
        pki.ca("other-ca");
        let san = format!("subjectAltName=DNS:{NAME}");
        pki.issue("ca", "server", NAME, &san, None);
        pki.issue("ca", "expired", NAME, &san, Some(("20200101000000Z", "20210101000000Z")));
        pki.issue("ca", "future", NAME, &san, Some(("20990101000000Z", "20991231000000Z")));
        pki.issue("ca", "wrong-name", "other.example.test", "subjectAltName=DNS:other.example.test", None);
        pki.issue("other-ca", "unknown-ca", NAME, &san, None);
        pki.issue("ca", "client", "exaprobe-client", "extendedKeyUsage=clientAuth", None);
        pki.issue("other-ca", "stranger", "stranger-client", "extendedKeyUsage=clientAuth", None);
        pki.self_signed("self-signed", &format!("/CN={NAME}"), &["-addext", &san]);
        pki
    }

    /// A file of the directory, as a string.
    pub(crate) fn file(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// A self-signed certificate and its key, `NAME.pem` and `NAME.key`.
    fn self_signed(&self, name: &str, subject: &str, extra: &[&str]) {
        let (key, pem) = (self.file(&format!("{name}.key")), self.file(&format!("{name}.pem")));
        let mut args = vec![
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            subject,
        ];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["-keyout", &key, "-out", &pem]);
        run_ok(&self.openssl, &args);
    }

    fn ca(&self, name: &str) {
        self.self_signed(name, &format!("/CN=exaprobe test {name}"), &[]);
        // `openssl ca`, which alone sets arbitrary validity dates in
        // OpenSSL 3.0, keeps a database.
        let db = self.path(&format!("{name}-db"));
        std::fs::create_dir_all(&db).expect("ca db");
        std::fs::write(db.join("index.txt"), "").expect("index");
        std::fs::write(db.join("serial"), "1000\n").expect("serial");
        let cnf = format!(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = {db}/index.txt\nnew_certs_dir = {db}\nserial = {db}/serial\n\
             default_md = sha256\npolicy = p\nunique_subject = no\ncopy_extensions = none\ndefault_days = 30\n\
             [p]\ncommonName = supplied\n",
            db = db.display()
        );
        std::fs::write(db.join("ca.cnf"), cnf).expect("ca.cnf");
    }

    fn issue(&self, ca: &str, name: &str, cn: &str, ext: &str, dates: Option<(&str, &str)>) {
        let (key, csr, pem, extfile) = (
            self.file(&format!("{name}.key")),
            self.file(&format!("{name}.csr")),
            self.file(&format!("{name}.pem")),
            self.file(&format!("{name}.ext")),
        );
        std::fs::write(&extfile, format!("{ext}\n")).expect("ext");
        run_ok(
            &self.openssl,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        let cnf = self.file(&format!("{ca}-db/ca.cnf"));
        let (ca_pem, ca_key) = (self.file(&format!("{ca}.pem")), self.file(&format!("{ca}.key")));
        let mut args = vec![
            "ca", "-batch", "-notext", "-config", &cnf, "-cert", &ca_pem, "-keyfile", &ca_key, "-in", &csr, "-out",
            &pem, "-extfile", &extfile,
        ];
        if let Some((start, end)) = dates {
            args.extend(["-startdate", start, "-enddate", end]);
        }
        run_ok(&self.openssl, &args);
    }
}

/// A self-signed certificate for `name` (CN and subjectAltName), made by
/// openssl in `dir`: `(cert.pem, key.pem)`; `None` (said) if openssl is not
/// installed.
pub(crate) fn certificate(dir: &Path, name: &str) -> Option<(PathBuf, PathBuf)> {
    let openssl = tool("openssl")?;
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run_ok(
        &openssl,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName=DNS:{name}"),
            "-keyout",
            key.to_str()?,
            "-out",
            cert.to_str()?,
        ],
    );
    Some((cert, key))
}

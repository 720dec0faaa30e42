//! `pullwarden sign` and `pullwarden keygen`: the project's own cosign-compatible signer
//! for CI and demos (cosign itself is not installable on the target machines). `sign`
//! writes the cosign legacy `.sig` tag or a sigstore bundle v0.3 referrer; `keygen`
//! writes an ECDSA P-256 key pair (PKCS#8 PEM private key, PEM public key).

use std::io::Write as _;
use std::path::PathBuf;

use super::ConfigArg;
use crate::digest::Digest;
use crate::reference::Reference;
use crate::registry::{Credentials, RegistryClient};
use crate::verify::sign::{ImageSigner, SignFormat, generate_key, sign_and_push};

#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// Image reference (tag or digest) to sign.
    pub reference: String,
    /// PKCS#8 PEM private key (ECDSA P-256/P-384, Ed25519 or RSA).
    #[arg(long, value_name = "PRIVATE.pem")]
    pub key: PathBuf,
    /// Storage format of the signature.
    #[arg(long, value_enum, default_value = "legacy")]
    pub format: SignFormat,
    /// Sign this digest (e.g. one platform manifest of an index) instead of the one the
    /// reference resolves to.
    #[arg(long, value_name = "sha256:…")]
    pub digest: Option<String>,
    /// Sign RSA keys with PSS padding instead of PKCS#1 v1.5.
    #[arg(long)]
    pub rsa_pss: bool,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Writes PREFIX.key (private, mode 0600) and PREFIX.pub.
    #[arg(long, value_name = "PREFIX")]
    pub output: PathBuf,
}

pub fn run(args: &SignArgs) -> anyhow::Result<i32> {
    let cfg = args.config.load()?;
    let reference: Reference = args.reference.parse()?;
    let pem = std::fs::read(&args.key)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.key.display()))?;
    let signer = ImageSigner::from_pem(&pem, args.rsa_pss)?;
    let client = RegistryClient::new(&cfg.registry)?;
    let creds = Credentials::default();
    let rt = super::runtime()?;
    let (subject, written) = rt.block_on(async {
        let subject = match &args.digest {
            Some(d) => d.parse::<Digest>()?,
            None => client.resolve(&reference, &creds).await?.digest,
        };
        let written =
            sign_and_push(&client, &reference, &subject, &signer, args.format, &creds).await?;
        anyhow::Ok((subject, written))
    })?;
    println!(
        "signed {}@{subject}: {} signature manifest {written}",
        reference.name(),
        match args.format {
            SignFormat::Legacy => "legacy .sig",
            SignFormat::Bundle => "bundle",
        }
    );
    Ok(0)
}

pub fn run_keygen(args: &KeygenArgs) -> anyhow::Result<i32> {
    let (private, public) = generate_key(sigstore::crypto::SigningScheme::ECDSA_P256_SHA256_ASN1)?;
    let key_path = args.output.with_extension("key");
    let pub_path = args.output.with_extension("pub");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&key_path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", key_path.display()))?;
    f.write_all(private.as_bytes())?;
    std::fs::write(&pub_path, public)?;
    println!("wrote {} and {}", key_path.display(), pub_path.display());
    Ok(0)
}

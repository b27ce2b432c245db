//! `keyward sign`.

use std::io::{self, Read as _};

use anyhow::Context as _;
use keyward_client::Client;

use crate::{Encoding, output};

pub(crate) fn run(
    client: &mut Client,
    name: &str,
    payload: Option<std::ffi::OsString>,
    encoding: Option<Encoding>,
) -> anyhow::Result<()> {
    let payload = match payload {
        // Byte for byte: an argument is taken as the OS gave it, no UTF-8 check, no trimming.
        Some(arg) => std::os::unix::ffi::OsStringExt::into_vec(arg),
        None => {
            let mut bytes = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .context("cannot read the payload from stdin")?;
            bytes
        }
    };
    let signature = client.sign(name, &payload)?;
    output::write_signature(&mut io::stdout().lock(), &signature, encoding)?;
    Ok(())
}

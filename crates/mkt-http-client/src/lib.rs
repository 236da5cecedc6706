//! Outbound HTTP clients (VTEX, JWKS, the gateway's upstreams, OTLP export, tests).
//!
//! reqwest is built with `rustls-no-provider`: TLS is rustls with *ring* as its crypto,
//! which compiles without cmake or a system OpenSSL (reqwest's default, aws-lc-rs, needs
//! a C build of its own). The price of choosing the provider ourselves is that it must be
//! installed process-wide before the first client is built, or reqwest panics; every
//! client in this workspace therefore comes from [`builder`] (or is built after
//! [`install_crypto_provider`], like the OTLP exporter's, which `mkt-telemetry`
//! creates). Server certificates are checked against the operating system's trust store
//! (reqwest's platform verifier; in the container image, Debian's `ca-certificates`).

use std::sync::Once;

/// Installs *ring* as the process's rustls crypto provider, once. Safe to call from any
/// thread, any number of times; a provider someone installed before is kept.
pub fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means a provider is already installed: that one serves as well.
        #[expect(
            deprecated,
            reason = "rustls 0.23.48 deprecates ring's provider for lacking post-quantum key \
                      exchange; classical TLS 1.2/1.3 is what VTEX, IdPs and collectors speak \
                      today. Moving to aws-lc-rs (PQ) costs a C build: revisit with rustls 0.24."
        )]
        let provider = rustls::crypto::ring::default_provider();
        let _ = provider.install_default();
    });
}

/// A `reqwest::ClientBuilder` that can speak HTTPS: use it instead of
/// `reqwest::Client::builder()` / `Client::new()`.
pub fn builder() -> reqwest::ClientBuilder {
    install_crypto_provider();
    reqwest::Client::builder()
}

/// A client with reqwest's defaults (no timeout: set one per request, or use
/// [`builder`]).
pub fn client() -> reqwest::Client {
    builder()
        .build()
        .expect("a default reqwest client builds once a crypto provider is installed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clients_build_and_refuse_a_server_that_does_not_speak_tls() {
        // Plain TCP that answers with garbage instead of a TLS handshake: the client
        // must try TLS (so the provider is wired in) and fail cleanly, not panic.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            use std::io::Write;
            if let Ok((mut stream, _)) = listener.accept() {
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            }
        });
        let error = client()
            .get(format!("https://127.0.0.1:{port}/"))
            .send()
            .await
            .expect_err("not a TLS server");
        assert!(error.is_connect(), "a TLS handshake failure: {error:?}");
        // Building again reuses the installed provider.
        install_crypto_provider();
        let _ = builder().build().expect("second client");
    }
}

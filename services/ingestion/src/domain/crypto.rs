//! Encryption at rest for integration credentials: AES-256-GCM (RustCrypto `aes-gcm`)
//! with a fresh random 96-bit nonce per value, and associated data that names the row
//! the value belongs to, so a ciphertext moved to another row (or tenant) does not open.
//!
//! Keys come from configuration, never from the database. Each sealed value records the
//! id of the key that sealed it, so keys can be rotated: new writes use the current key,
//! and values sealed under a previous key still open while that key is configured.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use base64::Engine as _;
use secrecy::zeroize::Zeroizing;
use secrecy::{ExposeSecret, SecretString};

/// Length of an AES-256 key in bytes.
pub const KEY_LEN: usize = 32;
/// Length of a GCM nonce in bytes.
pub const NONCE_LEN: usize = 12;

/// Why a key could not be loaded or a value could not be opened. Never carries key
/// material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A configured key is not base64 of exactly 32 bytes, or its id is unusable.
    #[error("invalid encryption key {0}: {1}")]
    InvalidKey(String, &'static str),
    /// The value names a key id this process does not have.
    #[error("no encryption key with id {0} is configured")]
    UnknownKey(String),
    /// Wrong key, tampered ciphertext or nonce, or associated data of another row.
    #[error("the value could not be decrypted (wrong key, tampered, or another row's)")]
    Undecryptable,
}

/// A sealed value as stored: which key, the nonce, ciphertext with the GCM tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Id of the key that sealed it.
    pub key_id: String,
    /// The 12-byte nonce.
    pub nonce: Vec<u8>,
    /// Ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// The current key and any previous ones still needed to open older values.
pub struct Keyring {
    current_id: String,
    keys: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Keyring")
            .field("current_id", &self.current_id)
            .field("key_ids", &ids)
            .finish()
    }
}

fn cipher_from_base64(id: &str, encoded: &str) -> Result<Aes256Gcm, CryptoError> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| CryptoError::InvalidKey(id.to_owned(), "not valid base64"))?,
    );
    if bytes.len() != KEY_LEN {
        return Err(CryptoError::InvalidKey(
            id.to_owned(),
            "must decode to exactly 32 bytes",
        ));
    }
    Aes256Gcm::new_from_slice(&bytes)
        .map_err(|_| CryptoError::InvalidKey(id.to_owned(), "must decode to exactly 32 bytes"))
}

fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Keyring {
    /// Builds a keyring from the current key (`current`, base64 of 32 bytes, named
    /// `current_id`) and previous keys as `id:base64` pairs separated by commas.
    pub fn new(
        current_id: &str,
        current: &SecretString,
        previous: Option<&SecretString>,
    ) -> Result<Self, CryptoError> {
        if !valid_key_id(current_id) {
            return Err(CryptoError::InvalidKey(
                current_id.to_owned(),
                "key ids are 1-32 letters, digits, '-' or '_'",
            ));
        }
        let mut keys = vec![(
            current_id.to_owned(),
            cipher_from_base64(current_id, current.expose_secret())?,
        )];
        if let Some(previous) = previous {
            for entry in previous
                .expose_secret()
                .split(',')
                .filter(|e| !e.trim().is_empty())
            {
                let (id, encoded) = entry.trim().split_once(':').ok_or_else(|| {
                    CryptoError::InvalidKey("previous".into(), "entries are id:base64")
                })?;
                if !valid_key_id(id) || keys.iter().any(|(known, _)| known == id) {
                    return Err(CryptoError::InvalidKey(
                        id.to_owned(),
                        "previous key ids must be valid and distinct from the others",
                    ));
                }
                keys.push((id.to_owned(), cipher_from_base64(id, encoded)?));
            }
        }
        Ok(Self {
            current_id: current_id.to_owned(),
            keys,
        })
    }

    /// The id new values are sealed with.
    pub fn current_id(&self) -> &str {
        &self.current_id
    }

    /// Encrypts `plaintext` under the current key, bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Sealed {
        // The current key is always the first entry (see `new`).
        let (id, cipher) = &self.keys[0];
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        // AES-GCM encryption fails only for inputs over 64 GiB.
        let ciphertext = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        Sealed {
            key_id: id.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Decrypts a sealed value that must have been sealed with `aad`.
    pub fn open(&self, aad: &[u8], sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (_, cipher) = self
            .keys
            .iter()
            .find(|(id, _)| *id == sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        let nonce: [u8; NONCE_LEN] = sealed
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::Undecryptable)?;
        cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: &sealed.ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes
    const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="; // 32 bytes

    fn ring(id: &str, key: &str, previous: Option<&str>) -> Keyring {
        Keyring::new(
            id,
            &SecretString::from(key),
            previous.map(SecretString::from).as_ref(),
        )
        .expect("keyring")
    }

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let keys = ring("k1", KEY_A, None);
        let a = keys.seal(b"acme/1", b"app-token-123");
        let b = keys.seal(b"acme/1", b"app-token-123");
        assert_ne!(a.nonce, b.nonce, "nonces must never repeat");
        assert_ne!(a.ciphertext, b.ciphertext);
        assert!(
            !a.ciphertext
                .windows(b"app-token-123".len())
                .any(|w| w == b"app-token-123")
        );
        assert_eq!(
            keys.open(b"acme/1", &a).expect("opens").as_slice(),
            b"app-token-123"
        );
        assert_eq!(a.key_id, "k1");
    }

    #[test]
    fn tampering_and_another_rows_associated_data_fail() {
        let keys = ring("k1", KEY_A, None);
        let sealed = keys.seal(b"acme/1", b"secret");
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(matches!(
            keys.open(b"acme/1", &flipped),
            Err(CryptoError::Undecryptable)
        ));
        let mut renonced = sealed.clone();
        renonced.nonce[0] ^= 1;
        assert!(keys.open(b"acme/1", &renonced).is_err());
        let mut truncated = sealed.clone();
        truncated.ciphertext.pop();
        assert!(keys.open(b"acme/1", &truncated).is_err());
        // Moved to another row or tenant.
        assert!(keys.open(b"acme/2", &sealed).is_err());
        assert!(keys.open(b"other/1", &sealed).is_err());
    }

    #[test]
    fn wrong_keys_fail_and_previous_keys_still_open_old_values() {
        let old = ring("k1", KEY_A, None);
        let sealed = old.seal(b"row", b"secret");
        // Same id, different key material.
        assert!(ring("k1", KEY_B, None).open(b"row", &sealed).is_err());
        // Rotated: k2 is current, k1 kept for reading.
        let rotated = ring("k2", KEY_B, Some(&format!("k1:{KEY_A}")));
        assert_eq!(
            rotated.open(b"row", &sealed).expect("old value").as_slice(),
            b"secret"
        );
        assert_eq!(rotated.seal(b"row", b"x").key_id, "k2");
        // k1 retired.
        assert!(matches!(
            ring("k2", KEY_B, None).open(b"row", &sealed),
            Err(CryptoError::UnknownKey(_))
        ));
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        for bad in ["", "not base64!", "c2hvcnQ="] {
            let err = Keyring::new("k1", &SecretString::from(bad), None).expect_err("refused");
            assert!(bad.is_empty() || !err.to_string().contains(bad));
        }
        assert!(Keyring::new("bad id", &SecretString::from(KEY_A), None).is_err());
        assert!(
            Keyring::new(
                "k1",
                &SecretString::from(KEY_A),
                Some(&SecretString::from(format!("k1:{KEY_B}")))
            )
            .is_err()
        );
        let keys = ring("k1", KEY_A, None);
        assert!(!format!("{keys:?}").contains(KEY_A));
    }
}

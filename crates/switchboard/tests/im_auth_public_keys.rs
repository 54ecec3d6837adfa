//! §7 identity with a public key (`jwt_public_key` + `jwt_algorithm`): a
//! server configured with an RS256 or ES256 public key admits tokens signed
//! by its private key, and refuses with `close` 4401 a token signed by
//! another key, one of another algorithm, and an HS256 token that uses the
//! public key as its secret (the classic algorithm confusion).
//!
//! The keys are fixtures made once with `openssl` (see
//! `tests/fixtures/jwt/README.md`).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use switchboard_testkit::im::{ChatClient, Login, Refusal};
use switchboard_testkit::{bounded, json, TestServer};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwt").join(name)
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// One algorithm's fixtures.
struct Keys {
    algorithm: Algorithm,
    name: &'static str,
    public: &'static str,
    private: &'static str,
    other_private: &'static str,
}

const RS256: Keys = Keys {
    algorithm: Algorithm::RS256,
    name: "RS256",
    public: "rs256-public.pem",
    private: "rs256-private.pem",
    other_private: "rs256-other-private.pem",
};

const ES256: Keys = Keys {
    algorithm: Algorithm::ES256,
    name: "ES256",
    public: "es256-public.pem",
    private: "es256-private.pem",
    other_private: "es256-other-private.pem",
};

impl Keys {
    fn encoding_key(&self, file: &str) -> EncodingKey {
        let pem = pem(file);
        match self.algorithm {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).expect("RSA private key fixture"),
            _ => EncodingKey::from_ec_pem(&pem).expect("EC private key fixture"),
        }
    }

    /// A token of `sub` for an hour, signed with the private key in `file`.
    fn token(&self, file: &str, sub: &str) -> String {
        let claims = json!({"sub": sub, "name": format!("{sub}-{}", self.name), "exp": now() + 3600});
        encode(&Header::new(self.algorithm), &claims, &self.encoding_key(file)).expect("signing")
    }

    async fn server(&self) -> TestServer {
        let (public, algorithm) = (fixture(self.public), self.name.to_owned());
        TestServer::start_with(move |c| {
            c.jwt_public_key = Some(public);
            c.jwt_algorithm = algorithm;
        })
        .await
    }
}

/// `close` 4401, `reconnect: false`, a message, WebSocket close 4401.
fn assert_unauthorized(refusal: &Refusal, what: &str) {
    let close = &refusal.close;
    assert!(close.is_close(4401), "{what}: expected close 4401, got {close}");
    assert_eq!(close.bool("reconnect"), Some(false), "{what}: {close}");
    assert!(close.str("reason").is_some_and(|r| r.len() > 10), "{what}: a 4401 needs a message: {close}");
    assert_eq!(refusal.ws_close, Some(4401), "{what}: WebSocket close code for {close}");
}

async fn a_token_signed_by_the_key_is_accepted(keys: &Keys) {
    bounded(async {
        let server = keys.server().await;
        let addr = server.addr();
        let token = keys.token(keys.private, "alice");
        let alice = ChatClient::login(addr, &Login::token(&token)).await?;
        let welcome = alice.welcome();
        assert_eq!(welcome.str("user"), Some("alice"), "{welcome}");
        assert_eq!(welcome.str("name"), Some(format!("alice-{}", keys.name)).as_deref(), "{welcome}");
        // The header works as well as the query parameter.
        let bob = ChatClient::login(addr, &Login::bearer(&keys.token(keys.private, "bob"))).await?;
        assert_eq!(bob.welcome().str("user"), Some("bob"), "{}", bob.welcome());
        server.shutdown().await;
        Ok(())
    })
    .await;
}

async fn a_token_signed_by_another_key_is_refused(keys: &Keys, other: &Keys) {
    bounded(async {
        let server = keys.server().await;
        let addr = server.addr();
        let forged = keys.token(keys.other_private, "alice");
        assert_unauthorized(&ChatClient::refused(addr, &Login::token(&forged)).await?, "another key");

        // A valid token of the other public-key algorithm.
        let foreign = other.token(other.private, "alice");
        assert_unauthorized(&ChatClient::refused(addr, &Login::token(&foreign)).await?, "another algorithm");

        // HS256 with the server's public key as the shared secret.
        let confused = encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "alice", "exp": now() + 3600}),
            &EncodingKey::from_secret(&pem(keys.public)),
        )?;
        assert_unauthorized(&ChatClient::refused(addr, &Login::token(&confused)).await?, "HS256 with the public key");

        // The right key still works on the same server: the refusals were
        // about the tokens.
        ChatClient::login(addr, &Login::token(&keys.token(keys.private, "alice"))).await?;
        server.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn rs256_a_token_signed_by_the_configured_key_is_accepted() {
    a_token_signed_by_the_key_is_accepted(&RS256).await;
}

#[tokio::test]
async fn rs256_a_token_signed_by_another_key_is_refused() {
    a_token_signed_by_another_key_is_refused(&RS256, &ES256).await;
}

#[tokio::test]
async fn es256_a_token_signed_by_the_configured_key_is_accepted() {
    a_token_signed_by_the_key_is_accepted(&ES256).await;
}

#[tokio::test]
async fn es256_a_token_signed_by_another_key_is_refused() {
    a_token_signed_by_another_key_is_refused(&ES256, &RS256).await;
}

//! The shared (Redis) layer of the token cache (S8): used for ES256, authenticated so that
//! Redis cannot vouch for a token on its own, and never outliving the token.

use reqwest::StatusCode;
use serde_json::Value;

use crate::services::{RedisPrefix, config, redis_url, spawn_with_config};

#[tokio::test]
async fn shared_token_cache_entries_are_authenticated_and_expire_with_the_token() {
    let Some(redis) = redis_url() else { return };
    let prefix = RedisPrefix::new(&redis);
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().join("tessera.db").display());
    let app = spawn_with_config(config(&[
        ("DATABASE_URL", database.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("REDIS_KEY_PREFIX", prefix.prefix.as_str()),
        ("ALGORITHM", "ES256"),
        ("TOKEN_CACHE_REDIS", "true"),
        // No in-process layer, so every request goes through the shared one.
        ("TOKEN_CACHE_SIZE", "0"),
        ("ACCESS_TOKEN_EXPIRE_SECONDS", "60"),
    ]))
    .await;
    let (user, login) = app.new_session().await;
    assert_eq!(app.profile(&login.access).await.status(), StatusCode::OK);

    // The verified claims were shared, with a TTL no longer than the token's life.
    let mut connection = prefix.connection().await;
    let mut entry = None;
    for _ in 0..50 {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}tc:*", prefix.prefix))
            .query_async(&mut connection)
            .await
            .unwrap();
        if let Some(key) = keys.into_iter().next() {
            entry = Some(key);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let key = entry.expect("a shared cache entry");
    let ttl: i64 = redis::cmd("TTL").arg(&key).query_async(&mut connection).await.unwrap();
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
    let value: String = redis::cmd("GET").arg(&key).query_async(&mut connection).await.unwrap();
    assert!(!value.contains(&login.access), "the token itself is never stored");

    // Someone with write access to Redis swaps in other claims: the entry fails its MAC and the
    // token is verified in full instead, answering for the real user.
    let (tag, claims) = value.split_once('.').unwrap();
    let mut forged: Value = serde_json::from_str(claims).unwrap();
    forged["user_id"] = Value::from(999_999);
    forged["username"] = Value::from("mallory");
    let forged = format!("{tag}.{forged}");
    redis::cmd("SET")
        .arg(&key)
        .arg(forged)
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
    let response = app.profile(&login.access).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user_id"], Value::from(user.id));
    assert_eq!(body["username"], Value::from(user.username.clone()));

    // A cached entry never hides a revocation.
    let logout = app.post("/logout").bearer_auth(&login.access).send().await.unwrap();
    assert_eq!(logout.status(), StatusCode::OK);
    assert_eq!(app.profile(&login.access).await.status(), StatusCode::UNAUTHORIZED);
}

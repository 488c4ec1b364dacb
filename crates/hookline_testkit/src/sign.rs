//! Webhook signers and bodies, written independently of the verifiers under test.

use base64::Engine;
use hmac::{KeyInit, Mac};

/// Standard Webhooks signature header value for `secret` (`whsec_…`).
pub fn sign_standard_webhooks(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("whsec_ secret is base64");
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, &content))
    )
}

/// Hex HMAC-SHA256 of `content` under `key`.
pub fn hmac_sha256_hex(key: &[u8], content: &[u8]) -> String {
    hex::encode(hmac_sha256(key, content))
}

/// Base64 (standard, padded) HMAC-SHA256 of `content` under `key`: Refersion's scheme.
pub fn hmac_sha256_base64(key: &[u8], content: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(key, content))
}

fn hmac_sha256(key: &[u8], content: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(content);
    mac.finalize().into_bytes().to_vec()
}

/// Unix seconds now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An Apify webhook body for run `run_id` in `status`.
pub fn apify_body(run_id: &str, status: &str) -> String {
    let event_type = if status == "READY" {
        "ACTOR.RUN.CREATED".to_string()
    } else {
        format!("ACTOR.RUN.{}", status.replace('-', "_"))
    };
    serde_json::json!({
        "userId": "u1",
        "createdAt": "2026-11-22T07:00:00.000Z",
        "eventType": event_type,
        "eventData": { "actorId": "a1", "actorRunId": run_id },
        "resource": { "id": run_id, "status": status },
    })
    .to_string()
}

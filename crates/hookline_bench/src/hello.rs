//! The ceiling endpoint: what actix-web does with no database behind it.

use actix_web::{App, HttpResponse, HttpServer, web};

async fn receive(body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(_) => HttpResponse::Accepted().json(serde_json::json!({"status": "accepted"})),
        Err(_) => HttpResponse::BadRequest().json(serde_json::json!({"error": "bad_payload"})),
    }
}

/// Serves `POST /webhooks/{source}` until the process is killed.
pub fn serve(addr: &str, workers: usize) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async {
        HttpServer::new(|| App::new().route("/webhooks/{source}", web::post().to(receive)))
            .workers(workers)
            .bind(addr)?
            .run()
            .await
    })?;
    Ok(())
}

/// Serves a webhook destination that reads the body of any `POST` and answers `204` (the
/// end-to-end benchmark's receiver), until the process is killed.
///
/// It reads the body as a real receiver does (it has to, to verify the signature): actix
/// closes a keep-alive connection whose request body was left unread, and the sender would
/// then open one TCP connection per delivery.
pub fn serve_sink(addr: &str, workers: usize) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async {
        HttpServer::new(|| {
            App::new().default_service(web::post().to(|body: web::Bytes| async move {
                drop(body);
                HttpResponse::NoContent().finish()
            }))
        })
        .workers(workers)
        .bind(addr)?
        .run()
        .await
    })?;
    Ok(())
}

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

/// Serves a webhook destination that answers `204` to any `POST` at once (the end-to-end
/// benchmark's receiver), until the process is killed.
pub fn serve_sink(addr: &str, workers: usize) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async {
        HttpServer::new(|| {
            App::new()
                .default_service(web::post().to(|| async { HttpResponse::NoContent().finish() }))
        })
        .workers(workers)
        .bind(addr)?
        .run()
        .await
    })?;
    Ok(())
}

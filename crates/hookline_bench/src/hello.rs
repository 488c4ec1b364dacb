//! The ceiling endpoint: what actix-web does with no database behind it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

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
/// end-to-end benchmark's receiver), until the process is killed. With `record`, it
/// appends each request's `webhook-id` to that file, one per line (`make chaos` checks
/// that every decided event arrived).
///
/// It reads the body as a real receiver does (it has to, to verify the signature): actix
/// closes a keep-alive connection whose request body was left unread, and the sender would
/// then open one TCP connection per delivery.
pub fn serve_sink(addr: &str, workers: usize, record: Option<&Path>) -> anyhow::Result<()> {
    let record: Option<Arc<Mutex<File>>> = record
        .map(|path| OpenOptions::new().create(true).append(true).open(path))
        .transpose()?
        .map(|file| Arc::new(Mutex::new(file)));
    let record = web::Data::new(record);
    actix_web::rt::System::new().block_on(async {
        HttpServer::new(move || {
            App::new()
                .app_data(record.clone())
                .default_service(web::post().to(sink))
        })
        .workers(workers)
        .bind(addr)?
        .run()
        .await
    })?;
    Ok(())
}

async fn sink(
    request: HttpRequest,
    body: web::Bytes,
    record: web::Data<Option<Arc<Mutex<File>>>>,
) -> HttpResponse {
    drop(body);
    if let Some(file) = record.get_ref()
        && let Some(id) = request.headers().get("webhook-id")
    {
        let mut line = id.as_bytes().to_vec();
        line.push(b'\n');
        let written = file
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))
            .and_then(|mut f| f.write_all(&line));
        if written.is_err() {
            // Not recorded means not received, as far as the check can tell: say so.
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    HttpResponse::NoContent().finish()
}

//! How the traces reach the collector: over gRPC (OTEL_EXPORTER_OTLP_PROTOCOL=grpc) with the
//! headers as metadata, and over TLS on both transports, trusting a private CA named in
//! OTEL_EXPORTER_OTLP_CERTIFICATE; a collector whose certificate nothing vouches for gets
//! nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message as _;

use super::{Exports, export_fails, sign_up, spans, traced_binary};
use crate::support::{self, ServiceProcess, TestDb};

/// A gRPC collector: keeps each export (re-encoded, as the HTTP collector keeps the bytes it
/// got) and the `x-api-key` metadata each came with.
#[derive(Clone, Default)]
struct GrpcCollector {
    exports: Exports,
    keys: Arc<Mutex<Vec<Option<String>>>>,
}

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let key = request
            .metadata()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.keys.lock().unwrap().push(key);
        self.exports
            .lock()
            .unwrap()
            .push(request.into_inner().encode_to_vec());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Serves `collector` over gRPC on a loopback port, with TLS when `tls` holds a certificate and
/// its key (PEM); returns the port.
async fn serve_grpc(collector: GrpcCollector, tls: Option<(&str, &str)>) -> u16 {
    let incoming =
        tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let port = incoming.local_addr().unwrap().port();
    let mut server = tonic::transport::Server::builder();
    if let Some((cert, key)) = tls {
        server = server
            .tls_config(
                tonic::transport::ServerTlsConfig::new()
                    .identity(tonic::transport::Identity::from_pem(cert, key)),
            )
            .unwrap();
    }
    let router = server.add_service(TraceServiceServer::new(collector));
    tokio::spawn(router.serve_with_incoming(incoming));
    port
}

/// Serves `router` over HTTPS (HTTP/1.1) on a loopback port with `cert` and `key` (PEM);
/// returns the port.
async fn serve_https(router: axum::Router, cert: &str, key: &str) -> u16 {
    use rustls::pki_types::pem::PemObject as _;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request| {
                    use tower::ServiceExt as _;
                    router.clone().oneshot(request)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

/// A private CA and a certificate for `localhost` it signed: (CA, certificate, key), PEM.
fn private_ca() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "atomic-signup test CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

/// Signs one user up through `service`, and waits until `exports` holds its server span.
async fn signup_is_exported(service: &ServiceProcess, exports: &Exports, email: &str) {
    sign_up(service, email).await;
    assert!(
        support::eventually(Duration::from_secs(30), || async {
            spans(exports)
                .iter()
                .any(|s| s.name == "POST /api/auth/signup" && s.kind == 2)
        })
        .await,
        "no server span exported:\n{}",
        service.logs()
    );
}

#[tokio::test]
async fn over_grpc_the_spans_arrive_with_the_headers_as_metadata() {
    let db = TestDb::migrated().await;
    let collector = GrpcCollector::default();
    let port = serve_grpc(collector.clone(), None).await;
    let mut command = traced_binary(&db, &format!("http://127.0.0.1:{port}"));
    command
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=collector-key");
    let service = ServiceProcess::start(command).await;
    signup_is_exported(&service, &collector.exports, "grpc@example.com").await;
    let keys = collector.keys.lock().unwrap().clone();
    assert!(
        keys.iter().all(|k| k.as_deref() == Some("collector-key")),
        "{keys:?}"
    );
    let logs = service.stop().await;
    assert!(
        !logs.contains("collector-key"),
        "the key was logged:\n{logs}"
    );
}

#[tokio::test]
async fn over_tls_the_collector_s_private_ca_is_trusted_when_named_on_both_transports() {
    let db = TestDb::migrated().await;
    let (ca, cert, key) = private_ca();
    let dir = std::env::temp_dir().join(format!("otlp-ca-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca).unwrap();

    // gRPC.
    let collector = GrpcCollector::default();
    let port = serve_grpc(collector.clone(), Some((&cert, &key))).await;
    let mut command = traced_binary(&db, &format!("https://localhost:{port}"));
    command
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        .env("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca_file);
    let service = ServiceProcess::start(command).await;
    signup_is_exported(&service, &collector.exports, "grpc-tls@example.com").await;
    service.stop().await;

    // HTTP/protobuf.
    let (router, exports) = super::collector_router();
    let port = serve_https(router, &cert, &key).await;
    let mut command = traced_binary(&db, &format!("https://localhost:{port}"));
    command.env("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca_file);
    let service = ServiceProcess::start(command).await;
    signup_is_exported(&service, &exports, "http-tls@example.com").await;
    service.stop().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Without the CA, the same collectors are not trusted: their exports fail, counted, on both
/// transports; none of their spans arrive.
#[tokio::test]
async fn over_tls_a_collector_nothing_vouches_for_gets_nothing() {
    let db = TestDb::migrated().await;
    let (_, cert, key) = private_ca();
    let collector = GrpcCollector::default();
    let grpc = serve_grpc(collector.clone(), Some((&cert, &key))).await;
    let (router, exports) = super::collector_router();
    let https = serve_https(router, &cert, &key).await;
    for (protocol, port) in [("grpc", grpc), ("http/protobuf", https)] {
        let mut command = traced_binary(&db, &format!("https://localhost:{port}"));
        command
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env("METRICS_BIND_ADDR", "127.0.0.1:0");
        let service = ServiceProcess::start(command).await;
        sign_up(&service, &format!("untrusted-{port}@example.com")).await;
        export_fails(&service).await;
        service.stop().await;
    }
    assert!(collector.exports.lock().unwrap().is_empty());
    assert!(exports.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unknown_protocol_is_said_at_startup_and_traces_stay_off() {
    let db = TestDb::migrated().await;
    let mut command = traced_binary(&db, "http://127.0.0.1:4318");
    command.env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json");
    let service = ServiceProcess::start(command).await;
    let logs = service.stop().await;
    assert!(
        logs.contains("traces are off: OTLP protocol \"http/json\" is not supported"),
        "{logs}"
    );
}

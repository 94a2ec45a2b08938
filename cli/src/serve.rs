//! `steward serve`: the HTTP API (the `steward-server` crate) and the
//! engine in one process, on one database. The API runs on a tokio
//! runtime of its own; the worker (as `steward run` runs it) on a thread,
//! reloading the programs tenants deploy over HTTP. SIGTERM or SIGINT stop
//! both: the server stops taking requests, the worker finishes its batch.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use steward_db::{PgStore, SqliteStore, Target};
use steward_server::{App, Backend};

use steward_worker::{empty_rules, observe, work_on_target, Finished, RunOptions};

pub fn serve(mut opts: RunOptions, listen: &str) -> Result<bool, String> {
    observe::init_logging();
    if opts.metrics.is_some() {
        return Err("`steward serve` serves the metrics at /metrics; drop --metrics".into());
    }
    let metrics = observe::install_metrics()?;
    opts.serving = true;
    let target = Target::choose(opts.database.as_deref());
    target.migrate().map_err(|e| e.to_string())?;
    let store: Arc<dyn Backend> = match &target {
        Target::Sqlite(path) => {
            Arc::new(SqliteStore::open(path, empty_rules()?).map_err(|e| e.to_string())?)
        }
        Target::Postgres(url) => {
            Arc::new(PgStore::open(url, empty_rules()?).map_err(|e| e.to_string())?)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the server's runtime: {e}"))?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(listen))
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let admin_token = std::env::var("STEWARD_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty());
    if admin_token.is_none() {
        eprintln!(
            "warning: STEWARD_ADMIN_TOKEN is not set; tenants and tokens cannot be made over HTTP"
        );
    }
    let sealer = match steward_db::sealed::Sealer::from_env() {
        Ok(s) => Some(s),
        Err(steward_db::sealed::SealError::NoKey) => {
            eprintln!(
                "warning: STEWARD_SECRET_KEY is not set; tenants have no secrets or signing secrets of their own (webhooks are signed with STEWARD_WEBHOOK_SECRET)"
            );
            None
        }
        Err(e) => return Err(e.to_string()),
    };
    // Kept here, so the store (and its runtime) is dropped after the
    // server, outside its runtime: a runtime cannot be dropped inside one.
    let keep = store.clone();
    let public_url = opts
        .public_url
        .get_or_insert_with(|| format!("http://{addr}"))
        .clone();
    let app = App {
        store,
        admin_token,
        public_url,
        metrics: Some(Arc::new(move || metrics.render())),
        programs: Default::default(),
        sealer,
        limits: Default::default(),
        destinations: Arc::new(steward_worker::guard::Destinations::from_env()?),
    };
    let router = steward_server::router(app);
    let stop = opts.stop.clone();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let result = std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let result = work_on_target(&opts).map(|f| f != Finished::Problems);
            let _ = done_tx.send(());
            result
        });
        eprintln!("steward serve: listening on http://{addr} ({target})");
        let served = rt.block_on(async {
            let shutdown = async {
                let term = async {
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(mut s) => {
                            s.recv().await;
                        }
                        Err(_) => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term => {}
                    _ = done_rx => {}
                }
            };
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        });
        // The server has stopped (asked to, or the worker did): so does
        // the worker, after its batch.
        stop.store(true, Ordering::SeqCst);
        let worked = worker
            .join()
            .unwrap_or_else(|_| Err("the worker panicked".to_string()));
        served.map_err(|e| format!("the server stopped: {e}"))?;
        eprintln!("steward serve: stopped");
        worked
    });
    drop(keep);
    result
}

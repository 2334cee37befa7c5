//! How the leader runs one attempt against an SDK endpoint.
//!
//! In production an attempt is an HTTP exchange with the deployment
//! (`keel-invoker` over the shared endpoint client). The run loop only
//! sees its events and feeds its inputs, so a test can stand in an SDK
//! that lives in the test process and behaves as the test says.

use futures::future::BoxFuture;
use keel_endpoint::{EndpointAddress, EndpointClient};
use keel_invoker::{AttemptEvent, AttemptInput, AttemptParams, run_attempt};
use tokio::sync::mpsc;

/// Runs attempts of invocations against SDK endpoints.
pub trait Endpoints: Send + Sync + 'static {
    /// Runs one attempt at `address` with `params`: reports what the SDK
    /// does on `events` (ending with `Ended` or a failure) and forwards
    /// `inputs` to it while it runs.
    fn run_attempt(
        &self,
        address: EndpointAddress,
        params: AttemptParams,
        events: mpsc::Sender<AttemptEvent>,
        inputs: mpsc::Receiver<AttemptInput>,
    ) -> BoxFuture<'static, ()>;
}

/// Real SDK endpoints over HTTP (h2c or HTTP/1.1).
#[derive(Clone, Default)]
pub struct HttpEndpoints {
    client: EndpointClient,
}

impl HttpEndpoints {
    /// Endpoints reached with `client`.
    pub fn new(client: EndpointClient) -> Self {
        HttpEndpoints { client }
    }
}

impl Endpoints for HttpEndpoints {
    fn run_attempt(
        &self,
        address: EndpointAddress,
        params: AttemptParams,
        events: mpsc::Sender<AttemptEvent>,
        inputs: mpsc::Receiver<AttemptInput>,
    ) -> BoxFuture<'static, ()> {
        let client = self.client.clone();
        Box::pin(async move { run_attempt(&client, &address, params, events, inputs).await })
    }
}

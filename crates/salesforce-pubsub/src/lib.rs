//! Salesforce's Pub/Sub API (gRPC service `eventbus.v1.PubSub`): the
//! messages (generated from `schemas/proto/eventbus/v1/pubsub_api.proto`),
//! a client for the two methods Tributary calls, `Subscribe` and
//! `GetSchema`, and the server side of those methods, which the local fake
//! implements. Written the way tonic's code generator writes them.

pub mod eventbus {
    #![allow(clippy::doc_markdown)]
    include!(concat!(env!("OUT_DIR"), "/eventbus.v1.rs"));
}

use std::sync::Arc;

use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http, tokio_stream};
use tonic::{Request, Response, Status, Streaming};

pub use eventbus::{
    ConsumerEvent, EventHeader, FetchRequest, FetchResponse, ProducerEvent, ReplayPreset,
    SchemaInfo, SchemaRequest,
};

const SUBSCRIBE: &str = "/eventbus.v1.PubSub/Subscribe";
const GET_SCHEMA: &str = "/eventbus.v1.PubSub/GetSchema";

/// The metadata every call carries: the session's access token, the org's
/// instance URL and its id.
pub const ACCESS_TOKEN_METADATA: &str = "accesstoken";
pub const INSTANCE_URL_METADATA: &str = "instanceurl";
pub const TENANT_ID_METADATA: &str = "tenantid";

/// A client of `eventbus.v1.PubSub`.
#[derive(Debug, Clone)]
pub struct PubSubClient {
    inner: tonic::client::Grpc<tonic::transport::Channel>,
}

impl PubSubClient {
    pub fn new(channel: tonic::transport::Channel) -> Self {
        PubSubClient {
            inner: tonic::client::Grpc::new(channel),
        }
    }

    async fn ready(&mut self) -> Result<(), Status> {
        self.inner
            .ready()
            .await
            .map_err(|err| Status::unavailable(format!("the Pub/Sub API is not reachable: {err}")))
    }

    /// Opens a subscription: `requests` are the fetch requests (the first
    /// names the topic and where to start; later ones ask for more events).
    pub async fn subscribe(
        &mut self,
        requests: Request<impl tokio_stream::Stream<Item = FetchRequest> + Send + 'static>,
    ) -> Result<Response<Streaming<FetchResponse>>, Status> {
        self.ready().await?;
        let codec = tonic_prost::ProstCodec::default();
        let path = http::uri::PathAndQuery::from_static(SUBSCRIBE);
        self.inner.streaming(requests, path, codec).await
    }

    /// The Avro schema of `schema_id`.
    pub async fn get_schema(
        &mut self,
        request: Request<SchemaRequest>,
    ) -> Result<Response<SchemaInfo>, Status> {
        self.ready().await?;
        let codec = tonic_prost::ProstCodec::default();
        let path = http::uri::PathAndQuery::from_static(GET_SCHEMA);
        self.inner.unary(request, path, codec).await
    }
}

/// What a `eventbus.v1.PubSub` server does (the fake's side).
#[tonic::async_trait]
pub trait PubSub: Send + Sync + 'static {
    type SubscribeStream: tokio_stream::Stream<Item = Result<FetchResponse, Status>>
        + Send
        + 'static;

    async fn subscribe(
        &self,
        request: Request<Streaming<FetchRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status>;

    async fn get_schema(
        &self,
        request: Request<SchemaRequest>,
    ) -> Result<Response<SchemaInfo>, Status>;
}

/// A [`PubSub`] as a gRPC service, for `tonic::transport::Server`.
pub struct PubSubServer<T> {
    inner: Arc<T>,
}

impl<T> PubSubServer<T> {
    pub fn new(inner: T) -> Self {
        PubSubServer {
            inner: Arc::new(inner),
        }
    }
}

impl<T> Clone for PubSubServer<T> {
    fn clone(&self) -> Self {
        PubSubServer {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> tonic::server::NamedService for PubSubServer<T> {
    const NAME: &'static str = "eventbus.v1.PubSub";
}

struct SubscribeMethod<T>(Arc<T>);

impl<T: PubSub> tonic::server::StreamingService<FetchRequest> for SubscribeMethod<T> {
    type Response = FetchResponse;
    type ResponseStream = T::SubscribeStream;
    type Future = BoxFuture<Response<Self::ResponseStream>, Status>;

    fn call(&mut self, request: Request<Streaming<FetchRequest>>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.subscribe(request).await })
    }
}

struct GetSchemaMethod<T>(Arc<T>);

impl<T: PubSub> tonic::server::UnaryService<SchemaRequest> for GetSchemaMethod<T> {
    type Response = SchemaInfo;
    type Future = BoxFuture<Response<SchemaInfo>, Status>;

    fn call(&mut self, request: Request<SchemaRequest>) -> Self::Future {
        let inner = Arc::clone(&self.0);
        Box::pin(async move { inner.get_schema(request).await })
    }
}

impl<T, B> Service<http::Request<B>> for PubSubServer<T>
where
    T: PubSub,
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let inner = Arc::clone(&self.inner);
        match request.uri().path() {
            SUBSCRIBE => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.streaming(SubscribeMethod(inner), request).await)
            }),
            GET_SCHEMA => Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
                Ok(grpc.unary(GetSchemaMethod(inner), request).await)
            }),
            _ => Box::pin(async move {
                Ok(Status::unimplemented("no such method of eventbus.v1.PubSub").into_http())
            }),
        }
    }
}

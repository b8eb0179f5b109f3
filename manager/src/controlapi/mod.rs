//! The Control API: what `rswarm node …`, `swarm …`, `service …`,
//! `network …`, `secret …`, `config …` and `events` call on a manager. Reads come from this manager's copy of
//! the store; writes go through Raft (forwarded to the leader by the store).

pub(crate) mod cluster;
pub mod configs;
pub mod limits;
pub(crate) mod networks;
mod nodes;
pub(crate) mod paging;
pub mod redact;
pub mod secrets;
pub mod services;
pub mod spec_write;
pub(crate) mod stored_files;
mod streams;

pub(crate) use streams::BoxStream;

use rswarm_proto::control::control_server::Control;
use rswarm_proto::control::*;
use rswarm_proto::types::{Cluster, Node};
use std::sync::Arc;

use rswarm_proto::control::services_server::Services;
use rswarm_proto::types::{Service, Task};
use rswarm_raft::{Connector, Store};
use tonic::{Request, Response, Status, Streaming};

use crate::dispatcher::agents::AgentRegistry;

/// The Control service of one manager.
#[derive(Clone)]
pub struct ControlApi {
    store: Store,
    /// The manager's event log; without one (the dashboard's own calls),
    /// `Events` is unavailable.
    events: Option<Arc<crate::events::EventLog>>,
}

impl ControlApi {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            events: None,
        }
    }

    /// Serves `Events` from this manager's event log.
    pub fn with_events(mut self, events: Arc<crate::events::EventLog>) -> Self {
        self.events = Some(events);
        self
    }
}

#[tonic::async_trait]
impl Control for ControlApi {
    async fn get_node(&self, req: Request<GetNodeRequest>) -> Result<Response<Node>, Status> {
        Ok(Response::new(nodes::get(
            &self.store,
            &req.into_inner().node_ref,
        )?))
    }

    async fn list_nodes(
        &self,
        req: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        let (nodes, next_page_token) = paging::page(
            nodes::list(&self.store)?,
            |n| n.id.as_str(),
            &req.into_inner().page_token,
        );
        Ok(Response::new(ListNodesResponse {
            nodes,
            next_page_token,
        }))
    }

    async fn update_node(&self, req: Request<UpdateNodeRequest>) -> Result<Response<Node>, Status> {
        Ok(Response::new(
            nodes::update(&self.store, req.into_inner()).await?,
        ))
    }

    async fn remove_node(
        &self,
        req: Request<RemoveNodeRequest>,
    ) -> Result<Response<RemoveNodeResponse>, Status> {
        nodes::remove(&self.store, req.into_inner()).await?;
        Ok(Response::new(RemoveNodeResponse {}))
    }

    async fn get_cluster(
        &self,
        _req: Request<GetClusterRequest>,
    ) -> Result<Response<Cluster>, Status> {
        Ok(Response::new(cluster::get(&self.store)?))
    }

    async fn update_cluster(
        &self,
        req: Request<UpdateClusterRequest>,
    ) -> Result<Response<Cluster>, Status> {
        Ok(Response::new(
            cluster::update(&self.store, req.into_inner()).await?,
        ))
    }

    async fn rotate_join_token(
        &self,
        req: Request<RotateJoinTokenRequest>,
    ) -> Result<Response<Cluster>, Status> {
        Ok(Response::new(
            cluster::rotate(&self.store, req.into_inner()).await?,
        ))
    }

    async fn rotate_root_ca(
        &self,
        _req: Request<RotateRootCaRequest>,
    ) -> Result<Response<Cluster>, Status> {
        Ok(Response::new(
            crate::ca::rotation::start(&self.store).await?,
        ))
    }

    type EventsStream = streams::BoxStream<EventsResponse>;

    async fn events(
        &self,
        req: Request<EventsRequest>,
    ) -> Result<Response<Self::EventsStream>, Status> {
        let log = self
            .events
            .clone()
            .ok_or_else(|| Status::unavailable("this manager does not record events"))?;
        let s = crate::events::events(log, req.into_inner()).await?;
        Ok(Response::new(s))
    }

    async fn dashboard_token(
        &self,
        req: Request<DashboardTokenRequest>,
    ) -> Result<Response<DashboardTokenResponse>, Status> {
        let token =
            crate::dashboard::token::get_or_rotate(&self.store, req.into_inner().rotate).await?;
        Ok(Response::new(DashboardTokenResponse { token }))
    }
}

/// The Services service of one manager: services, tasks, logs and exec.
#[derive(Clone)]
pub struct ServicesApi {
    store: Store,
    agents: Arc<AgentRegistry>,
    connector: Arc<dyn Connector>,
}

impl ServicesApi {
    pub fn new(store: Store, agents: Arc<AgentRegistry>, connector: Arc<dyn Connector>) -> Self {
        Self {
            store,
            agents,
            connector,
        }
    }
}

#[tonic::async_trait]
impl Services for ServicesApi {
    async fn create_service(
        &self,
        req: Request<CreateServiceRequest>,
    ) -> Result<Response<Service>, Status> {
        let spec = req
            .into_inner()
            .spec
            .ok_or_else(|| Status::invalid_argument("create without a service spec"))?;
        Ok(Response::new(redact::service(
            services::create(&self.store, spec).await?,
        )))
    }

    async fn get_service(
        &self,
        req: Request<GetServiceRequest>,
    ) -> Result<Response<Service>, Status> {
        Ok(Response::new(redact::service(services::resolve_service(
            &self.store,
            &req.into_inner().service_ref,
        )?)))
    }

    async fn list_services(
        &self,
        req: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesResponse>, Status> {
        let (services, next_page_token) = paging::page(
            crate::objects::list::<Service>(&self.store)?,
            |s| s.id.as_str(),
            &req.into_inner().page_token,
        );
        Ok(Response::new(ListServicesResponse {
            services: services.into_iter().map(redact::service).collect(),
            next_page_token,
        }))
    }

    async fn update_service(
        &self,
        req: Request<UpdateServiceRequest>,
    ) -> Result<Response<Service>, Status> {
        Ok(Response::new(redact::service(
            services::update(&self.store, req.into_inner()).await?,
        )))
    }

    async fn remove_service(
        &self,
        req: Request<RemoveServiceRequest>,
    ) -> Result<Response<RemoveServiceResponse>, Status> {
        services::remove(&self.store, &req.into_inner().service_ref).await?;
        Ok(Response::new(RemoveServiceResponse {}))
    }

    async fn get_task(&self, req: Request<GetTaskRequest>) -> Result<Response<Task>, Status> {
        Ok(Response::new(redact::task(services::resolve_task(
            &self.store,
            &req.into_inner().task_ref,
        )?)))
    }

    async fn list_tasks(
        &self,
        req: Request<ListTasksRequest>,
    ) -> Result<Response<ListTasksResponse>, Status> {
        let req = req.into_inner();
        let (tasks, next_page_token) = paging::page(
            services::list_tasks(&self.store, &req)?,
            |t| t.id.as_str(),
            &req.page_token,
        );
        Ok(Response::new(ListTasksResponse {
            tasks: tasks.into_iter().map(redact::task).collect(),
            next_page_token,
        }))
    }

    type LogsStream = streams::BoxStream<LogsResponse>;

    async fn logs(&self, req: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let s = streams::logs(
            self.store.clone(),
            self.agents.clone(),
            self.connector.clone(),
            req.into_inner(),
        )
        .await?;
        Ok(Response::new(s))
    }

    type ExecStream = streams::BoxStream<ExecOutput>;

    async fn exec(
        &self,
        req: Request<Streaming<ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let s = streams::exec(
            self.store.clone(),
            self.agents.clone(),
            self.connector.clone(),
            req.into_inner(),
        )
        .await?;
        Ok(Response::new(s))
    }
}

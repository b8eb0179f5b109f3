//! The hickory-server request handler: answers one query from the record
//! table, with the asking task's view, or forwards it to the host's resolvers.
//!
//! One [`TaskHandler`] exists per served socket pair; all of them share the
//! same [`Shared`] state (the current record table and the upstream pool), so
//! `set_records` is seen by every task at its next query.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use hickory_proto::op::{
    DnsRequest, DnsRequestOptions, DnsResponse, Edns, Header, HeaderCounts, LowerQuery, Metadata,
    OpCode, ResponseCode,
};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_resolver::net::runtime::{Time, TokioRuntimeProvider};
use hickory_resolver::net::{DnsError as WireDnsError, DnsHandle, NetError, NoRecords};
use hickory_resolver::NameServerPool;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tracing::{debug, warn};

use super::table::{normalize, parse_reverse_v4, Found, Table};
use super::View;

/// TTL of cluster answers: 0, so a change is seen at the next query.
pub(crate) const RECORD_TTL: u32 = 0;

/// Largest UDP answer we offer (the usual EDNS size that avoids fragments).
const MAX_UDP_PAYLOAD: u16 = 1232;

/// State shared by every socket the server serves.
pub(crate) struct Shared {
    pub(crate) table: RwLock<Arc<Table>>,
    pub(crate) upstream: Option<NameServerPool<TokioRuntimeProvider>>,
    pub(crate) forward_timeout: Duration,
    /// Rotates multi-address answers so clients that take the first spread out.
    rotate: AtomicUsize,
    /// Where queries are counted, once the daemon gives its handles.
    pub(crate) metrics: std::sync::OnceLock<crate::metrics::OverlayMetrics>,
}

impl Shared {
    pub(crate) fn new(
        upstream: Option<NameServerPool<TokioRuntimeProvider>>,
        forward_timeout: Duration,
    ) -> Shared {
        Shared {
            table: RwLock::new(Arc::new(Table::default())),
            upstream,
            forward_timeout,
            rotate: AtomicUsize::new(0),
            metrics: std::sync::OnceLock::new(),
        }
    }

    pub(crate) fn table(&self) -> Arc<Table> {
        match self.table.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(crate) fn set_table(&self, table: Table) {
        let table = Arc::new(table);
        match self.table.write() {
            Ok(mut t) => *t = table,
            Err(poisoned) => *poisoned.into_inner() = table,
        }
    }
}

/// Answers the queries of one task (one socket pair).
pub(crate) struct TaskHandler {
    pub(crate) shared: Arc<Shared>,
    pub(crate) view: View,
    /// The task's own resolvers (`--dns`), used instead of the host's.
    pub(crate) own_upstream: Option<NameServerPool<TokioRuntimeProvider>>,
}

/// What to send back, before it is encoded.
struct Reply {
    metadata: Metadata,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    additionals: Vec<Record>,
}

impl Reply {
    fn new(request: &Request, code: ResponseCode, authoritative: bool) -> Reply {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = code;
        metadata.authoritative = authoritative;
        // We do resolve recursively (by forwarding); without RA, nslookup
        // complains and tries the next server.
        metadata.recursion_available = true;
        Reply {
            metadata,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for TaskHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let (reply, source) = self.answer(request).await;
        if let Some(m) = self.shared.metrics.get() {
            let qtype = request
                .queries
                .queries()
                .first()
                .map(|q| q.query_type().to_string())
                .unwrap_or_default();
            m.dns_query(
                &qtype,
                rcode_label(reply.metadata.response_code),
                source,
                reply.answers.len(),
            );
        }

        let edns = request.edns.as_ref().map(|req| {
            let mut edns = Edns::new();
            edns.set_max_payload(req.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            edns.set_version(0);
            edns
        });
        let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
        let metadata = reply.metadata;
        let response = builder.build(
            metadata,
            reply.answers.iter(),
            reply.authorities.iter(),
            std::iter::empty(),
            reply.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                warn!(%error, "dns: sending a response failed");
                let mut metadata = metadata;
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

impl TaskHandler {
    /// The reply and where it came from (`cluster` or `upstream`).
    async fn answer(&self, request: &Request) -> (Reply, &'static str) {
        if request.metadata.op_code != OpCode::Query {
            return (Reply::new(request, ResponseCode::NotImp, false), "cluster");
        }
        let query = match request.request_info() {
            Ok(info) => info.query,
            Err(_) => return (Reply::new(request, ResponseCode::FormErr, false), "cluster"),
        };
        let qclass = query.query_class();
        if qclass == DNSClass::IN || qclass == DNSClass::ANY {
            if let Some(reply) = self.answer_local(request, query) {
                return (reply, "cluster");
            }
        }
        (self.forward(request, query).await, "upstream")
    }

    /// Answers from the table, or `None` when the name is not the cluster's.
    fn answer_local(&self, request: &Request, query: &LowerQuery) -> Option<Reply> {
        let name = normalize(&query.name().to_string());
        let qtype = query.query_type();
        let owner = query.original().name().clone();
        let table = self.shared.table();

        if qtype == RecordType::PTR {
            if let Some(addr) = parse_reverse_v4(&name) {
                let target = table.reverse(&self.view, addr)?;
                let target = Name::from_ascii(format!("{target}.")).ok()?;
                let mut reply = Reply::new(request, ResponseCode::NoError, true);
                reply.answers.push(Record::from_rdata(
                    owner,
                    RECORD_TTL,
                    RData::PTR(PTR(target)),
                ));
                return Some(reply);
            }
        }

        match table.resolve(&self.view, &name) {
            Found::Addrs(mut addrs) => {
                let mut reply = Reply::new(request, ResponseCode::NoError, true);
                // A (and ANY) get the addresses; AAAA and every other type get
                // an empty NOERROR at once: the name exists, IPv4 only.
                if matches!(qtype, RecordType::A | RecordType::ANY) {
                    if addrs.len() > 1 {
                        let n = self.shared.rotate.fetch_add(1, Ordering::Relaxed);
                        let len = addrs.len();
                        addrs.rotate_left(n % len);
                    }
                    reply.answers = a_records(&owner, &addrs);
                }
                Some(reply)
            }
            Found::NxDomain => Some(Reply::new(request, ResponseCode::NXDomain, true)),
            Found::Unknown => None,
        }
    }

    /// Forwards to the task's resolvers (else the host's) and relays their
    /// answer.
    async fn forward(&self, request: &Request, query: &LowerQuery) -> Reply {
        let Some(pool) = self.own_upstream.as_ref().or(self.shared.upstream.as_ref()) else {
            debug!(name = %query.name(), "dns: no upstream, SERVFAIL");
            return Reply::new(request, ResponseCode::ServFail, false);
        };
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = request.metadata.recursion_desired;
        options.use_edns = true;
        options.edns_payload_len = MAX_UDP_PAYLOAD;
        let upstream_request = DnsRequest::from_query(query.original().clone(), options);

        let mut responses = pool.send(upstream_request);
        let result: Result<DnsResponse, NetError> =
            match tokio::time::timeout(self.shared.forward_timeout, responses.next()).await {
                Ok(Some(result)) => result,
                Ok(None) => Err(NetError::from("upstream closed without an answer")),
                Err(_) => Err(NetError::Timeout),
            };
        relay(request, result)
    }
}

/// The response code as a metric label.
fn rcode_label(code: ResponseCode) -> &'static str {
    match code {
        ResponseCode::NoError => "noerror",
        ResponseCode::FormErr => "formerr",
        ResponseCode::ServFail => "servfail",
        ResponseCode::NXDomain => "nxdomain",
        ResponseCode::NotImp => "notimp",
        ResponseCode::Refused => "refused",
        _ => "other",
    }
}

/// A records for `owner`.
fn a_records(owner: &Name, addrs: &[Ipv4Addr]) -> Vec<Record> {
    addrs
        .iter()
        .map(|a| Record::from_rdata(owner.clone(), RECORD_TTL, RData::A(A(*a))))
        .collect()
}

/// Turns the upstream's answer (or its failure) into our reply.
fn relay(request: &Request, result: Result<DnsResponse, NetError>) -> Reply {
    match result {
        Ok(response) => {
            let message = response.into_message();
            let mut reply = Reply::new(request, message.metadata.response_code, false);
            reply.metadata.authoritative = message.metadata.authoritative;
            reply.metadata.authentic_data = message.metadata.authentic_data;
            reply.answers = message.answers;
            reply.authorities = message.authorities;
            reply.additionals = message.additionals;
            reply
        }
        // The pool turns empty and NXDOMAIN answers into errors: rebuild them.
        Err(NetError::Dns(WireDnsError::NoRecordsFound(NoRecords {
            response_code,
            authorities,
            soa,
            ..
        }))) => {
            let mut reply = Reply::new(request, response_code, false);
            if let Some(authorities) = authorities {
                reply.authorities = authorities.to_vec();
            } else if let Some(soa) = soa {
                reply.authorities.push(soa.into_record_of_rdata());
            }
            reply
        }
        Err(NetError::Dns(WireDnsError::ResponseCode(code))) => Reply::new(request, code, false),
        Err(error) => {
            debug!(%error, "dns: forwarding failed, SERVFAIL");
            Reply::new(request, ResponseCode::ServFail, false)
        }
    }
}

//! What the embedded server refuses before the catalog sees a query: any class but IN
//! (the zone is an IN zone; hickory's catalog would answer a `CH` query with the IN
//! records, flagged authoritative), and zone transfers of either kind (AXFR and IXFR; the
//! published set is not for copying, and hickory answers IXFR with NOERROR/NODATA).
//! Everything else goes to the catalog unchanged.

use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::{DNSClass, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{Catalog, MessageResponseBuilder};

/// The answer for one query's class and type: None = let the catalog answer.
pub fn refusal(class: DNSClass, rtype: RecordType) -> Option<ResponseCode> {
    if class != DNSClass::IN {
        return Some(ResponseCode::Refused);
    }
    if matches!(rtype, RecordType::AXFR | RecordType::IXFR) {
        return Some(ResponseCode::Refused);
    }
    None
}

/// The catalog behind the [`refusal`] rules.
pub struct Guarded(pub Catalog);

#[async_trait::async_trait]
impl RequestHandler for Guarded {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let is_query = request.metadata.message_type == MessageType::Query
            && request.metadata.op_code == OpCode::Query;
        let code = is_query
            .then(|| {
                request
                    .queries
                    .queries()
                    .iter()
                    .find_map(|q| refusal(q.query_class(), q.query_type()))
            })
            .flatten();
        let Some(code) = code else {
            return self
                .0
                .handle_request::<R, T>(request, response_handle)
                .await;
        };
        let response =
            MessageResponseBuilder::new(&request.queries, None).error_msg(&request.metadata, code);
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "dns: could not send a refusal");
                let mut metadata = Metadata::new(
                    request.metadata.id,
                    MessageType::Response,
                    request.metadata.op_code,
                );
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_classes_and_transfers_are_refused() {
        assert_eq!(refusal(DNSClass::IN, RecordType::A), None);
        assert_eq!(refusal(DNSClass::IN, RecordType::SOA), None);
        assert_eq!(
            refusal(DNSClass::CH, RecordType::A),
            Some(ResponseCode::Refused)
        );
        assert_eq!(
            refusal(DNSClass::HS, RecordType::TXT),
            Some(ResponseCode::Refused)
        );
        assert_eq!(
            refusal(DNSClass::IN, RecordType::AXFR),
            Some(ResponseCode::Refused)
        );
        assert_eq!(
            refusal(DNSClass::IN, RecordType::IXFR),
            Some(ResponseCode::Refused)
        );
    }
}

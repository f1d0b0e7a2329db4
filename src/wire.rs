//! The AI Cut API's JSON bodies, shared by the server and the client so both speak the
//! seed's field names exactly (`greenDots`, `redDots`, `unique_filename`, ...).

use serde::{Deserialize, Serialize};

use crate::prompt::Dot;

/// Routes of the contract, with the seed's trailing slashes.
pub const INITIALIZE_PATH: &str = "/v3/ai-cut/initialize/";
pub const SEGMENT_PATH: &str = "/v3/ai-cut/segment/";
/// Where `aicut serve` publishes cut-outs (the hosted service uses a CDN instead).
pub const OUTPUTS_PREFIX: &str = "/v3/ai-cut/outputs/";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InitializeResponse {
    pub unique_filename: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentRequest {
    pub unique_filename: String,
    #[serde(rename = "greenDots")]
    pub green_dots: Vec<Dot>,
    #[serde(rename = "redDots")]
    pub red_dots: Vec<Dot>,
    pub request_number: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentResponse {
    pub status: String,
    pub unique_filename: String,
    pub output_url: String,
    pub request_number: u64,
}

/// Every error body: `{"detail": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub detail: String,
}

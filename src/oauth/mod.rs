//! OAuth with Kimi: endpoints and their rule, the HTTP client, device-flow login and
//! single-flight refresh.

pub mod device;
pub mod endpoints;
pub mod http;
pub mod refresh;
pub mod response;

//! OAuth with Kimi, protocol only: the endpoints and their rule, the device-flow exchange, the
//! refresh exchange, and what the server's answers mean. Nothing here stores anything.

pub(crate) mod device;
pub mod endpoints;
pub(crate) mod refresh;
pub(crate) mod response;

pub use device::LoginEvent;
pub use endpoints::{EndpointOverrides, Endpoints, Region};
pub use response::{DeviceAuthorization, TokenGrant};

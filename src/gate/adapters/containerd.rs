//! containerd's images API as the gate's [`ImageStore`]: what a name points to.

use async_trait::async_trait;

use crate::containerd::{Containerd, Target};
use crate::cri::wait::busy_wait;
use crate::gate::{GateError, ImageStore};

#[async_trait]
impl ImageStore for Containerd {
    /// On the kubelet's call path: polls for the answer as long as the connection's
    /// busy-poll budget allows (see [`busy_wait`]).
    async fn target(&self, name: &str) -> Result<Option<Target>, GateError> {
        busy_wait(self.image_target(name), self.busy_poll())
            .await
            .map_err(GateError::Containerd)
    }
}

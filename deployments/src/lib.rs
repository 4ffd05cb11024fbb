//! DeploymentConfigs: their ImageChange and ConfigChange triggers and the
//! deployment records (`<dc>-<version>` ReplicationControllers) they make.
//! Running the containers is a later runtime's job; the records already
//! hold the resolved pod template it needs.

pub mod controller;
pub mod rollout;
